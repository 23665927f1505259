//! The lean command path: a warm command's command id is checked against
//! the live aggregate's memory, and the store only when that memory cannot
//! rule it out; the decision is applied to the live copy before the append
//! and never survives an append that did not store it. The runtime runs on
//! a store that counts the reads the path is meant to skip, can stall or
//! fail appends, and lets "another node" write behind the runtime's back.
//! The partition job that decided the events asks the store to start
//! their append.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::runtime::{CommandError, CommandRequest, Runtime, SnapshotPolicy};
use aether_host::store::{
    AppendError, AppendOutcome, AppendRequest, AppendStep, AppendThen, EventMetadata, EventStore,
    ExpectedVersion, MemoryStore, NewEvent, RecordedEvent, Snapshot, StoreError, StreamId,
};
use aether_tests::{artifacts, deploy, runtime_on, send, stream, test_config};
use serde_json::{Value, json};

/// A store over a [`MemoryStore`] that counts reads and stalls or fails
/// appends on demand.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    command_events: AtomicUsize,
    stream_versions: AtomicUsize,
    /// Appends never finish while set.
    stall_appends: AtomicBool,
    /// Appends fail (unavailable) while set.
    fail_appends: AtomicBool,
    /// The thread each `start_append` was asked on.
    started_on: Mutex<Vec<String>>,
    /// While set, `start_append` takes the append and holds it (in `held`)
    /// for the test to finish, as a store whose writer is slow would.
    hold_started: AtomicBool,
    held: Mutex<Vec<(AppendRequest, AppendThen)>>,
}

impl CountingStore {
    fn reads(&self) -> (usize, usize) {
        (
            self.command_events.load(Ordering::SeqCst),
            self.stream_versions.load(Ordering::SeqCst),
        )
    }
}

#[async_trait::async_trait]
impl EventStore for CountingStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        if self.stall_appends.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(AppendError::Store(StoreError::Unavailable {
                backend: "counting",
                message: "appends fail on purpose".into(),
            }));
        }
        self.inner.append(request).await
    }

    /// Not started here (every append goes through `append` above) unless
    /// `hold_started` is set.
    fn start_append(&self, request: AppendRequest, then: AppendThen) {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        self.started_on.lock().unwrap().push(thread);
        if self.hold_started.load(Ordering::SeqCst) {
            return self.held.lock().unwrap().push((request, then));
        }
        then(AppendStep::Deferred(request));
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from_version, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.stream_versions.fetch_add(1, Ordering::SeqCst);
        self.inner.stream_version(stream).await
    }

    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        self.command_events.fetch_add(1, Ordering::SeqCst);
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

async fn bank() -> (Arc<CountingStore>, Runtime) {
    let store = Arc::new(CountingStore::default());
    let runtime = runtime_on(store.clone(), test_config());
    deploy(&runtime, "bank", "bank-account", artifacts::BANK_ACCOUNT).await;
    (store, runtime)
}

fn deposit(acc: &StreamId, amount: u64, command_id: &str) -> CommandRequest {
    CommandRequest::json(acc.clone(), "Deposit", &json!({ "amount": amount }))
        .with_command_id(command_id)
}

fn withdraw(acc: &StreamId, amount: u64, command_id: &str) -> CommandRequest {
    CommandRequest::json(acc.clone(), "Withdraw", &json!({ "amount": amount }))
        .with_command_id(command_id)
}

async fn balance(runtime: &Runtime, acc: &StreamId) -> (u64, Value) {
    let state = runtime.state(acc).await.unwrap();
    (state.version, state.view["balance"].clone())
}

/// Appends a `Deposited` event carrying `command_id` behind the runtime's
/// back, as another node that carried out the same command would.
async fn deposit_elsewhere(store: &CountingStore, acc: &StreamId, amount: u64, command_id: &str) {
    let version = store.inner.stream_version(acc).await.unwrap();
    store
        .inner
        .append(AppendRequest {
            stream: acc.clone(),
            expected: ExpectedVersion::Exact(version),
            events: vec![NewEvent::json(
                "Deposited",
                json!({ "amount": amount }).to_string(),
            )],
            metadata: EventMetadata {
                command_id: Some(command_id.into()),
                ..EventMetadata::default()
            },
            timestamp_ms: 1,
        })
        .await
        .unwrap();
}

