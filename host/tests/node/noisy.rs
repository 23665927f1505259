//! A noisy neighbour cannot starve a tenant: while tenant B's component
//! loops or bombs its memory on every command, all of tenant A's commands
//! succeed. (How much B slows A down is measured by `cargo xtask bench`'s
//! `noisy_neighbour` scenario, not asserted here.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aether_host::runtime::SandboxLimits;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{BANK, HOSTILE, InProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_is_served_while_its_neighbour_attacks() {
    let node = Arc::new(
        InProcess::start(SandboxLimits {
            call_deadline: Duration::from_secs(1),
            ..SandboxLimits::default()
        })
        .await,
    );
    let a = node.create_namespace("tenant-a", json!({})).await;
    node.deploy("tenant-a", &a, "bank-account", BANK).await;
    let b = node
        .create_namespace(
            "tenant-b",
            json!({"call_deadline_ms": 200, "memory_bytes": 16 << 20}),
        )
        .await;
    node.deploy("tenant-b", &b, "hostile", HOSTILE).await;

    let attacking = Arc::new(AtomicBool::new(true));
    let mut attackers = Vec::new();
    for i in 0..4 {
        let (node, b, attacking) = (node.clone(), b.clone(), attacking.clone());
        attackers.push(tokio::spawn(async move {
            let mut failures = 0u32;
            let attack = if i % 2 == 0 { "Loop" } else { "GrowMemory" };
            while attacking.load(Ordering::Relaxed) {
                let (status, body) = node
                    .send(
                        &format!("tenant-b/hostile/bomb-{i}"),
                        &b,
                        json!({"type": attack}),
                    )
                    .await;
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
                let code = body["error"].as_str().unwrap();
                assert!(
                    code == "deadline_exceeded" || code == "memory_limit_exceeded",
                    "{attack}: {body}"
                );
                failures += 1;
            }
            failures
        }));
    }

    let mut clients = Vec::new();
    for c in 0..4 {
        let (node, a) = (node.clone(), a.clone());
        clients.push(tokio::spawn(async move {
            let stream = format!("tenant-a/bank-account/acc-{c}");
            let (status, body) = node
                .send(&stream, &a, json!({"type": "Open", "data": {"owner": "A"}}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            for _ in 0..50 {
                let (status, body) = node
                    .send(
                        &stream,
                        &a,
                        json!({"type": "Deposit", "data": {"amount": 1}}),
                    )
                    .await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "tenant A failed under attack: {body}"
                );
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    attacking.store(false, Ordering::Relaxed);
    let mut failures = 0;
    for attacker in attackers {
        failures += attacker.await.unwrap();
    }
    assert!(failures >= 4, "B attacked ({failures} failed commands)");
    for c in 0..4 {
        let (_, state) = node
            .get(
                &format!("/v1/namespaces/tenant-a/aggregates/bank-account/acc-{c}"),
                &a,
            )
            .await;
        assert_eq!(state["state"]["balance"], json!(50), "{state}");
    }
}
