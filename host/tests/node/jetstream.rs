//! Two `aether serve` processes on one 3-node NATS cluster (R3 streams)
//! race on the same aggregates: for each version exactly one writer wins,
//! versions stay gapless, nothing is stored twice, and losers get 409.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aether_nats_harness::NatsCluster;
use serde_json::json;

use crate::support::{ADMIN, BANK, Http, NodeProcess};

const ACCOUNTS: usize = 2;
const CLIENTS_PER_NODE: usize = 3;
const ATTEMPTS: usize = 25;

/// Namespace `bank`, created on `node_1`; its token, once `node_2` (which
/// shares the tenants through NATS) knows it too.
fn shared_namespace(node_1: &NodeProcess, node_2: &NodeProcess) -> String {
    let token = node_1
        .client(Some(ADMIN))
        .create_namespace("bank", json!({}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while node_2.client(Some(&token)).get("/v1/namespaces/bank").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 knows the namespace within 15 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    token
}

#[test]
fn two_nodes_on_one_jetstream_cluster_never_both_win_a_version() {
    let cluster = NatsCluster::start(3);
    let urls = cluster.urls().join(",");
    let nats = ["--nats", urls.as_str(), "--nats-replicas", "3"];
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_1 = NodeProcess::start(dir_1.path(), &nats);
    let node_2 = NodeProcess::start(dir_2.path(), &nats);
    let token = shared_namespace(&node_1, &node_2);
    let mut clients = Vec::new();
    for node in [&node_1, &node_2] {
        // Components are not shared yet: deployed on each node.
        let client = node.client(Some(&token));
        client.deploy("bank", "bank-account", BANK);
        clients.push(client);
    }
    for a in 0..ACCOUNTS {
        let (status, body) = clients[0].send(
            &format!("bank/bank-account/acc-{a}"),
            json!({"type": "Open", "data": {"owner": "R"}}),
        );
        assert_eq!(status, 200, "{body}");
    }

    // (account, version) → how many writers were told they stored it.
    let won: Arc<Mutex<BTreeMap<(usize, u64), usize>>> = Arc::default();
    let conflicts = Arc::new(Mutex::new(0usize));
    let mut threads = Vec::new();
    for (n, client) in clients.iter().enumerate() {
        for c in 0..CLIENTS_PER_NODE {
            let (client, won, conflicts): (Http, _, _) =
                (client.clone(), won.clone(), conflicts.clone());
            threads.push(std::thread::spawn(move || {
                for i in 0..ATTEMPTS {
                    let a = (i + c + n) % ACCOUNTS;
                    // A read that meets a stream changing under it on
                    // every refresh answers a retryable 503: retry it.
                    let path = format!("/v1/namespaces/bank/aggregates/bank-account/acc-{a}");
                    let (status, state) = (0..20)
                        .map(|_| client.get(&path))
                        .find(|(status, state)| {
                            *status != 503 || state["error"] != json!("store_unavailable")
                        })
                        .expect("a state read answered within 20 tries");
                    assert_eq!(status, 200, "{state}");
                    let version = state["version"].as_u64().unwrap();
                    let (status, body) = client.send(
                        &format!("bank/bank-account/acc-{a}"),
                        json!({"type": "Deposit", "data": {"amount": 1}, "expected_version": version}),
                    );
                    match status {
                        200 => {
                            assert_eq!(body["version"], json!(version + 1), "{body}");
                            *won.lock().unwrap().entry((a, version + 1)).or_default() += 1;
                        }
                        409 => {
                            assert_eq!(body["error"], json!("version_conflict"), "{body}");
                            assert_eq!(body["expected"], json!(version), "{body}");
                            assert_ne!(body["actual"], json!(version), "{body}");
                            *conflicts.lock().unwrap() += 1;
                        }
                        other => panic!("node {n}: unexpected {other}: {body}"),
                    }
                }
            }));
        }
    }
    for thread in threads {
        thread.join().unwrap();
    }

    let won = won.lock().unwrap();
    assert!(
        won.values().all(|&writers| writers == 1),
        "a version with two winners: {won:?}"
    );
    assert!(*conflicts.lock().unwrap() > 0, "the writers never raced");
    for a in 0..ACCOUNTS {
        for client in &clients {
            let (status, events) = client.get(&format!(
                "/v1/namespaces/bank/aggregates/bank-account/acc-{a}/events"
            ));
            assert_eq!(status, 200);
            let versions: Vec<u64> = events["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["version"].as_u64().unwrap())
                .collect();
            let deposits = won.keys().filter(|(account, _)| *account == a).count() as u64;
            assert_eq!(
                versions,
                (1..=1 + deposits).collect::<Vec<_>>(),
                "acc-{a}: gapless, each acknowledged deposit once"
            );
            let ids: std::collections::BTreeSet<_> = events["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(ids.len(), versions.len(), "no event stored twice");
        }
    }
}

/// A subscriber on one node follows events another node stores in the
/// shared JetStream store: its history, then new ones as they come. The
/// events cross NATS once, in the store's stream: nothing is published on
/// the NATS bus's subjects (`aether.bus.>`) a second time.
#[test]
fn a_tail_on_one_node_follows_events_stored_by_another() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let server = aether_nats_harness::NatsServer::start();
    let url = server.url();
    let watcher = tokio::runtime::Runtime::new().unwrap();
    let (mut bus_subjects, mut store_subjects) = watcher.block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let bus = client.subscribe("aether.bus.>").await.unwrap();
        let store = client.subscribe("aether.events.bank.>").await.unwrap();
        client.flush().await.unwrap();
        (bus, store)
    });
    let nats = ["--nats", url.as_str()];
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (node_1, node_2) = (
        NodeProcess::start(dir_1.path(), &nats),
        NodeProcess::start(dir_2.path(), &nats),
    );
    let token_1 = shared_namespace(&node_1, &node_2);
    let token_2 = token_1.clone();
    let writer = node_1.client(Some(&token_1));
    writer.deploy("bank", "bank-account", BANK);
    writer.send(
        "bank/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "J"}}),
    );

    let mut tail = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(["tail", "bank", "--json", "--from", "beginning"])
        .env("AETHER_NODE", &node_2.url)
        .env("AETHER_TOKEN", &token_2)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    assert_eq!(
        next()["event_type"],
        json!("Opened"),
        "history written by the other node"
    );
    writer.send(
        "bank/bank-account/acc-1",
        json!({"type": "Deposit", "data": {"amount": 4}}),
    );
    let live = next();
    assert_eq!(
        (&live["event_type"], &live["version"]),
        (&json!("Deposited"), &json!(2))
    );
    let _ = tail.kill();
    let _ = tail.wait();

    let (on_bus, in_store) = watcher.block_on(async {
        (
            received(&mut bus_subjects).await,
            received(&mut store_subjects).await,
        )
    });
    assert!(
        in_store >= 2,
        "the watcher sees the store's publishes ({in_store}), so it would see the bus's"
    );
    assert_eq!(on_bus, 0, "and not published again on the bus's subjects");
}

/// How many messages `subscriber` receives until it has been quiet for
/// half a second.
async fn received(subscriber: &mut async_nats::Subscriber) -> usize {
    use futures_util::StreamExt;
    let mut seen = 0;
    while let Ok(Some(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), subscriber.next()).await
    {
        seen += 1;
    }
    seen
}
