//! Routing: any node takes any command, the owner of the aggregate's shard
//! carries it out, and the caller sees what a single node would answer.

use aether_host::cluster::{Routed, shard_of};
use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::runtime::CommandRequest;
use aether_host::service::Envelope;
use aether_host::store::StreamId;
use serde_json::{Value, json};

use crate::harness::{Cluster, SHARDS};
use crate::support::{ADMIN, BANK, Http, NodeProcess};

fn stream(id: &str) -> StreamId {
    StreamId::new(
        Namespace::new("bank").unwrap(),
        AggregateType::new("bank-account").unwrap(),
        AggregateId::new(id).unwrap(),
    )
}

/// The index of the node owning `id`'s shard.
fn owner(cluster: &Cluster, id: &str) -> usize {
    let status = cluster.status(0);
    let shard = shard_of(&stream(id), SHARDS as u32) as usize;
    let owner = status["owners"][shard].as_str().unwrap();
    (0..3).find(|&i| Cluster::node_id(i) == owner).unwrap()
}

/// Commands counted as `ok` in namespace `bank` by node `index`.
fn ok_commands(cluster: &Cluster, index: usize) -> u64 {
    let metrics = cluster.metrics(index);
    metrics
        .lines()
        .find(|l| l.starts_with("aether_commands_total{namespace=\"bank\",outcome=\"ok\"}"))
        .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// What a caller sees of an answer: the status, the error code, the
/// version, the event types and the state's view.
fn seen(status: u16, body: &Value) -> Value {
    json!({
        "status": status,
        "error": body["error"],
        "version": body["version"],
        "duplicate": body["duplicate"],
        "events": body["events"].as_array().map(|e| e.iter().map(|e| e["event_type"].clone()).collect::<Vec<_>>()),
        "state": body["state"],
        "expected": body["expected"],
        "actual": body["actual"],
    })
}

/// The same script of commands and reads, answered by `client`.
fn script(client: &Http, id: &str) -> Vec<Value> {
    let aggregate = format!("bank/bank-account/{id}");
    let path = format!("/v1/namespaces/bank/aggregates/bank-account/{id}");
    let mut answers = Vec::new();
    let mut send = |command: Value| {
        let (status, body) = client.send(&aggregate, command);
        answers.push(seen(status, &body));
    };
    send(json!({"type": "Open", "data": {"owner": "ada"}}));
    send(json!({"type": "Deposit", "data": {"amount": 30}, "command_id": "dep-1"}));
    send(json!({"type": "Deposit", "data": {"amount": 30}, "command_id": "dep-1"}));
    send(json!({"type": "Withdraw", "data": {"amount": 1000}}));
    send(json!({"type": "Deposit", "data": {"amount": 5}, "expected_version": 1}));
    send(json!({"type": "Deposit", "data": {"amount": 5}, "expected_version": 2}));
    send(json!({"type": "Frobnicate", "data": {}}));
    send(json!({"type": "Deposit", "data": {"amount": "lots"}}));
    send(json!({"type": "Deposit", "surprise": true}));
    let (status, body) = client.get(&path);
    answers.push(seen(status, &body));
    let (status, body) = client.send("bank/no-such-type/x", json!({"type": "Open", "data": {}}));
    answers.push(seen(status, &body));
    answers
}

#[test]
fn any_node_takes_a_command_and_the_shards_owner_carries_it_out() {
    let _serial = crate::serial();
    let cluster = Cluster::start(3);

    // Same answers as a node on its own.
    let alone_dir = tempfile::tempdir().unwrap();
    let alone = NodeProcess::start(alone_dir.path(), &[]);
    let token = alone
        .client(Some(ADMIN))
        .create_namespace("bank", json!({}));
    let alone_client = alone.client(Some(&token));
    alone_client.deploy("bank", "bank-account", BANK);
    let expected = script(&alone_client, "parity");
    let owner_of_parity = owner(&cluster, "parity");
    let entry = (owner_of_parity + 1) % 3;
    assert_eq!(script(&cluster.client(entry), "parity"), expected);
    assert!(
        expected.iter().any(|a| a["status"] == json!(409)),
        "{expected:?}"
    );
    assert!(
        expected.iter().any(|a| a["error"] == json!("rejected")),
        "{expected:?}"
    );

    // Each command runs on the owner, whichever node took it.
    for id in ["r-1", "r-2", "r-3", "r-4", "r-5", "r-6"] {
        let owner = owner(&cluster, id);
        let before: Vec<u64> = (0..3).map(|i| ok_commands(&cluster, i)).collect();
        for entry in 0..3 {
            let command = if entry == 0 {
                json!({"type": "Open", "data": {"owner": id}})
            } else {
                json!({"type": "Deposit", "data": {"amount": 1}})
            };
            let (status, body) = cluster
                .client(entry)
                .send(&format!("bank/bank-account/{id}"), command);
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["version"], json!(entry + 1));
        }
        let after: Vec<u64> = (0..3).map(|i| ok_commands(&cluster, i)).collect();
        for i in 0..3 {
            let delta = after[i] - before[i];
            assert_eq!(
                delta,
                if i == owner { 3 } else { 0 },
                "{id}: node {i} (owner {owner})"
            );
        }
    }

    // A NATS client can send commands too, with the same bearer token.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(cluster.nats.urls()[0].as_str())
            .await
            .unwrap();
        let command = CommandRequest::json(stream("r-1"), "Deposit", &json!({"amount": 7}))
            .with_command_id("over-nats");
        let payload = Routed::Command(command).encode();
        let submit = |token: Option<&str>| {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(token) = token {
                headers.insert("Authorization", format!("Bearer {token}").as_str());
            }
            let (client, payload) = (client.clone(), payload.clone());
            async move {
                let answer = client
                    .request_with_headers("aether.cluster.submit", headers, payload.into())
                    .await
                    .unwrap();
                serde_json::from_slice::<Envelope>(&answer.payload).unwrap()
            }
        };
        let reply = submit(Some(&cluster.token)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["version"], json!(4));
        let reply = submit(None).await;
        assert_eq!(
            (reply.status, reply.body["error"].clone()),
            (401, json!("unauthorized"))
        );
    });
}
