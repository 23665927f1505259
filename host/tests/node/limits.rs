//! Per-namespace sandbox limits: exceeding one fails that command with the
//! matching error; the namespace's other commands, the node and the other
//! tenants carry on.

use std::time::Duration;

use aether_host::runtime::SandboxLimits;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, HOSTILE, InProcess, assert_error};

async fn node() -> InProcess {
    InProcess::start(SandboxLimits {
        call_deadline: Duration::from_secs(2),
        memory_bytes: 64 << 20,
        ..SandboxLimits::default()
    })
    .await
}

/// A namespace `name` with `limits`, running the hostile guest as `hostile`.
async fn tenant(node: &InProcess, name: &str, limits: Value) -> String {
    let token = node.create_namespace(name, limits).await;
    node.deploy(name, &token, "hostile", HOSTILE).await;
    token
}

/// The command fails with `code`, then a well-behaved one on the same
/// aggregate succeeds: the namespace carries on.
async fn fails_then_recovers(
    node: &InProcess,
    ns: &str,
    token: &str,
    command: Value,
    status: u16,
    code: &str,
) {
    let stream = format!("{ns}/hostile/agg-1");
    let (got, body) = node.send(&stream, token, command).await;
    assert_error(got.as_u16(), &body, status, code);
    let (got, body) = node
        .send(
            &stream,
            token,
            json!({"type": "Record", "data": {"note": "after"}}),
        )
        .await;
    assert_eq!(got, StatusCode::OK, "after {code}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_fails_only_the_command_that_exceeds_it() {
    let node = node().await;
    let limited = tenant(
        &node,
        "limited",
        json!({
            "memory_bytes": 16 << 20,
            "call_deadline_ms": 100,
            "max_command_bytes": 256,
            "max_event_bytes": 64,
            "max_events_per_command": 3,
        }),
    )
    .await;
    let bystander = node.create_namespace("bystander", json!({})).await;
    node.deploy("bystander", &bystander, "bank-account", BANK)
        .await;
    let (status, _) = node
        .send(
            "bystander/bank-account/acc-1",
            &bystander,
            json!({"type": "Open", "data": {"owner": "B"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (ns, t) = ("limited", limited.as_str());
    fails_then_recovers(
        &node,
        ns,
        t,
        json!({"type": "GrowMemory"}),
        500,
        "memory_limit_exceeded",
    )
    .await;
    fails_then_recovers(
        &node,
        ns,
        t,
        json!({"type": "Loop"}),
        500,
        "deadline_exceeded",
    )
    .await;
    fails_then_recovers(
        &node,
        ns,
        t,
        json!({"type": "Trap"}),
        500,
        "component_trapped",
    )
    .await;
    let big_note = "x".repeat(300);
    fails_then_recovers(
        &node,
        ns,
        t,
        json!({"type": "Record", "data": {"note": big_note}}),
        413,
        "payload_too_large",
    )
    .await;
    let long_note = "y".repeat(100);
    fails_then_recovers(
        &node,
        ns,
        t,
        json!({"type": "Record", "data": {"note": long_note}}),
        422,
        "decision_over_limit",
    )
    .await;
    let notes = json!({"type": "RecordMany", "data": {"notes": ["a", "b", "c", "d"]}});
    fails_then_recovers(&node, ns, t, notes, 422, "decision_over_limit").await;
    let (status, three) = node
        .send(
            "limited/hostile/agg-1",
            t,
            json!({"type": "RecordMany", "data": {"notes": ["a", "b", "c"]}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "three events are within the limit: {three}"
    );

    // Nothing the failed commands decided was stored: 6 good commands, one
    // event each, plus the three.
    let (_, events) = node
        .get("/v1/namespaces/limited/aggregates/hostile/agg-1/events", t)
        .await;
    assert_eq!(events["version"], json!(9), "{events}");
    // Nor is any of it in the state read from the live aggregate, which
    // had applied each oversized decision before it was refused (and was
    // then passivated): the notes are exactly the stored ones.
    let (status, state) = node
        .get("/v1/namespaces/limited/aggregates/hostile/agg-1", t)
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["version"], json!(9), "{state}");
    let notes = state["state"]["notes"]
        .as_array()
        .expect("the hostile view's notes");
    assert_eq!(notes.len(), 9, "{state}");
    assert!(
        notes
            .iter()
            .all(|n| n.as_str().is_some_and(|n| n.len() < 64)),
        "a refused decision's note is in the state: {state}"
    );
    // The other tenant was never affected.
    let (status, state) = node
        .get(
            "/v1/namespaces/bystander/aggregates/bank-account/acc-1",
            &bystander,
        )
        .await;
    assert_eq!((status, &state["version"]), (StatusCode::OK, &json!(1)));

    // The limits the namespace reports are the ones in force.
    let (_, shown) = node.get("/v1/namespaces/limited", t).await;
    assert_eq!(shown["limits"]["call_deadline_ms"], json!(100));
    assert_eq!(shown["limits"]["max_events_per_command"], json!(3));
    assert_eq!(
        shown["limits"]["max_live_aggregates"],
        json!(SandboxLimits::default().max_live_aggregates)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_meters_a_namespace_deterministically() {
    let node = node().await;
    let token = tenant(&node, "metered", json!({"fuel_per_call": 50_000_000})).await;
    fails_then_recovers(
        &node,
        "metered",
        &token,
        json!({"type": "Loop"}),
        500,
        "fuel_exhausted",
    )
    .await;
    // Limits can change at run time; the change applies to the next command.
    let (status, body) = node
        .call(
            "PUT",
            "/v1/namespaces/metered/limits",
            Some(ADMIN),
            Some("application/json"),
            json!({"fuel_per_call": 200_000}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = node
        .send(
            "metered/hostile/agg-2",
            &token,
            json!({"type": "Spin", "data": {"iterations": 1_000_000}}),
        )
        .await;
    assert_error(status.as_u16(), &body, 500, "fuel_exhausted");
    // Limits a node cannot honour are refused, naming the limit.
    let (status, body) = node
        .call(
            "PUT",
            "/v1/namespaces/metered/limits",
            Some(ADMIN),
            Some("application/json"),
            json!({"max_events_per_command": 0}).to_string(),
        )
        .await;
    assert_error(status.as_u16(), &body, 400, "invalid_limits");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_events_per_command")
    );
    let (status, body) = node
        .call(
            "PUT",
            "/v1/namespaces/metered/limits",
            Some(&token),
            Some("application/json"),
            "{}",
        )
        .await;
    assert_error(status.as_u16(), &body, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_aggregates_are_capped_per_namespace() {
    let node = node().await;
    let token = node
        .create_namespace("small", json!({"max_live_aggregates": 4}))
        .await;
    node.deploy("small", &token, "bank-account", BANK).await;
    for i in 0..12 {
        let (status, body) = node
            .send(
                &format!("small/bank-account/acc-{i}"),
                &token,
                json!({"type": "Open", "data": {"owner": "X"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let live = node.node.runtime().live_aggregates().await;
    assert!(
        live <= 4,
        "{live} live aggregates, limit 4 (the least recently used are passivated)"
    );
    // A passivated aggregate comes back by replay.
    let (status, state) = node
        .get("/v1/namespaces/small/aggregates/bank-account/acc-0", &token)
        .await;
    assert_eq!((status, &state["version"]), (StatusCode::OK, &json!(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_namespace_over_its_pending_quota_gets_429() {
    let node = std::sync::Arc::new(node().await);
    let token = tenant(
        &node,
        "busy",
        json!({"max_pending_commands": 1, "call_deadline_ms": 3000}),
    )
    .await;
    let slow = {
        let (node, token) = (node.clone(), token.clone());
        tokio::spawn(async move {
            node.send("busy/hostile/slow", &token, json!({"type": "Loop"}))
                .await
        })
    };
    // The looping command holds the namespace's only place for 3 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = node
        .send(
            "busy/hostile/other",
            &token,
            json!({"type": "Record", "data": {"note": "n"}}),
        )
        .await;
    assert_error(status.as_u16(), &body, 429, "quota_exceeded");
    let (status, body) = slow.await.unwrap();
    assert_error(status.as_u16(), &body, 500, "deadline_exceeded");
    let (status, _) = node
        .send(
            "busy/hostile/other",
            &token,
            json!({"type": "Record", "data": {"note": "n"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the place is given back");
}