/// The job that decided a command's events asks the store to start their
/// append on the namespace's partition thread (the embedded store's writer
/// then has it without waiting for an async worker to take the decision
/// and send it on); the store answers the command's task.
#[tokio::test]
async fn the_partition_job_that_decides_starts_the_append() {
    let (store, runtime) = bank().await;
    let acc = stream("bank", "bank-account", "lean-0");
    send(&runtime, &acc, "Open", json!({"owner": "Ann"}))
        .await
        .unwrap();
    let deposited = runtime.execute(deposit(&acc, 10, "c-1")).await.unwrap();
    assert_eq!(deposited.version, 2);
    let started_on = store.started_on.lock().unwrap().clone();
    assert_eq!(started_on.len(), 2, "{started_on:?}");
    for thread in &started_on {
        assert!(
            thread.starts_with("aether-bank-"),
            "the append was started on {thread}, not on bank's partition thread"
        );
    }
    assert_eq!(balance(&runtime, &acc).await, (2, json!(10)));
}

#[tokio::test]
async fn a_new_command_id_on_a_live_aggregate_needs_no_store_read_and_a_retry_its_first_outcome() {
    let (store, runtime) = bank().await;
    let acc = stream("bank", "bank-account", "lean-1");
    send(&runtime, &acc, "Open", json!({"owner": "Al"}))
        .await
        .unwrap();

    let before = store.reads();
    let first = runtime.execute(deposit(&acc, 5, "c-1")).await.unwrap();
    runtime.execute(deposit(&acc, 7, "c-2")).await.unwrap();
    assert_eq!(
        store.reads(),
        before,
        "new command ids on a live aggregate: no command-id read, no version check"
    );

    let retry = runtime.execute(deposit(&acc, 5, "c-1")).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.version, first.version);
    assert_eq!(retry.events.len(), 1);
    assert_eq!(retry.events[0].id, first.events[0].id, "the first outcome");
    assert_eq!(store.reads().0, before.0 + 1, "the retry asked the store");

    // A retry the current state would reject (nothing left to withdraw):
    // answered from the store, not decided again.
    runtime.execute(withdraw(&acc, 12, "w-1")).await.unwrap();
    let retry = runtime
        .execute(withdraw(&acc, 12, "w-1"))
        .await
        .expect("its first outcome, not a rejection");
    assert!(retry.duplicate);
    assert_eq!(retry.version, 4);
    assert_eq!(balance(&runtime, &acc).await, (4, json!(0)), "stored once");
}

#[tokio::test]
async fn a_command_id_stored_by_another_node_is_its_first_outcome_not_a_second_one() {
    let (store, runtime) = bank().await;
    let acc = stream("bank", "bank-account", "lean-2");
    send(&runtime, &acc, "Open", json!({"owner": "Bea"}))
        .await
        .unwrap();

    // The live copy here is at version 1 and has never seen "c-9".
    deposit_elsewhere(&store, &acc, 5, "c-9").await;
    let outcome = runtime.execute(deposit(&acc, 5, "c-9")).await.unwrap();
    assert!(outcome.duplicate, "not stored twice");
    assert_eq!(outcome.version, 2);

    // With an expected version the stale copy matches: still its outcome,
    // not a conflict.
    deposit_elsewhere(&store, &acc, 3, "c-10").await;
    let outcome = runtime
        .execute(deposit(&acc, 3, "c-10").expecting(2))
        .await
        .expect("its first outcome, not 409");
    assert!(outcome.duplicate);
    assert_eq!(outcome.version, 3);

    // A command the stale copy would reject (balance 9 here, 109 in the
    // store) whose id another node stored: its outcome, not a rejection.
    runtime.execute(deposit(&acc, 1, "c-12")).await.unwrap();
    deposit_elsewhere(&store, &acc, 100, "c-11").await;
    let withdraw = CommandRequest::json(acc.clone(), "Withdraw", &json!({"amount": 100}))
        .with_command_id("c-11");
    let stale_copy_withdraw = runtime.execute(withdraw).await.unwrap();
    assert!(stale_copy_withdraw.duplicate);
    assert_eq!(stale_copy_withdraw.version, 5);
    assert_eq!(
        store.inner.read_stream(&acc, 1, 100).await.unwrap().len(),
        5
    );
    assert_eq!(balance(&runtime, &acc).await, (5, json!(109)));
}

