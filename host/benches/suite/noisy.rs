//! `noisy_neighbour_*`: one tenant's latency while another tenant's
//! component misbehaves on every command.
//!
//! One runtime with the default configuration, on the embedded store (as a
//! node runs), serves two namespaces. Tenant A ([`TENANT_A`]) runs the
//! bank-account component: [`CLIENTS`] closed-loop callers deposit 1 into
//! accounts of their own ([`load::deposits`]). Tenant B ([`TENANT_B`]) runs
//! the hostile test guest (`tests/programs/hostile`) under limits of its own
//! ([`b_limits`]), and [`ATTACKERS`] callers, each on an aggregate of its
//! own, send it `Loop` (spins until the call deadline) and `GrowMemory`
//! (allocates until the memory limit) in turn, nonstop.
//!
//! Each of [`RUNS`] rounds times A alone (baseline), then A while B attacks;
//! the attack starts [`ATTACK_LEAD`] before A's phase and stops after it.
//! The p99 ratio (attack / baseline) is computed per round and the medians
//! are reported; the target is the "within 2×". Every A command must
//! succeed and every B command must fail at one of B's limits (a `Loop` at
//! the deadline; a `GrowMemory` at the memory limit or, if a busy machine
//! starves it, at the deadline): anything else fails the scenario, and A's
//! balances are checked against its successful deposits at the end.
//! The cores the whole process used in each phase are reported next to the
//! latencies, to show the attack really took CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::runtime::{
    CommandError, CommandRequest, GuestFailureKind, Runtime, RuntimeConfig, SandboxLimits,
};
use aether_host::store::StreamId;
use anyhow::{Context, bail, ensure};
use tokio::task::JoinSet;

use super::fixture::{self, ACCOUNT, Ctx};
use super::load;
use super::report::{Metric, Report, Target, median};

const TENANT_A: &str = "tenant-a";
const TENANT_B: &str = "tenant-b";
const HOSTILE: &str = "hostile";
const CLIENTS: usize = 4;
const ACCOUNTS: usize = 64;
const ATTACKERS: usize = 8;
const RUNS: usize = 5;
const WARMUP: Duration = Duration::from_secs(1);
const PHASE: Duration = Duration::from_secs(2);
const ATTACK_LEAD: Duration = Duration::from_millis(300);

