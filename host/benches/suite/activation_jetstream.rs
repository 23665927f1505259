//! `activation_jetstream`: the time to make an aggregate with 10 000 events
//! live again on the JetStream store, on a single `nats-server` (R1)
//! spawned by the test harness from the pinned server that `cargo xtask
//! bench` installs.
//!
//! The same history as `activation_replay` (see `activation`): `Opened`
//! and 9 998 deposits appended straight to the store (in appends of 500,
//! under JetStream's 1 000-message limit on an atomic batch), then one
//! deposit through the runtime. The aggregate type never snapshots, so each
//! activation replays all 10 000 events, read from JetStream in
//! `replay_batch` batches.
//!
//! `activation_jetstream_store_read` (no target) reads the same events from
//! the store in the same batches without a guest: the store's share.

use std::sync::Arc;

use aether_host::runtime::{RuntimeConfig, SnapshotPolicy};
use aether_host::store::{EventStore, JetStreamConfig, JetStreamStore};
use aether_nats_harness::NatsServer;

use super::activation::{self, Sizes};
use super::fixture::{self, Ctx};
use super::report::{Metric, Report, Target, median};

const EVENTS: usize = 10_000;
const APPEND_CHUNK: usize = 500;
const WARMUP: usize = 2;
const RUNS: usize = 15;
const REPLAYED: &str = "account-replayed";

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let sizes = Sizes {
        events: ctx.size(EVENTS, 1_500),
        warmup: ctx.size(WARMUP, 1),
        runs: ctx.size(RUNS, 2),
    };
    // Keep the server alive for the whole measurement.
    let server = tokio::task::spawn_blocking(NatsServer::start).await?;
    let store = JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1)).await?;
    let store: Arc<dyn EventStore> = Arc::new(store);
    let config = RuntimeConfig {
        snapshots: SnapshotPolicy::Never,
        ..RuntimeConfig::default()
    };
    let batch = config.replay_batch;
    let runtime = fixture::runtime_with_accounts(ctx, store, config, &[REPLAYED]).await?;
    let stream = fixture::stream(REPLAYED, "long-lived")?;
    activation::write_history(&runtime, &stream, sizes.events, APPEND_CHUNK).await?;
    let mut activations = activation::activations(&runtime, &stream, sizes).await?;
    let mut reads = activation::store_reads(&runtime, &stream, batch, sizes).await?;

    let params = |m: Metric| {
        m.param("backend", "JetStreamStore (1 nats-server, R1)")
            .param("events", sizes.events as u64)
            .param("runs", sizes.runs as u64)
            .param("batch", batch as u64)
    };
    report.push(
        params(Metric::new(
            "activation_jetstream",
            median(&mut activations),
            "ms",
        ))
        .param("snapshot", false)
        .target(Target::AtMost(50.0)),
    );
    report.push(
        params(Metric::new(
            "activation_jetstream_store_read",
            median(&mut reads),
            "ms",
        ))
        .param(
            "what",
            "read_replay_batch of the same events in replay_batch batches, no guest",
        ),
    );
    drop(runtime);
    drop(server);
    Ok(())
}
