//! Ordering and optimistic concurrency through the runtime.

use std::sync::Arc;

use aether_host::runtime::{CommandError, CommandRequest};
use aether_host::store::{EventStore, MemoryStore};
use aether_tests::{artifacts, deploy, memory_runtime, runtime_on, send, stream, test_config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_expected_version_exactly_one_wins() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "c", "counter", artifacts::COUNTER).await;
    let counter = stream("c", "counter", "race");
    send(&runtime, &counter, "Increment", json!({"by": 1}))
        .await
        .unwrap();

    let writers: Vec<_> = (0..16)
        .map(|_| {
            let (runtime, counter) = (runtime.clone(), counter.clone());
            tokio::spawn(async move {
                runtime
                    .execute(
                        CommandRequest::json(counter, "Increment", &json!({"by": 1})).expecting(1),
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(outcome) => {
                wins += 1;
                assert_eq!(outcome.version, 2);
            }
            Err(CommandError::Conflict(c)) => assert_eq!((c.expected, c.actual), (1, 2)),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(wins, 1);
    let versions: Vec<u64> = runtime
        .store()
        .read_stream(&counter, 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [1, 2], "no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_aggregates_commands_are_strictly_ordered() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "c", "counter", artifacts::COUNTER).await;
    let counter = stream("c", "counter", "ordered");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (runtime, counter) = (runtime.clone(), counter.clone());
            tokio::spawn(
                async move { send(&runtime, &counter, "Increment", json!({"by": 1})).await },
            )
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().unwrap().version);
    }
    versions.sort();
    assert_eq!(
        versions,
        (1..=64).collect::<Vec<u64>>(),
        "each command got its own version"
    );
    let state = runtime.state(&counter).await.unwrap();
    assert_eq!(
        (state.version, state.view["value"].clone()),
        (64, json!(64))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn independent_aggregates_run_side_by_side() {
    let runtime = memory_runtime(test_config());
    deploy(&runtime, "c", "counter", artifacts::COUNTER).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let counter = stream("c", "counter", &format!("n-{}", i % 50));
                send(&runtime, &counter, "Increment", json!({"by": 2})).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for i in 0..50 {
        let state = runtime
            .state(&stream("c", "counter", &format!("n-{i}")))
            .await
            .unwrap();
        assert_eq!((state.version, state.view["value"].clone()), (4, json!(8)));
    }
    let namespace = "c".parse().unwrap();
    assert_eq!(
        runtime.store().head_position(&namespace).await.unwrap(),
        200
    );
}

/// Two runtimes (two nodes) on one store: each holds a live copy of the
/// same aggregate; the store's version check fences the stale one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_live_copy_is_fenced_by_the_store() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let node_a = runtime_on(store.clone(), test_config());
    let node_b = runtime_on(store.clone(), test_config());
    deploy(&node_a, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    deploy(&node_b, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("bank", "bank-account", "shared");
    send(&node_a, &acc, "Open", json!({"owner": "Flo"}))
        .await
        .unwrap();
    send(&node_a, &acc, "Deposit", json!({"amount": 100}))
        .await
        .unwrap();
    // Both nodes are live at version 2.
    assert_eq!(node_b.state(&acc).await.unwrap().version, 2);

    send(&node_a, &acc, "Withdraw", json!({"amount": 80}))
        .await
        .unwrap();
    // Node B still believes the balance is 100: the store refuses the
    // Withdrawn it decides on that, B rebuilds its copy and decides again
    // on the real balance (the command carried no expected version, so
    // the conflict was B's own, not the caller's).
    match send(&node_b, &acc, "Withdraw", json!({"amount": 80})).await {
        Err(CommandError::Rejected(r)) => assert_eq!(r.code, "insufficient-funds"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // A caller that asked for version 2 gets the conflict, with the real
    // version: the host never retries a check the caller asked for.
    let stale = CommandRequest::json(acc.clone(), "Withdraw", &json!({"amount": 5})).expecting(2);
    match node_b.execute(stale).await {
        Err(CommandError::Conflict(c)) => assert_eq!((c.expected, c.actual), (2, 3)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.stream_version(&acc).await.unwrap(), 3);
    assert_eq!(node_b.state(&acc).await.unwrap().view["balance"], json!(20));
}