/// Tenant B's limits: a tenth of the default deadline, an eighth of the
/// default memory. At smoke size (inside `cargo test`, every smoke scenario
/// at once on a busy machine) a `GrowMemory` may get too little CPU to fill
/// 32 MiB within 100 ms, and the smoke's few commands would then all stop at
/// the deadline: the smoke gives B a smaller memory and a longer deadline,
/// so each kind of attack still ends at its own limit.
fn b_limits(ctx: &Ctx) -> SandboxLimits {
    SandboxLimits {
        call_deadline: ctx.size(Duration::from_millis(100), Duration::from_millis(500)),
        memory_bytes: ctx.size(32 << 20, 8 << 20),
        ..SandboxLimits::default()
    }
}

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (clients, accounts_count, attackers_count, runs) = (
        ctx.size(CLIENTS, 2),
        ctx.size(ACCOUNTS, 8),
        ctx.size(ATTACKERS, 4),
        ctx.size(RUNS, 1),
    );
    let (warmup, phase_length, attack_lead) = (
        ctx.size(WARMUP, Duration::from_millis(100)),
        ctx.size(PHASE, Duration::from_millis(300)),
        ctx.size(ATTACK_LEAD, Duration::from_millis(200)),
    );
    let dir = ctx.tempdir()?;
    let config = RuntimeConfig::default();
    let partitions = config.partitions;
    let runtime = Runtime::new(fixture::durable_store(dir.path())?, config)?;
    let (tenant_a, tenant_b) = (Namespace::new(TENANT_A)?, Namespace::new(TENANT_B)?);
    runtime
        .deploy(
            &tenant_a,
            &AggregateType::new(ACCOUNT)?,
            ctx.component.clone(),
        )
        .await?;
    let hostile = std::fs::read(aether_test_artifacts::HOSTILE)
        .with_context(|| format!("reading {}", aether_test_artifacts::HOSTILE))?;
    runtime
        .deploy(&tenant_b, &AggregateType::new(HOSTILE)?, hostile)
        .await?;
    runtime
        .set_namespace_limits(&tenant_b, b_limits(ctx))
        .await?;
    let accounts = streams(&tenant_a, ACCOUNT, "acc", accounts_count)?;
    let attackers = streams(&tenant_b, HOSTILE, "attacker", attackers_count)?;

    load::open_all(&runtime, &accounts, clients).await?;
    let a_load = |phase: &'static str| {
        let (runtime, accounts) = (runtime.clone(), accounts.clone());
        async move {
            load::deposits(&runtime, &accounts, clients, phase_length)
                .await
                .with_context(|| format!("a tenant-A command failed ({phase})"))
        }
    };
    let mut deposits = load::deposits(&runtime, &accounts, clients, warmup)
        .await?
        .commands;
    let mut phases = [Phase::default(), Phase::default()];
    let (mut ratios, mut failures) = (Vec::new(), Failures::default());
    for _ in 0..runs {
        let cpu = Cpu::start()?;
        let baseline = a_load("baseline").await?;
        let baseline_p99 = phases[0].push(baseline, cpu.cores()?);

        let attack = Attack::start(&runtime, &attackers);
        tokio::time::sleep(attack_lead).await;
        let cpu = Cpu::start()?;
        let attacked = a_load("attack").await;
        let cores = cpu.cores()?;
        failures.add(attack.stop().await?);
        let attack_p99 = phases[1].push(attacked?, cores);
        ratios.push(attack_p99 / baseline_p99);
    }
    deposits += phases.iter().map(|p| p.commands).sum::<u64>();
    let total = load::total_balance(&runtime, &accounts).await?;
    ensure!(
        total == deposits,
        "tenant A's balances add up to {total}, but {deposits} deposits succeeded"
    );
    ensure!(
        failures.loops > 0 && failures.memory > 0,
        "tenant B's attack did not run as meant: {} loops stopped at the deadline, \
         {} memory bombs at the memory limit",
        failures.loops,
        failures.memory
    );

    let limits = b_limits(ctx);
    let params = |m: Metric| {
        m.param("backend", fixture::DURABLE_BACKEND)
            .param("config", "RuntimeConfig::default()")
            .param("partitions_per_namespace", partitions as u64)
            .param("tenant_a", "bank-account, Deposit of 1")
            .param("tenant_a_clients", clients as u64)
            .param("tenant_a_accounts", accounts_count as u64)
            .param("tenant_b", "hostile: Loop and GrowMemory in turn")
            .param("tenant_b_attackers", attackers_count as u64)
            .param(
                "tenant_b_limits",
                format!(
                    "call_deadline {} ms, memory_bytes {} MiB",
                    limits.call_deadline.as_millis(),
                    limits.memory_bytes >> 20
                ),
            )
            .param("seconds_per_phase", phase_length.as_secs_f64())
            .param("runs", runs as u64)
            .param(
                "how",
                "median over runs; each run: A alone, then A under attack",
            )
    };
    for (phase, name) in phases.iter_mut().zip(["baseline", "attack"]) {
        let metric = |what: &str, values: &mut Vec<f64>, unit| {
            params(Metric::new(
                &format!("noisy_neighbour_{what}_{name}"),
                median(values),
                unit,
            ))
        };
        report.push(metric("p50", &mut phase.p50, "ms"));
        report.push(metric("p99", &mut phase.p99, "ms"));
        report.push(
            metric("throughput", &mut phase.rate, "commands/s")
                .param("commands_all_runs", phase.commands),
        );
        report.push(metric("cores", &mut phase.cores, "cores").param(
            "what",
            "on-CPU time of every thread of the process / wall time",
        ));
    }
    let per_run = ratios.clone();
    report.push(
        params(Metric::new(
            "noisy_neighbour_p99_ratio",
            median(&mut ratios),
            "attack/baseline",
        ))
        .param("per_run", per_run)
        .target(Target::AtMost(2.0)),
    );
    report.push(
        params(Metric::new(
            "noisy_neighbour_b_failures",
            failures.total() as f64,
            "commands",
        ))
        .param("loop_deadline_exceeded", failures.loops)
        .param("grow_memory_limit", failures.memory)
        .param(
            "grow_memory_deadline_exceeded",
            failures.memory_past_deadline,
        )
        .param(
            "what",
            "tenant B's commands, every one a guest failure, all runs",
        ),
    );
    Ok(())
}

