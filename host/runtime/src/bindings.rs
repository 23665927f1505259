//! Host bindings generated from the WIT packages in `wit/`: the current
//! `aether:aggregate@0.4.0` (`wit/aggregate.wit`) and the frozen 0.3.0,
//! 0.2.0 and 0.1.0 (`wit/deps/`), which the host keeps serving.
//!
//! 0.4.0 carries out a command in one call (`execute`: decide and apply)
//! and hands the decided events back as one buffer in the batch layout;
//! 0.3.0 does the same with a `command` record in and a `list<new-event>`
//! out; 0.2.0 decides with `handle` and the host applies with `apply`;
//! 0.1.0 also takes `apply`'s batch as a `list<event>` instead of one
//! buffer ([`aether_store::EventBatch`]). The rest of the runtime uses
//! 0.3.0's `new-event` record for a decided event; [`super::instance`]
//! converts at every other version's boundary.
//!
//! Kept private to the runtime: callers see the runtime's own types, so the
//! generated names can change with the WIT without touching the public API.

/// `aether:aggregate@0.4.0`, the current version.
pub(crate) mod v4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aether:aggregate/aggregate-component@0.4.0",
        // The command's strings and data are lent to the guest, not copied
        // first; the decision comes back owned.
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

/// `aether:aggregate@0.3.0`, frozen: `execute` takes a `command` record
/// and gives a `list<new-event>`.
pub(crate) mod v3 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aether:aggregate/aggregate-component@0.3.0",
        // Batches are lent to the guest as slices either way. Borrowing
        // mode (which would lend the command's strings too) does not
        // compile here: wasmtime 48's bindgen gives `decision`, a record
        // returned by `execute` that holds `new-event` records, a lifetime
        // it never declares. So a command is copied into owned strings.
        ownership: Owning,
    });
}

/// `aether:aggregate@0.2.0`, frozen: `handle` decides, `apply` applies.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aether:aggregate/aggregate-component@0.2.0",
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

pub(crate) use v3::aether::aggregate0_3_0::types::NewEvent;
