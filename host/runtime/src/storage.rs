//! A namespace's stored event bytes, checked against its
//! `max_stored_event_bytes` quota before every append.
//!
//! Asking the store on every command would add a read to the hot path, so
//! each lane keeps the figure it last read ([`EventStore::stored_bytes`])
//! and adds what its own appends store; the figure is read again when it is
//! older than [`REFRESH`], which also picks up what other nodes of a
//! cluster appended. A command reads the figure before it is decided and
//! its partition job checks it where it starts the append (`command.rs`).
//!
//! **Invariant:** a command whose events would take the namespace past its
//! quota (as last counted) is refused before anything is stored. The quota
//! is soft by design: commands checked at the same time, or on other nodes
//! within one [`REFRESH`], may each pass and together go past it by at most
//! their own sizes; after that every command is refused until the quota is
//! raised.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::CommandError;
use aether_core::namespace::Namespace;
use aether_store::EventStore;

/// How old the stored figure may be before the store is asked again.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// One namespace's stored event bytes, as last counted.
#[derive(Debug, Default)]
pub(crate) struct StoredBytes {
    counted: Mutex<Option<Counted>>,
}

#[derive(Debug, Clone, Copy)]
struct Counted {
    bytes: u64,
    read_at: Instant,
}

impl StoredBytes {
    /// Refuses `adding` more bytes if the namespace, at `stored` bytes (as
    /// [`StoredBytes::current`] counted them), would go past `limit`.
    pub(crate) fn check(
        namespace: &Namespace,
        stored: u64,
        adding: u64,
        limit: u64,
    ) -> Result<(), CommandError> {
        if stored.saturating_add(adding) > limit {
            return Err(CommandError::StorageQuotaExceeded {
                namespace: namespace.clone(),
                stored,
                adding,
                limit,
            });
        }
        Ok(())
    }

    /// Counts `bytes` just stored by this node.
    pub(crate) fn add(&self, bytes: u64) {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counted) = counted.as_mut() {
            counted.bytes = counted.bytes.saturating_add(bytes);
        }
    }

    /// The figure, read from the store again if it is older than
    /// [`REFRESH`]. A failed read falls back on the last figure, if any.
    pub(crate) async fn current(
        &self,
        store: &dyn EventStore,
        namespace: &Namespace,
    ) -> Result<u64, CommandError> {
        let last = *self.counted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = last
            && last.read_at.elapsed() < REFRESH
        {
            return Ok(last.bytes);
        }
        match store.stored_bytes(namespace).await {
            Ok(bytes) => {
                let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
                *counted = Some(Counted {
                    bytes,
                    read_at: Instant::now(),
                });
                Ok(bytes)
            }
            Err(_) if last.is_some() => Ok(last.map_or(0, |l| l.bytes)),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_store::{
        AppendRequest, EventMetadata, ExpectedVersion, MemoryStore, NewEvent, StreamId,
    };

    async fn append(store: &MemoryStore, bytes: usize) {
        let stream = StreamId::new(
            "bank".parse().unwrap(),
            "account".parse().unwrap(),
            "a-1".parse().unwrap(),
        );
        store
            .append(AppendRequest {
                stream,
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::json("happened", vec![b'1'; bytes])],
                metadata: EventMetadata::default(),
                timestamp_ms: 1,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_command_that_would_pass_the_quota_is_refused() {
        let (store, stored) = (MemoryStore::new(), StoredBytes::default());
        let bank: Namespace = "bank".parse().unwrap();
        append(&store, 60).await;
        let counted = stored.current(&store, &bank).await.unwrap();
        StoredBytes::check(&bank, counted, 40, 100).unwrap();
        stored.add(40);
        let counted = stored.current(&store, &bank).await.unwrap();
        let refused = StoredBytes::check(&bank, counted, 1, 100).unwrap_err();
        assert!(
            matches!(
                refused,
                CommandError::StorageQuotaExceeded {
                    stored: 100,
                    adding: 1,
                    limit: 100,
                    ..
                }
            ),
            "{refused:?}"
        );
    }
}
