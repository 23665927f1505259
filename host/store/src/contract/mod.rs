//! The contract every [`EventStore`] backend must pass.
//!
//! Each case is a public async function that drives a fresh, empty store and
//! panics with a message naming the broken rule. A backend runs all of them,
//! one named `#[test]` per case, with one line:
//!
//! ```
//! mod memory_store {
//!     aether_store::store_contract_tests!(|| async { aether_store::MemoryStore::new() });
//! }
//! ```
//!
//! The argument is either a closure (sync or `async`) returning a future of the
//! store, or an `async { ... }` block; it is evaluated once per test, so every
//! case gets its own store. The store may be any `S: EventStore` (including
//! `Arc<dyn EventStore>`), and may own whatever must outlive the test (a
//! temporary directory, a spawned server). Each test runs on its own
//! multi-threaded Tokio runtime with 4 workers, so the concurrency cases race
//! for real; the calling crate does not need to depend on Tokio.
//!
//! Cases that take `&dyn EventStore` are sequential; the concurrency cases take
//! an `Arc<dyn EventStore>` so they can spawn tasks.

use std::future::Future;
use std::sync::Arc;

use super::{
    AppendError, AppendOutcome, AppendRequest, EventMetadata, EventStore, ExpectedVersion,
    NewEvent, StreamId, VersionConflict,
};
use aether_core::namespace::{AggregateId, AggregateType, Namespace};

mod append;
mod concurrency;
mod read;
mod replay;

pub use append::{
    any_appends_to_new_and_existing_streams, append_to_new_stream,
    command_id_is_scoped_to_its_stream, command_id_makes_append_idempotent,
    conflicting_append_does_not_record_its_command_id, empty_append_is_invalid,
    exact_zero_on_existing_stream_conflicts, expected_version_ahead_conflicts,
    multi_event_append_is_atomic, namespaces_are_isolated, stale_expected_version_conflicts,
};
pub use concurrency::{
    concurrent_appends_across_namespaces_stay_gapless, concurrent_writers_with_retry_stay_gapless,
    concurrent_writers_with_same_expected_version,
};
pub use read::{
    head_position_follows_appends, namespaces_have_their_own_positions,
    newer_snapshot_replaces_older_and_older_is_ignored, read_log_from_position_with_limit,
    read_log_is_gapless_across_streams, read_log_never_returns_another_namespace,
    read_stream_from_version_with_limit, snapshot_of_other_digest_is_none,
    snapshots_round_trip_by_digest, stored_bytes_count_a_namespaces_payloads,
    unknown_stream_is_empty,
};
pub use replay::{
    read_replay_batch_holds_what_read_stream_reads, read_replay_batch_of_nothing_is_empty,
};

/// Expands to one `#[test]` per contract case, run against the store built by
/// the given expression (see the [module documentation](crate::contract)).
#[macro_export]
macro_rules! store_contract_tests {
    (async move { $($body:tt)* }) => {
        $crate::store_contract_tests!(@cases (|| async move { $($body)* }));
    };
    (async { $($body:tt)* }) => {
        $crate::store_contract_tests!(@cases (|| async { $($body)* }));
    };
    (@cases $make:expr) => {
        $crate::store_contract_tests!(@shared $make;
            append_to_new_stream,
            exact_zero_on_existing_stream_conflicts,
            stale_expected_version_conflicts,
            expected_version_ahead_conflicts,
            any_appends_to_new_and_existing_streams,
            multi_event_append_is_atomic,
            empty_append_is_invalid,
            command_id_makes_append_idempotent,
            command_id_is_scoped_to_its_stream,
            conflicting_append_does_not_record_its_command_id,
            namespaces_are_isolated,
            read_stream_from_version_with_limit,
            unknown_stream_is_empty,
            read_replay_batch_holds_what_read_stream_reads,
            read_replay_batch_of_nothing_is_empty,
            read_log_is_gapless_across_streams,
            read_log_from_position_with_limit,
            head_position_follows_appends,
            namespaces_have_their_own_positions,
            stored_bytes_count_a_namespaces_payloads,
            read_log_never_returns_another_namespace,
            snapshots_round_trip_by_digest,
            newer_snapshot_replaces_older_and_older_is_ignored,
            snapshot_of_other_digest_is_none,
        );
        $crate::store_contract_tests!(@owned $make;
            concurrent_writers_with_same_expected_version,
            concurrent_writers_with_retry_stay_gapless,
            concurrent_appends_across_namespaces_stay_gapless,
        );
    };
    (@shared $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::contract::block_on(async {
                    let store = $crate::contract::make_store($make).await;
                    $crate::contract::$case(&*store).await;
                });
            }
        )*
    };
    (@owned $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::contract::block_on(async {
                    let store = $crate::contract::make_store($make).await;
                    $crate::contract::$case(store).await;
                });
            }
        )*
    };
    ($make:expr) => {
        $crate::store_contract_tests!(@cases $make);
    };
}

