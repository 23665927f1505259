//! Every definite answer is true of the stream: activation is all or
//! nothing, answers are never derived from a stale live copy, a stored
//! command is never answered with a conflict, and timestamps never go
//! backwards. The runtime runs on the embedded store on disk, wrapped in a
//! store that fails reads on demand and writes behind the runtime's back
//! (as another node of a cluster would).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aether_host::namespace::Namespace;
use aether_host::runtime::{CommandError, CommandRequest, Runtime};
use aether_host::store::{
    AppendError, AppendOutcome, AppendRequest, EmbeddedStore, EventMetadata, EventStore,
    ExpectedVersion, NewEvent, RecordedEvent, Snapshot, StoreError, StreamId,
};
use aether_tests::{artifacts, deploy, runtime_on, send, stream, test_config};
use serde_json::json;

/// A store that fails on demand, over a real one.
struct FaultyStore {
    inner: Arc<dyn EventStore>,
    /// `read_stream` fails while set.
    fail_reads: AtomicBool,
    /// The next append with a command id is first carried out by "another
    /// node" (straight into `inner`), so the runtime's own append meets a
    /// conflict for a command that is stored.
    race_next_command: AtomicBool,
    /// While set, another node deposits 1 right before every
    /// `stream_version` answer: the stream moves on every check.
    move_on_every_check: AtomicBool,
}

impl FaultyStore {
    fn on_disk(dir: &std::path::Path) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner: Arc::new(EmbeddedStore::open(dir).expect("the store opens")),
            fail_reads: AtomicBool::new(false),
            race_next_command: AtomicBool::new(false),
            move_on_every_check: AtomicBool::new(false),
        })
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable {
            backend: "faulty",
            message: "reads fail on purpose".into(),
        }
    }
}

#[async_trait::async_trait]
impl EventStore for FaultyStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        if request.metadata.command_id.is_some()
            && self.race_next_command.swap(false, Ordering::SeqCst)
        {
            let mut first = request.clone();
            first.expected = ExpectedVersion::Any;
            self.inner.append(first).await?;
        }
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(Self::unavailable());
        }
        self.inner.read_stream(stream, from_version, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        if self.move_on_every_check.load(Ordering::SeqCst) {
            append_elsewhere(self, stream, deposited(1), 1).await;
        }
        self.inner.stream_version(stream).await
    }

    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        self.inner.command_events(stream, command_id).await
    }

    async fn read_log(
        &self,
        namespace: &Namespace,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_log(namespace, from_position, limit).await
    }

    async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        self.inner.head_position(namespace).await
    }

    async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        self.inner.stored_bytes(namespace).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_key: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream, snapshot_key).await
    }
}

async fn bank_on(store: &Arc<FaultyStore>) -> Runtime {
    let runtime = runtime_on(store.clone(), test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    runtime
}

/// Appends `event` to `stream` behind the runtime's back, as another node
/// would, at the stream's current version.
async fn append_elsewhere(store: &FaultyStore, stream: &StreamId, event: NewEvent, at_ms: u64) {
    let version = store.inner.stream_version(stream).await.unwrap();
    store
        .inner
        .append(AppendRequest {
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: vec![event],
            metadata: EventMetadata::default(),
            timestamp_ms: at_ms,
        })
        .await
        .unwrap();
}

fn deposited(amount: u64) -> NewEvent {
    NewEvent::json("Deposited", json!({ "amount": amount }).to_string())
}

#[tokio::test]
async fn a_failed_activation_read_leaves_the_aggregate_not_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::on_disk(dir.path());
    let runtime = bank_on(&store).await;
    let acc = stream("bank", "bank-account", "acc-1");
    send(&runtime, &acc, "Open", json!({"owner": "Ada"}))
        .await
        .unwrap();
    send(&runtime, &acc, "Deposit", json!({"amount": 50}))
        .await
        .unwrap();
    runtime.passivate(&acc).await.unwrap();

    store.fail_reads.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        match runtime.state(&acc).await {
            Err(CommandError::Store(StoreError::Unavailable { .. })) => {}
            other => panic!("a failed read must be a retryable error, got {other:?}"),
        }
        match send(&runtime, &acc, "Deposit", json!({"amount": 1})).await {
            Err(CommandError::Store(StoreError::Unavailable { .. })) => {}
            other => panic!("a failed read must be a retryable error, got {other:?}"),
        }
    }
    assert_eq!(
        runtime.live_aggregates().await,
        0,
        "nothing half-activated stays live"
    );

    store.fail_reads.store(false, Ordering::SeqCst);
    let state = runtime.state(&acc).await.unwrap();
    assert_eq!(state.version, 2, "the whole stream, not an empty aggregate");
    assert_eq!(state.view["balance"], json!(50));
    let deposit = send(&runtime, &acc, "Deposit", json!({"amount": 5}))
        .await
        .unwrap();
    assert_eq!(deposit.version, 3);
    assert_eq!(store.inner.stream_version(&acc).await.unwrap(), 3);
}