/// An aggregate restored from a snapshot has the command ids of the events
/// before it too (saved with the snapshot, at the same version): a new id
/// needs no store read, a stored one is answered with its first outcome.
/// Without that saved filter (an older snapshot, or one whose filter
/// failed to save) every id is checked against the store.
#[tokio::test]
async fn an_aggregate_restored_from_a_snapshot_still_tells_new_ids_from_stored_ones() {
    let (store, runtime) = bank().await;
    runtime.set_snapshot_policy(
        &Namespace::new("bank").unwrap(),
        &AggregateType::new("bank-account").unwrap(),
        SnapshotPolicy::Every(2),
    );
    let acc = stream("bank", "bank-account", "lean-3");
    send(&runtime, &acc, "Open", json!({"owner": "Cy"}))
        .await
        .unwrap();
    for i in 1..=5 {
        runtime
            .execute(deposit(&acc, 1, &format!("c-{i}")))
            .await
            .unwrap();
    }
    runtime.execute(withdraw(&acc, 5, "w-1")).await.unwrap();
    runtime.passivate(&acc).await.unwrap();
    let saved = store
        .inner
        .load_snapshot(&acc, "command-ids")
        .await
        .unwrap()
        .expect("the command ids are saved with the snapshot");
    assert_eq!(saved.version, 6);

    // Restored from the snapshot at version 6 (and the withdrawal after
    // it): a new id is known to be new without the store.
    let before = store.reads().0;
    let fresh = runtime.execute(deposit(&acc, 1, "c-6")).await.unwrap();
    assert!(!fresh.duplicate);
    assert_eq!(store.reads().0, before, "no store read for a new id");
    // A stored id before the snapshot and one after it: their first outcomes.
    let retry = runtime.execute(deposit(&acc, 1, "c-1")).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.version, 2);
    assert!(store.reads().0 > before, "the store was asked");
    let retry = runtime
        .execute(withdraw(&acc, 5, "w-1"))
        .await
        .expect("its first outcome, not a rejection");
    assert!(retry.duplicate);
    assert_eq!(balance(&runtime, &acc).await, (8, json!(1)));

    // A filter of another version than the state's is not used: every id
    // goes to the store, and stored ones are still found.
    runtime.passivate(&acc).await.unwrap();
    store
        .inner
        .save_snapshot(Snapshot {
            stream: acc.clone(),
            version: 100,
            snapshot_key: "command-ids".into(),
            state: vec![1],
            timestamp_ms: 1,
        })
        .await
        .unwrap();
    let before = store.reads().0;
    let fresh = runtime.execute(deposit(&acc, 1, "c-7")).await.unwrap();
    assert!(!fresh.duplicate);
    assert!(store.reads().0 > before, "the store was asked");
    let retry = runtime.execute(deposit(&acc, 1, "c-2")).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(balance(&runtime, &acc).await, (9, json!(2)));
}

#[tokio::test]
async fn an_aggregate_with_more_ids_than_its_memory_tells_apart_still_deduplicates() {
    let (store, runtime) = bank().await;
    let acc = stream("bank", "bank-account", "lean-4");
    send(&runtime, &acc, "Open", json!({"owner": "Di"}))
        .await
        .unwrap();
    runtime.execute(deposit(&acc, 1, "d-0")).await.unwrap();
    runtime.execute(withdraw(&acc, 1, "w-0")).await.unwrap();
    // Far more ids than the filter separates well: many new ids look
    // stored (the store is asked), none is ever taken for a new one.
    let ids = 3_000;
    for i in 0..ids {
        runtime
            .execute(deposit(&acc, 1, &format!("c-{i}")))
            .await
            .unwrap();
    }
    runtime.execute(withdraw(&acc, ids, "w-1")).await.unwrap();
    // Retries the empty account would reject, and deposits: all duplicates.
    for (request, version) in [
        (withdraw(&acc, 1, "w-0"), 3),
        (withdraw(&acc, ids, "w-1"), ids + 4),
        (deposit(&acc, 1, "c-0"), 4),
        (deposit(&acc, 1, &format!("c-{}", ids / 2)), ids / 2 + 4),
    ] {
        let retry = runtime.execute(request).await.unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.version, version);
    }
    assert!(store.reads().0 > 4, "saturated: new ids were checked too");
    assert_eq!(balance(&runtime, &acc).await, (ids + 4, json!(0)));
}

