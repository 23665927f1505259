//! What can go wrong on the command path, in terms a caller can act on.

use std::fmt;

use aether_core::namespace::{AggregateType, InvalidName, Namespace};
use aether_store::{StoreError, VersionConflict};

use super::component::LoadError;

/// A business decision not to carry out a command, made by the aggregate.
/// Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// The aggregate's stable reason, e.g. `insufficient-funds`.
    pub code: String,
    /// The aggregate's message for a person.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How a guest failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestFailureKind {
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access).
    Trap,
    /// The call ran past its deadline (an endless loop, say).
    DeadlineExceeded,
    /// The guest tried to grow its memory past the instance's cap.
    MemoryLimit,
    /// The call used up its fuel.
    FuelExhausted,
    /// The guest could not apply a stored event.
    ApplyFailed,
    /// The component could not be instantiated.
    Instantiate,
}

/// A guest failure: the guest's instance was dropped and its aggregates
/// re-activate by replay on their next command; the host and every other
/// instance carry on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct GuestFailure {
    /// What kind of failure.
    pub kind: GuestFailureKind,
    /// What happened, as wasmtime or the guest reported it.
    pub message: String,
}

impl GuestFailure {
    pub(crate) fn new(kind: GuestFailureKind, message: String) -> Self {
        Self { kind, message }
    }

    /// Sorts a wasmtime error into a failure kind.
    pub(crate) fn classify(
        error: wasmtime::Error,
        memory_exceeded: bool,
        otherwise: GuestFailureKind,
    ) -> Self {
        let kind = if memory_exceeded {
            GuestFailureKind::MemoryLimit
        } else {
            match error.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => GuestFailureKind::DeadlineExceeded,
                Some(wasmtime::Trap::OutOfFuel) => GuestFailureKind::FuelExhausted,
                _ => otherwise,
            }
        };
        let message = match kind {
            GuestFailureKind::DeadlineExceeded => "the call ran past its deadline".to_string(),
            GuestFailureKind::FuelExhausted => "the call used up its fuel".to_string(),
            _ => format!("{error:#}"),
        };
        Self { kind, message }
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
// Exhaustive on purpose: the layers above match every variant (the
// node gives each its own answer), so a new one must be handled there.
pub enum CommandError {
    /// No component is deployed for this aggregate type in this namespace:
    /// deploy one, or fix the type's name (HTTP 404).
    #[error(
        "no component is deployed for aggregate type `{aggregate_type}` in namespace `{namespace}`"
    )]
    UnknownAggregateType {
        /// The namespace asked for.
        namespace: Namespace,
        /// The aggregate type asked for.
        aggregate_type: AggregateType,
    },
    /// A name in the request is invalid (HTTP 400).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The command itself is malformed: fix it before sending it again (HTTP 400).
    #[error("malformed command: {0}")]
    Malformed(String),
    /// The command's payload is larger than its namespace accepts
    /// (`max_command_bytes`); nothing was stored (HTTP 413).
    #[error("the command payload is {size} bytes, more than the namespace's {limit}-byte limit")]
    CommandTooLarge {
        /// The payload's size.
        size: usize,
        /// The namespace's limit.
        limit: usize,
    },
    /// The aggregate decided more events, or larger ones, than its
    /// namespace allows (`max_events_per_command`, `max_event_bytes`);
    /// nothing was stored.
    #[error("the component's decision exceeds the namespace's limits: {0}")]
    DecisionTooLarge(String),
    /// The aggregate's view is larger than its namespace allows a state
    /// read to return (`max_view_bytes`): raise the limit or make the
    /// component's view smaller (HTTP 422). The aggregate and its instance
    /// are unaffected.
    #[error(
        "the component's view is {size} bytes, more than the namespace's {limit}-byte limit (max_view_bytes)"
    )]
    ViewTooLarge {
        /// The view's size.
        size: usize,
        /// The namespace's limit.
        limit: usize,
    },
    /// The namespace has used up a quota (HTTP 429): retry later.
    #[error("namespace `{namespace}` is over its quota: {quota}")]
    QuotaExceeded {
        /// The namespace.
        namespace: Namespace,
        /// Which quota, in words.
        quota: String,
    },
    /// The command's events would take the namespace's stored event bytes
    /// past its `max_stored_event_bytes` quota; nothing was stored
    /// (HTTP 507). Retrying does not help until the quota is raised.
    #[error(
        "namespace `{namespace}` stores {stored} bytes of events; this command's {adding} more would pass its quota of {limit} bytes (max_stored_event_bytes): nothing was stored"
    )]
    StorageQuotaExceeded {
        /// The namespace.
        namespace: Namespace,
        /// Its stored event bytes, as last counted.
        stored: u64,
        /// The bytes the command's events would add.
        adding: u64,
        /// The namespace's quota.
        limit: u64,
    },
    /// The aggregate rejected the command; nothing was stored (HTTP 422).
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// The aggregate's version is not the one the caller expected, or
    /// another writer got there first. Nothing was stored; the host does not
    /// retry: read the aggregate again and decide again (HTTP 409).
    #[error(transparent)]
    Conflict(#[from] VersionConflict),
    /// The guest failed; nothing was stored for this command (HTTP 500).
    #[error("the aggregate's component failed: {0}")]
    Guest(#[from] GuestFailure),
    /// The event store failed (HTTP 503): retry later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime is shutting down (HTTP 503).
    #[error("the runtime is shutting down")]
    Stopped,
}

/// Why a component was not deployed. What was serving before keeps serving.
#[derive(Debug, thiserror::Error)]
// Exhaustive on purpose: the layers above match every variant (the
// node gives each its own answer), so a new one must be handled there.
pub enum DeployError {
    /// The component was refused; see [`LoadError`].
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The component is larger than the runtime accepts.
    #[error("component is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// The component's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}
