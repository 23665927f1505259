//! `commands_embedded_many` and `commands_embedded_single`: durable
//! commands through [`Runtime::execute`] on the embedded store, with the
//! runtime's default configuration; every command is a `Deposit` of 1.
//!
//! *Many*: 1 000 open accounts and [`CALLERS`] concurrent callers (tokio
//! tasks on the multi-thread runtime, see [`load`]), then a short sweep of
//! other caller counts. *Single*: one caller, one account. Both are also
//! run on a `MemoryStore` (`commands_memory_*`, no target): the same
//! command path without a durable store, which tells how much of the time
//! is the runtime's and how much the store's. The balances are checked
//! against the number of successful deposits at the end.

use std::sync::Arc;
use std::time::Duration;

use aether_host::runtime::{Runtime, RuntimeConfig};
use aether_host::store::{EventStore, MemoryStore, StreamId};
use anyhow::ensure;

use super::fixture::{self, ACCOUNT, Ctx};
use super::load;
use super::report::{Metric, Report, Target, median};

const ACCOUNTS: usize = 1_000;
const CALLERS: usize = 200;
const SWEEP: [usize; 4] = [25, 50, 100, 400];
const RUNS: usize = 3;
const SINGLE_RUNS: usize = 5;
const WARMUP: Duration = Duration::from_millis(1_000);
const MANY_DURATION: Duration = Duration::from_secs(4);
const SWEEP_DURATION: Duration = Duration::from_secs(2);
const SINGLE_DURATION: Duration = Duration::from_secs(2);
const BASELINE_DURATION: Duration = Duration::from_secs(1);

/// The constants above, or a smoke run's.
#[derive(Clone)]
struct Sizes {
    accounts: usize,
    callers: usize,
    sweep: Vec<usize>,
    runs: usize,
    single_runs: usize,
    warmup: Duration,
    many: Duration,
    sweep_duration: Duration,
    single: Duration,
    baseline: Duration,
}

impl Sizes {
    fn of(ctx: &Ctx) -> Self {
        let short = Duration::from_millis(150);
        Self {
            accounts: ctx.size(ACCOUNTS, 40),
            callers: ctx.size(CALLERS, 8),
            sweep: ctx.size(SWEEP.to_vec(), vec![4]),
            runs: ctx.size(RUNS, 1),
            single_runs: ctx.size(SINGLE_RUNS, 1),
            warmup: ctx.size(WARMUP, short),
            many: ctx.size(MANY_DURATION, short),
            sweep_duration: ctx.size(SWEEP_DURATION, short),
            single: ctx.size(SINGLE_DURATION, short),
            baseline: ctx.size(BASELINE_DURATION, short),
        }
    }
}

/// The store a load runs on.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Embedded,
    Memory,
}

impl Backend {
    fn prefix(self) -> &'static str {
        match self {
            Backend::Embedded => "commands_embedded",
            Backend::Memory => "commands_memory",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => fixture::DURABLE_BACKEND,
            Backend::Memory => "MemoryStore (baseline: the command path without durability)",
        }
    }
}

/// A runtime on a fresh store of `backend` with `count` open accounts;
/// the directory (if any) lives as long as the returned guard.
struct Bench {
    sizes: Sizes,
    runtime: Runtime,
    accounts: Arc<Vec<StreamId>>,
    deposits: u64,
    _dir: Option<tempfile::TempDir>,
}

impl Bench {
    async fn start(ctx: &Ctx, backend: Backend, count: usize) -> anyhow::Result<Self> {
        let (store, dir): (Arc<dyn EventStore>, _) = match backend {
            Backend::Embedded => {
                let dir = ctx.tempdir()?;
                (fixture::durable_store(dir.path())?, Some(dir))
            }
            Backend::Memory => (Arc::new(MemoryStore::new()), None),
        };
        let runtime =
            fixture::runtime_with_accounts(ctx, store, RuntimeConfig::default(), &[ACCOUNT])
                .await?;
        let sizes = Sizes::of(ctx);
        let accounts = load::accounts(count)?;
        load::open_all(&runtime, &accounts, sizes.callers).await?;
        let warmup = sizes.warmup;
        let mut bench = Self {
            sizes,
            runtime,
            accounts,
            deposits: 0,
            _dir: dir,
        };
        bench.run(bench.sizes.callers, warmup).await?;
        Ok(bench)
    }

    async fn run(&mut self, callers: usize, duration: Duration) -> anyhow::Result<load::Load> {
        let run = load::deposits(&self.runtime, &self.accounts, callers, duration).await?;
        self.deposits += run.commands;
        Ok(run)
    }

    /// `runs` runs; the medians of throughput, p50 and p99 (ms).
    async fn measure(
        &mut self,
        callers: usize,
        duration: Duration,
        runs: usize,
    ) -> anyhow::Result<[f64; 3]> {
        let (mut rates, mut p50s, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let mut run = self.run(callers, duration).await?;
            rates.push(run.per_second);
            p50s.push(run.latency_ms(50.0));
            p99s.push(run.latency_ms(99.0));
        }
        Ok([median(&mut rates), median(&mut p50s), median(&mut p99s)])
    }

    /// Checks that every successful deposit is in a balance.
    async fn check(&self) -> anyhow::Result<()> {
        let total = load::total_balance(&self.runtime, &self.accounts).await?;
        ensure!(
            total == self.deposits,
            "the balances add up to {total}, but {} deposits succeeded",
            self.deposits
        );
        Ok(())
    }
}

