//! Requests and answers larger than the NATS servers' `max_payload` are
//! routed through the cluster's spill bucket: a command up to the
//! namespace's `max_command_bytes` reaches its shard's owner from any
//! node, and a large answer comes back; the bucket keeps nothing after.

use std::sync::Arc;
use std::time::Duration;

use aether_host::cluster::{Cluster, ClusterConfig, Reply, Routed, ShardHost, StreamFilter};
use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::runtime::CommandRequest;
use aether_host::service::{Answered, CommandAnswer, ServiceError, StateAnswer};
use aether_host::store::StreamId;
use aether_nats_harness::NatsServer;
use serde_json::json;

/// The servers' largest message in these tests.
const MAX_PAYLOAD: usize = 64 << 10;

/// Answers a command with a checksum of its payload as the version, a
/// state read with a view of `view_bytes` bytes.
struct Echo {
    view_bytes: usize,
}

#[async_trait::async_trait]
impl ShardHost for Echo {
    async fn run(&self, routed: Routed) -> Reply {
        Ok(match routed {
            Routed::Command(command) => Answered::Command(CommandAnswer {
                duplicate: false,
                events: Vec::new(),
                version: checksum(&command.data),
            }),
            Routed::State { stream } => Answered::State(StateAnswer {
                state: serde_json::to_vec(&json!({ "blob": "x".repeat(self.view_bytes) })).unwrap(),
                stream: stream.to_string(),
                version: 1,
            }),
        })
    }

    fn admit(&self, _token: Option<&str>, _routed: &Routed) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn passivate(&self, _matches: StreamFilter) {}
}

/// Every byte, in order, counts.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(bytes.len() as u64, |sum, &b| {
        sum.wrapping_mul(1_099_511_628_211)
            .wrapping_add(u64::from(b))
    })
}

fn config(node: &str, url: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(node, vec![url.to_owned()]);
    config.shards = 8;
    config.heartbeat = Duration::from_millis(200);
    config.lease_ttl = Duration::from_secs(5);
    config
}

fn stream(id: usize) -> StreamId {
    StreamId::new(
        Namespace::new("bank").unwrap(),
        AggregateType::new("account").unwrap(),
        AggregateId::new(format!("acc-{id}")).unwrap(),
    )
}

/// In-process nodes on one `nats-server` with a 64 KiB `max_payload`: a
/// 1 MiB command and a 1 MiB view cross between them intact, whichever
/// node owns the shard, and the spill bucket is empty afterwards.
#[test]
fn requests_and_answers_larger_than_a_nats_message_cross_the_cluster() {
    let _serial = crate::serial();
    let nats = NatsServer::start_with_max_payload(Some(MAX_PAYLOAD));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let echo = || {
            Arc::new(Echo {
                view_bytes: 1 << 20,
            })
        };
        let one = Cluster::join(config("one", &nats.url()), echo())
            .await
            .unwrap();
        let two = Cluster::join(config("two", &nats.url()), echo())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while one.status().serving + two.status().serving < 8
            || one.status().serving == 8
            || two.status().serving == 8
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the shards are shared"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let data: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
        let expected = checksum(&data);
        // Enough aggregates that each node routes some to the other.
        for id in 0..8 {
            for entry in [&one, &two] {
                let mut command =
                    CommandRequest::json(stream(id), "Deposit", &json!({})).with_command_id("c");
                command.data = data.clone();
                match entry.route(Routed::Command(command)).await {
                    Ok(Answered::Command(answer)) => assert_eq!(answer.version, expected),
                    other => panic!("acc-{id}: {other:?}"),
                }
                match entry.route(Routed::State { stream: stream(id) }).await {
                    Ok(Answered::State(answer)) => {
                        assert_eq!(
                            answer.view().unwrap()["blob"].as_str().unwrap().len(),
                            1 << 20
                        );
                    }
                    other => panic!("acc-{id}: {other:?}"),
                }
            }
        }

        let client = async_nats::connect(nats.url()).await.unwrap();
        let context = async_nats::jetstream::new(client);
        let mut bucket = context
            .get_stream("OBJ_AETHER_CLUSTER_SPILL")
            .await
            .expect("large messages went through the spill bucket");
        let state = bucket.info().await.unwrap().state.clone();
        assert!(
            state.bytes < MAX_PAYLOAD as u64,
            "the bucket keeps what nobody needs: {state:?}"
        );
        one.leave().await;
        two.leave().await;
    });
}

/// Real nodes on 3 `nats-server`s with a 64 KiB `max_payload`: a command of
/// 600 KiB (under the namespace's 1 MiB `max_command_bytes`) is carried out
/// through every node, whichever owns its aggregate.
#[test]
fn a_command_larger_than_a_nats_message_is_routed_to_its_owner() {
    let _serial = crate::serial();
    let cluster = crate::harness::Cluster::start_with_max_payload(2, MAX_PAYLOAD);
    let note = "n".repeat(600 << 10);
    for id in 0..4 {
        let aggregate = format!("bank/bank-account/big-{id}");
        let (status, body) = cluster
            .client(0)
            .send(&aggregate, json!({"type": "Open", "data": {"owner": "B"}}));
        assert_eq!(status, 200, "{body}");
        for (i, node) in [0, 1].into_iter().enumerate() {
            let (status, body) = cluster.client(node).send(
                &aggregate,
                json!({"type": "Deposit", "data": {"amount": 1, "note": note}}),
            );
            assert_eq!(status, 200, "big-{id} through node {node}: {body}");
            assert_eq!(body["version"], json!(2 + i as u64), "{body}");
        }
    }
}
