//! Helpers shared by the integration tests: a runtime on a store, the test
//! components, and names.

use std::sync::Arc;

use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::runtime::{
    CommandError, CommandOutcome, CommandRequest, Runtime, RuntimeConfig, SandboxLimits,
};
use aether_host::store::{EventStore, MemoryStore, StreamId};
use serde_json::Value;

pub use aether_test_artifacts as artifacts;

/// A runtime on a fresh in-memory store.
pub fn memory_runtime(config: RuntimeConfig) -> Runtime {
    runtime_on(Arc::new(MemoryStore::new()), config)
}

/// A runtime on the given store.
pub fn runtime_on(store: Arc<dyn EventStore>, config: RuntimeConfig) -> Runtime {
    Runtime::new(store, config).expect("runtime starts")
}

/// A small configuration for tests: two partitions, short deadlines.
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        partitions: 2,
        limits: SandboxLimits {
            call_deadline: std::time::Duration::from_millis(500),
            memory_bytes: 64 << 20,
            ..SandboxLimits::default()
        },
        max_instances: 64,
        ..RuntimeConfig::default()
    }
}

/// Reads a built component.
pub fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading component {path}: {e}"))
}

/// Deploys the component at `path` for `aggregate_type` in `namespace`.
pub async fn deploy(runtime: &Runtime, namespace: &str, aggregate_type: &str, path: &str) {
    runtime
        .deploy(
            &Namespace::new(namespace).unwrap(),
            &AggregateType::new(aggregate_type).unwrap(),
            component(path),
        )
        .await
        .unwrap_or_else(|e| panic!("deploying {path}: {e}"));
}

/// A stream id from valid names.
pub fn stream(namespace: &str, aggregate_type: &str, id: &str) -> StreamId {
    StreamId::new(
        Namespace::new(namespace).unwrap(),
        AggregateType::new(aggregate_type).unwrap(),
        AggregateId::new(id).unwrap(),
    )
}

/// Sends a JSON command.
pub async fn send(
    runtime: &Runtime,
    stream: &StreamId,
    command: &str,
    data: Value,
) -> Result<CommandOutcome, CommandError> {
    runtime
        .execute(CommandRequest::json(stream.clone(), command, &data))
        .await
}
