//! Hostile guests: each failure stays inside its own command, and the host
//! and every other aggregate keep working.

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::runtime::{CommandError, DeployError, GuestFailureKind, LoadError, Runtime};
use aether_tests::{artifacts, component, deploy, memory_runtime, send, stream, test_config};
use serde_json::json;

async fn hostile_runtime() -> Runtime {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "evil", "hostile", artifacts::HOSTILE).await;
    deploy(&runtime, "evil", "bank-account", artifacts::BANK_ACCOUNT).await;
    deploy(&runtime, "good", "bank-account", artifacts::BANK_ACCOUNT).await;
    runtime
}

/// Sends a misbehaving command, checks the failure, then shows that the
/// host, the same component and another tenant all still serve.
async fn contained(command: &str, expected: GuestFailureKind) {
    let runtime = hostile_runtime().await;
    let victim = stream("evil", "hostile", "victim");
    send(&runtime, &victim, "Record", json!({"note": "before"}))
        .await
        .unwrap();
    let bystander = stream("evil", "hostile", "bystander");
    send(&runtime, &bystander, "Record", json!({"note": "hello"}))
        .await
        .unwrap();

    match send(&runtime, &victim, command, json!(null)).await {
        Err(CommandError::Guest(failure)) => assert_eq!(failure.kind, expected, "{failure}"),
        other => panic!("{command}: expected a guest failure, got {other:?}"),
    }
    // Nothing was stored for the failed command.
    assert_eq!(runtime.store().stream_version(&victim).await.unwrap(), 1);

    // Another aggregate of the same (dropped) instance re-activates by replay.
    send(
        &runtime,
        &bystander,
        "Record",
        json!({"note": "still here"}),
    )
    .await
    .unwrap();
    let state = runtime.state(&bystander).await.unwrap();
    assert_eq!(state.view["notes"], json!(["hello", "still here"]));
    // The victim itself too.
    send(&runtime, &victim, "Record", json!({"note": "after"}))
        .await
        .unwrap();
    assert_eq!(
        runtime.state(&victim).await.unwrap().view["notes"],
        json!(["before", "after"])
    );
    // Other components, in this namespace and another, are untouched.
    for ns in ["evil", "good"] {
        let acc = stream(ns, "bank-account", "acc");
        send(&runtime, &acc, "Open", json!({"owner": "X"}))
            .await
            .unwrap();
    }
}

