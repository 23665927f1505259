//! `replay_wasm`, `replay_native`, `replay_ratio`: folding 100 000-event
//! stretches of a bank account's stream into its state, in the component
//! and natively.
//!
//! The Wasm side is [`DirectAggregate::apply`] in batches of the runtime's
//! `replay_batch`, on the caller's thread: the cost of the boundary and the
//! guest, without store or partitions. The native side runs the same loop
//! the guest SDK runs per event (content-type check, `wire::decode`,
//! `Aggregate::apply`) on the same `RecordedEvent`s.
//!
//! One aggregate (one instance) replays one long stream, 100 000 events per
//! run, as a live runtime's instance does; the first run on the fresh
//! instance also pays for faulting in the guest's memory and is reported on
//! its own (`replay_wasm_first_run`). Runs are paired (Wasm then native, on
//! the same events) and the ratio is the median of the per-pair ratios, so
//! a noisy moment affects both sides of one ratio. The headline numbers use
//! the thread's on-CPU time ([`super::clock`]); the `_wall` ones wall time.

use std::hint::black_box;

use aether_guest::Aggregate;
use aether_host::runtime::{DirectAggregate, Runtime, RuntimeConfig};
use aether_host::store::{MemoryStore, RecordedEvent};
use anyhow::{Context, ensure};
use bank_account::{BankAccount, Event};

use super::clock::{Elapsed, Stopwatch};
use super::fixture::{self, Ctx};
use super::report::{Metric, Report, Target, median};

const EVENTS: usize = 100_000;
const WARMUP: usize = 2;
const RUNS: usize = 10;

/// Per-run measurements, one entry per measured run.
#[derive(Default)]
struct Runs {
    /// Events replayed per run.
    events: usize,
    wasm: Vec<f64>,
    native: Vec<f64>,
    ratio: Vec<f64>,
    wasm_wall: Vec<f64>,
    native_wall: Vec<f64>,
    ratio_wall: Vec<f64>,
    on_cpu_share: Vec<f64>,
}

impl Runs {
    fn push(&mut self, wasm: &Elapsed, native: &Elapsed) {
        let rate = |time: f64| self.events as f64 / time;
        self.wasm.push(rate(wasm.on_cpu));
        self.native.push(rate(native.on_cpu));
        self.ratio.push(wasm.on_cpu / native.on_cpu);
        self.wasm_wall.push(rate(wasm.wall));
        self.native_wall.push(rate(native.wall));
        self.ratio_wall.push(wasm.wall / native.wall);
        self.on_cpu_share.push(wasm.on_cpu / wasm.wall);
    }
}

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let runtime = Runtime::new(
        std::sync::Arc::new(MemoryStore::new()),
        RuntimeConfig::default(),
    )?;
    let component = runtime.load_component(ctx.component.clone()).await?;
    let batch = runtime.config().replay_batch;
    let stream = fixture::stream(fixture::ACCOUNT, "replayed")?;
    let mut aggregate = DirectAggregate::new(&runtime, &component, stream.clone())?;
    let mut state = BankAccount::default();
    let (events_per_run, warmup, measured) = (
        ctx.size(EVENTS, 2_000),
        ctx.size(WARMUP, 1),
        ctx.size(RUNS, 2),
    );

    let mut runs = Runs {
        events: events_per_run,
        ..Runs::default()
    };
    let mut first_run = 0.0;
    for run in 0..warmup + measured {
        let events = fixture::recorded_history(&stream, aggregate.version() + 1, events_per_run)?;
        let wasm = replay_wasm(&mut aggregate, &events, batch)?;
        let native = replay_native(&mut state, &events)?;
        if run == 0 {
            first_run = events_per_run as f64 / wasm.on_cpu;
        }
        if run >= warmup {
            runs.push(&wasm, &native);
        }
    }
    // Both sides folded the same (warmup + measured) * events_per_run events.
    let expected = ((warmup + measured) * events_per_run - 1) as u64;
    let view: serde_json::Value = serde_json::from_str(&aggregate.view()?)?;
    let balance = fixture::balance(&view)?;
    ensure!(
        balance == expected && state.balance == expected,
        "balances {balance} (wasm) and {} (native), expected {expected}",
        state.balance
    );

    let params = |m: Metric| {
        m.param("events_per_run", events_per_run as u64)
            .param("event", r#"Deposited {"amount":1}"#)
            .param("runs", measured as u64)
            .param("warmup_runs", warmup as u64)
            .param("balance_checked", expected)
    };
    let on_cpu = |name: &str, values: &mut Vec<f64>, unit| {
        params(Metric::new(name, median(values), unit))
            .param("clock", "on-CPU time of the replaying thread")
    };
    let wall = |name: &str, values: &mut Vec<f64>, unit| {
        params(Metric::new(name, median(values), unit)).param("clock", "wall")
    };
    report.push(
        on_cpu("replay_wasm", &mut runs.wasm, "events/s")
            .param("batch", batch as u64)
            .target(Target::AtLeast(5_000_000.0)),
    );
    report.push(on_cpu("replay_native", &mut runs.native, "events/s"));
    report.push(
        on_cpu("replay_ratio", &mut runs.ratio, "native/wasm")
            .param("how", "median of per-run ratios of paired runs")
            .target(Target::AtMost(2.0)),
    );
    report.push(wall("replay_wasm_wall", &mut runs.wasm_wall, "events/s"));
    report.push(wall(
        "replay_native_wall",
        &mut runs.native_wall,
        "events/s",
    ));
    report.push(wall(
        "replay_ratio_wall",
        &mut runs.ratio_wall,
        "native/wasm",
    ));
    report.push(
        params(Metric::new(
            "replay_wasm_on_cpu_share",
            median(&mut runs.on_cpu_share),
            "on-CPU/wall",
        ))
        .param(
            "what",
            "how much of the wall time the replaying thread had a core",
        ),
    );
    report.push(
        Metric::new("replay_wasm_first_run", first_run, "events/s")
            .param("what", "the first 100 000 events into a fresh instance")
            .param("clock", "on-CPU time of the replaying thread")
            .param("batch", batch as u64),
    );
    Ok(())
}

/// Applies `events` (which continue the aggregate's version).
fn replay_wasm(
    aggregate: &mut DirectAggregate,
    events: &[RecordedEvent],
    batch: usize,
) -> anyhow::Result<Elapsed> {
    let clock = Stopwatch::start()?;
    for chunk in events.chunks(batch) {
        aggregate.apply(chunk)?;
    }
    let elapsed = clock.stop()?;
    let last = events.last().map_or(0, |e| e.version);
    ensure!(
        aggregate.version() == last,
        "replayed to version {}, expected {last}",
        aggregate.version()
    );
    Ok(elapsed)
}

/// The guest SDK's per-event apply loop, compiled natively.
fn replay_native(state: &mut BankAccount, events: &[RecordedEvent]) -> anyhow::Result<Elapsed> {
    let clock = Stopwatch::start()?;
    for event in black_box(events) {
        ensure!(aether_guest::wire::is_json(&event.content_type), "not JSON");
        let decoded = aether_guest::wire::decode::<Event>(&event.event_type, &event.data)
            .with_context(|| format!("decoding event {}", event.version))?;
        state.apply(decoded);
    }
    let elapsed = clock.stop()?;
    black_box(&*state);
    Ok(elapsed)
}
