//! The cluster's settings are the cluster's: a node that disagrees on the
//! shard count, the KV replicas or the lease TTL is refused at start (it
//! exits non-zero, naming the setting and both values), and leaves every
//! bucket and stream of the running cluster as it was.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;

use crate::harness::Cluster;

/// Every stream on the servers (KV buckets are streams `KV_<bucket>`):
/// its (replicas, max age).
fn streams(urls: &[String]) -> BTreeMap<String, (usize, Duration)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let servers: Vec<async_nats::ServerAddr> =
            urls.iter().map(|u| u.parse().unwrap()).collect();
        let client = async_nats::connect(servers).await.unwrap();
        let context = async_nats::jetstream::new(client);
        let mut streams = context.streams();
        let mut buckets = BTreeMap::new();
        while let Some(info) = streams.next().await {
            let config = info.unwrap().config;
            buckets.insert(config.name, (config.num_replicas, config.max_age));
        }
        buckets
    })
}

#[test]
fn a_node_with_other_cluster_settings_is_refused_and_changes_nothing() {
    let _serial = crate::serial();
    let cluster = Cluster::start(3);
    let before = streams(&cluster.nats.urls());
    for name in [
        "KV_AETHER_CLUSTER_SETTINGS",
        "KV_AETHER_CLUSTER_MEMBERS",
        "KV_AETHER_CLUSTER_LEADER",
        "KV_AETHER_CLUSTER_SHARDS",
    ] {
        assert_eq!(before.get(name).map(|b| b.0), Some(3), "{name}: {before:?}");
    }
    assert_eq!(
        before["KV_AETHER_CLUSTER_MEMBERS"].1,
        Duration::from_millis(2000)
    );

    for (flag, value, expected) in [
        (
            "--shards",
            "128",
            "--shards: the cluster has 256, this node 128",
        ),
        (
            "--nats-replicas",
            "1",
            "--nats-replicas: the cluster has 3, this node 1",
        ),
        (
            "--lease-ttl-ms",
            "60000",
            "--lease-ttl-ms: the cluster has 2000, this node 60000",
        ),
    ] {
        let (status, log) = cluster.start_expecting_exit(&[(flag, value)]);
        assert!(!status.success(), "{flag} {value}: exited with {status}");
        assert!(log.contains(expected), "{flag} {value}:\n{log}");
        let refusal = log
            .lines()
            .find(|l| l.contains(expected))
            .unwrap_or_default();
        println!("{flag} {value}: exited with {status}: {refusal}");
        assert_eq!(
            streams(&cluster.nats.urls()),
            before,
            "a refused node with {flag} {value} changed the buckets or streams"
        );
    }

    // The cluster went on as it was.
    let status = cluster.wait_stable(3);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
}