/// A guest that decides an event it cannot apply (since WIT 0.3, `execute`
/// reports the apply-error with the decision): what it decided is stored
/// and the command's answer says so, its live copy is dropped, and from
/// then on the aggregate's replay reports the event at its own version,
/// while its neighbours carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_its_guest_cannot_apply_is_stored_and_reported_on_replay() {
    let runtime = hostile_runtime().await;
    let victim = stream("evil", "hostile", "victim");
    send(&runtime, &victim, "Record", json!({"note": "before"}))
        .await
        .unwrap();
    let outcome = send(&runtime, &victim, "DecideUnreadable", json!(null))
        .await
        .unwrap();
    assert_eq!(outcome.version, 2);
    assert_eq!(outcome.events[0].event_type, "Unreadable");
    assert_eq!(runtime.store().stream_version(&victim).await.unwrap(), 2);
    let error = runtime.state(&victim).await.unwrap_err();
    let CommandError::Guest(failure) = &error else {
        panic!("expected the replay to fail, got {error:?}");
    };
    assert_eq!(failure.kind, GuestFailureKind::ApplyFailed, "{failure}");
    assert!(
        failure.message.contains("could not apply event version 2"),
        "{failure}"
    );
    let bystander = stream("evil", "hostile", "bystander");
    send(&runtime, &bystander, "Record", json!({"note": "hello"}))
        .await
        .unwrap();
    assert_eq!(
        runtime.state(&bystander).await.unwrap().view["notes"],
        json!(["hello"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_only_its_command() {
    contained("Trap", GuestFailureKind::Trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_hits_the_deadline() {
    contained("Loop", GuestFailureKind::DeadlineExceeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_cap() {
    contained("GrowMemory", GuestFailureKind::MemoryLimit).await;
}

#[tokio::test]
async fn files_are_out_of_reach() {
    let runtime = hostile_runtime().await;
    let agg = stream("evil", "hostile", "reader");
    for path in ["/etc/passwd", "Cargo.toml", ".", "/"] {
        match send(&runtime, &agg, "ReadFile", json!({"path": path})).await {
            Err(CommandError::Rejected(r)) => assert_eq!(r.code, "file-denied", "{path}: {r}"),
            other => panic!("reading {path} must fail inside the guest, got {other:?}"),
        }
    }
    send(&runtime, &agg, "Record", json!({"note": "ok"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn sockets_are_out_of_reach() {
    let runtime = hostile_runtime().await;
    // A real listener the guest would reach if sockets were granted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let agg = stream("evil", "hostile", "dialer");
    match send(&runtime, &agg, "OpenSocket", json!({"address": address})).await {
        Err(CommandError::Rejected(r)) => {
            assert_eq!(r.code, "socket-denied", "{r}");
            assert!(
                r.message.contains("denied") || r.message.contains("Denied"),
                "{r}"
            );
        }
        other => panic!("connecting must fail inside the guest, got {other:?}"),
    }
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
    send(&runtime, &agg, "Record", json!({"note": "ok"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn guest_output_is_capped_not_fatal() {
    let runtime = hostile_runtime().await;
    let agg = stream("evil", "hostile", "chatty");
    // Far more than the 64 KiB output cap.
    let outcome = send(
        &runtime,
        &agg,
        "Log",
        json!({"message": "x".repeat(1000), "repeat": 500}),
    )
    .await
    .unwrap();
    assert_eq!(outcome.version, 1);
}

async fn refused(path: &str) -> LoadError {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "evil", "bank-account", artifacts::BANK_ACCOUNT).await;
    let ns = Namespace::new("evil").unwrap();
    let ty = AggregateType::new("bank-account").unwrap();
    let before = runtime.deployments();
    let err = match runtime.deploy(&ns, &ty, component(path)).await {
        Err(DeployError::Load(e)) => e,
        other => panic!("{path} must be refused, got {other:?}"),
    };
    assert_eq!(
        runtime.deployments(),
        before,
        "the active component did not change"
    );
    send(
        &runtime,
        &stream("evil", "bank-account", "a"),
        "Open",
        json!({"owner": "Z"}),
    )
    .await
    .unwrap();
    err
}

#[tokio::test]
async fn wasi_http_import_is_refused_by_name() {
    let err = refused(artifacts::IMPORTS_WASI_HTTP).await;
    assert!(
        matches!(&err, LoadError::ForbiddenImport { import } if import == "wasi:http/outgoing-handler@0.2.0"),
        "{err}"
    );
    assert!(
        err.to_string().contains("wasi:http/outgoing-handler@0.2.0"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_import_is_refused_by_name() {
    let err = refused(artifacts::IMPORTS_UNKNOWN).await;
    assert!(
        err.to_string().contains("acme:exfiltrate/upload@1.0.0"),
        "{err}"
    );
}

#[tokio::test]
async fn not_a_component_is_refused() {
    let runtime = memory_runtime(test_config());
    let ns = Namespace::new("evil").unwrap();
    let ty = AggregateType::new("thing").unwrap();
    for (what, bytes) in [
        ("garbage", b"definitely not wasm".to_vec()),
        ("a core module", wat::parse_str("(module)").unwrap()),
        ("an empty component", wat::parse_str("(component)").unwrap()),
    ] {
        match runtime.deploy(&ns, &ty, bytes).await {
            Err(DeployError::Load(LoadError::Invalid(_) | LoadError::WrongWorld { .. })) => {}
            other => panic!("{what} must be refused, got {other:?}"),
        }
    }
    assert!(runtime.deployments().is_empty());
}
