//! `cluster_reload`: hot reload across a cluster. Three nodes in this
//! process (each with its own runtime, data directory, compile cache and
//! NATS connections) join a cluster on three `nats-server`s (R3 streams
//! and buckets); a new version of the component (the same code under a new
//! digest) is deployed through one node after another, while every node's
//! active digest is watched each millisecond. Measured, per deploy: its
//! latency (sent → answered; in a cluster the answer waits until every
//! member confirms it decides with the new version), when the first and
//! the last node switched, and `cluster_reload_spread`: from the deploy's
//! answer to the last node serving the new version (0 when every node
//! switched before the answer). A deploy waits at most the node's
//! `SWITCH_WAIT` for the members' confirmations and then answers with the
//! members that did not confirm: `cluster_reload_unconfirmed` counts such
//! answers (0 expected; a heavily loaded machine can make a member late),
//! while every node must still switch within [`SWITCH_DEADLINE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_host::cluster::ClusterConfig;
use aether_host::namespace::{AggregateType, Namespace};
use aether_host::node::service::Verify;
use aether_host::node::{LimitOverrides, Node, NodeConfig, Principal};
use aether_host::runtime::{Digest, now_ms, with_custom_section};
use aether_host::store::JetStreamConfig;
use aether_nats_harness::NatsCluster;
use anyhow::{Context, ensure};

use super::fixture::{self, Ctx};
use super::report::{Metric, Report, median};

const NODES: usize = 3;
const SWAPS: u32 = 6;
/// How long a node may take to switch before the scenario fails.
const SWITCH_DEADLINE: Duration = Duration::from_secs(60);

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let swaps = ctx.size(SWAPS, 1);
    let nats = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await?;
    let urls = nats.urls();
    let mut dirs = Vec::new();
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    for i in 0..NODES {
        let dir = ctx.tempdir()?;
        let mut config = NodeConfig::new(dir.path(), "127.0.0.1:0".parse()?);
        config.admin_token = Some("bench-admin-token-0123456789".into());
        config.nats = Some(JetStreamConfig::new(urls.clone(), 3));
        let (node, _) = Node::open(&config).await?;
        let mut cluster = ClusterConfig::new(format!("bench-{i}"), urls.clone());
        cluster.replicas = 3;
        node.join_cluster(cluster).await?;
        nodes.push(node);
        dirs.push(dir);
    }
    let (namespace, aggregate_type) =
        (fixture::namespace()?, AggregateType::new(fixture::ACCOUNT)?);
    nodes[0]
        .tenants()
        .create(&namespace, LimitOverrides::default(), now_ms())
        .await?;
    let deploy = |node: &Arc<Node>, bytes: Vec<u8>| {
        let (node, namespace, aggregate_type) =
            (node.clone(), namespace.clone(), aggregate_type.clone());
        async move {
            node.deploy_component(
                &Principal::Admin,
                &namespace,
                &aggregate_type,
                bytes,
                Verify::No,
                |_, _| {},
            )
            .await
            .map_err(|e| anyhow::anyhow!("deploying: {e}"))
        }
    };
    let first = deploy(&nodes[0], ctx.component.clone()).await?;
    for node in &nodes {
        switched(node, &namespace, &aggregate_type, &first.digest).await?;
    }

    let (mut answers, mut firsts, mut lasts, mut spreads) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut unconfirmed = 0;
    for swap in 1..=swaps {
        let bytes =
            with_custom_section(&ctx.component, "bench-cluster-version", &swap.to_le_bytes());
        let digest = Digest::of(&bytes).to_hex();
        let started = Instant::now();
        let watchers: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (node, namespace, aggregate_type, digest) = (
                    node.clone(),
                    namespace.clone(),
                    aggregate_type.clone(),
                    digest.clone(),
                );
                tokio::spawn(
                    async move { switched(&node, &namespace, &aggregate_type, &digest).await },
                )
            })
            .collect();
        let through = &nodes[swap as usize % NODES];
        let answer = deploy(through, bytes).await?;
        let answered = Instant::now();
        ensure!(
            answer.digest == digest,
            "the deploy answered another digest"
        );
        if !answer.unconfirmed_nodes.is_empty() {
            eprintln!(
                "cluster_reload: deploy {swap} answered before {:?} confirmed the switch",
                answer.unconfirmed_nodes
            );
            unconfirmed += 1;
        }
        let mut at = Vec::new();
        for watcher in watchers {
            at.push(watcher.await??);
        }
        let (first_switch, last_switch) = (
            *at.iter().min().context("a node")?,
            *at.iter().max().context("a node")?,
        );
        answers.push(ms(answered - started));
        firsts.push(ms(first_switch - started));
        lasts.push(ms(last_switch - started));
        spreads.push(ms(last_switch.saturating_duration_since(answered)));
    }
    for node in &nodes {
        if let Some(cluster) = node.cluster() {
            cluster.leave().await;
        }
    }
    let params = |metric: Metric| {
        metric
            .param("nodes", NODES)
            .param("deploys", swaps)
            .param("nats", "3 nats-server, R3")
            .param("compile_cache", "cold (each node compiles each version)")
    };
    report.push(params(Metric::new(
        "cluster_reload_spread",
        median(&mut spreads),
        "ms",
    )));
    report.push(params(Metric::new(
        "cluster_reload_answer",
        median(&mut answers),
        "ms",
    )));
    report.push(params(Metric::new(
        "cluster_reload_unconfirmed",
        unconfirmed as f64,
        "deploys",
    )));
    report.push(params(Metric::new(
        "cluster_reload_first_switch",
        median(&mut firsts),
        "ms",
    )));
    report.push(params(Metric::new(
        "cluster_reload_last_switch",
        median(&mut lasts),
        "ms",
    )));
    drop(nats);
    Ok(())
}

/// When `node` serves `digest` for the type (watched each millisecond).
async fn switched(
    node: &Node,
    namespace: &Namespace,
    aggregate_type: &AggregateType,
    digest: &str,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + SWITCH_DEADLINE;
    loop {
        let active = node
            .runtime()
            .active_component(namespace, aggregate_type)
            .map(|c| c.digest().to_hex());
        if active.as_deref() == Some(digest) {
            return Ok(Instant::now());
        }
        ensure!(
            Instant::now() < deadline,
            "a node did not switch within {SWITCH_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
