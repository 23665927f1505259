//! Per-namespace resources a tenant (or an anonymous client of it) could
//! otherwise pile up on a node: partition threads, the work of reading a
//! large view, and open live event streams. Each is bounded and accounted
//! to its namespace; going over gets a stable error code, and the
//! neighbours carry on.

use aether_host::runtime::SandboxLimits;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::support::{BANK, HOSTILE, InProcess, assert_error};

async fn node() -> InProcess {
    InProcess::start(SandboxLimits {
        memory_bytes: 256 << 20,
        ..SandboxLimits::default()
    })
    .await
}

/// A neighbour namespace with a bank account, opened.
async fn calm(node: &InProcess) -> String {
    let token = node.create_namespace("calm", json!({})).await;
    node.deploy("calm", &token, "bank-account", BANK).await;
    let (status, body) = node
        .send(
            "calm/bank-account/acc-1",
            &token,
            json!({"type": "Open", "data": {"owner": "C"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    token
}

async fn deposit(node: &InProcess, token: &str, amount: u64) -> (StatusCode, Value) {
    node.send(
        "calm/bank-account/acc-1",
        token,
        json!({"type": "Deposit", "data": {"amount": amount}}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_namespaces_with_limits_starts_no_partition_threads() {
    let node = node().await;
    for n in 0..100 {
        node.create_namespace(&format!("idle-{n}"), json!({"max_pending_commands": 50}))
            .await;
    }
    assert_eq!(node.node.runtime().running_lanes(), 0);
    let (status, body) = node
        .get("/v1/namespaces/idle-3", crate::support::ADMIN)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"]["max_pending_commands"], json!(50));
    assert_eq!(node.node.runtime().running_lanes(), 0);

    calm(&node).await;
    assert_eq!(node.node.runtime().running_lanes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_the_limit_is_refused_and_the_aggregate_carries_on() {
    let node = node().await;
    let token = node
        .create_namespace("viewer", json!({"max_view_bytes": 4096}))
        .await;
    node.deploy("viewer", &token, "hostile", HOSTILE).await;
    let stream = "viewer/hostile/agg-1";
    let path = "/v1/namespaces/viewer/aggregates/hostile/agg-1";
    let (status, body) = node
        .send(
            stream,
            &token,
            json!({"type": "InflateView", "data": {"bytes": 8192}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = node.get(path, &token).await;
    assert_error(status.as_u16(), &body, 422, "view_too_large");
    assert_eq!(body["limit"], json!(4096));
    assert!(body["size"].as_u64().unwrap() > 8192, "{body}");

    // Commands still work, and a view back under the limit is served.
    let (status, body) = node
        .send(
            stream,
            &token,
            json!({"type": "InflateView", "data": {"bytes": 100}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = node.get(path, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"]["padding"].as_str().unwrap().len(), 100);
    assert_eq!(body["version"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_view_limit_refuses_a_large_view() {
    let node = node().await;
    let token = node.create_namespace("viewer", json!({})).await;
    node.deploy("viewer", &token, "hostile", HOSTILE).await;
    let (status, body) = node
        .send(
            "viewer/hostile/agg-1",
            &token,
            json!({"type": "InflateView", "data": {"bytes": 2 << 20}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = node
        .get("/v1/namespaces/viewer/aggregates/hostile/agg-1", &token)
        .await;
    assert_error(status.as_u16(), &body, 422, "view_too_large");
    assert_eq!(body["limit"], json!(1 << 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_is_served_while_large_views_are_produced() {
    let node = std::sync::Arc::new(node().await);
    let big = node
        .create_namespace("big", json!({"max_view_bytes": 64 << 20}))
        .await;
    node.deploy("big", &big, "hostile", HOSTILE).await;
    let calm = calm(&node).await;
    let padding = 8 << 20;
    for n in 0..4 {
        let (status, body) = node
            .send(
                &format!("big/hostile/agg-{n}"),
                &big,
                json!({"type": "InflateView", "data": {"bytes": padding}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let reads: Vec<_> = (0..4)
        .map(|n| {
            let (node, big) = (node.clone(), big.clone());
            tokio::spawn(async move {
                let path = format!("/v1/namespaces/big/aggregates/hostile/agg-{n}");
                node.get(&path, &big).await
            })
        })
        .collect();
    // The neighbour's commands complete while the views are produced.
    for amount in 1..=5 {
        let (status, body) = deposit(&node, &calm, amount).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for read in reads {
        let (status, body) = read.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"]["padding"].as_str().unwrap().len(), padding);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_over_the_cap_are_refused_and_a_closed_one_frees_its_place() {
    let node = std::sync::Arc::new(node().await);
    let token = node
        .create_namespace("watcher", json!({"max_live_streams": 2}))
        .await;
    let calm_token = calm(&node).await;
    let live = "/v1/namespaces/watcher/events/live";
    let first = node.open(live, &token).await;
    let second = node.open(live, &token).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);

    // Refused after waiting its second for a place (none comes back).
    let asked = std::time::Instant::now();
    let refused = node.open(live, &token).await;
    assert!(asked.elapsed() >= std::time::Duration::from_millis(900));
    let status = refused.status();
    let bytes = refused.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_error(status.as_u16(), &body, 429, "too_many_streams");
    assert_eq!(body["limit"], json!(2));

    // The cap is the namespace's own: a neighbour streams and commands.
    let neighbour = node
        .open("/v1/namespaces/calm/events/live", &calm_token)
        .await;
    assert_eq!(neighbour.status(), StatusCode::OK);
    let (status, body) = deposit(&node, &calm_token, 5).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A stream that closes gives its place back, to one that was waiting
    // for it.
    let waiting = tokio::spawn({
        let (node, token) = (node.clone(), token.clone());
        async move { node.open(live, &token).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the stream did not wait for a place"
    );
    drop(first);
    let again = waiting.await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    drop(second);
    drop(again);
}

/// A node that restarts with many namespaces (each with a component)
/// restores them without starting their partition threads: its thread
/// count is about an empty node's, not one set per namespace.
#[test]
fn a_node_restoring_many_namespaces_starts_no_partition_threads() {
    const NAMESPACES: usize = 40;
    let threads = |node: &crate::support::NodeProcess| -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .map(|n| n.trim().parse().unwrap())
            .unwrap()
    };
    let running_lanes = |node: &crate::support::NodeProcess| -> String {
        let (_, metrics) = node.client(Some(crate::support::ADMIN)).get("/metrics");
        let metrics = metrics.as_str().unwrap().to_owned();
        metrics
            .lines()
            .find(|l| l.starts_with("aether_running_lanes "))
            .unwrap()
            .to_owned()
    };
    // The test nodes run with two partitions per namespace (support.rs).
    let flags: [&str; 0] = [];
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = crate::support::NodeProcess::start(empty_dir.path(), &flags);
    let empty_threads = threads(&empty);
    drop(empty);

    let dir = tempfile::tempdir().unwrap();
    {
        let node = crate::support::NodeProcess::start(dir.path(), &flags);
        let admin = node.client(Some(crate::support::ADMIN));
        for n in 0..NAMESPACES {
            let namespace = format!("tenant-{n}");
            let token = admin.create_namespace(&namespace, json!({}));
            node.client(Some(&token))
                .deploy(&namespace, "bank-account", BANK);
        }
    }
    let node = crate::support::NodeProcess::start(dir.path(), &flags);
    let (status, listed) = node
        .client(Some(crate::support::ADMIN))
        .get("/v1/namespaces");
    assert_eq!(status, 200);
    assert_eq!(listed["namespaces"].as_array().unwrap().len(), NAMESPACES);
    assert_eq!(running_lanes(&node), "aether_running_lanes 0");
    let restored_threads = threads(&node);
    assert!(
        restored_threads < empty_threads + NAMESPACES,
        "{restored_threads} threads with {NAMESPACES} namespaces restored, {empty_threads} on an empty node: \
         partition threads started for idle namespaces"
    );
    // The first command starts one namespace's threads, and only its.
    let token = node
        .client(Some(crate::support::ADMIN))
        .post_json("/v1/namespaces/tenant-7/tokens", &json!({}))
        .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = node.client(Some(&token)).send(
        "tenant-7/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "R"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(running_lanes(&node), "aether_running_lanes 1");
}

/// A state read's answer is written with the view serialised on the
/// tenant's lane; it is still exactly the compact JSON, keys in order, that
/// the node sends for every other answer (and that a routed read sends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_answer_is_compact_json_with_its_keys_in_order() {
    let node = node().await;
    let token = node.create_namespace("viewer", json!({})).await;
    node.deploy("viewer", &token, "hostile", HOSTILE).await;
    for note in ["z \"quoted\" é", "a\nb"] {
        let (status, body) = node
            .send(
                "viewer/hostile/agg-1",
                &token,
                json!({"type": "Record", "data": {"note": note}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, raw) = node
        .call_raw(
            "GET",
            "/v1/namespaces/viewer/aggregates/hostile/agg-1",
            &token,
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let parsed: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw, serde_json::to_string(&parsed).unwrap());
    assert_eq!(parsed["stream"], json!("viewer/hostile/agg-1"));
    assert_eq!(parsed["version"], json!(2));
    assert_eq!(parsed["state"]["notes"], json!(["z \"quoted\" é", "a\nb"]));
}
