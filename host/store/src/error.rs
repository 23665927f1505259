//! Errors of store operations, each variant documented with what the caller
//! should do about it.

pub use aether_core::event::VersionConflict;

/// Why an [`EventStore::append`](super::EventStore::append) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
// Exhaustive on purpose: the layers above match every variant (the
// node gives each its own answer), so a new one must be handled there.
pub enum AppendError {
    /// Another writer appended first (optimistic concurrency). Reload and
    /// decide again, or report the conflict to the user (HTTP 409).
    #[error(transparent)]
    Conflict(#[from] VersionConflict),
    /// The request itself is malformed (e.g. it has no events). Fix the
    /// request; sending it again unchanged fails again (HTTP 400).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The backend failed; see [`StoreError`] for what to do. The append may or
    /// may not have been recorded: retry it with the same command id, which is
    /// idempotent.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppendError {
    /// The version conflict, if this is one.
    pub fn as_conflict(&self) -> Option<&VersionConflict> {
        match self {
            AppendError::Conflict(conflict) => Some(conflict),
            _ => None,
        }
    }
}

/// A failure of the storage backend itself, independent of the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached or refused the operation for now (server
    /// down, no quorum, disk full, timeout). Retry later with backoff; report
    /// HTTP 503 meanwhile.
    #[error("the {backend} event store is unavailable: {message}: retry later")]
    Unavailable {
        /// Which backend (e.g. `"memory"`, `"redb"`, `"jetstream"`).
        backend: &'static str,
        /// What went wrong, from the backend.
        message: String,
    },
    /// Stored data is damaged or violates the store's invariants (e.g. a gap in
    /// a stream's versions). Stop serving the affected data and restore from a
    /// backup; never work around it, since replaying damaged history would give
    /// wrong state.
    #[error(
        "the event store is corrupt at {location}: {message}: stop serving it and restore from a backup"
    )]
    Corrupt {
        /// Where the damage was found (file, key, stream or position).
        location: String,
        /// What was expected and what was found.
        message: String,
    },
}
