//! Host bindings generated from the WIT packages in `wit/`: the current
//! `aether:aggregate@0.2.0` (`wit/aggregate.wit`) and the frozen 0.1.0
//! (`wit/deps/aggregate-0.1.0/`), which the host keeps serving.
//!
//! The two differ only in `apply`: 0.1.0 takes a `list<event>`, 0.2.0 one
//! `event-batch` buffer ([`aether_store::EventBatch`]). The rest of the runtime uses
//! 0.2.0's records; [`super::instance`] converts at a 0.1.0 component's
//! boundary.
//!
//! Kept private to the runtime: callers see the runtime's own types, so the
//! generated names can change with the WIT without touching the public API.

/// `aether:aggregate@0.2.0`, the version the Rust SDK targets.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aether:aggregate/aggregate-component@0.2.0",
        // Commands and batches are lent to the guest, not copied first.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

/// `aether:aggregate@0.1.0`, frozen: a batch is a `list<event>`.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aether:aggregate/aggregate-component@0.1.0",
        // Events and commands are lent to the guest, not copied first:
        // replay hands over large batches.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

pub(crate) use v2::aether::aggregate0_2_0::types::NewEvent;