#[tokio::test]
async fn a_decision_the_store_did_not_take_never_stays_in_the_live_copy() {
    let (store, runtime) = bank().await;
    let acc = stream("bank", "bank-account", "lean-5");
    send(&runtime, &acc, "Open", json!({"owner": "Ed"}))
        .await
        .unwrap();
    // More than the balance even with a deposit of 10 that was not stored.
    let withdraw_20 = || CommandRequest::json(acc.clone(), "Withdraw", &json!({"amount": 20}));

    // A failed append: the deposit was applied here before the append.
    store.fail_appends.store(true, Ordering::SeqCst);
    let failed = runtime.execute(deposit(&acc, 10, "c-1")).await;
    assert!(matches!(failed, Err(CommandError::Store(_))), "{failed:?}");
    store.fail_appends.store(false, Ordering::SeqCst);
    // Rejected on the stored state: a live copy still holding the deposit
    // would reject at a version the store never reached, and could only
    // answer a retryable error.
    let rejected = runtime.execute(withdraw_20()).await;
    assert!(
        matches!(rejected, Err(CommandError::Rejected(_))),
        "{rejected:?}"
    );

    // A caller that gave up while its append was in flight.
    store.stall_appends.store(true, Ordering::SeqCst);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        runtime.execute(deposit(&acc, 10, "c-2")),
    )
    .await;
    assert!(gave_up.is_err(), "the append stalls");
    store.stall_appends.store(false, Ordering::SeqCst);
    let rejected = runtime.execute(withdraw_20()).await;
    assert!(
        matches!(rejected, Err(CommandError::Rejected(_))),
        "{rejected:?}"
    );

    let deposited = runtime.execute(deposit(&acc, 10, "c-2")).await.unwrap();
    assert!(!deposited.duplicate);
    assert_eq!(deposited.version, 2);
    assert_eq!(balance(&runtime, &acc).await, (2, json!(10)));
}

/// A caller that gave up while the store carried out the append its
/// command's partition job started: the store's answer finds nobody
/// waiting, so the live copy, which applied the decision, is passivated
/// if the store did not take it, and right if it did.
#[tokio::test]
async fn a_started_append_whose_caller_gave_up_leaves_no_false_live_copy() {
    let (store, runtime) = bank().await;
    let acc = stream("bank", "bank-account", "lean-6");
    send(&runtime, &acc, "Open", json!({"owner": "Flo"}))
        .await
        .unwrap();
    let (_, then) = give_up(&store, &runtime, &acc, "c-1").await;
    then(AppendStep::Done(Err(AppendError::Store(
        StoreError::Unavailable {
            backend: "counting",
            message: "the append failed after its caller left".into(),
        },
    ))));
    // Read from the store's version: a live copy still holding the deposit
    // could only answer a retryable error.
    assert_eq!(balance(&runtime, &acc).await, (1, json!(0)));

    let (request, then) = give_up(&store, &runtime, &acc, "c-2").await;
    then(AppendStep::Done(store.inner.append(request).await));
    assert_eq!(balance(&runtime, &acc).await, (2, json!(10)));
    let again = runtime.execute(deposit(&acc, 10, "c-2")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(balance(&runtime, &acc).await, (2, json!(10)));
}

/// Sends a deposit while `store` holds the appends it is asked to start,
/// gives up on it, and returns the append its job started.
async fn give_up(
    store: &CountingStore,
    runtime: &Runtime,
    acc: &StreamId,
    command_id: &str,
) -> (AppendRequest, AppendThen) {
    store.hold_started.store(true, Ordering::SeqCst);
    let deposit = runtime.execute(deposit(acc, 10, command_id));
    let gave_up = tokio::time::timeout(Duration::from_millis(200), deposit).await;
    assert!(gave_up.is_err(), "the store holds the append");
    store.hold_started.store(false, Ordering::SeqCst);
    let held = store.held.lock().unwrap().pop();
    held.expect("the command's job started the append")
}
