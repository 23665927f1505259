//! Host bindings generated from the canonical WIT package in `wit/`.
//!
//! Kept private to the runtime: callers see the runtime's own types, so the
//! generated names can change with the WIT without touching the public API.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "aggregate-component",
    // Events and commands are lent to the guest, not copied first: replay
    // hands over large batches.
    ownership: Borrowing { duplicate_if_necessary: false },
});

pub(crate) use aether::aggregate::log;
pub(crate) use aether::aggregate::types::{Command, Event, NewEvent};
