//! A noisy neighbour cannot starve a tenant: while tenant B's component
//! loops or bombs its memory on every command, all of tenant A's commands
//! succeed. (How much B slows A down is measured by `cargo xtask bench`'s
//! `noisy_neighbour` scenario, not asserted here.) And the threads every
//! request passes through ask the scheduler for a short time slice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aether_host::runtime::SandboxLimits;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{ADMIN, BANK, HOSTILE, InProcess, NodeProcess};

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

/// A real node's async workers, its store's writer and a namespace's
/// partition threads ask for the shortest time slice (so a woken one waits
/// little for a core behind other work: `aether_core::thread`), where the
/// kernel lets threads set their own; `AETHER_SHORT_SLICE=off` leaves them
/// at the default.
#[test]
fn the_threads_requests_pass_through_ask_for_a_short_slice() {
    use aether_core::thread::{PROMPT_SLICE, slice_of_thread};
    let kernel_has_slices = slice_of_thread(0).is_some();
    for off in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let env = [(
            "AETHER_SHORT_SLICE",
            if off { "off" } else { "on" }.to_owned(),
        )];
        let node = NodeProcess::start_with_env(dir.path(), &[], &env);
        let token = node.client(Some(ADMIN)).create_namespace("bank", json!({}));
        let bank = node.client(Some(&token));
        bank.deploy("bank", "bank-account", BANK);
        let (status, body) = bank.send(
            "bank/bank-account/acc-1",
            json!({"type": "Open", "data": {"owner": "Ada"}}),
        );
        assert_eq!(status, 200, "{body}");

        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for task in std::fs::read_dir(format!("/proc/{}/task", node.pid())).unwrap() {
            let task = task.unwrap().path();
            let name = std::fs::read_to_string(task.join("comm")).unwrap();
            let Some(kind) = ["tokio-r", "aether-redb-wri", "aether-bank-"]
                .into_iter()
                .find(|prefix| name.starts_with(prefix))
            else {
                continue;
            };
            *seen.entry(kind).or_default() += 1;
            let tid: i32 = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let slice = slice_of_thread(tid);
            match (kernel_has_slices, off) {
                (false, _) => assert_eq!(slice, None, "{name}: no slices on this kernel"),
                (true, false) => assert_eq!(slice, Some(PROMPT_SLICE), "{name}"),
                (true, true) => assert_ne!(slice, Some(PROMPT_SLICE), "{name}: switched off"),
            }
        }
        assert_eq!(
            seen.len(),
            3,
            "async workers, the writer, the lane: {seen:?}"
        );
        node.terminate();
    }
}
