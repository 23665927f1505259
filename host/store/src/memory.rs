//! [`MemoryStore`]: the in-process reference backend, for tests and examples.
//!
//! Everything sits behind one `std::sync::Mutex`, held only for the duration of
//! a map lookup or a push and never across an `.await`, so an append's
//! version check and its write are one critical section: that is how this
//! backend keeps the "exactly one of N writers wins" invariant. Nothing is
//! durable; the data is gone when the store is dropped.

use crate::request::AppendRequestExt;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    AppendError, AppendOutcome, AppendRequest, EventStore, RecordedEvent, Snapshot, StoreError,
    StreamId,
};
use aether_core::namespace::Namespace;

/// An [`EventStore`] kept in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each namespace's log; the event at index `i` has position `i + 1`.
    logs: HashMap<Namespace, Vec<RecordedEvent>>,
    streams: HashMap<StreamId, StreamState>,
    /// Each namespace's payload bytes ([`EventStore::stored_bytes`]).
    bytes: HashMap<Namespace, u64>,
}

#[derive(Default)]
struct StreamState {
    /// Indices in the namespace's log of the stream's events; index `v - 1`
    /// holds version `v`.
    events: Vec<usize>,
    /// Command id → log indices of the events it appended (an append is
    /// contiguous in its namespace's log because it happens under the lock).
    commands: HashMap<String, std::ops::Range<usize>>,
    /// Component digest → newest snapshot.
    snapshots: HashMap<String, Snapshot>,
}

impl StreamState {
    fn version(&self) -> u64 {
        self.events.len() as u64
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A panic elsewhere while holding the lock cannot leave the state half
    /// written (every mutation is a push after all checks passed), so a
    /// poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("events", &state.logs.values().map(Vec::len).sum::<usize>())
            .field("streams", &state.streams.len())
            .finish()
    }
}

fn corrupt(location: impl fmt::Display, index: usize) -> StoreError {
    StoreError::Corrupt {
        location: location.to_string(),
        message: format!("the index points at log entry {index}, which does not exist"),
    }
}

/// The event at `index` of the log of `stream`'s namespace.
fn fetch(
    logs: &HashMap<Namespace, Vec<RecordedEvent>>,
    index: usize,
    stream: &StreamId,
) -> Result<RecordedEvent, StoreError> {
    logs.get(&stream.namespace)
        .and_then(|log| log.get(index))
        .cloned()
        .ok_or_else(|| corrupt(stream, index))
}

/// Clamps a 1-based start to a 0-based index.
fn start_index(from: u64) -> usize {
    usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX)
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.check()?;
        let mut guard = self.lock();
        let State {
            logs,
            streams,
            bytes,
        } = &mut *guard;
        let current = match streams.get(&request.stream) {
            None => 0,
            Some(stream) => {
                let previous = request
                    .metadata
                    .command_id
                    .as_ref()
                    .and_then(|command_id| stream.commands.get(command_id));
                if let Some(range) = previous {
                    let events = range
                        .clone()
                        .map(|index| fetch(logs, index, &request.stream))
                        .collect::<Result<_, _>>()?;
                    return Ok(AppendOutcome {
                        events,
                        duplicate: true,
                    });
                }
                stream.version()
            }
        };
        request.expected.check(&request.stream, current)?;

        let namespace = request.stream.namespace.clone();
        let log = logs.entry(namespace.clone()).or_default();
        let first = log.len();
        let command_id = request.metadata.command_id.clone();
        let stream = streams.entry(request.stream.clone()).or_default();
        let recorded = request.record(current, first as u64);
        log.extend(recorded.iter().cloned());
        stream.events.extend(first..log.len());
        *bytes.entry(namespace).or_default() +=
            recorded.iter().map(|e| e.data.len() as u64).sum::<u64>();
        if let Some(command_id) = command_id {
            stream.commands.insert(command_id, first..log.len());
        }
        Ok(AppendOutcome {
            events: recorded,
            duplicate: false,
        })
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let Some(events) = state.streams.get(stream).map(|s| &s.events) else {
            return Ok(Vec::new());
        };
        events
            .iter()
            .skip(start_index(from_version))
            .take(limit)
            .map(|&index| fetch(&state.logs, index, stream))
            .collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .streams
            .get(stream)
            .map_or(0, StreamState::version))
    }

    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let state = self.lock();
        let Some(range) = state
            .streams
            .get(stream)
            .and_then(|s| s.commands.get(command_id))
        else {
            return Ok(None);
        };
        range
            .clone()
            .map(|index| fetch(&state.logs, index, stream))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn read_log(
        &self,
        namespace: &Namespace,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let Some(log) = state.logs.get(namespace) else {
            return Ok(Vec::new());
        };
        Ok(log
            .iter()
            .skip(start_index(from_position))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        Ok(self.lock().logs.get(namespace).map_or(0, Vec::len) as u64)
    }

    async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        Ok(self.lock().bytes.get(namespace).copied().unwrap_or(0))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut state = self.lock();
        let snapshots = &mut state
            .streams
            .entry(snapshot.stream.clone())
            .or_default()
            .snapshots;
        match snapshots.get(&snapshot.snapshot_key) {
            Some(stored) if stored.version > snapshot.version => {}
            _ => {
                snapshots.insert(snapshot.snapshot_key.clone(), snapshot);
            }
        }
        Ok(())
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_key: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .lock()
            .streams
            .get(stream)
            .and_then(|s| s.snapshots.get(snapshot_key))
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{EventMetadata, ExpectedVersion, NewEvent};

    fn request(expected: ExpectedVersion) -> AppendRequest {
        AppendRequest {
            stream: StreamId::new(
                "bank".parse().unwrap(),
                "bank-account".parse().unwrap(),
                "acc-1".parse().unwrap(),
            ),
            expected,
            events: vec![NewEvent::json("opened", b"{}".to_vec())],
            metadata: EventMetadata::default(),
            timestamp_ms: 1,
        }
    }

    #[tokio::test]
    async fn keeps_working_after_a_panic_poisoned_the_lock() {
        let store = Arc::new(MemoryStore::new());
        store
            .append(request(ExpectedVersion::Exact(0)))
            .await
            .unwrap();
        let poisoner = Arc::clone(&store);
        let panicked = std::thread::spawn(move || {
            let _guard = poisoner.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(store.state.is_poisoned());

        let outcome = store
            .append(request(ExpectedVersion::Exact(1)))
            .await
            .unwrap();
        assert_eq!(outcome.last_version(), 2);
        let bank = "bank".parse().unwrap();
        assert_eq!(store.head_position(&bank).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_conflict_creates_no_stream_entry() {
        let store = MemoryStore::new();
        let error = store
            .append(request(ExpectedVersion::Exact(3)))
            .await
            .unwrap_err();
        assert!(error.as_conflict().is_some());
        assert!(store.lock().streams.is_empty());
        assert!(store.lock().logs.is_empty());
        assert_eq!(
            format!("{store:?}"),
            "MemoryStore { events: 0, streams: 0 }"
        );
    }
}
