//! Durable catch-up subscriptions, on the in-memory and the embedded store:
//! history then live without a gap, restart from the checkpoint, recovery
//! when the bus outruns a subscriber, filters.

use std::sync::Arc;

use aether_host::bus::catchup::{CatchUp, StartFrom};
use aether_host::bus::{Filter, IdPattern, LocalBus};
use aether_host::namespace::Namespace;
use aether_host::runtime::Runtime;
use aether_host::store::{
    AppendRequest, EmbeddedStore, EventMetadata, EventStore, ExpectedVersion, MemoryStore,
    NewEvent, RecordedEvent,
};
use aether_tests::{artifacts, deploy, send, stream, test_config};
use serde_json::json;

/// A runtime that publishes to an in-process bus (as a node's does).
#[derive(Clone)]
struct Bused {
    runtime: Runtime,
    bus: Arc<LocalBus>,
}

impl Bused {
    fn on(store: Arc<dyn EventStore>) -> Self {
        let bus = Arc::new(LocalBus::default());
        let runtime =
            Runtime::with_sink(store, test_config(), bus.clone()).expect("runtime starts");
        Self { runtime, bus }
    }

    fn bus(&self) -> &LocalBus {
        &self.bus
    }
}

impl std::ops::Deref for Bused {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

/// Both stores, each in its own runtime with the bank-account deployed in
/// namespaces `bank` and `other`.
async fn runtimes() -> Vec<(Bused, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut out = Vec::new();
    for (store, dir) in [
        (Arc::new(MemoryStore::new()) as Arc<dyn EventStore>, None),
        (embedded, Some(dir)),
    ] {
        let runtime = Bused::on(store);
        for ns in ["bank", "other"] {
            deploy(&runtime, ns, "bank-account", artifacts::BANK_ACCOUNT).await;
        }
        out.push((runtime, dir));
    }
    out
}

/// Opens bank account `id` in namespace `ns` for `owner`.
async fn open(runtime: &Runtime, ns: &str, id: &str, owner: &str) {
    let acc = stream(ns, "bank-account", id);
    send(runtime, &acc, "Open", json!({ "owner": owner }))
        .await
        .unwrap();
}

fn bank() -> Namespace {
    Namespace::new("bank").unwrap()
}

async fn subscribe(
    runtime: &Bused,
    filter: Filter,
    name: Option<&str>,
    from: StartFrom,
) -> CatchUp {
    CatchUp::start(
        runtime.store().clone(),
        runtime.bus(),
        &bank(),
        filter,
        name,
        from,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_with_no_gap_while_events_keep_arriving() {
    for (runtime, _dir) in runtimes().await {
        // History: 10 accounts opened before the subscription.
        for i in 0..10 {
            open(&runtime, "bank", &format!("h-{i}"), "H").await;
            open(&runtime, "other", &format!("h-{i}"), "O").await;
        }
        // Writers keep appending in both namespaces while the subscriber
        // reads history and switches to live.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let runtime = runtime.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        for ns in ["bank", "other"] {
                            let acc = stream(ns, "bank-account", &format!("w{w}-{i}"));
                            send(&runtime, &acc, "Open", json!({"owner": "W"}))
                                .await
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        let mut subscription =
            subscribe(&runtime, Filter::default(), None, StartFrom::Beginning).await;
        let mut seen: Vec<RecordedEvent> = Vec::new();
        while seen.len() < 10 + 4 * 25 {
            seen.push(subscription.next().await.unwrap());
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert!(
            seen.iter().all(|e| e.stream.namespace == bank()),
            "only its namespace"
        );
        assert!(
            seen.windows(2).all(|w| w[0].position < w[1].position),
            "in log order, no duplicate"
        );
        // Exactly the namespace's events in its log, none skipped.
        let log: Vec<u64> = runtime
            .store()
            .read_log(&bank(), 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(log, (1..=log.len() as u64).collect::<Vec<_>>());
        assert_eq!(seen.iter().map(|e| e.position).collect::<Vec<_>>(), log);
        // And live from here on.
        open(&runtime, "bank", "late", "L").await;
        assert_eq!(
            subscription.next().await.unwrap().stream.aggregate_id,
            "late"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_subscriber_resumes_after_its_checkpoint() {
    for (runtime, _dir) in runtimes().await {
        for i in 0..6 {
            open(&runtime, "bank", &format!("acc-{i}"), "R").await;
        }
        let first_run = {
            let mut subscription = subscribe(
                &runtime,
                Filter::default(),
                Some("audit"),
                StartFrom::Checkpoint,
            )
            .await;
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(
                    subscription
                        .next()
                        .await
                        .unwrap()
                        .stream
                        .aggregate_id
                        .to_string(),
                );
            }
            subscription.commit().await.unwrap();
            got
        };
        assert_eq!(first_run, ["acc-0", "acc-1", "acc-2", "acc-3"]);
        // "Restarted": a new subscription with the same name.
        let mut again = subscribe(
            &runtime,
            Filter::default(),
            Some("audit"),
            StartFrom::Checkpoint,
        )
        .await;
        assert_eq!(again.next().await.unwrap().stream.aggregate_id, "acc-4");
        // Another name has its own checkpoint.
        let mut other = subscribe(
            &runtime,
            Filter::default(),
            Some("billing"),
            StartFrom::Checkpoint,
        )
        .await;
        assert_eq!(other.next().await.unwrap().stream.aggregate_id, "acc-0");
        // A checkpoint without a name is refused.
        let unnamed = CatchUp::start(
            runtime.store().clone(),
            runtime.bus(),
            &bank(),
            Filter::default(),
            None,
            StartFrom::Checkpoint,
        )
        .await;
        assert!(unnamed.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_apply_to_history_and_live() {
    for (runtime, _dir) in runtimes().await {
        for id in ["vip-1", "acc-1", "vip-2"] {
            let acc = stream("bank", "bank-account", id);
            send(&runtime, &acc, "Open", json!({"owner": "F"}))
                .await
                .unwrap();
            send(&runtime, &acc, "Deposit", json!({"amount": 5}))
                .await
                .unwrap();
        }
        let filter = Filter {
            event_types: Some(["Deposited".to_owned()].into()),
            aggregate_type: None,
            aggregate_id: Some(IdPattern::new("vip-*").unwrap()),
        };
        let mut subscription = subscribe(&runtime, filter, None, StartFrom::Beginning).await;
        for expected in ["vip-1", "vip-2"] {
            let event = subscription.next().await.unwrap();
            assert_eq!(
                (
                    event.event_type.as_str(),
                    event.stream.aggregate_id.as_str()
                ),
                ("Deposited", expected)
            );
        }
        send(
            &runtime,
            &stream("bank", "bank-account", "acc-1"),
            "Deposit",
            json!({"amount": 1}),
        )
        .await
        .unwrap();
        open(&runtime, "bank", "vip-3", "F").await;
        send(
            &runtime,
            &stream("bank", "bank-account", "vip-3"),
            "Deposit",
            json!({"amount": 1}),
        )
        .await
        .unwrap();
        assert_eq!(
            subscription.next().await.unwrap().stream.aggregate_id,
            "vip-3"
        );
    }
}

/// A subscriber far behind a tiny bus is never cut off: it reads what it
/// missed from the log.
#[tokio::test]
async fn a_subscriber_the_bus_outruns_catches_up_from_the_log() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bus = LocalBus::with_capacity(4);
    let acc = stream("bank", "bank-account", "busy");
    let mut subscription = CatchUp::start(
        store.clone(),
        &bus,
        &bank(),
        Filter::default(),
        None,
        StartFrom::Beginning,
    )
    .await
    .unwrap();
    for version in 0..50u64 {
        let outcome = store.append(append_one(&acc, version)).await.unwrap();
        bus.publish(&outcome.events);
    }
    for version in 1..=50 {
        assert_eq!(subscription.next().await.unwrap().version, version);
    }
}

fn append_one(stream: &aether_host::store::StreamId, version: u64) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Exact(version),
        events: vec![NewEvent::json("Deposited", b"{}".to_vec())],
        metadata: EventMetadata::default(),
        timestamp_ms: 0,
    }
}

/// Positions are per namespace: another namespace's event at the position
/// the subscriber waits for is not taken for its own.
#[tokio::test]
async fn another_namespaces_positions_are_not_mistaken_for_ours() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bus = LocalBus::default();
    let mut subscription = CatchUp::start(
        store.clone(),
        &bus,
        &bank(),
        Filter::default(),
        None,
        StartFrom::Now,
    )
    .await
    .unwrap();
    let elsewhere = stream("other", "bank-account", "acc-1");
    let ours = stream("bank", "bank-account", "acc-1");
    for version in 0..3 {
        let outcome = store.append(append_one(&elsewhere, version)).await.unwrap();
        bus.publish(&outcome.events);
    }
    let outcome = store.append(append_one(&ours, 0)).await.unwrap();
    assert_eq!(outcome.events[0].position, 1, "bank's own log starts at 1");
    bus.publish(&outcome.events);
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), subscription.next())
        .await
        .expect("bank's first event is delivered")
        .unwrap();
    assert_eq!((event.stream, event.position), (ours, 1));
    assert_eq!(subscription.position(), 1);
}

/// An event stored without reaching this bus (another node's, in a shared
/// store) is found in the log even while other namespaces keep the bus
/// busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_busy_with_other_namespaces_does_not_hide_the_log() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bus = Arc::new(LocalBus::default());
    let mut subscription = CatchUp::start(
        store.clone(),
        &bus,
        &bank(),
        Filter::default(),
        None,
        StartFrom::Beginning,
    )
    .await
    .unwrap();
    let noise = {
        let (store, bus) = (store.clone(), bus.clone());
        tokio::spawn(async move {
            let elsewhere = stream("other", "bank-account", "noisy");
            for version in 0.. {
                let outcome = store.append(append_one(&elsewhere, version)).await.unwrap();
                bus.publish(&outcome.events);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let ours = stream("bank", "bank-account", "quiet");
    store.append(append_one(&ours, 0)).await.unwrap(); // not published
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), subscription.next())
        .await
        .expect("the log is read although the bus never goes quiet")
        .unwrap();
    noise.abort();
    assert_eq!(event.stream, ours);
}
