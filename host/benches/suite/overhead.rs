//! `command_overhead`: the time one command spends in the Wasm boundary,
//! `handle` (decide a `Deposit`) plus `apply` (fold the event it decided),
//! on a [`DirectAggregate`] — no store, no partitions, no locks.
//!
//! Each command is timed on its own; building the recorded event between
//! the two calls (the store's job on the real path) is left out of the
//! time. The metric is the median over every command of every run.

use std::time::{Duration, Instant};

use aether_host::runtime::{DirectAggregate, JSON, Runtime, RuntimeConfig};
use aether_host::store::{EventMetadata, MemoryStore, NewEvent, RecordedEvent, StreamId};
use anyhow::{bail, ensure};
use uuid::Uuid;

use super::fixture::{self, Ctx};
use super::report::{Metric, Report, Target, median, percentile};

const COMMANDS: usize = 10_000;
const WARMUP: usize = 1;
const RUNS: usize = 5;
const TIMESTAMP_MS: u64 = 1_700_000_000_000;

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let runtime = Runtime::new(
        std::sync::Arc::new(MemoryStore::new()),
        RuntimeConfig::default(),
    )?;
    let component = runtime.load_component(ctx.component.clone()).await?;
    let stream = fixture::stream(fixture::ACCOUNT, "commanded")?;
    let mut aggregate = DirectAggregate::new(&runtime, &component, stream.clone())?;
    command(&mut aggregate, &stream, "Open", br#"{"owner":"Ada"}"#)?;
    let (commands, warmup, runs) = (
        ctx.size(COMMANDS, 200),
        ctx.size(WARMUP, 1),
        ctx.size(RUNS, 1),
    );

    let (mut total, mut handle, mut apply) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..warmup + runs {
        for _ in 0..commands {
            let (h, a) = command(&mut aggregate, &stream, "Deposit", br#"{"amount":1}"#)?;
            if run >= warmup {
                total.push(micros(h + a));
                handle.push(micros(h));
                apply.push(micros(a));
            }
        }
    }
    let view: serde_json::Value = serde_json::from_str(&aggregate.view()?)?;
    let deposits = ((warmup + runs) * commands) as u64;
    ensure!(
        fixture::balance(&view)? == deposits,
        "the balance is not the {deposits} deposited: {view}"
    );

    let params = |m: Metric| {
        m.param("commands_per_run", commands as u64)
            .param("runs", runs as u64)
            .param("command", "Deposit")
    };
    report.push(
        params(Metric::new("command_overhead", median(&mut total), "µs"))
            .target(Target::AtMost(5.0)),
    );
    report.push(params(Metric::new(
        "command_overhead_p99",
        percentile(&mut total, 99.0),
        "µs",
    )));
    report.push(params(Metric::new(
        "command_overhead_handle",
        median(&mut handle),
        "µs",
    )));
    report.push(params(Metric::new(
        "command_overhead_apply",
        median(&mut apply),
        "µs",
    )));
    Ok(())
}

/// Decides one command and applies the one event it decides; returns the
/// time of each call.
fn command(
    aggregate: &mut DirectAggregate,
    stream: &StreamId,
    command_type: &str,
    data: &[u8],
) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    let decided = aggregate.handle(command_type, JSON, data, TIMESTAMP_MS)?;
    let handled = start.elapsed();
    let event = match decided {
        Ok(mut events) if events.len() == 1 => events.remove(0),
        Ok(events) => bail!("{command_type} decided {} events, expected 1", events.len()),
        Err(rejection) => bail!("{command_type} was rejected: {rejection:?}"),
    };
    let recorded = [record(stream, event, aggregate.version() + 1)];
    let start = Instant::now();
    aggregate.apply(&recorded)?;
    Ok((handled, start.elapsed()))
}

/// What the store would record for `event` at `version`.
fn record(stream: &StreamId, event: NewEvent, version: u64) -> RecordedEvent {
    RecordedEvent {
        id: Uuid::now_v7(),
        stream: stream.clone(),
        version,
        position: version,
        event_type: event.event_type,
        content_type: event.content_type,
        data: event.data,
        metadata: EventMetadata::default(),
        timestamp_ms: TIMESTAMP_MS,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
