//! `tenant_abuse_*`: one tenant's latency on a real node while another
//! tenant and anonymous clients attack it with everything they can reach,
//! all at once. (`noisy_neighbour` is one part of this, in process.)
//!
//! An `aether serve` child process on the embedded store, with the
//! connection limits and view limit of its defaults spelt out
//! ([`node_flags`]), is reached over loopback HTTP. Before anything is
//! timed the admin creates [`IDLE_NAMESPACES`] namespaces that are never
//! used (a node with many tenants). Tenant A ([`TENANT_A`]) runs the
//! bank-account component: [`CLIENTS`] closed-loop clients, each on a
//! connection of its own, deposit 1 into accounts of their own and every
//! command is timed. Tenant B ([`attacks::TENANT_B`]) runs the hostile test
//! guest under a 100 ms call deadline and 32 MiB of memory; during the
//! attack it, and clients without a token, run every attack of
//! [`attacks::Kind`] at once: `Loop` / `GrowMemory` nonstop, reads of views
//! inflated to just under and to twice `max_view_bytes`, more live event
//! streams than its `max_live_streams`, concurrent uploads of large junk
//! that starts like a component (read whole before it is refused), redeploys of a real component that must be compiled each
//! time, and a few hundred slow or idle connections (heads and bodies one
//! byte a second, kept-alive connections left idle). The attackers run on
//! a tokio runtime of their own with one worker thread, at the lowest CPU
//! priority ([`ATTACKER_NICE`], with the long time slice the node gives its
//! own lowered threads): they stand for clients on other machines,
//! and on one 2-core machine the CPU they use themselves (writing 48 MB
//! uploads, reading views) would otherwise be taken from the node and from
//! A's clients, which no defence of the node can prevent. For the same
//! reason they send a body in 64 KiB pieces (`node::SEND_PIECE`). The node
//! still gets every request they send: the tally below counts them. A,
//! B and the anonymous clients each connect from a loopback address of
//! their own (`node::FROM_A`…), as the machines they stand for would: the
//! node caps connections per client address.
//!
//! Each of [`RUNS`] rounds times A alone (baseline), then starts the
//! attack, waits [`ATTACK_LEAD`], times A under it, stops it (every
//! attacker's connection is dropped) and lets the node settle. The p99
//! ratio (attack / baseline) is computed per round and the medians are
//! reported; the target is DESIGN.md's "within 2×". Every A command must
//! be answered 200: the failures are counted and reported, and any failure
//! fails the scenario (after its metrics are reported). A's balances are
//! checked against its successful deposits at the end. What the node
//! answered the attackers is tallied per attack and reported, with the
//! answers no attacker should get (a 5xx other than 503, 507 or B's own
//! guest failing at its limits). The node's resident memory is sampled
//! through each phase and its CPU time per phase is reported.
//!
//! `AETHER_TENANT_ABUSE_ATTACKS=hostile,uploads,…` runs only those attacks
//! (names in [`attacks::Kind::name`]), to find which one does the harm.

mod attacks;
mod node;
mod setup;
mod tally;
mod tenant_a;

use std::time::Duration;

use anyhow::ensure;
use serde_json::{Value, json};

use self::attacks::{Attack, Kind};
use self::node::{NodeProcess, Watch, Watched};
use self::setup::{Setup, setup};
use self::tally::Tally;
use self::tenant_a::{Failures, Stretch};
use super::fixture::Ctx;
use super::report::{Metric, Report, Target, median, percentile};

