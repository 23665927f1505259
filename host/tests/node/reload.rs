//! The component registry and hot reload: deploy, activate and roll back
//! while commands keep flowing; refused deploys leave the active version
//! serving; the registry survives a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aether_host::runtime::{SandboxLimits, with_custom_section};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, InProcess, NodeProcess, assert_error};

/// The bank-account component with a marker section: same behaviour, a
/// new digest.
fn variant(n: u32) -> Vec<u8> {
    with_custom_section(&std::fs::read(BANK).unwrap(), "variant", &n.to_le_bytes())
}

async fn put_component(node: &InProcess, token: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    node.call(
        "PUT",
        "/v1/namespaces/bank/aggregates/bank-account/component",
        Some(token),
        Some("application/wasm"),
        bytes,
    )
    .await
}

async fn active(node: &InProcess, token: &str) -> Value {
    let (_, history) = node
        .get(
            "/v1/namespaces/bank/aggregates/bank-account/components",
            token,
        )
        .await;
    history["active"].clone()
}

/// Every event of the aggregate at `path`, read page by page (a page holds
/// at most 10 000: a fast machine deposits more into one account while
/// the versions are swapped).
async fn every_event(node: &InProcess, path: &str, token: &str) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    loop {
        let from = events.len() + 1;
        let (status, page) = node.get(&format!("{path}/events?from={from}"), token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = page["events"].as_array().unwrap();
        if page.is_empty() {
            return events;
        }
        events.extend(page.iter().cloned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_versions_under_load_fails_no_command_and_loses_no_event() {
    let node = Arc::new(InProcess::start(SandboxLimits::default()).await);
    let token = node.create_namespace("bank", json!({})).await;
    let (status, first) = put_component(&node, &token, variant(0)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut digests = BTreeSet::from([first["digest"].as_str().unwrap().to_owned()]);

    const CLIENTS: usize = 4;
    const ACCOUNTS_PER_CLIENT: usize = 5;
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (node, token, running) = (node.clone(), token.clone(), running.clone());
        clients.push(tokio::spawn(async move {
            let accounts: Vec<String> = (0..ACCOUNTS_PER_CLIENT)
                .map(|a| format!("bank/bank-account/c{c}-a{a}"))
                .collect();
            for account in &accounts {
                let (status, body) = node
                    .send(
                        account,
                        &token,
                        json!({"type": "Open", "data": {"owner": "X"}}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
            let mut deposits = vec![0u64; accounts.len()];
            let mut i = 0;
            while running.load(Ordering::Relaxed) || i < 40 {
                let a = i % accounts.len();
                let (status, body) = node
                    .send(
                        &accounts[a],
                        &token,
                        json!({"type": "Deposit", "data": {"amount": 1}}),
                    )
                    .await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "a command failed during a swap: {body}"
                );
                deposits[a] += 1;
                i += 1;
            }
            (accounts, deposits)
        }));
    }

    // Deploy new versions and roll back, over and over, under the load.
    for round in 1..=6u32 {
        let (status, deployed) = put_component(&node, &token, variant(round)).await;
        assert_eq!(status, StatusCode::OK, "{deployed}");
        let digest = deployed["digest"].as_str().unwrap().to_owned();
        assert_eq!(active(&node, &token).await, json!(digest));
        digests.insert(digest);
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        if round % 2 == 0 {
            let (status, rolled) = node
                .call(
                    "POST",
                    "/v1/namespaces/bank/aggregates/bank-account/rollback",
                    Some(&token),
                    None,
                    axum::body::Body::empty(),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{rolled}");
            assert_eq!(rolled["action"], json!("rollback"));
            assert_eq!(active(&node, &token).await, rolled["digest"]);
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }
    running.store(false, Ordering::Relaxed);

    let mut acknowledged = 0u64;
    for client in clients {
        let (accounts, deposits) = client.await.unwrap();
        for (account, deposited) in accounts.iter().zip(deposits) {
            acknowledged += 1 + deposited;
            let path = format!(
                "/v1/namespaces/bank/aggregates/{}",
                account.trim_start_matches("bank/")
            );
            let events = every_event(&node, &path, &token).await;
            assert_eq!(
                events.len() as u64,
                1 + deposited,
                "{account}: lost or duplicated events"
            );
            for (i, event) in events.iter().enumerate() {
                assert_eq!(event["version"], json!(i + 1));
                let digest = event["metadata"]["component_digest"].as_str().unwrap();
                assert!(
                    digests.contains(digest),
                    "decided by an unknown component {digest}"
                );
            }
            let (_, state) = node.get(&path, &token).await;
            assert_eq!(state["state"]["balance"], json!(deposited), "{account}");
        }
    }
    let registry_events = 6 + 3 + 1;
    assert_eq!(
        node.head().await,
        acknowledged + registry_events,
        "every acknowledged event, once"
    );
    let (_, history) = node
        .get(
            "/v1/namespaces/bank/aggregates/bank-account/components",
            &token,
        )
        .await;
    assert_eq!(
        history["history"].as_array().unwrap().len() as u64,
        registry_events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_deploys_are_refused_and_the_active_version_keeps_serving() {
    let node = InProcess::start(SandboxLimits::default()).await;
    let token = node.create_namespace("bank", json!({})).await;
    let (status, good) = put_component(&node, &token, variant(0)).await;
    assert_eq!(status, StatusCode::OK);
    let serving = good["digest"].clone();
    let (status, _) = node
        .send(
            "bank/bank-account/acc-1",
            &token,
            json!({"type": "Open", "data": {"owner": "A"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let empty_component = wat::parse_str("(component)").unwrap();
    let core_module = wat::parse_str("(module)").unwrap();
    let oversized = vec![0u8; node.node.runtime().config().max_component_bytes + 1];
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "not a component",
            b"definitely not wasm".to_vec(),
            422,
            "invalid_component",
            "not a valid WebAssembly component",
        ),
        (
            "a core module",
            core_module,
            422,
            "invalid_component",
            "not a valid WebAssembly component",
        ),
        (
            "the wrong world",
            empty_component,
            422,
            "invalid_component",
            "does not export `aether:aggregate/handler",
        ),
        (
            "wasi:http",
            std::fs::read(aether_test_artifacts::IMPORTS_WASI_HTTP).unwrap(),
            422,
            "invalid_component",
            "wasi:http",
        ),
        (
            "an unknown import",
            std::fs::read(aether_test_artifacts::IMPORTS_UNKNOWN).unwrap(),
            422,
            "invalid_component",
            "imports",
        ),
        (
            "an oversized upload",
            oversized,
            413,
            "payload_too_large",
            "larger than",
        ),
    ];
    for (what, bytes, status, code, hint) in cases {
        let (got, answer) = put_component(&node, &token, bytes).await;
        assert_error(got.as_u16(), &answer, status, code);
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(hint),
            "{what}: {message:?} should mention {hint:?}"
        );
        assert_eq!(
            active(&node, &token).await,
            serving,
            "{what} replaced the active version"
        );
    }
    let (status, body) = node
        .send(
            "bank/bank-account/acc-1",
            &token,
            json!({"type": "Deposit", "data": {"amount": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "still serving: {body}");
    let (_, history) = node
        .get(
            "/v1/namespaces/bank/aggregates/bank-account/components",
            &token,
        )
        .await;
    assert_eq!(
        history["history"].as_array().unwrap().len(),
        1,
        "refused deploys are not recorded"
    );

    // Activating something never deployed here, or rolling back with no
    // earlier version, is refused too.
    let (status, answer) = node
        .post_json(
            "/v1/namespaces/bank/aggregates/bank-account/activate",
            &token,
            &json!({"digest": "ab".repeat(32)}),
        )
        .await;
    assert_error(status.as_u16(), &answer, 404, "unknown_component");
    let (status, answer) = node
        .call(
            "POST",
            "/v1/namespaces/bank/aggregates/bank-account/rollback",
            Some(&token),
            None,
            axum::body::Body::empty(),
        )
        .await;
    assert_error(status.as_u16(), &answer, 409, "nothing_to_roll_back");
}

#[test]
fn the_registry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (token, first) = {
        let node = NodeProcess::start(dir.path(), &[]);
        let token = node.client(Some(ADMIN)).create_namespace("bank", json!({}));
        let bank = node.client(Some(&token));
        let deploy = |bytes: Vec<u8>| {
            let (status, body) = bank.call(
                "PUT",
                "/v1/namespaces/bank/aggregates/bank-account/component",
                "application/wasm",
                Some(bytes),
            );
            assert_eq!(status, 200, "{body}");
            body["digest"].as_str().unwrap().to_owned()
        };
        let first = deploy(variant(1));
        let second = deploy(variant(2));
        assert_ne!(first, second);
        let (status, activated) = bank.post_json(
            "/v1/namespaces/bank/aggregates/bank-account/activate",
            &json!({"digest": first}),
        );
        assert_eq!(status, 200, "{activated}");
        assert_eq!(activated["previous"], json!(second));
        let (status, _) = bank.send(
            "bank/bank-account/acc-1",
            json!({"type": "Open", "data": {"owner": "A"}}),
        );
        assert_eq!(status, 200);
        let (status, log) = node.terminate();
        assert!(status.success(), "{log}");
        (token, first)
    };
    let node = NodeProcess::start(dir.path(), &[]);
    let bank = node.client(Some(&token));
    let (status, history) = bank.get("/v1/namespaces/bank/aggregates/bank-account/components");
    assert_eq!(status, 200);
    assert_eq!(history["active"], json!(first));
    let actions: Vec<_> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [json!("deploy"), json!("deploy"), json!("activate")]
    );
    let (status, sent) = bank.send(
        "bank/bank-account/acc-1",
        json!({"type": "Deposit", "data": {"amount": 5}}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        sent["events"][0]["metadata"]["component_digest"],
        json!(first)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_deploy_replays_history_and_refuses_a_version_that_cannot() {
    let node = InProcess::start(SandboxLimits::default()).await;
    let token = node.create_namespace("bank", json!({})).await;
    let (_, first) = put_component(&node, &token, variant(0)).await;
    for i in 0..6 {
        let account = format!("bank/bank-account/acc-{i}");
        node.send(
            &account,
            &token,
            json!({"type": "Open", "data": {"owner": "V"}}),
        )
        .await;
        node.send(
            &account,
            &token,
            json!({"type": "Deposit", "data": {"amount": i + 1}}),
        )
        .await;
    }
    let path = "/v1/namespaces/bank/aggregates/bank-account/component";

    // The same behaviour under a new digest: every stream replays, nothing changes.
    let (status, ok) = node
        .call(
            "PUT",
            &format!("{path}?verify=all"),
            Some(&token),
            Some("application/wasm"),
            variant(1),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let report = &ok["verification"];
    assert_eq!(
        (&report["streams_total"], &report["streams_checked"]),
        (&json!(6), &json!(6))
    );
    assert_eq!(report["events_replayed"], json!(12));
    assert_eq!(
        (&report["failures"], &report["views_changed"]),
        (&json!([]), &json!(0))
    );
    assert_eq!(active(&node, &token).await, ok["digest"]);

    // A sample, with progress lines for a client that asks for them.
    let (status, lines) = {
        let response = node
            .call_raw(
                "PUT",
                &format!("{path}?verify=2"),
                &token,
                "application/x-ndjson",
                variant(2),
            )
            .await;
        (response.0, response.1)
    };
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.first().unwrap()["progress"],
        json!({"done": 0, "total": 2})
    );
    assert_eq!(
        lines[lines.len() - 2]["progress"],
        json!({"done": 2, "total": 2})
    );
    let result = &lines.last().unwrap()["result"];
    assert_eq!(result["verification"]["streams_checked"], json!(2));
    assert_eq!(active(&node, &token).await, result["digest"]);

    // A component that cannot apply these events: every stream reported,
    // nothing activated.
    let serving = active(&node, &token).await;
    let counter = std::fs::read(aether_test_artifacts::COUNTER).unwrap();
    let (status, refused) = node
        .call(
            "PUT",
            &format!("{path}?verify=all"),
            Some(&token),
            Some("application/wasm"),
            counter,
        )
        .await;
    assert_error(status.as_u16(), &refused, 422, "verification_failed");
    let failures = refused["verification"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 6, "{refused}");
    assert!(
        failures.iter().all(|f| f["kind"] == json!("ApplyFailed")),
        "{refused}"
    );
    assert_eq!(
        active(&node, &token).await,
        serving,
        "the refused version did not go live"
    );
    let (status, _) = node
        .send(
            "bank/bank-account/acc-0",
            &token,
            json!({"type": "Deposit", "data": {"amount": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let _ = first;
}
