//! The Aether host: event-sourced aggregates as WebAssembly components.
//!
//! Each aggregate's domain logic is a component (any language that targets
//! `wasm32-wasip2`, through the WIT package in `wit/`). The host stores its
//! events, detects concurrent writes, keeps tenants apart, and derives the
//! aggregate's state by replaying its events into the component.
//!
//! ```no_run
//! use std::sync::Arc;
//! use aether_host::runtime::{CommandRequest, Runtime, RuntimeConfig, stream_id};
//! use aether_host::store::MemoryStore;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let runtime = Runtime::new(Arc::new(MemoryStore::new()), RuntimeConfig::default())?;
//! let account = stream_id("bank", "bank-account", "acc-1")?;
//! let component = std::fs::read("target/wasm32-wasip2/release/bank_account.wasm")?;
//! runtime.deploy(&account.namespace, &account.aggregate_type, component).await?;
//!
//! let data = serde_json::json!({ "owner": "Ada" });
//! let outcome = runtime.execute(CommandRequest::json(account.clone(), "Open", &data)).await?;
//! assert_eq!(outcome.version, 1);
//! println!("{}", runtime.state(&account).await?.view);
//! # Ok(())
//! # }
//! ```
//!
//! One module per bounded context: [`store`] (Event Sourcing and the
//! Optimistic Concurrency contract), [`namespace`] (Namespace Isolation),
//! [`runtime`] (Aggregate Runtime), [`cluster`] (Cluster Coordination) and
//! [`bus`] (Event Bus). [`node`] is the HTTP node (`aether serve`) that hosts
//! tenants on them. `ARCHITECTURE.md` maps them.

#![warn(missing_docs)]

pub mod bus;
pub mod cluster;
pub mod namespace;
pub mod node;
pub mod runtime;
pub mod store;
