//! The Aether host, as one crate: it re-exports the crates of the bounded
//! contexts under their old module names, for the `aether` binary, its tests
//! and the benchmarks. A program that embeds Aether depends on the crates it
//! needs instead (`aether-runtime` and `aether-store` for the runtime on the
//! embedded store; see `examples/embedded` and README.md).
//!
//! | module | crate | context |
//! |---|---|---|
//! | [`namespace`] | `aether-core` | names, the event envelope, the clock |
//! | [`store`] | `aether-store` | Event Sourcing, Optimistic Concurrency |
//! | [`runtime`] | `aether-runtime` | Aggregate Runtime |
//! | [`bus`] | `aether-bus` | Event Bus |
//! | [`cluster`] | `aether-cluster` | Cluster Coordination |
//! | [`node`] | `aether-node` | the HTTP node (`aether serve`) |
//!
//! `ARCHITECTURE.md` maps them and the layering between them.

#![warn(missing_docs)]

pub use aether_bus as bus;
pub use aether_cluster as cluster;
pub use aether_core::namespace;
pub use aether_node as node;
pub use aether_runtime as runtime;
pub use aether_service as service;
pub use aether_store as store;