#[tokio::test]
async fn answers_are_never_derived_from_a_stale_live_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::on_disk(dir.path());
    let runtime = bank_on(&store).await;
    let acc = stream("bank", "bank-account", "acc-2");
    send(&runtime, &acc, "Open", json!({"owner": "Bo"}))
        .await
        .unwrap();
    send(&runtime, &acc, "Deposit", json!({"amount": 10}))
        .await
        .unwrap();
    assert_eq!(runtime.state(&acc).await.unwrap().version, 2);

    // Another node deposits 100: the live copy here is now stale.
    append_elsewhere(&store, &acc, deposited(100), 1).await;
    let state = runtime.state(&acc).await.unwrap();
    assert_eq!(
        (state.version, state.view["balance"].clone()),
        (3, json!(110)),
        "a read answers the store's version"
    );

    // A withdrawal the stale copy (balance 10) would reject is carried out.
    append_elsewhere(&store, &acc, deposited(100), 1).await;
    let withdrawn = send(&runtime, &acc, "Withdraw", json!({"amount": 150}))
        .await
        .expect("decided on the current balance (210), not the stale one (110)");
    assert_eq!(withdrawn.version, 5);

    // A command without an expected version is not answered with the
    // conflict the stale copy meets on append: it is decided again.
    append_elsewhere(&store, &acc, deposited(1), 1).await;
    let deposit = send(&runtime, &acc, "Deposit", json!({"amount": 2}))
        .await
        .expect("no conflict for a command without an expected version");
    assert_eq!(deposit.version, 7);

    // With an expected version the caller asked for the check: a conflict,
    // reported with the stream's real version.
    append_elsewhere(&store, &acc, deposited(1), 1).await;
    let stale = CommandRequest::json(acc.clone(), "Deposit", &json!({"amount": 1})).expecting(7);
    match runtime.execute(stale).await {
        Err(CommandError::Conflict(c)) => assert_eq!((c.expected, c.actual), (7, 8)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // And a rejection is only given on the current state.
    append_elsewhere(&store, &acc, deposited(1000), 1).await;
    let withdrawn = send(&runtime, &acc, "Withdraw", json!({"amount": 1000}))
        .await
        .expect("the balance is 1064 in the store");
    assert_eq!(withdrawn.version, 10);
    assert_eq!(
        runtime.state(&acc).await.unwrap().view["balance"],
        json!(64)
    );
}

#[tokio::test]
async fn a_stored_command_is_answered_with_its_outcome_not_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::on_disk(dir.path());
    let runtime = bank_on(&store).await;
    let acc = stream("bank", "bank-account", "acc-3");
    send(&runtime, &acc, "Open", json!({"owner": "Cy"}))
        .await
        .unwrap();

    // Another attempt of the same command is stored first (a resend that
    // reached another node); this one meets a conflict on append.
    store.race_next_command.store(true, Ordering::SeqCst);
    let request =
        CommandRequest::json(acc.clone(), "Deposit", &json!({"amount": 7})).with_command_id("c-1");
    let outcome = runtime
        .execute(request.clone().expecting(1))
        .await
        .expect("the stored command's outcome, not 409");
    assert!(outcome.duplicate);
    assert_eq!(outcome.version, 2);
    assert_eq!(
        outcome.events[0].metadata.command_id.as_deref(),
        Some("c-1")
    );

    let events = store.inner.read_stream(&acc, 1, 100).await.unwrap();
    assert_eq!(events.len(), 2, "stored once");
    assert_eq!(runtime.state(&acc).await.unwrap().view["balance"], json!(7));
}

/// A stream that moves on every check never turns a command with an
/// expected version into a retryable error: the store's version, read after
/// the live one, is not the expected one, so the conflict is true then.
#[tokio::test]
async fn a_command_with_an_expected_version_gets_its_conflict_however_fast_the_stream_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::on_disk(dir.path());
    let runtime = bank_on(&store).await;
    let acc = stream("bank", "bank-account", "acc-5");
    send(&runtime, &acc, "Open", json!({"owner": "Ed"}))
        .await
        .unwrap();
    store.move_on_every_check.store(true, Ordering::SeqCst);

    // The live copy (version 1) is behind the version the caller expects.
    append_elsewhere(&store, &acc, deposited(1), 1).await;
    let behind = CommandRequest::json(acc.clone(), "Deposit", &json!({"amount": 1})).expecting(2);
    match runtime.execute(behind).await {
        Err(CommandError::Conflict(c)) => assert_eq!((c.expected, c.actual), (2, 3)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A rejection decided at the expected version, the stream having moved
    // on meanwhile: the conflict, not the rejection nor a retryable error.
    store.move_on_every_check.store(false, Ordering::SeqCst);
    assert_eq!(runtime.state(&acc).await.unwrap().version, 3);
    store.move_on_every_check.store(true, Ordering::SeqCst);
    let too_much =
        CommandRequest::json(acc.clone(), "Withdraw", &json!({"amount": 1_000})).expecting(3);
    match runtime.execute(too_much).await {
        Err(CommandError::Conflict(c)) => assert_eq!((c.expected, c.actual), (3, 4)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    store.move_on_every_check.store(false, Ordering::SeqCst);
    assert_eq!(store.inner.stream_version(&acc).await.unwrap(), 4);
}

#[tokio::test]
async fn timestamps_never_go_backwards_within_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::on_disk(dir.path());
    let runtime = bank_on(&store).await;
    let acc = stream("bank", "bank-account", "acc-4");
    send(&runtime, &acc, "Open", json!({"owner": "Di"}))
        .await
        .unwrap();
    // A node whose clock is an hour ahead wrote the last event.
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    append_elsewhere(&store, &acc, deposited(5), ahead).await;
    let next = send(&runtime, &acc, "Deposit", json!({"amount": 1}))
        .await
        .unwrap();
    assert!(
        next.events[0].timestamp_ms >= ahead,
        "{} is before the previous event's {ahead}",
        next.events[0].timestamp_ms
    );
    // Also after activation from scratch (the live copy is rebuilt).
    runtime.passivate(&acc).await.unwrap();
    let after = send(&runtime, &acc, "Deposit", json!({"amount": 1}))
        .await
        .unwrap();
    assert!(after.events[0].timestamp_ms >= next.events[0].timestamp_ms);
    let events = store.inner.read_stream(&acc, 1, 100).await.unwrap();
    assert!(
        events
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms),
        "timestamps go backwards: {:?}",
        events.iter().map(|e| e.timestamp_ms).collect::<Vec<_>>()
    );
}
