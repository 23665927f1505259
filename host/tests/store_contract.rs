//! Runs the shared event store contract against every backend.

mod memory_store {
    aether_host::store_contract_tests!(|| async { aether_host::store::MemoryStore::new() });
}

/// The async-block form of the macro, with the store behind an `Arc<dyn EventStore>`.
mod shared_memory_store {
    use std::sync::Arc;

    use aether_host::store::{EventStore, MemoryStore};

    aether_host::store_contract_tests!(async {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        store
    });
}

/// The durable redb store, each case in a fresh temporary directory that is
/// removed once the store is closed.
mod embedded_store {
    use aether_host::store::{
        AppendError, AppendOutcome, AppendRequest, EmbeddedStore, EventStore, RecordedEvent,
        Snapshot, StoreError, StreamId,
    };
    use tempfile::TempDir;

    aether_host::store_contract_tests!(|| async { InTempDir::new() });

    /// An [`EmbeddedStore`] that owns its directory. Fields drop in order, so
    /// the store is closed before the directory is deleted.
    struct InTempDir {
        store: EmbeddedStore,
        _dir: TempDir,
    }

    impl InTempDir {
        fn new() -> InTempDir {
            let dir = tempfile::tempdir().expect("create a temporary directory");
            let store = EmbeddedStore::open(dir.path().join("store"))
                .unwrap_or_else(|error| panic!("open a new embedded store: {error}"));
            InTempDir { store, _dir: dir }
        }
    }

    #[async_trait::async_trait]
    impl EventStore for InTempDir {
        async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
            self.store.append(request).await
        }

        async fn read_stream(
            &self,
            stream: &StreamId,
            from_version: u64,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.store.read_stream(stream, from_version, limit).await
        }

        async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
            self.store.stream_version(stream).await
        }

        async fn command_events(
            &self,
            stream: &StreamId,
            command_id: &str,
        ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
            self.store.command_events(stream, command_id).await
        }

        async fn read_all(
            &self,
            from_position: u64,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.store.read_all(from_position, limit).await
        }

        async fn head_position(&self) -> Result<u64, StoreError> {
            self.store.head_position().await
        }

        async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
            self.store.save_snapshot(snapshot).await
        }

        async fn load_snapshot(
            &self,
            stream: &StreamId,
            component_digest: &str,
        ) -> Result<Option<Snapshot>, StoreError> {
            self.store.load_snapshot(stream, component_digest).await
        }
    }
}
