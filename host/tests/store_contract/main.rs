//! Runs the shared event store contract against every backend.

mod memory_store {
    aether_store::store_contract_tests!(|| async { aether_host::store::MemoryStore::new() });
}

/// The async-block form of the macro, with the store behind an `Arc<dyn EventStore>`.
mod shared_memory_store {
    use std::sync::Arc;

    use aether_host::store::{EventStore, MemoryStore};

    aether_store::store_contract_tests!(async {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        store
    });
}

/// A store with something that must outlive it (its directory, its
/// servers): fields drop in order, so the store closes first.
mod keeping {
    use std::sync::Arc;

    use aether_host::namespace::Namespace;
    use aether_host::store::{
        AppendError, AppendOutcome, AppendRequest, EventStore, RecordedEvent, ReplayBatch,
        Snapshot, StoreError, StreamId,
    };

    pub(crate) struct Keeping<G> {
        pub(crate) store: Arc<dyn EventStore>,
        pub(crate) _guard: G,
    }

    #[async_trait::async_trait]
    impl<G: Send + Sync + 'static> EventStore for Keeping<G> {
        async fn follow_log(
            &self,
            namespace: &Namespace,
            after: u64,
        ) -> Result<Option<Box<dyn aether_host::store::LogFollower>>, StoreError> {
            self.store.follow_log(namespace, after).await
        }

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

        async fn read_replay_batch(
            &self,
            stream: &StreamId,
            from_version: u64,
            limit: usize,
        ) -> Result<ReplayBatch, StoreError> {
            self.store
                .read_replay_batch(stream, from_version, limit)
                .await
        }

        fn replay_read_ahead(&self) -> usize {
            self.store.replay_read_ahead()
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

        async fn read_log(
            &self,
            namespace: &Namespace,
            from_position: u64,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.store.read_log(namespace, from_position, limit).await
        }

        async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError> {
            self.store.head_position(namespace).await
        }

        async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
            self.store.stored_bytes(namespace).await
        }

        async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
            self.store.save_snapshot(snapshot).await
        }

        async fn load_snapshot(
            &self,
            stream: &StreamId,
            snapshot_key: &str,
        ) -> Result<Option<Snapshot>, StoreError> {
            self.store.load_snapshot(stream, snapshot_key).await
        }
    }
}

/// The durable redb store, each case in a fresh temporary directory that is
/// removed once the store is closed.
mod embedded_store {
    use std::sync::Arc;

    use aether_host::store::EmbeddedStore;

    use crate::keeping::Keeping;

    aether_store::store_contract_tests!(|| async {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = EmbeddedStore::open(dir.path().join("store"))
            .unwrap_or_else(|error| panic!("open a new embedded store: {error}"));
        Keeping {
            store: Arc::new(store),
            _guard: dir,
        }
    });
}

/// The JetStream store on a real single `nats-server` (R1), each case on
/// a server of its own.
mod jetstream_single_node {
    use std::sync::Arc;

    use aether_host::store::{JetStreamConfig, JetStreamStore};
    use aether_nats_harness::NatsServer;

    use crate::keeping::Keeping;

    aether_store::store_contract_tests!(|| async {
        let server = NatsServer::start();
        let store = JetStreamStore::connect(JetStreamConfig::new(vec![server.url()], 1))
            .await
            .unwrap_or_else(|error| panic!("connect the JetStream store: {error}"));
        Keeping {
            store: Arc::new(store),
            _guard: server,
        }
    });
}

/// The JetStream store on a real 3-node cluster with R3 streams, each case
/// on a cluster of its own.
mod jetstream_three_nodes {
    use std::sync::Arc;

    use aether_host::store::{JetStreamConfig, JetStreamStore};
    use aether_nats_harness::NatsCluster;

    use crate::keeping::Keeping;

    aether_store::store_contract_tests!(|| async {
        let cluster = NatsCluster::start(3);
        let store = JetStreamStore::connect(JetStreamConfig::new(cluster.urls(), 3))
            .await
            .unwrap_or_else(|error| panic!("connect the JetStream store: {error}"));
        Keeping {
            store: Arc::new(store),
            _guard: cluster,
        }
    });
}

mod jetstream_commands;
mod jetstream_event_layouts;
mod jetstream_follow;
mod jetstream_layout;
mod jetstream_reads;
