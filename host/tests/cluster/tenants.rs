//! One control plane for tenants: a namespace created, given a token or
//! new limits, or a token revoked through any node holds on every node
//! (the shared KV bucket `<P>_TENANTS`), also when one of the NATS servers
//! has just died, and two nodes creating one namespace at once give one
//! 201 and one 409.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Cluster, tail_of_log};
use crate::support::{ADMIN, Http};

/// Polls `check` on every node until it holds everywhere (at most 15 s);
/// how long the slowest node took.
fn everywhere(what: &str, check: impl Fn(usize) -> bool) -> Duration {
    let started = Instant::now();
    for node in 0..3 {
        while !check(node) {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{what} on node {node} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    started.elapsed()
}

fn as_client(cluster: &Cluster, node: usize, token: &str) -> Http {
    cluster.node(node).client(Some(token))
}

#[test]
fn tenants_made_on_one_node_hold_on_every_node() {
    let _serial = crate::serial();
    let cluster = Cluster::start(3);

    // Created on node 1: its token works on nodes 2 and 3.
    let (status, created) = cluster
        .admin(0)
        .post_json("/v1/namespaces", &json!({ "name": "shop", "limits": {} }));
    assert_eq!(status, 201, "{created}");
    let first = created["token"].as_str().unwrap().to_owned();
    let first_id = created["token_id"].as_str().unwrap().to_owned();
    let spread = everywhere("the new namespace's token", |node| {
        as_client(&cluster, node, &first)
            .get("/v1/namespaces/shop")
            .0
            == 200
    });
    eprintln!("a new namespace reached every node in {spread:?}");
    for node in 0..3 {
        let (status, listed) = cluster.admin(node).get("/v1/namespaces");
        assert_eq!(status, 200, "{listed}");
        assert!(
            listed["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!("shop")),
            "node {node}: {listed}"
        );
    }

    // A second token, issued on node 2, works everywhere.
    let (status, issued) = cluster
        .admin(1)
        .post_json("/v1/namespaces/shop/tokens", &json!({}));
    assert_eq!(status, 201, "{issued}");
    let second = issued["token"].as_str().unwrap().to_owned();
    everywhere("the second token", |node| {
        as_client(&cluster, node, &second)
            .get("/v1/namespaces/shop")
            .0
            == 200
    });

    // New limits set on node 3 hold in every node's runtime: a command
    // over them is refused for aggregates of every shard (so by every
    // owner), whichever node takes it.
    let (status, body) = cluster.admin(2).call(
        "PUT",
        "/v1/namespaces/shop/limits",
        "application/json",
        Some(json!({ "max_command_bytes": 512 }).to_string().into_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    everywhere("the new limits", |node| {
        let (_, shown) = as_client(&cluster, node, &second).get("/v1/namespaces/shop");
        shown["limits"]["max_command_bytes"] == json!(512)
    });
    let big = json!({"type": "Note", "data": {"text": "x".repeat(2_000)}});
    for id in 0..12 {
        let node = id % 3;
        let (status, body): (u16, Value) =
            as_client(&cluster, node, &second).send(&format!("shop/cart/c-{id}"), big.clone());
        assert_eq!(
            (status, body["error"].clone()),
            (413, json!("payload_too_large")),
            "c-{id} through node {node}: {body}"
        );
    }

    // Revoked on node 3: refused everywhere, the other token unharmed.
    let (status, body) = cluster.admin(2).call(
        "DELETE",
        &format!("/v1/namespaces/shop/tokens/{first_id}"),
        "",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let spread = everywhere("the revocation", |node| {
        as_client(&cluster, node, &first)
            .get("/v1/namespaces/shop")
            .0
            == 401
    });
    eprintln!("a revocation reached every node in {spread:?}");
    for node in 0..3 {
        assert_eq!(
            as_client(&cluster, node, &second)
                .get("/v1/namespaces/shop")
                .0,
            200
        );
    }

    // Two nodes creating one namespace at once: one wins.
    let racers: Vec<_> = [0, 1]
        .into_iter()
        .map(|node| {
            let admin = cluster.node(node).client(Some(ADMIN));
            std::thread::spawn(move || {
                admin
                    .post_json("/v1/namespaces", &json!({ "name": "race", "limits": {} }))
                    .0
            })
        })
        .collect();
    let mut statuses: Vec<u16> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
}

/// `bytes` (a component) with a custom section named `tag` appended: the
/// same component under another digest.
fn tagged(bytes: &[u8], tag: &str) -> Vec<u8> {
    let mut section = vec![tag.len() as u8];
    section.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // a custom section
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

/// A deposit into each of `accounts` accounts, through node `id % 3`, is
/// decided by component `digest` (after `change`).
fn every_owner_decides_with(
    client: &dyn Fn(usize) -> Http,
    accounts: usize,
    digest: &str,
    change: &str,
) {
    for id in 0..accounts {
        let (status, body) = client(id % 3).send(
            &format!("shop/account/a-{id}"),
            json!({"type": "Deposit", "data": {"amount": 1}}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["events"][0]["metadata"]["component_digest"],
            json!(digest),
            "a-{id} after the {change}"
        );
    }
}

fn deploy(client: &Http, bytes: Vec<u8>) -> String {
    let (status, body) = client.call(
        "PUT",
        "/v1/namespaces/shop/aggregates/account/component",
        "application/wasm",
        Some(bytes),
    );
    assert_eq!(status, 200, "deploy: {body}");
    body["digest"].as_str().unwrap().to_owned()
}

/// Components in NATS: a type deployed through node 1 serves commands
/// through node 3 right after (on every shard's owner); a new version
/// deployed through node 2 under a load spread over all nodes fails no
/// command, is answered once every member decides with it, and no command
/// sent after that answer is decided by the old version on any node (nor,
/// after a rollback through node 3 or an activation through node 1, by
/// the version they replaced); a fourth node started with nothing but the NATS servers
/// and its id serves the namespace's aggregates.
#[test]
fn components_deployed_through_any_node_serve_on_every_node() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(3);
    let token = cluster.admin(0).create_namespace("shop", json!({}));
    let first = deploy(
        &cluster.node(0).client(Some(&token)),
        std::fs::read(crate::support::BANK).unwrap(),
    );
    let client = |node: usize| cluster.node(node).client(Some(&token));
    everywhere("the namespace", |node| {
        client(node).get("/v1/namespaces/shop").0 == 200
    });
    const ACCOUNTS: usize = 12;
    for id in 0..ACCOUNTS {
        let (status, body) = client(2).send(
            &format!("shop/account/a-{id}"),
            json!({"type": "Open", "data": {"owner": "S"}}),
        );
        assert_eq!(status, 200, "a-{id} right after the deploy: {body}");
        assert_eq!(
            body["events"][0]["metadata"]["component_digest"],
            json!(first)
        );
    }

    // A load on every node while node 2 deploys a new version.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|node| {
            let (client, stop) = (client(node), stop.clone());
            std::thread::spawn(move || {
                let (mut sent, mut failed, mut decided) = (0, Vec::new(), Vec::new());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = sent % ACCOUNTS;
                    let at = Instant::now();
                    let (status, body) = client.send(
                        &format!("shop/account/a-{id}"),
                        json!({"type": "Deposit", "data": {"amount": 1}}),
                    );
                    if status != 200 {
                        failed.push(body);
                    } else {
                        let digest = body["events"][0]["metadata"]["component_digest"].clone();
                        decided.push((at, digest));
                    }
                    sent += 1;
                }
                (sent, failed, decided)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let (status, body) = client(1).call(
        "PUT",
        "/v1/namespaces/shop/aggregates/account/component",
        "application/wasm",
        Some(tagged(&std::fs::read(crate::support::BANK).unwrap(), "v2")),
    );
    let answered = Instant::now();
    assert_eq!(status, 200, "deploy: {body}");
    assert_eq!(
        body.get("unconfirmed_nodes"),
        None,
        "every member confirmed: {body}"
    );
    let second = body["digest"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    eprintln!(
        "the deploy was answered {:?} after it was sent, every member serving it",
        answered - asked
    );
    // Every aggregate's owner decides with the new version at once.
    every_owner_decides_with(&client, ACCOUNTS, &second, "the deploy");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for thread in load {
        let (sent, failed, decided) = thread.join().unwrap();
        assert!(sent > 0);
        assert!(
            failed.is_empty(),
            "failed commands during the reload: {failed:?}"
        );
        let stale = decided
            .iter()
            .filter(|(at, digest)| *at > answered && *digest != json!(second))
            .count();
        assert_eq!(
            stale, 0,
            "commands sent after the deploy's answer decided by the old version"
        );
        assert!(
            decided.iter().any(|(at, _)| *at > answered),
            "the load went on after the deploy"
        );
    }

    // A rollback through node 3 is served by every node once answered,
    // and so is activating the new version again through node 1.
    for (through, path, body, expected) in [
        (2, "rollback", None, &first),
        (
            0,
            "activate",
            Some(json!({ "digest": second }).to_string().into_bytes()),
            &second,
        ),
    ] {
        let (status, answer) = client(through).call(
            "POST",
            &format!("/v1/namespaces/shop/aggregates/account/{path}"),
            "application/json",
            body,
        );
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(answer["digest"], json!(expected), "{path}: {answer}");
        assert_eq!(answer.get("unconfirmed_nodes"), None, "{path}: {answer}");
        every_owner_decides_with(&client, ACCOUNTS, expected, path);
    }

    // A node with an empty data directory serves the namespace.
    let fourth = cluster.add_empty_node();
    cluster.wait_stable(4);
    let client = |node: usize| cluster.node(node).client(Some(&token));
    for id in 0..ACCOUNTS {
        let (status, body) = client(fourth).send(
            &format!("shop/account/a-{id}"),
            json!({"type": "Deposit", "data": {"amount": 1}}),
        );
        assert_eq!(status, 200, "a-{id} through the new node: {body}");
        assert_eq!(
            body["events"][0]["metadata"]["component_digest"],
            json!(second)
        );
    }
    let (status, body) = client(fourth).get("/v1/namespaces/shop/aggregates");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["aggregate_types"][0]["digest"],
        json!(second),
        "{body}"
    );
}

/// A node takes no shards it cannot serve: while the active component of a
/// namespace is neither in its (empty) directory nor in the shared bucket
/// (deployed before components were shared, say), it does not join. The
/// node that has the component puts it in the bucket when it starts; the
/// new node then fetches it, joins, and serves its shards with it.
#[test]
fn a_node_joins_only_once_it_has_every_active_component() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(1);
    let (status, types) = cluster
        .node(0)
        .client(Some(&cluster.token))
        .get("/v1/namespaces/bank/aggregates");
    assert_eq!(status, 200, "{types}");
    let digest = types["aggregate_types"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // The bank account's bytes leave the shared bucket.
    let url = cluster.nats.urls()[0].clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let bucket = js.get_object_store("AETHER_COMPONENTS").await.unwrap();
        bucket.delete(&digest).await.unwrap();
        assert!(bucket.get(&digest).await.is_err(), "deleted");
    });

    let (new, starting) = cluster.add_empty_node_in_background();
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !starting.is_finished(),
        "the new node is not ready while it cannot serve bank/bank-account"
    );
    let status = cluster.status(0);
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(1),
        "it has not joined: {status}"
    );
    assert_eq!(
        status["shards_per_node"]["node-1"],
        json!(crate::harness::SHARDS)
    );

    // Node 1 restarts and brings its component back to the bucket.
    cluster.terminate(0);
    cluster.restart(0);
    let node = starting.join().unwrap();
    cluster.adopt(new, node);
    let stable = cluster.wait_stable(2);
    let owned = stable["shards_per_node"][Cluster::node_id(new)]
        .as_u64()
        .unwrap();
    assert!(owned > 0, "the new node owns shards: {stable}");
    let client = cluster.node(new).client(Some(&cluster.token));
    for id in 0..8 {
        let (status, body) = client.send(
            &format!("bank/bank-account/joined-{id}"),
            json!({"type": "Open", "data": {"owner": "J"}}),
        );
        assert_eq!(status, 200, "joined-{id} through the new node: {body}");
        assert_eq!(
            body["events"][0]["metadata"]["component_digest"],
            json!(digest)
        );
    }
}

/// One of the three NATS servers killed: a namespace made on node 1 soon
/// after (its creation retried while JetStream moves the bucket's leader)
/// still reaches the other nodes, whose watches of the bucket must be made
/// again, some of them placed on the dead server at first.
#[test]
fn a_namespace_made_after_a_nats_server_died_reaches_every_node() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(3);
    cluster.nats.server(0).kill();
    let killed = Instant::now();
    let created = loop {
        let (status, created) = cluster
            .admin(0)
            .post_json("/v1/namespaces", &json!({ "name": "later", "limits": {} }));
        if status == 201 {
            break created;
        }
        // Only a retryable refusal, and not for long.
        assert_eq!(status, 503, "{created}");
        assert!(killed.elapsed() < Duration::from_secs(30), "{created}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let token = created["token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    for node in 0..3 {
        while as_client(&cluster, node, &token)
            .get("/v1/namespaces/later")
            .0
            != 200
        {
            if started.elapsed() >= Duration::from_secs(30) {
                panic!(
                    "the namespace made {:?} after the NATS server died has not reached node {node} in 30 s; its log ends:\n{}",
                    started - killed,
                    tail_of_log(cluster.node(node))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!(
        "made {:?} after the NATS server died, it reached every node {:?} later",
        started - killed,
        started.elapsed()
    );
}