const TENANT_A: &str = "tenant-a";
const CLIENTS: usize = 4;
const ACCOUNTS: usize = 64;
/// Rounds in a full run. One round's ratio spreads ~1.2–2.9 on a shared
/// 2-core machine for one build (a p99 over 2 s is a few dozen commands);
/// the median of 9 spreads about a quarter less than that of 5 (√(5/9)).
const RUNS: usize = 9;
const WARMUP: Duration = Duration::from_secs(1);
const PHASE: Duration = Duration::from_secs(2);
const ATTACK_LEAD: Duration = Duration::from_secs(1);
/// The pause after an attack stops, before the next baseline.
const SETTLE: Duration = Duration::from_millis(500);
const IDLE_NAMESPACES: usize = 500;
const HOSTILE_CALLERS: usize = 8;
/// Aggregates with inflated views (half just under the limit, half over).
const VIEWS: usize = 4;
const VIEW_READERS: usize = 4;
/// Streams opened beyond B's `max_live_streams`.
const EXTRA_STREAMS: usize = 16;
const UPLOADERS: usize = 4;
const UPLOAD_BYTES: usize = 48 << 20;
const REDEPLOY_PADDING: usize = 4 << 20;
/// Slow and idle connections, a third of each kind.
const SLOW_CONNECTIONS: usize = 300;
/// How many nice steps the attackers' threads run below tenant A's clients
/// and the node: the lowest priority, as if they ran on other machines
/// (`AETHER_TENANT_ABUSE_ATTACKER_NICE=0` runs them as A's equals).
const ATTACKER_NICE: i32 = 19;
/// The node's default `--max-view-bytes`.
const MAX_VIEW_BYTES: usize = 1 << 20;
/// The node's default `--max-live-streams`.
const MAX_LIVE_STREAMS: usize = 64;

/// The node's connection limits and view limit: its defaults, spelt out;
/// then the flags in `AETHER_TENANT_ABUSE_NODE_FLAGS` (split at
/// whitespace), to measure the node with other settings, e.g.
/// `--cpu-share-percent 100`.
fn node_flags() -> Vec<String> {
    let defaults = [
        ("--header-read-timeout-ms", 10_000),
        ("--body-read-timeout-ms", 10_000),
        ("--min-body-bytes-per-sec", 16 * 1024),
        ("--keep-alive-timeout-ms", 5_000),
        ("--max-connections", 1_024),
        ("--max-connections-per-address", 256),
        ("--ops-reserve", 16),
        ("--max-view-bytes", MAX_VIEW_BYTES),
    ];
    let extra = std::env::var("AETHER_TENANT_ABUSE_NODE_FLAGS").unwrap_or_default();
    defaults
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .chain(extra.split_whitespace().map(str::to_owned))
        .collect()
}

/// Tenant B's limits (a tenth of the default deadline, an eighth of the
/// default memory, as in `noisy_neighbour`), and its live streams.
fn b_limits(max_live_streams: usize) -> Value {
    json!({
        "call_deadline_ms": 100,
        "memory_bytes": 32 << 20,
        "max_live_streams": max_live_streams,
    })
}