pub(crate) async fn many(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let sizes = Sizes::of(ctx);
    let (accounts, callers, runs) = (sizes.accounts, sizes.callers, sizes.runs);
    for backend in [Backend::Embedded, Backend::Memory] {
        let mut bench = Bench::start(ctx, backend, accounts).await?;
        let duration = if backend == Backend::Embedded {
            sizes.many
        } else {
            sizes.baseline
        };
        let [rate, p50, p99] = bench.measure(callers, duration, runs).await?;
        let params = |m: Metric, callers: usize, duration: Duration, runs: usize| {
            m.param("backend", backend.name())
                .param("aggregates", accounts as u64)
                .param("concurrency", callers as u64)
                .param("seconds_per_run", duration.as_secs_f64())
                .param("runs", runs as u64)
                .param("command", "Deposit")
                .param("config", "RuntimeConfig::default()")
        };
        let name = format!("{}_many", backend.prefix());
        let (mut throughput, mut latency) = (
            Metric::new(&name, rate, "commands/s"),
            Metric::new(&format!("{name}_p99"), p99, "ms"),
        );
        if backend == Backend::Embedded {
            throughput = throughput.target(Target::AtLeast(50_000.0));
            latency = latency.target(Target::AtMost(5.0));
        }
        report.push(params(throughput, callers, duration, runs));
        report.push(params(
            Metric::new(&format!("{name}_p50"), p50, "ms"),
            callers,
            duration,
            runs,
        ));
        report.push(params(latency, callers, duration, runs));
        if backend == Backend::Embedded {
            for &callers in &sizes.sweep {
                let [rate, _, p99] = bench.measure(callers, sizes.sweep_duration, 1).await?;
                report.push(params(
                    Metric::new(&format!("{name}_c{callers}"), rate, "commands/s"),
                    callers,
                    sizes.sweep_duration,
                    1,
                ));
                report.push(params(
                    Metric::new(&format!("{name}_c{callers}_p99"), p99, "ms"),
                    callers,
                    sizes.sweep_duration,
                    1,
                ));
            }
        }
        bench.check().await?;
    }
    Ok(())
}

pub(crate) async fn single(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let sizes = Sizes::of(ctx);
    for backend in [Backend::Embedded, Backend::Memory] {
        let mut bench = Bench::start(ctx, backend, 1).await?;
        let duration = if backend == Backend::Embedded {
            sizes.single
        } else {
            sizes.baseline
        };
        let [rate, p50, p99] = bench.measure(1, duration, sizes.single_runs).await?;
        bench.check().await?;
        let params = |m: Metric| {
            m.param("backend", backend.name())
                .param("aggregates", 1)
                .param("concurrency", 1)
                .param("seconds_per_run", duration.as_secs_f64())
                .param("runs", sizes.single_runs as u64)
                .param("command", "Deposit")
                .param("config", "RuntimeConfig::default()")
        };
        let name = format!("{}_single", backend.prefix());
        let mut throughput = Metric::new(&name, rate, "commands/s");
        if backend == Backend::Embedded {
            throughput = throughput.target(Target::AtLeast(5_000.0));
        }
        report.push(params(throughput));
        report.push(params(Metric::new(&format!("{name}_p50"), p50, "ms")));
        report.push(params(Metric::new(&format!("{name}_p99"), p99, "ms")));
        if backend == Backend::Embedded && !ctx.smoke {
            // Physics: one writer, one command at a time, each acknowledged
            // only after a sync, cannot beat one command per fdatasync.
            let sync_ms = super::machine::fdatasync_p50_ms(ctx)?;
            let fsync = Ceiling {
                rows: ["fsync_ceiling", "of_ceiling"],
                what: "1000 / fdatasync p50 (ms), probed right after the runs",
                probe: ("fdatasync_p50_ms", sync_ms),
            };
            let [ceiling, share] = fsync.rows(&name, rate);
            report.push(ceiling);
            report.push(share.target(Target::AtLeast(0.5)));
            // The journal's own kind of durable write (one call, no
            // separate sync) is faster than a write and an fdatasync: the
            // tighter ceiling, reported beside the one the target names.
            if let Some(write_ms) = super::machine::direct_write_p50_ms(ctx)? {
                let direct = Ceiling {
                    rows: ["direct_ceiling", "of_direct_ceiling"],
                    what: "1000 / p50 (ms) of one O_DIRECT|O_DSYNC 4 KiB page write, probed right after the runs",
                    probe: ("direct_write_p50_ms", write_ms),
                };
                direct
                    .rows(&name, rate)
                    .into_iter()
                    .for_each(|row| report.push(row));
            }
        }
    }
    Ok(())
}

/// A physical ceiling of one-at-a-time durable commands: one command per
/// durable write, whose latency a probe measured.
struct Ceiling {
    /// The suffixes of the ceiling's row and of the share of it reached.
    rows: [&'static str; 2],
    what: &'static str,
    /// The probe's name and its p50, in ms.
    probe: (&'static str, f64),
}

impl Ceiling {
    /// `{name}_{ceiling}` (commands a second) and `{name}_{share}` (the
    /// share of it that `rate` reaches).
    fn rows(self, name: &str, rate: f64) -> [Metric; 2] {
        let ([ceiling_row, share_row], (probe, ms)) = (self.rows, self.probe);
        let ceiling = 1000.0 / ms;
        [
            Metric::new(&format!("{name}_{ceiling_row}"), ceiling, "commands/s")
                .param("what", self.what)
                .param(probe, ms),
            Metric::new(&format!("{name}_{share_row}"), rate / ceiling, "fraction").param(
                "what",
                format!("{name} / its {}", ceiling_row.replace('_', " ")).as_str(),
            ),
        ]
    }
}
