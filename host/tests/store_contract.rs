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