/// Builds the store for one contract test and shares it.
pub async fn make_store<F, Fut, S>(make: F) -> Arc<dyn EventStore>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = S>,
    S: EventStore,
{
    Arc::new(make().await)
}

/// Runs one contract test on a fresh multi-threaded runtime with 4 workers.
pub fn block_on<F: Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|error| {
            panic!("cannot start a Tokio runtime for the store contract: {error}")
        })
        .block_on(test)
}

// Helpers shared by the cases. Inputs are constants, so panicking on an
// invalid name is a bug in the suite, not in the store.

fn valid<T>(name: Result<T, aether_core::namespace::InvalidName>) -> T {
    name.unwrap_or_else(|error| panic!("bad name in the store contract: {error}"))
}

fn namespace(name: &str) -> Namespace {
    valid(Namespace::new(name))
}

fn stream(namespace: &str, aggregate_type: &str, aggregate_id: &str) -> StreamId {
    StreamId::new(
        valid(Namespace::new(namespace)),
        valid(AggregateType::new(aggregate_type)),
        valid(AggregateId::new(aggregate_id)),
    )
}

/// The namespace of [`account`]'s streams.
fn bank() -> Namespace {
    namespace("bank")
}

fn account(id: &str) -> StreamId {
    stream("bank", "bank-account", id)
}

fn event(event_type: &str, data: &str) -> NewEvent {
    NewEvent::json(event_type, data.as_bytes().to_vec())
}

fn request(stream: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events,
        metadata: EventMetadata::default(),
        timestamp_ms: 1_700_000_000_000,
    }
}

fn with_command(mut request: AppendRequest, command_id: &str) -> AppendRequest {
    request.metadata.command_id = Some(command_id.to_owned());
    request
}

async fn append_ok(store: &dyn EventStore, request: AppendRequest) -> AppendOutcome {
    let what = format!(
        "append to {} expecting {:?}",
        request.stream, request.expected
    );
    store
        .append(request)
        .await
        .unwrap_or_else(|error| panic!("{what} must succeed, failed: {error}"))
}

async fn append_conflict(store: &dyn EventStore, request: AppendRequest) -> VersionConflict {
    let what = format!(
        "append to {} expecting {:?}",
        request.stream, request.expected
    );
    match store.append(request).await {
        Err(AppendError::Conflict(conflict)) => conflict,
        other => panic!("{what} must be a version conflict, got {other:?}"),
    }
}

async fn version(store: &dyn EventStore, stream: &StreamId) -> u64 {
    store
        .stream_version(stream)
        .await
        .unwrap_or_else(|error| panic!("stream_version({stream}) failed: {error}"))
}

async fn read_stream(
    store: &dyn EventStore,
    stream: &StreamId,
    from: u64,
    limit: usize,
) -> Vec<super::RecordedEvent> {
    store
        .read_stream(stream, from, limit)
        .await
        .unwrap_or_else(|error| panic!("read_stream({stream}, {from}, {limit}) failed: {error}"))
}

async fn read_log(
    store: &dyn EventStore,
    namespace: &Namespace,
    from: u64,
    limit: usize,
) -> Vec<super::RecordedEvent> {
    store
        .read_log(namespace, from, limit)
        .await
        .unwrap_or_else(|error| panic!("read_log({namespace}, {from}, {limit}) failed: {error}"))
}

async fn head(store: &dyn EventStore, namespace: &Namespace) -> u64 {
    store
        .head_position(namespace)
        .await
        .unwrap_or_else(|error| panic!("head_position({namespace}) failed: {error}"))
}

/// (version, position) pairs, for compact assertions.
fn places(events: &[super::RecordedEvent]) -> Vec<(u64, u64)> {
    events.iter().map(|e| (e.version, e.position)).collect()
}

fn payloads(events: &[super::RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .collect()
}
