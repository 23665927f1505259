//! `density_*`: resident memory with 100 000 live aggregates.
//!
//! 100 000 bank accounts are activated by one `Open` each through
//! [`Runtime::execute`] on a [`MemoryStore`] (so the number does not depend
//! on how large a cache the durable store keeps), by [`CALLERS`] concurrent
//! callers. Resident memory (VmRSS) is read before, with the runtime
//! started and the component deployed and instantiated, and after. The
//! delta includes the store's copy of the 100 000 `Opened` events; that
//! share is measured separately afterwards, by appending the same events to
//! a second `MemoryStore`, and reported on its own. This scenario runs first
//! in the process, so memory freed by other scenarios does not flatter it.

use std::sync::Arc;

use aether_host::runtime::{Digest, RuntimeConfig, SandboxLimits};
use aether_host::store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, MemoryStore, NewEvent,
};
use anyhow::ensure;
use tokio::task::JoinSet;

use super::fixture::{self, ACCOUNT, Ctx};
use super::report::{Metric, Report, Target, resident_bytes};

const AGGREGATES: usize = 100_000;
const CALLERS: usize = 256;
const MIB: f64 = (1 << 20) as f64;

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (aggregates, callers) = (ctx.size(AGGREGATES, 1_000), ctx.size(CALLERS, 16));
    let config = RuntimeConfig {
        limits: SandboxLimits {
            max_live_aggregates: 2 * aggregates,
            ..SandboxLimits::default()
        },
        ..RuntimeConfig::default()
    };
    let (max_live, partitions) = (config.limits.max_live_aggregates, config.partitions);
    let runtime =
        fixture::runtime_with_accounts(ctx, Arc::new(MemoryStore::new()), config, &[ACCOUNT])
            .await?;
    // Instantiate the component in every partition before measuring.
    for i in 0..partitions * 8 {
        runtime
            .execute(fixture::open(&fixture::stream(
                ACCOUNT,
                &format!("warm-{i}"),
            )?))
            .await?;
    }
    let warm = runtime.live_aggregates().await;
    let before = resident_bytes()?;

    let mut tasks = JoinSet::new();
    for caller in 0..callers {
        let runtime = runtime.clone();
        tasks.spawn(async move {
            for i in (caller..aggregates).step_by(callers) {
                runtime
                    .execute(fixture::open(&fixture::stream(
                        ACCOUNT,
                        &format!("acc-{i}"),
                    )?))
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let after = resident_bytes()?;
    let live = runtime.live_aggregates().await - warm;
    ensure!(
        live == aggregates,
        "{live} aggregates are live, expected {aggregates}"
    );
    let store_share = store_share(&Digest::of(&ctx.component).to_hex(), aggregates).await?;
    drop(runtime);

    let params = |m: Metric| {
        m.param("live_aggregates", live as u64)
            .param("backend", "MemoryStore")
            .param(
                "activated_by",
                "one Open per account through Runtime::execute",
            )
            .param("max_live_aggregates", max_live as u64)
            .param("partitions", partitions as u64)
    };
    report.push(params(Metric::new(
        "density_rss_before",
        before as f64 / MIB,
        "MiB",
    )));
    report.push(
        params(Metric::new("density_rss_after", after as f64 / MIB, "MiB"))
            .target(Target::AtMost(1024.0)),
    );
    let per_aggregate = after.saturating_sub(before) as f64 / aggregates as f64;
    report.push(
        params(Metric::new("density_per_aggregate", per_aggregate, "bytes"))
            .param("includes", "runtime + guest + MemoryStore's event"),
    );
    report.push(
        params(Metric::new("density_store_share", store_share, "bytes"))
            .param("what", "MemoryStore's share of the per-aggregate delta"),
    );
    Ok(())
}

/// Resident bytes per stream that a `MemoryStore` holding one `Opened`
/// event per stream takes, measured by filling a second one with
/// `aggregates` streams.
async fn store_share(digest: &str, aggregates: usize) -> anyhow::Result<f64> {
    let (event_type, data) = fixture::account_history(1)?.remove(0);
    let store = MemoryStore::new();
    let before = resident_bytes()?;
    for i in 0..aggregates {
        let request = AppendRequest {
            stream: fixture::stream(ACCOUNT, &format!("acc-{i}"))?,
            expected: ExpectedVersion::Exact(0),
            events: vec![NewEvent::json(event_type.clone(), data.clone())],
            metadata: EventMetadata {
                component_digest: Some(digest.to_owned()),
                ..EventMetadata::default()
            },
            timestamp_ms: 1_700_000_000_000,
        };
        store.append(request).await?;
    }
    let after = resident_bytes()?;
    ensure!(
        store.head_position(&fixture::namespace()?).await? == aggregates as u64,
        "the store holds every event"
    );
    Ok(after.saturating_sub(before) as f64 / aggregates as f64)
}
