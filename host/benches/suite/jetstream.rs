//! `commands_jetstream`: commands per second across 1 000 aggregates on the
//! JetStream store, pipelined (200 closed-loop callers, so many appends are
//! in flight at once), on a single `nats-server` (R1) and on a 3-node
//! cluster with R3 streams, spawned by the test harness from the pinned
//! server that `cargo xtask bench` installs.

use std::sync::Arc;
use std::time::Duration;

use aether_host::runtime::{Runtime, RuntimeConfig};
use aether_host::store::{JetStreamConfig, JetStreamStore};
use aether_nats_harness::{NatsCluster, NatsServer};
use anyhow::ensure;

use super::fixture::{self, Ctx};
use super::load;
use super::report::{Metric, Report, Target};

const ACCOUNTS: usize = 1_000;
const CALLERS: usize = 200;
const DURATION: Duration = Duration::from_secs(4);

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (accounts_count, callers, duration) = (
        ctx.size(ACCOUNTS, 20),
        ctx.size(CALLERS, 8),
        ctx.size(DURATION, Duration::from_millis(200)),
    );
    for replicas in [1usize, 3] {
        // Keep the servers alive for the whole measurement.
        let (urls, _single, _cluster) = if replicas == 1 {
            let server = tokio::task::spawn_blocking(NatsServer::start).await?;
            (vec![server.url()], Some(server), None)
        } else {
            let cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await?;
            (cluster.urls(), None, Some(cluster))
        };
        let store = JetStreamStore::connect(JetStreamConfig::new(urls, replicas)).await?;
        let runtime = Runtime::new(Arc::new(store), RuntimeConfig::default())?;
        runtime
            .deploy(
                &fixture::NAMESPACE.parse()?,
                &fixture::ACCOUNT.parse()?,
                ctx.component.clone(),
            )
            .await?;
        let accounts = load::accounts(accounts_count)?;
        load::open_all(&runtime, &accounts, callers).await?;
        let mut load = load::deposits(&runtime, &accounts, callers, duration).await?;
        let total = load::total_balance(&runtime, &accounts).await?;
        ensure!(
            total == load.commands,
            "the accounts hold {total}, but {} deposits were acknowledged",
            load.commands
        );
        let name = format!("commands_jetstream_r{replicas}");
        let params = |m: Metric| {
            m.param("aggregates", accounts_count as u64)
                .param("concurrency", callers as u64)
                .param("seconds", duration.as_secs_f64())
                .param("servers", if replicas == 1 { 1u64 } else { 3 })
                .param("replicas", replicas as u64)
                .param(
                    "server_settings",
                    "harness defaults (sync_interval default)",
                )
        };
        // Issue 18's targets: ≥ 30 000/s on one server, ≥ 15 000/s on R3.
        let target = if replicas == 1 { 30_000.0 } else { 15_000.0 };
        report.push(params(
            Metric::new(&name, load.per_second, "commands/s").target(Target::AtLeast(target)),
        ));
        report.push(params(Metric::new(
            &format!("{name}_p50"),
            load.latency_ms(50.0),
            "ms",
        )));
        report.push(params(Metric::new(
            &format!("{name}_p99"),
            load.latency_ms(99.0),
            "ms",
        )));
    }
    Ok(())
}
