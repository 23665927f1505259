//! A panic in a cluster background task is not lost: the node stops
//! serving at once and says why. Driven in-process through the library,
//! against a real `nats-server`: two nodes, and the shard host of the
//! first panics when the coordinator passivates the shards it hands over
//! to the second, half-way through the hand-off.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aether_host::cluster::placement::assign;
use aether_host::cluster::{
    Cluster, ClusterConfig, Reply, Routed, ShardHost, StreamFilter, shard_of,
};
use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::service::{Answered, Envelope, ServiceError, StateAnswer};
use aether_host::store::StreamId;
use aether_nats_harness::NatsServer;

const SHARDS: u32 = 16;

/// Answers every read at version 1; its `panic_on`th passivation panics.
struct Host {
    passivations: AtomicUsize,
    panic_on: usize,
}

#[async_trait::async_trait]
impl ShardHost for Host {
    async fn run(&self, _routed: Routed) -> Reply {
        Ok(Answered::State(StateAnswer {
            state: b"{}".to_vec(),
            stream: "bank/account/a".into(),
            version: 1,
        }))
    }

    fn admit(&self, _token: Option<&str>, _routed: &Routed) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn passivate(&self, _matches: StreamFilter) {
        if self.passivations.fetch_add(1, Ordering::SeqCst) + 1 == self.panic_on {
            panic!("passivation failed");
        }
    }
}

fn config(node: &str, url: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(node, vec![url.to_owned()]);
    config.shards = SHARDS;
    config.heartbeat = Duration::from_millis(200);
    // Long enough that only the supervision, not a lapsing ownership
    // deadline, can explain what follows.
    config.lease_ttl = Duration::from_secs(30);
    config.route_timeout = Duration::from_millis(500);
    config
}

/// An account whose shard `node` owns when `members` are the members.
fn account_of(node: &str, members: &[String]) -> StreamId {
    let owners = assign(SHARDS, members);
    (0..)
        .map(|i| {
            StreamId::new(
                Namespace::new("bank").unwrap(),
                AggregateType::new("bank-account").unwrap(),
                AggregateId::new(format!("acc-{i}")).unwrap(),
            )
        })
        .find(|stream| owners[shard_of(stream, SHARDS) as usize] == node)
        .unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_panic_in_the_coordinator_stops_the_node_serving_at_once() {
    let _serial = crate::serial();
    let nats = NatsServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let host = |panic_on| {
            Arc::new(Host {
                passivations: AtomicUsize::new(0),
                panic_on,
            })
        };
        // Passivation 1: taking every shard; 2: handing some to `other`.
        let solo = Cluster::join(config("solo", &nats.url()), host(2))
            .await
            .unwrap();
        until("solo serves every shard", || {
            solo.status().serving == SHARDS as usize
        })
        .await;
        let kept = account_of("solo", &["other".to_owned(), "solo".to_owned()]);
        let read = || Routed::State {
            stream: kept.clone(),
        };
        assert_eq!(Envelope::from(&solo.route(read()).await).status, 200);
        assert!(solo.failed().is_none(), "sound at first");

        let other = Cluster::join(config("other", &nats.url()), host(usize::MAX))
            .await
            .unwrap();
        let failure = tokio::time::timeout(Duration::from_secs(30), solo.failure())
            .await
            .expect("the coordinator's panic is reported");
        assert!(
            failure.contains("the coordinator panicked: passivation failed"),
            "{failure}"
        );
        assert_eq!(solo.status().failed, Some(failure));
        assert!(other.failed().is_none());

        // The shard solo keeps in the new map is still open on solo (its
        // coordinator died before it could say otherwise) and its
        // ownership deadline is 30 s away, yet solo serves it no more.
        assert!(solo.status().serving > 0);
        let reply = Envelope::from(&solo.route(read()).await);
        assert_ne!(reply.status, 200, "{reply:?}");
        let reply = Envelope::from(&other.route(read()).await);
        assert_ne!(reply.status, 200, "{reply:?}");
        other.leave().await;
    });
}
