//! `replay_wasm`, `replay_native`, `replay_ratio`: folding a 100 000-event
//! stream into the bank account, in the component and natively.
//!
//! The Wasm side is [`DirectAggregate::apply`] in batches of the runtime's
//! `replay_batch`, on the caller's thread: the cost of the boundary and the
//! guest, without store or partitions. The native side runs the same loop
//! the guest SDK runs per event (content-type check, `wire::decode`,
//! `Aggregate::apply`) on the same `RecordedEvent`s. Runs are paired (Wasm
//! then native) and the ratio is the median of the per-pair ratios, so a
//! noisy moment affects both sides of one ratio.

use std::hint::black_box;
use std::time::Instant;

use aether_guest::Aggregate;
use aether_host::runtime::{DirectAggregate, LoadedComponent, Runtime, RuntimeConfig};
use aether_host::store::{MemoryStore, RecordedEvent};
use anyhow::{Context, ensure};
use bank_account::{BankAccount, Event};

use crate::fixture::{self, Ctx};
use crate::report::{Metric, Report, Target, median};

const EVENTS: usize = 100_000;
const WARMUP: usize = 2;
const RUNS: usize = 10;

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let runtime = Runtime::new(
        std::sync::Arc::new(MemoryStore::new()),
        RuntimeConfig::default(),
    )?;
    let component = runtime.load_component(ctx.component.clone()).await?;
    let batch = runtime.config().replay_batch;
    let stream = fixture::stream(fixture::ACCOUNT, "replayed")?;
    let events = fixture::recorded_history(&stream, EVENTS)?;
    let expected_balance = (EVENTS - 1) as u64;

    let (mut wasm, mut native, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..WARMUP + RUNS {
        let w = replay_wasm(&runtime, &component, &events, batch, expected_balance)?;
        let n = replay_native(&events, expected_balance)?;
        if run >= WARMUP {
            wasm.push(w);
            native.push(n);
            ratios.push(n / w);
        }
    }
    let params = |m: Metric| {
        m.param("events", EVENTS as u64)
            .param("event_bytes", events[1].data.len() as u64)
            .param("runs", RUNS as u64)
            .param("warmup_runs", WARMUP as u64)
    };
    report.push(
        params(Metric::new("replay_wasm", median(&mut wasm), "events/s"))
            .param("batch", batch as u64)
            .param("balance_checked", expected_balance)
            .target(Target::AtLeast(5_000_000.0)),
    );
    report.push(
        params(Metric::new(
            "replay_native",
            median(&mut native),
            "events/s",
        ))
        .param("balance_checked", expected_balance),
    );
    report.push(
        params(Metric::new(
            "replay_ratio",
            median(&mut ratios),
            "native/wasm",
        ))
        .param("how", "median of per-run ratios of paired runs")
        .target(Target::AtMost(2.0)),
    );
    Ok(())
}

/// Replays `events` into a fresh aggregate; checks the balance; events/s.
fn replay_wasm(
    runtime: &Runtime,
    component: &LoadedComponent,
    events: &[RecordedEvent],
    batch: usize,
    expected_balance: u64,
) -> anyhow::Result<f64> {
    let stream = events[0].stream.clone();
    let mut aggregate = DirectAggregate::new(runtime, component, stream)?;
    let start = Instant::now();
    for chunk in events.chunks(batch) {
        aggregate.apply(chunk)?;
    }
    let elapsed = start.elapsed();
    let view: serde_json::Value = serde_json::from_str(&aggregate.view()?)?;
    ensure!(
        aggregate.version() == events.len() as u64,
        "replayed to version {}",
        aggregate.version()
    );
    let balance = fixture::balance(&view)?;
    ensure!(
        balance == expected_balance,
        "the replayed balance is {balance}, expected {expected_balance}"
    );
    Ok(events.len() as f64 / elapsed.as_secs_f64())
}

/// The guest SDK's per-event apply loop, compiled natively; events/s.
fn replay_native(events: &[RecordedEvent], expected_balance: u64) -> anyhow::Result<f64> {
    let mut state = BankAccount::default();
    let start = Instant::now();
    for event in black_box(events) {
        ensure!(aether_guest::wire::is_json(&event.content_type), "not JSON");
        let decoded = aether_guest::wire::decode::<Event>(&event.event_type, &event.data)
            .with_context(|| format!("decoding event {}", event.version))?;
        state.apply(decoded);
    }
    let elapsed = start.elapsed();
    let state = black_box(state);
    ensure!(
        state.balance == expected_balance,
        "the native balance is {}, expected {expected_balance}",
        state.balance
    );
    Ok(events.len() as f64 / elapsed.as_secs_f64())
}
