//! The command path end to end with the bank-account component.

use std::sync::Arc;

use aether_host::runtime::{CommandError, CommandRequest};
use aether_host::store::{EmbeddedStore, EventStore, MemoryStore};
use aether_tests::{artifacts, deploy, memory_runtime, runtime_on, send, stream, test_config};
use serde_json::json;

#[tokio::test]
async fn bank_account_end_to_end() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("bank", "bank-account", "acc-1");

    let opened = send(&runtime, &acc, "Open", json!({"owner": "Ada"}))
        .await
        .unwrap();
    assert_eq!(opened.version, 1);
    assert_eq!(opened.events[0].event_type, "Opened");
    send(&runtime, &acc, "Deposit", json!({"amount": 100}))
        .await
        .unwrap();
    let withdrawn = send(&runtime, &acc, "Withdraw", json!({"amount": 30}))
        .await
        .unwrap();
    assert_eq!(withdrawn.version, 3);
    assert_eq!(withdrawn.events[0].event_type, "Withdrawn");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&withdrawn.events[0].data).unwrap(),
        json!({"amount": 30})
    );

    match send(&runtime, &acc, "Withdraw", json!({"amount": 200})).await {
        Err(CommandError::Rejected(r)) => {
            assert_eq!(r.code, "insufficient-funds");
            assert!(
                r.message.contains("70"),
                "message names the balance: {}",
                r.message
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let stale = CommandRequest::json(acc.clone(), "Deposit", &json!({"amount": 5})).expecting(2);
    match runtime.execute(stale).await {
        Err(CommandError::Conflict(c)) => assert_eq!((c.expected, c.actual), (2, 3)),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Neither the rejection nor the conflict stored anything.
    let events = runtime.store().read_stream(&acc, 1, 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Opened", "Deposited", "Withdrawn"]);
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let state = runtime.state(&acc).await.unwrap();
    assert_eq!(state.version, 3);
    assert_eq!(state.view["balance"], json!(70));
}

#[tokio::test]
async fn state_is_derived_by_replay_after_passivation() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("bank", "bank-account", "acc-2");
    send(&runtime, &acc, "Open", json!({"owner": "Bo"}))
        .await
        .unwrap();
    for _ in 0..10 {
        send(&runtime, &acc, "Deposit", json!({"amount": 7}))
            .await
            .unwrap();
    }
    let live = runtime.state(&acc).await.unwrap();
    runtime.passivate(&acc).await.unwrap();
    let replayed = runtime.state(&acc).await.unwrap();
    assert_eq!(live, replayed);
    assert_eq!(replayed.view["balance"], json!(70));
    assert_eq!(replayed.version, 11);
}

/// Replay reads batches ahead of the one it applies: streams that end
/// just before, at and just after a batch boundary, several batches long,
/// on the in-memory and the embedded store, all replay whole.
#[tokio::test]
async fn replay_crosses_batch_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let stores: [Arc<dyn EventStore>; 2] = [
        Arc::new(MemoryStore::new()),
        Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
    ];
    for store in stores {
        let mut config = test_config();
        config.replay_batch = 4;
        let runtime = runtime_on(store, config);
        deploy(&runtime, "c", "counter", artifacts::COUNTER).await;
        for length in [3_u64, 4, 5, 8, 11, 12, 13] {
            let counter = stream("c", "counter", &format!("n-{length}"));
            for _ in 0..length {
                send(&runtime, &counter, "Increment", json!({"by": 1}))
                    .await
                    .unwrap();
            }
            runtime.passivate(&counter).await.unwrap();
            let state = runtime.state(&counter).await.unwrap();
            assert_eq!(state.version, length);
            assert_eq!(state.view["value"], json!(length));
            // Live again at the stream's version: the next command follows.
            let next = send(&runtime, &counter, "Increment", json!({"by": 1}))
                .await
                .unwrap();
            assert_eq!(next.version, length + 1);
        }
    }
}

#[tokio::test]
async fn events_record_who_decided_them() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    let digest = runtime.deployments()[0].2.to_hex();
    let acc = stream("bank", "bank-account", "acc-3");
    let mut open =
        CommandRequest::json(acc.clone(), "Open", &json!({"owner": "Cy"})).with_command_id("cmd-1");
    open.correlation_id = Some("corr-9".into());
    let outcome = runtime.execute(open).await.unwrap();
    let event = &outcome.events[0];
    assert_eq!(
        event.metadata.component_digest.as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(event.metadata.command_id.as_deref(), Some("cmd-1"));
    assert_eq!(event.metadata.correlation_id.as_deref(), Some("corr-9"));
    assert_eq!(event.stream, acc);
    assert!(event.timestamp_ms > 0);
}

#[tokio::test]
async fn a_retried_command_id_is_stored_once() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("bank", "bank-account", "acc-4");
    send(&runtime, &acc, "Open", json!({"owner": "Di"}))
        .await
        .unwrap();
    let deposit = CommandRequest::json(acc.clone(), "Deposit", &json!({"amount": 10}))
        .with_command_id("dep-1");
    let first = runtime.execute(deposit.clone()).await.unwrap();
    let retry = runtime.execute(deposit).await.unwrap();
    assert!(!first.duplicate);
    assert!(retry.duplicate);
    assert_eq!(first.events, retry.events);
    assert_eq!(runtime.store().stream_version(&acc).await.unwrap(), 2);
    assert_eq!(
        runtime.state(&acc).await.unwrap().view["balance"],
        json!(10)
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("bank", "bank-account", "acc-5");
    send(&runtime, &acc, "Open", json!({"owner": "Ed"}))
        .await
        .unwrap();

    // Unknown aggregate type.
    let err = send(&runtime, &stream("bank", "ledger", "x"), "Open", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::UnknownAggregateType { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ledger"), "{err}");

    // Unknown command type and malformed payloads are the guest's rejections.
    match send(&runtime, &acc, "Teleport", json!({})).await {
        Err(CommandError::Rejected(r)) => assert_eq!(r.code, "malformed-command", "{r}"),
        other => panic!("{other:?}"),
    }
    match send(&runtime, &acc, "Deposit", json!({"amount": "lots"})).await {
        Err(CommandError::Rejected(r)) => {
            assert_eq!(r.code, "malformed-command");
            assert!(
                r.message.contains("amount") || r.message.contains("invalid"),
                "{r}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut not_json = CommandRequest::json(acc.clone(), "Deposit", &json!({}));
    not_json.data = b"{amount: 5".to_vec();
    assert!(matches!(
        runtime.execute(not_json).await,
        Err(CommandError::Rejected(_))
    ));

    // Empty command type and oversized payloads never reach the guest.
    let mut empty = CommandRequest::json(acc.clone(), "Deposit", &json!({"amount": 1}));
    empty.command_type.clear();
    assert!(matches!(
        runtime.execute(empty).await,
        Err(CommandError::Malformed(_))
    ));
    let huge = CommandRequest::json(acc.clone(), "Deposit", &json!({"pad": "x".repeat(2 << 20)}));
    match runtime.execute(huge).await {
        Err(error @ CommandError::CommandTooLarge { limit, .. }) => {
            assert_eq!(limit, 1 << 20);
            assert!(error.to_string().contains("limit"), "{error}");
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(
        runtime.store().stream_version(&acc).await.unwrap(),
        1,
        "nothing was stored"
    );
    send(&runtime, &acc, "Deposit", json!({"amount": 5}))
        .await
        .unwrap();
}

#[tokio::test]
async fn namespaces_do_not_share_aggregates_or_components() {
    let runtime = memory_runtime(test_config());
    deploy(
        &runtime,
        "tenant-a",
        "bank-account",
        artifacts::BANK_ACCOUNT,
    )
    .await;
    let a = stream("tenant-a", "bank-account", "same-id");
    let b = stream("tenant-b", "bank-account", "same-id");
    send(&runtime, &a, "Open", json!({"owner": "A"}))
        .await
        .unwrap();
    // tenant-b has no component deployed for the type.
    assert!(matches!(
        send(&runtime, &b, "Open", json!({"owner": "B"})).await,
        Err(CommandError::UnknownAggregateType { .. })
    ));
    deploy(
        &runtime,
        "tenant-b",
        "bank-account",
        artifacts::BANK_ACCOUNT,
    )
    .await;
    // Same id, other namespace: a different, empty aggregate.
    assert_eq!(runtime.state(&b).await.unwrap().version, 0);
    send(&runtime, &b, "Open", json!({"owner": "B"}))
        .await
        .unwrap();
    assert_eq!(runtime.state(&a).await.unwrap().view["owner"], json!("A"));
    assert_eq!(runtime.state(&b).await.unwrap().view["owner"], json!("B"));
}
