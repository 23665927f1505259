//! Storage quotas: a namespace's stored event bytes and component bytes.
//! Going over is refused with 507 `storage_quota_exceeded` before anything
//! is stored, the namespace's usage is reported, a neighbour carries on,
//! and raising the quota lets the namespace go on.

use aether_host::runtime::SandboxLimits;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, HOSTILE, InProcess, assert_error};

async fn node() -> InProcess {
    InProcess::start(SandboxLimits::default()).await
}

async fn deposit(node: &InProcess, stream: &str, token: &str) -> (StatusCode, Value) {
    node.send(
        stream,
        token,
        json!({"type": "Deposit", "data": {"amount": 1}}),
    )
    .await
}

async fn open(node: &InProcess, stream: &str, token: &str) {
    let (status, body) = node
        .send(
            stream,
            token,
            json!({"type": "Open", "data": {"owner": "Q"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_stored_bytes_quota_are_refused_and_nothing_is_stored() {
    let node = node().await;
    let token = node
        .create_namespace("full", json!({"max_stored_event_bytes": 300}))
        .await;
    node.deploy("full", &token, "bank-account", BANK).await;
    let calm = node.create_namespace("calm", json!({})).await;
    node.deploy("calm", &calm, "bank-account", BANK).await;
    open(&node, "full/bank-account/acc-1", &token).await;
    open(&node, "calm/bank-account/acc-1", &calm).await;

    let mut accepted = 0;
    let refused = loop {
        let (status, body) = deposit(&node, "full/bank-account/acc-1", &token).await;
        if status != StatusCode::OK {
            break (status, body);
        }
        accepted += 1;
        assert!(accepted < 300, "300 bytes of events never filled up");
    };
    assert_error(
        refused.0.as_u16(),
        &refused.1,
        507,
        "storage_quota_exceeded",
    );
    assert_eq!(refused.1["limit"], json!(300));
    let stored = refused.1["stored_bytes"].as_u64().unwrap();
    let adding = refused.1["adding_bytes"].as_u64().unwrap();
    assert!(stored <= 300 && stored + adding > 300, "{}", refused.1);

    // Nothing of the refused command was stored.
    let path = "/v1/namespaces/full/aggregates/bank-account/acc-1";
    let (status, state) = node.get(path, &token).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["version"], json!(1 + accepted));
    assert_eq!(state["state"]["balance"], json!(accepted));
    let (status, shown) = node.get("/v1/namespaces/full", &token).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["usage"]["stored_event_bytes"], json!(stored));
    assert_eq!(shown["limits"]["max_stored_event_bytes"], json!(300));
    // And every further command is refused, not half-served.
    let (status, body) = deposit(&node, "full/bank-account/acc-1", &token).await;
    assert_error(status.as_u16(), &body, 507, "storage_quota_exceeded");

    // The neighbour is not held to it.
    for _ in 0..5 {
        let (status, body) = deposit(&node, "calm/bank-account/acc-1", &calm).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // A raised quota lets the namespace go on.
    let (status, body) = node
        .call(
            "PUT",
            "/v1/namespaces/full/limits",
            Some(ADMIN),
            Some("application/json"),
            json!({"max_stored_event_bytes": 1_000_000})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = deposit(&node, "full/bank-account/acc-1", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], json!(2 + accepted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_past_the_stored_bytes_quota_is_refused_and_nothing_changes() {
    let node = node().await;
    let bank_size = std::fs::metadata(BANK).unwrap().len();
    let token = node
        .create_namespace(
            "tight",
            json!({"max_stored_component_bytes": bank_size + 10}),
        )
        .await;
    node.deploy("tight", &token, "bank-account", BANK).await;

    let (status, body) = node
        .call(
            "PUT",
            "/v1/namespaces/tight/aggregates/hostile/component",
            Some(&token),
            Some("application/wasm"),
            std::fs::read(HOSTILE).unwrap(),
        )
        .await;
    assert_error(status.as_u16(), &body, 507, "storage_quota_exceeded");
    assert_eq!(body["stored_bytes"], json!(bank_size));
    assert_eq!(body["limit"], json!(bank_size + 10));

    // Nothing was activated or stored: the type is unknown, the usage is
    // the bank account's alone.
    let (status, shown) = node.get("/v1/namespaces/tight", &token).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["usage"]["stored_component_bytes"], json!(bank_size));
    let types: Vec<&str> = shown["aggregate_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["aggregate_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["bank-account"]);
    let components = node.data_dir().join("components").join("tight");
    assert_eq!(std::fs::read_dir(&components).unwrap().count(), 1);

    // A component already stored costs nothing again.
    node.deploy("tight", &token, "bank-account", BANK).await;
    let (status, body) = node
        .send(
            "tight/bank-account/acc-1",
            &token,
            json!({"type": "Open", "data": {"owner": "T"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