/// `count` streams `<prefix>-0`… of `aggregate_type` in `namespace`.
fn streams(
    namespace: &Namespace,
    aggregate_type: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Arc<Vec<StreamId>>> {
    let aggregate_type = AggregateType::new(aggregate_type)?;
    let streams = (0..count).map(|i| {
        let id = AggregateId::new(format!("{prefix}-{i}"))?;
        anyhow::Ok(StreamId::new(namespace.clone(), aggregate_type.clone(), id))
    });
    Ok(Arc::new(streams.collect::<anyhow::Result<_>>()?))
}

/// Tenant A's numbers in one kind of phase, one entry per run.
#[derive(Default)]
struct Phase {
    commands: u64,
    p50: Vec<f64>,
    p99: Vec<f64>,
    rate: Vec<f64>,
    cores: Vec<f64>,
}

impl Phase {
    /// Records one run; its p99.
    fn push(&mut self, mut run: load::Load, cores: f64) -> f64 {
        let p99 = run.latency_ms(99.0);
        self.commands += run.commands;
        self.p50.push(run.latency_ms(50.0));
        self.p99.push(p99);
        self.rate.push(run.per_second);
        self.cores.push(cores);
        p99
    }
}

/// Tenant B's failed commands, by the limit that stopped them.
#[derive(Default)]
struct Failures {
    /// `Loop`s stopped at the call deadline.
    loops: u64,
    /// `GrowMemory`s stopped at the memory limit.
    memory: u64,
    /// `GrowMemory`s stopped at the call deadline before reaching the
    /// memory limit (on a busy machine the guest may not get enough CPU).
    memory_past_deadline: u64,
}

impl Failures {
    fn add(&mut self, other: Failures) {
        self.loops += other.loops;
        self.memory += other.memory;
        self.memory_past_deadline += other.memory_past_deadline;
    }

    fn total(&self) -> u64 {
        self.loops + self.memory + self.memory_past_deadline
    }
}

/// Tenant B's attack: one caller per stream, sending `Loop` and
/// `GrowMemory` in turn (half of them starting with each) until stopped.
struct Attack {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<anyhow::Result<Failures>>,
}

impl Attack {
    fn start(runtime: &Runtime, streams: &[StreamId]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for (i, stream) in streams.iter().enumerate() {
            let (runtime, stream, stop) = (runtime.clone(), stream.clone(), stop.clone());
            tasks.spawn(async move {
                let mut failures = Failures::default();
                for command in ["Loop", "GrowMemory"].into_iter().cycle().skip(i % 2) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let request = CommandRequest::json(stream.clone(), command, &());
                    let kind = match runtime.execute(request).await {
                        Err(CommandError::Guest(failure)) => failure.kind,
                        other => bail!(
                            "tenant B's {command} on {stream}: expected a guest failure, got {other:?}"
                        ),
                    };
                    match kind {
                        GuestFailureKind::DeadlineExceeded if command == "Loop" => {
                            failures.loops += 1;
                        }
                        GuestFailureKind::DeadlineExceeded => failures.memory_past_deadline += 1,
                        GuestFailureKind::MemoryLimit => failures.memory += 1,
                        kind => bail!("tenant B's {command} on {stream} failed with {kind:?}"),
                    }
                }
                Ok(failures)
            });
        }
        Self { stop, tasks }
    }

    /// Stops the attack; what it provoked. Each caller finishes the command
    /// it is in.
    async fn stop(mut self) -> anyhow::Result<Failures> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Failures::default();
        while let Some(done) = self.tasks.join_next().await {
            total.add(done??);
        }
        Ok(total)
    }
}

/// The on-CPU time of every thread of the process since [`Cpu::start`].
struct Cpu {
    wall: Instant,
    on_cpu_ns: u64,
}

impl Cpu {
    fn start() -> anyhow::Result<Self> {
        Ok(Self {
            wall: Instant::now(),
            on_cpu_ns: process_on_cpu_ns()?,
        })
    }

    /// On-CPU time over wall time: how many cores the process used.
    fn cores(self) -> anyhow::Result<f64> {
        let on_cpu = process_on_cpu_ns()?.saturating_sub(self.on_cpu_ns) as f64 / 1e9;
        Ok(on_cpu / self.wall.elapsed().as_secs_f64())
    }
}

/// The sum of `/proc/self/task/*/schedstat` (each thread's on-CPU ns).
/// Threads that ended in between are not counted; the runtime's threads
/// (partitions, store writer, tokio workers) live for the whole scenario.
fn process_on_cpu_ns() -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        let first = text.split_whitespace().next().unwrap_or_default();
        total += first
            .parse::<u64>()
            .with_context(|| format!("reading the on-CPU time {first:?}"))?;
    }
    Ok(total)
}