/// The timings of a run, full or smoke.
struct Timings {
    runs: usize,
    warmup: Duration,
    phase: Duration,
    lead: Duration,
    settle: Duration,
}

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let timings = Timings {
        runs: ctx.size(RUNS, 1),
        warmup: ctx.size(WARMUP, Duration::from_millis(100)),
        phase: ctx.size(PHASE, Duration::from_millis(500)),
        // Longer than the node's wait for a slot (1 s), so that B's streams
        // past its limit are refused (which `attack_ran` checks) before the
        // attack stops.
        lead: ctx.size(ATTACK_LEAD, Duration::from_millis(1_500)),
        settle: ctx.size(SETTLE, Duration::from_millis(50)),
    };
    let dir = ctx.tempdir()?;
    let data_dir = dir.path().to_owned();
    let mut node =
        tokio::task::spawn_blocking(move || NodeProcess::start(&data_dir, &node_flags())).await??;
    let setup = setup(ctx, &node).await?;
    let (load, plan) = (&setup.load, &setup.plan);

    let warm = load.run(timings.warmup).await;
    let mut failures = Failures::default();
    failures.add("warmup", &warm);
    let mut phases = [Phase::default(), Phase::default()];
    let (mut ratios, tally) = (Vec::new(), Tally::default());
    for _ in 0..timings.runs {
        let watch = Watch::start(&node)?;
        let baseline = load.run(timings.phase).await;
        failures.add("baseline", &baseline);
        let baseline_p99 = phases[0].push(baseline, watch.stop(&node).await?);

        let attack = Attack::start(plan)?;
        let watch = Watch::start(&node)?;
        tokio::time::sleep(timings.lead).await;
        let attacked = load.run(timings.phase).await;
        tally.merge(&attack.stop());
        failures.add("attack", &attacked);
        let attack_p99 = phases[1].push(attacked, watch.stop(&node).await?);
        ratios.push(attack_p99 / baseline_p99);
        node.check_running()?;
        tokio::time::sleep(timings.settle).await;
    }

    let deposits = phases.iter().map(|p| p.commands).sum::<u64>() + warm.latencies.len() as u64;
    let total = load.total_balance().await?;
    ensure!(
        (deposits..=deposits + failures.total()).contains(&total),
        "tenant A's balances add up to {total}, but {deposits} deposits succeeded \
         and {} failed",
        failures.total()
    );
    attack_ran(&tally, &plan.kinds)?;

    let params = |m: Metric| params(m, &setup, &timings);
    for (phase, name) in phases.iter_mut().zip(["baseline", "attack"]) {
        let metric = |what: &str, values: &mut Vec<f64>, unit| {
            params(Metric::new(
                &format!("tenant_abuse_{what}_{name}"),
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
        report.push(
            metric("node_cores", &mut phase.node_cores, "cores")
                .param("what", "the node process's CPU time / wall time")
                .param("suite_process_cores", median(&mut phase.suite_cores)),
        );
    }
    let per_run = ratios.clone();
    report.push(
        params(Metric::new(
            "tenant_abuse_p99_ratio",
            median(&mut ratios),
            "attack/baseline",
        ))
        .param("per_run", per_run)
        .target(Target::AtMost(2.0)),
    );
    report.push(
        params(Metric::new(
            "tenant_abuse_a_failures",
            failures.total() as f64,
            "commands",
        ))
        .param(
            "what",
            "tenant A's commands not answered 200, every attempt counted",
        )
        .param("baseline", failures.baseline)
        .param("attack", failures.attack)
        .param("warmup", failures.warmup)
        .param("first", failures.first.clone())
        .target(Target::AtMost(0.0)),
    );
    let peak = |phase: &Phase| mib(phase.rss_peak.iter().copied().max().unwrap_or(0));
    report.push(
        params(Metric::new(
            "tenant_abuse_node_rss_peak_mib",
            peak(&phases[1]),
            "MiB",
        ))
        .param(
            "what",
            "the node's VmRSS, sampled every 20 ms, highest in an attack phase",
        )
        .param("baseline_peak_mib", peak(&phases[0]))
        .param("vm_hwm_at_end_mib", mib(node.memory("VmHWM")?)),
    );
    let (unexpected, samples) = tally.unexpected();
    report.push(
        params(Metric::new(
            "tenant_abuse_attack_unexpected",
            unexpected as f64,
            "answers",
        ))
        .param(
            "what",
            "answers to the attackers that are a 5xx other than 503, 507 or B's guest \
             failing at its limits",
        )
        .param("first", samples)
        .param("answers", tally.to_json()),
    );
    ensure!(
        failures.total() == 0,
        "{} of tenant A's commands failed ({} in the baselines, {} under attack, {} in \
         the warm-up); the first: {:?}",
        failures.total(),
        failures.baseline,
        failures.attack,
        failures.warmup,
        failures.first
    );
    Ok(())
}

/// The parameters every metric of the scenario carries.
fn params(metric: Metric, setup: &Setup, timings: &Timings) -> Metric {
    let (load, plan) = (&setup.load, &setup.plan);
    metric
        .param(
            "backend",
            "aether serve, EmbeddedStore (redb, fsync'd group commit)",
        )
        .param("node_flags", node_flags().join(" "))
        .param(
            "tenant_a",
            "bank-account, Deposit of 1 over HTTP/1.1 keep-alive",
        )
        .param("tenant_a_clients", load.clients as u64)
        .param("tenant_a_accounts", load.accounts.len() as u64)
        .param("tenant_b_limits", b_limits(setup.b_streams_limit))
        .param(
            "attacks",
            plan.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        )
        .param("hostile_callers", plan.hostile_callers as u64)
        .param("view_aggregates", plan.view_ids.len() as u64)
        .param("view_readers", plan.view_readers as u64)
        .param("streams_opened", plan.streams as u64)
        .param("uploaders", plan.uploaders as u64)
        .param("upload_bytes", plan.junk.len() as u64)
        .param("redeploy_padding_bytes", plan.padding as u64)
        .param("slow_connections", plan.slow_connections as u64)
        .param("attacker_nice_steps", plan.attacker_nice as u64)
        .param("idle_namespaces", setup.idle_namespaces as u64)
        .param(
            "idle_namespaces_created_in_s",
            setup.idle_namespaces_seconds,
        )
        .param("seconds_per_phase", timings.phase.as_secs_f64())
        .param("attack_lead_s", timings.lead.as_secs_f64())
        .param("runs", timings.runs as u64)
        .param(
            "how",
            "median over runs; each run: A alone, then A under every attack at once",
        )
}

/// Fails if an attack did not run as meant: each sent requests or opened
/// connections, `Loop` met B's deadline, and B's streams were opened up to
/// its limit and refused past it. (Answers are not required of the other
/// attacks: in a smoke run B's view reads may all still wait behind its
/// `Loop`s when the attack stops.)
fn attack_ran(tally: &Tally, kinds: &[Kind]) -> anyhow::Result<()> {
    let answers = tally.to_json();
    for kind in kinds {
        ensure!(
            answers.get(kind.name()).is_some(),
            "the `{}` attack did nothing: {answers}",
            kind.name()
        );
    }
    if kinds.contains(&Kind::Hostile) {
        ensure!(
            tally.count(Kind::Hostile, "500 deadline_exceeded") > 0,
            "no `Loop` of tenant B's stopped at its deadline: {answers}"
        );
    }
    if kinds.contains(&Kind::Streams) {
        ensure!(
            tally.count(Kind::Streams, "200 open") > 0
                && tally.count(Kind::Streams, "429 too_many_streams") > 0,
            "tenant B's streams were neither all opened up to its limit nor refused past it: \
             {answers}"
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Tenant A's numbers in one kind of phase, one entry per run.
#[derive(Default)]
struct Phase {
    commands: u64,
    p50: Vec<f64>,
    p99: Vec<f64>,
    rate: Vec<f64>,
    node_cores: Vec<f64>,
    suite_cores: Vec<f64>,
    rss_peak: Vec<u64>,
}

impl Phase {
    /// Records one run; its p99 (infinite if no command succeeded, so
    /// the ratio cannot look met).
    fn push(&mut self, mut stretch: Stretch, watched: Watched) -> f64 {
        let latencies = &mut stretch.latencies;
        let ms = |l: &mut Vec<f64>, p| {
            if l.is_empty() {
                f64::INFINITY
            } else {
                percentile(l, p) / 1e3
            }
        };
        let p99 = ms(latencies, 99.0);
        self.commands += latencies.len() as u64;
        self.p50.push(ms(latencies, 50.0));
        self.p99.push(p99);
        self.rate.push(stretch.per_second);
        self.node_cores.push(watched.node_cores);
        self.suite_cores.push(watched.suite_cores);
        self.rss_peak.push(watched.rss_peak);
        p99
    }
}
