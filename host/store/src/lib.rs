//! Event Sourcing and Optimistic Concurrency: the [`EventStore`] trait, the event
//! envelope and the backends.
//!
//! An aggregate's history is a *stream* of events, named by a [`StreamId`]
//! (namespace, aggregate type, aggregate id). The host derives an aggregate's
//! state only by replaying its stream, so the store is the single source of
//! truth, and the guarantees below are what every backend must keep:
//!
//! - **Architecture Invariant:** a stream's versions are 1, 2, 3… with no gap
//!   and no rewrite. An append either records all of its events, with the next
//!   consecutive versions, or none of them.
//! - **Architecture Invariant:** of N writers appending to one stream with the
//!   same [`ExpectedVersion::Exact`], exactly one wins; every other one gets a
//!   [`VersionConflict`] naming the expected and actual version. The store never
//!   retries on the application's behalf: only the application can decide
//!   whether its command still makes sense against the newer state.
//! - Every recorded event also has a *position* in its namespace's log: 1,
//!   2, 3… across all the streams of that namespace, no gap, assigned in
//!   append order within the namespace. Each namespace has a log of its own
//!   (there is no log across namespaces, and positions of two namespaces are
//!   unrelated), which catch-up subscriptions read with
//!   [`EventStore::read_log`]; [`EventStore::head_position`] is its last
//!   position.
//! - Appends are idempotent by [`EventMetadata::command_id`]: a retried command
//!   returns what was recorded the first time, flagged `duplicate`.
//!
//! Each backend proves these by running the shared `contract` suite
//! (`aether_store::store_contract_tests!`). [`MemoryStore`] is the reference
//! backend for tests and examples.
//!
//! ```
//! use aether_core::namespace::{AggregateId, AggregateType, Namespace};
//! use aether_store::{
//!     AppendError, AppendRequest, EventMetadata, EventStore, ExpectedVersion, MemoryStore,
//!     NewEvent, StreamId,
//! };
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let stream = StreamId::new(
//!     Namespace::new("bank")?,
//!     AggregateType::new("bank-account")?,
//!     AggregateId::new("acc-1")?,
//! );
//! let opened = NewEvent::json("opened", br#"{"owner":"ada"}"#.to_vec());
//! let request = AppendRequest {
//!     stream: stream.clone(),
//!     expected: ExpectedVersion::Exact(0),
//!     events: vec![opened],
//!     metadata: EventMetadata::default(),
//!     timestamp_ms: 1_700_000_000_000,
//! };
//! let outcome = store.append(request.clone()).await?;
//! assert_eq!(outcome.last_version(), 1);
//!
//! // A second writer that still believes the stream is new loses.
//! match store.append(request).await {
//!     Err(AppendError::Conflict(conflict)) => assert_eq!((conflict.expected, conflict.actual), (0, 1)),
//!     other => panic!("expected a conflict, got {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use aether_core::namespace::Namespace;

#[cfg(feature = "embedded")]
mod embedded;
mod error;
#[cfg(feature = "jetstream")]
mod jetstream;
mod memory;
mod replay;
mod request;

/// The contract every backend keeps, as a test suite (feature `testing`).
#[cfg(feature = "testing")]
pub mod contract;

pub use aether_core::batch::{BatchEvent, EventBatch};
pub use aether_core::event::{
    AppendOutcome, AppendRequest, EventMetadata, ExpectedVersion, JSON_CONTENT_TYPE, NewEvent,
    RecordedEvent, Snapshot, StreamId,
};
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStore;
pub use error::{AppendError, StoreError, VersionConflict};
#[cfg(feature = "jetstream")]
pub use jetstream::{JetStreamConfig, JetStreamStore, retrying};
pub use memory::MemoryStore;
pub use replay::ReplayBatch;

/// Durable storage of event streams, with optimistic concurrency.
///
/// Implementations are shared by every task of the host (`Arc<dyn EventStore>`)
/// and must be safe to call concurrently. `Arc<S>` is itself an `EventStore`.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends all events atomically iff the stream's version matches
    /// `expected`; versions continue gaplessly from the current one;
    /// positions continue gaplessly from the head of the stream's namespace
    /// (the first event of a namespace = position 1), and the events of one
    /// append have consecutive positions.
    ///
    /// Idempotent by `metadata.command_id`: if that command id was already
    /// appended to THIS stream, returns the originally recorded events with
    /// `duplicate: true` and writes nothing, whatever `expected` says. A failed
    /// append does not record its command id. Never retries a conflict.
    ///
    /// Errors: [`AppendError::Invalid`] for an empty `events` list,
    /// [`AppendError::Conflict`] when the version does not match,
    /// [`AppendError::Store`] when the backend fails.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// [`EventStore::append`], started now on the calling thread where
    /// that is cheap, its outcome handed to `then` on the thread that
    /// finishes it (for a caller that answers someone else: the runtime's
    /// partition job, whose command then wakes once, with the outcome).
    /// `then` is called exactly once: with [`AppendStep::Done`] when the
    /// append is carried out (the embedded store queues it for its writer
    /// at once, and its writer calls `then`, or at once for an invalid
    /// request; it is carried out whatever `then` does), or at once with
    /// [`AppendStep::Deferred`] and the request given back, by default and
    /// whenever starting now would mean waiting, for the caller to append
    /// it itself. `then` may run on the store's own thread: it must be quick
    /// and never block (the runtime's sends one message).
    fn start_append(&self, request: AppendRequest, then: AppendThen) {
        then(AppendStep::Deferred(request));
    }

    /// Events of one stream with version >= `from_version` (1-based; 0 reads
    /// from the start too), in order, at most `limit`.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events [`EventStore::read_stream`] reads with the same
    /// arguments, as an activation replays them: laid out for the guest,
    /// with their command ids ([`ReplayBatch`]). The same checks and
    /// errors as `read_stream`.
    ///
    /// By default built from `read_stream`; a backend that can write the
    /// batch straight from what it stores (the embedded store) does, with
    /// no [`RecordedEvent`] in between.
    async fn read_replay_batch(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<ReplayBatch, StoreError> {
        let events = self.read_stream(stream, from_version, limit).await?;
        Ok(ReplayBatch::from_events(&events))
    }

    /// How many replay batches an activation should read ahead of the one
    /// it applies, at least 1. By default 2: reads of one stream run side
    /// by side (on blocking threads, or in memory). A backend that serves
    /// one stream's batches in order from a cursor which already fetches
    /// the next batch while the runtime applies this one (the JetStream
    /// store) says 1: a second read in flight could not take the cursor
    /// and would start a read of its own from the stream's beginning.
    fn replay_read_ahead(&self) -> usize {
        2
    }

    /// Current version of a stream; 0 if it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// The events an earlier append with `command_id` recorded on `stream`,
    /// in order; `None` if no append on this stream carried that command id.
    /// Lets a retried command be answered with its first outcome before the
    /// aggregate decides anything again.
    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError>;

    /// The log of `namespace`: its events with position >= `from_position`
    /// (0 reads from the start too), in position order, at most `limit`.
    /// Never an event of another namespace; empty for a namespace without
    /// events.
    async fn read_log(
        &self,
        namespace: &Namespace,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Position of the last event in the log of `namespace`; 0 when it has
    /// none.
    async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError>;

    /// The bytes the events of `namespace` take in the store: at least the
    /// sum of their payloads (a backend may count its own framing too, as
    /// JetStream does); 0 for a namespace without events; never another
    /// namespace's. What a namespace's `max_stored_event_bytes` quota is
    /// checked against (snapshots, which replace each other, are not
    /// counted).
    async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError>;

    /// Stores a snapshot, replacing an older one for the same stream and
    /// snapshot key (a snapshot never goes backwards: one with a lower
    /// version than the stored one is ignored; an equal version replaces).
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;

    /// The newest snapshot of a stream made by a component with the given
    /// snapshot key.
    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_key: &str,
    ) -> Result<Option<Snapshot>, StoreError>;

    /// Whether appends go through now (readiness). A backend that lost
    /// writes to an I/O error tries to recover here (the embedded store
    /// reopens its file) and answers [`StoreError::Unavailable`] while it
    /// cannot write. By default: yes.
    async fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A follower of `namespace`'s log from position `after + 1` on: every
    /// event stored in the namespace by any process sharing this store,
    /// in position order, history first, then each new event as it is
    /// stored. `None` (the default) when this backend has no such feed:
    /// its events are stored only through this process, whose bus carries
    /// them (a catch-up subscription then reads the log and follows the
    /// bus). The JetStream store follows the namespace's stream, so events
    /// cross NATS once.
    async fn follow_log(
        &self,
        namespace: &Namespace,
        after: u64,
    ) -> Result<Option<Box<dyn LogFollower>>, StoreError> {
        let _ = (namespace, after);
        Ok(None)
    }
}

/// Where [`EventStore::start_append`] hands what became of an append.
pub type AppendThen = Box<dyn FnOnce(AppendStep) + Send>;

/// What became of an append given to [`EventStore::start_append`].
pub enum AppendStep {
    /// Carried out: its outcome.
    Done(Result<AppendOutcome, AppendError>),
    /// Not started: append it with [`EventStore::append`].
    Deferred(AppendRequest),
}

/// Follows one namespace's log as it grows ([`EventStore::follow_log`]).
#[async_trait::async_trait]
pub trait LogFollower: Send + Sync {
    /// The next event of the log (the position after the previous one),
    /// waiting for it to be stored. A follower rides out a backend that is
    /// unreachable for a while (it waits and keeps its place); an error
    /// means the log cannot be followed truthfully (e.g. it skipped a
    /// position) and the follower is done.
    async fn next(&mut self) -> Result<RecordedEvent, StoreError>;
}

#[async_trait::async_trait]
impl<S: EventStore + ?Sized> EventStore for Arc<S> {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        (**self).append(request).await
    }

    fn start_append(&self, request: AppendRequest, then: AppendThen) {
        (**self).start_append(request, then)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).read_stream(stream, from_version, limit).await
    }

    async fn read_replay_batch(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<ReplayBatch, StoreError> {
        (**self)
            .read_replay_batch(stream, from_version, limit)
            .await
    }

    fn replay_read_ahead(&self) -> usize {
        (**self).replay_read_ahead()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        (**self).stream_version(stream).await
    }

    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        (**self).command_events(stream, command_id).await
    }

    async fn read_log(
        &self,
        namespace: &Namespace,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        (**self).read_log(namespace, from_position, limit).await
    }

    async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        (**self).head_position(namespace).await
    }

    async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        (**self).stored_bytes(namespace).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        (**self).save_snapshot(snapshot).await
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_key: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        (**self).load_snapshot(stream, snapshot_key).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        (**self).check_writable().await
    }

    async fn follow_log(
        &self,
        namespace: &Namespace,
        after: u64,
    ) -> Result<Option<Box<dyn LogFollower>>, StoreError> {
        (**self).follow_log(namespace, after).await
    }
}
