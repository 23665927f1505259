//! `activation_replay` and `activation_snapshot`: the time to make an
//! aggregate with 10 000 events live again, on the embedded store.
//!
//! Two accounts of 10 000 events each, deployed as two aggregate types of
//! the same component: one under [`SnapshotPolicy::Never`] (activation
//! replays all 10 000 events in `replay_batch` batches), one under
//! `Every(10_000)` (the runtime snapshots it when its last command reaches
//! version 10 000; activation restores that and replays nothing). The first
//! 9 999 events are appended straight to the store, in appends of 1 000,
//! which is what 9 999 commands would have stored; the 10 000th is a real
//! command, so the snapshot is the runtime's own.
//!
//! `activation_store_read` (no target) reads the same 10 000 events from the
//! store in the same batches without a guest, as activation reads them
//! (`read_replay_batch`): the store's share.
//!
//! One activation = `Runtime::passivate`, then the timed `Runtime::state`
//! (activate + the guest's view). "Cold" means not live: the partition's
//! guest instance stays, and the store's pages are in its cache.

use std::time::Instant;

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::runtime::{Digest, Runtime, RuntimeConfig, SnapshotPolicy};
use aether_host::store::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent, StreamId};
use anyhow::ensure;

use super::fixture::{self, Ctx};
use super::report::{Metric, Report, Target, median};

const EVENTS: usize = 10_000;
const APPEND_CHUNK: usize = 1_000;
const WARMUP: usize = 2;
const RUNS: usize = 15;
const REPLAYED: &str = "account-replayed";
const SNAPSHOTTED: &str = "account-snapshotted";

/// How long the history is and how often it is activated.
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    pub(super) events: usize,
    pub(super) warmup: usize,
    pub(super) runs: usize,
}

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let sizes = Sizes {
        events: ctx.size(EVENTS, 1_500),
        warmup: ctx.size(WARMUP, 1),
        runs: ctx.size(RUNS, 2),
    };
    let dir = ctx.tempdir()?;
    let store = fixture::durable_store(dir.path())?;
    let config = RuntimeConfig {
        snapshots: SnapshotPolicy::Never,
        ..RuntimeConfig::default()
    };
    let batch = config.replay_batch;
    let runtime =
        fixture::runtime_with_accounts(ctx, store, config, &[REPLAYED, SNAPSHOTTED]).await?;
    let namespace = Namespace::new(fixture::NAMESPACE)?;
    runtime.set_snapshot_policy(
        &namespace,
        &AggregateType::new(SNAPSHOTTED)?,
        SnapshotPolicy::Every(sizes.events as u64),
    );

    let digest = Digest::of(&ctx.component).to_hex();
    let (mut results, mut reads) = (Vec::new(), Vec::new());
    for aggregate_type in [REPLAYED, SNAPSHOTTED] {
        let stream = fixture::stream(aggregate_type, "long-lived")?;
        write_history(&runtime, &stream, sizes.events, APPEND_CHUNK).await?;
        let snapshot = runtime.store().load_snapshot(&stream, &digest).await?;
        let snapshot_version = snapshot.map(|s| s.version);
        let expected = if aggregate_type == SNAPSHOTTED {
            Some(sizes.events as u64)
        } else {
            None
        };
        ensure!(
            snapshot_version == expected,
            "{aggregate_type}: snapshot at {snapshot_version:?}, expected {expected:?}"
        );
        results.push(activations(&runtime, &stream, sizes).await?);
        if aggregate_type == REPLAYED {
            reads = store_reads(&runtime, &stream, batch, sizes).await?;
        }
    }
    let [mut replayed, mut snapshotted] =
        <[Vec<f64>; 2]>::try_from(results).map_err(|_| anyhow::anyhow!("two results"))?;

    let params = |m: Metric| {
        m.param("backend", fixture::DURABLE_BACKEND)
            .param("events", sizes.events as u64)
            .param("runs", sizes.runs as u64)
    };
    report.push(
        params(Metric::new(
            "activation_replay",
            median(&mut replayed),
            "ms",
        ))
        .param("snapshot", false)
        .param("batch", batch as u64)
        .target(Target::AtMost(5.0)),
    );
    report.push(
        params(Metric::new(
            "activation_store_read",
            median(&mut reads),
            "ms",
        ))
        .param(
            "what",
            "read_replay_batch of the same events in replay_batch batches, no guest",
        )
        .param("batch", batch as u64),
    );
    report.push(
        params(Metric::new(
            "activation_snapshot",
            median(&mut snapshotted),
            "ms",
        ))
        .param("snapshot", true)
        .param("snapshot_version", sizes.events as u64)
        .target(Target::AtMost(1.0)),
    );
    Ok(())
}

/// Stores `Opened` and `events - 2` deposits directly, in appends of
/// `chunk` events, then deposits once more through the runtime, which
/// snapshots if the type's policy says so.
pub(super) async fn write_history(
    runtime: &Runtime,
    stream: &StreamId,
    events: usize,
    chunk: usize,
) -> anyhow::Result<()> {
    let history = fixture::account_history(events - 1)?;
    let mut version = 0;
    for chunk in history.chunks(chunk) {
        let request = AppendRequest {
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: chunk
                .iter()
                .map(|(t, data)| NewEvent::json(t.clone(), data.clone()))
                .collect(),
            metadata: EventMetadata::default(),
            timestamp_ms: 1_700_000_000_000,
        };
        version = runtime.store().append(request).await?.last_version();
    }
    let outcome = runtime.execute(fixture::deposit(stream)).await?;
    ensure!(
        outcome.version == events as u64,
        "the history reached version {}",
        outcome.version
    );
    Ok(())
}

/// Passivates and re-activates `stream` `sizes.runs` times (after a
/// warm-up); the time of each activation, in ms.
pub(super) async fn activations(
    runtime: &Runtime,
    stream: &StreamId,
    sizes: Sizes,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for run in 0..sizes.warmup + sizes.runs {
        runtime.passivate(stream).await?;
        let start = Instant::now();
        let state = runtime.state(stream).await?;
        let elapsed = start.elapsed();
        ensure!(
            state.version == sizes.events as u64,
            "activated at version {}",
            state.version
        );
        let balance = fixture::balance(&state.view)?;
        ensure!(
            balance == sizes.events as u64 - 1,
            "activated with balance {balance}"
        );
        if run >= sizes.warmup {
            times.push(elapsed.as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

/// Reads the whole stream the way activation does (replay batches of
/// `batch` events), without a guest, `sizes.runs` times; the time of each read, in ms.
pub(super) async fn store_reads(
    runtime: &Runtime,
    stream: &StreamId,
    batch: usize,
    sizes: Sizes,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for run in 0..sizes.warmup + sizes.runs {
        let start = Instant::now();
        let mut read = 0;
        loop {
            let events = runtime
                .store()
                .read_replay_batch(stream, read as u64 + 1, batch)
                .await?;
            read += events.len();
            if events.len() < batch {
                break;
            }
        }
        let elapsed = start.elapsed();
        ensure!(
            read == sizes.events,
            "read {read} events, expected {}",
            sizes.events
        );
        if run >= sizes.warmup {
            times.push(elapsed.as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}
