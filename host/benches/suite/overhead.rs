//! `command_overhead`: the time one command spends in the Wasm boundary,
//! one `execute` call (decide a `Deposit` and apply the event it decided)
//! on a [`DirectAggregate`] — no store, no partitions, no locks.
//!
//! Each command is timed on its own. The metric is the median over every
//! command of every run.
//!
//! `command_overhead_fuel` is the same load on a runtime with fuel
//! metering on, and `command_overhead_fuel_ratio` what metering costs: the
//! median over runs of the two runs' medians, the runs taken in turn.

use std::time::{Duration, Instant};

use aether_host::runtime::{DirectAggregate, JSON, Runtime, RuntimeConfig, SandboxLimits};
use aether_host::store::MemoryStore;
use anyhow::{bail, ensure};

use super::fixture::{self, Ctx};
use super::report::{Metric, Report, Target, median, percentile};

const COMMANDS: usize = 10_000;
const WARMUP: usize = 1;
const RUNS: usize = 5;
const TIMESTAMP_MS: u64 = 1_700_000_000_000;

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    // The same load twice, on two runtimes: without fuel metering (the
    // default) and with it (every guest call metered, with fuel to spare),
    // run by run in turn so both see the same machine.
    let mut plain = Measured::start(ctx, RuntimeConfig::default()).await?;
    let metered_config = RuntimeConfig {
        fuel_metering: true,
        limits: SandboxLimits {
            fuel_per_call: Some(FUEL_PER_CALL),
            ..SandboxLimits::default()
        },
        ..RuntimeConfig::default()
    };
    let mut metered = Measured::start(ctx, metered_config).await?;
    let (commands, warmup, runs) = (
        ctx.size(COMMANDS, 200),
        ctx.size(WARMUP, 1),
        ctx.size(RUNS, 1),
    );

    let mut fuel_ratios = Vec::new();
    for run in 0..warmup + runs {
        let counted = run >= warmup;
        let plain_run = plain.run(commands, counted)?;
        let metered_run = metered.run(commands, counted)?;
        if counted {
            fuel_ratios.push(metered_run / plain_run);
        }
    }
    for measured in [&mut plain, &mut metered] {
        measured.check((warmup + runs) * commands)?;
    }

    let params = |m: Metric| {
        m.param("commands_per_run", commands as u64)
            .param("runs", runs as u64)
            .param("command", "Deposit")
    };
    let Measured { mut total, .. } = plain;
    report.push(
        params(Metric::new("command_overhead", median(&mut total), "µs"))
            .target(Target::AtMost(5.0)),
    );
    report.push(params(Metric::new(
        "command_overhead_p99",
        percentile(&mut total, 99.0),
        "µs",
    )));
    let mut metered_total = metered.total;
    report.push(
        params(Metric::new(
            "command_overhead_fuel",
            median(&mut metered_total),
            "µs",
        ))
        .param("fuel_per_call", FUEL_PER_CALL),
    );
    report.push(
        params(Metric::new(
            "command_overhead_fuel_ratio",
            median(&mut fuel_ratios),
            "fuel/no fuel",
        ))
        .param(
            "what",
            "median per run of (fuel metering on) / (off), same load, runs taken in turn",
        ),
    );
    Ok(())
}

/// Fuel per guest call with metering on: far more than a deposit needs, so
/// it only measures the metering.
const FUEL_PER_CALL: u64 = 1 << 40;

/// One runtime's aggregate under the command loop, and its timings (µs).
struct Measured {
    _runtime: Runtime,
    aggregate: DirectAggregate,
    total: Vec<f64>,
}

impl Measured {
    async fn start(ctx: &Ctx, config: RuntimeConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(std::sync::Arc::new(MemoryStore::new()), config)?;
        let component = runtime.load_component(ctx.component.clone()).await?;
        let stream = fixture::stream(fixture::ACCOUNT, "commanded")?;
        let mut aggregate = DirectAggregate::new(&runtime, &component, stream)?;
        command(&mut aggregate, "Open", br#"{"owner":"Ada"}"#)?;
        Ok(Self {
            _runtime: runtime,
            aggregate,
            total: Vec::new(),
        })
    }

    /// `commands` deposits; keeps their timings if `counted`. Returns the
    /// run's median command time.
    fn run(&mut self, commands: usize, counted: bool) -> anyhow::Result<f64> {
        let mut this_run = Vec::with_capacity(commands);
        for _ in 0..commands {
            let took = micros(command(&mut self.aggregate, "Deposit", br#"{"amount":1}"#)?);
            this_run.push(took);
            if counted {
                self.total.push(took);
            }
        }
        Ok(median(&mut this_run))
    }

    /// The balance is every deposit made.
    fn check(&mut self, deposits: usize) -> anyhow::Result<()> {
        let view: serde_json::Value = serde_json::from_str(&self.aggregate.view()?)?;
        ensure!(
            fixture::balance(&view)? == deposits as u64,
            "the balance is not the {deposits} deposited: {view}"
        );
        Ok(())
    }
}

/// Carries out one command that decides one event (decided and applied
/// in one `execute` call); returns its time.
fn command(
    aggregate: &mut DirectAggregate,
    command_type: &str,
    data: &[u8],
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let decided = aggregate.execute(command_type, JSON, data, TIMESTAMP_MS)?;
    let took = start.elapsed();
    match decided {
        Ok(events) if events.len() == 1 => Ok(took),
        Ok(events) => bail!("{command_type} decided {} events, expected 1", events.len()),
        Err(rejection) => bail!("{command_type} was rejected: {rejection:?}"),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
