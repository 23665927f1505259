//! The redb tables of the embedded store and the keys they use.
//!
//! Every table is created when a store is first opened, so readers never meet
//! a missing table. Keys name streams by [`aether_core::namespace::layout::stream_key`]; the values that carry
//! event and snapshot data are checksummed records (see [`super::codec`]).

use redb::TableDefinition;

/// The on-disk format this build reads and writes, stored under
/// [`FORMAT_VERSION_KEY`] in [`META`]. Bump it whenever a table or record
/// layout changes; a store with another version refuses to open.
///
/// History: 1 had one global log (the event record's position was global);
/// 2 gives each namespace its own log ([`NAMESPACE_LOG`], and the record
/// carries both the log sequence and the namespace position); 3 writes
/// event records of record version 3 (a CRC-32 instead of a truncated
/// blake3; the tables are those of 2); 4 commits through the journal
/// `events.journal` (`super::journal`): the data file alone may lack the
/// batches since the last checkpoint, which only a build that replays the
/// journal must open (the tables are those of 2).
///
/// A file of format 2 or 3 is still read: its event records (of record
/// version 2 or 3) are, and the open stamps it 4 before anything is
/// appended ([`FORMAT_VERSIONS_READ`]), so a build that reads only an older
/// format refuses it by its version instead of misreading it.
pub(super) const FORMAT_VERSION: u64 = 4;

/// The older format versions that opening converts, in place, by stamping
/// [`FORMAT_VERSION`]: nothing else in the file changes.
pub(super) const FORMAT_VERSIONS_READ: [u64; 2] = [2, 3];

/// The [`META`] key of the format version.
pub(super) const FORMAT_VERSION_KEY: &str = "format_version";

/// Every event of every namespace, in commit order: log sequence → event
/// record. The sequence is internal (1, 2, 3… across the store, gapless);
/// it is not the position an event is served with.
pub(super) const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("events");

/// Each namespace's log: (namespace, position) → log sequence.
pub(super) const NAMESPACE_LOG: TableDefinition<'static, (&str, u64), u64> =
    TableDefinition::new("namespace_log");

/// Per-stream index: (stream key, version) → log sequence.
pub(super) const STREAM_INDEX: TableDefinition<'static, (&str, u64), u64> =
    TableDefinition::new("stream_index");

/// Stream heads: stream key → the stream's version (its last event's).
pub(super) const STREAM_HEADS: TableDefinition<'static, &str, u64> =
    TableDefinition::new("stream_heads");

/// Idempotency: (stream key, command id) → (first version, last version) of
/// the events the command recorded.
pub(super) const COMMANDS: TableDefinition<'static, (&str, &str), (u64, u64)> =
    TableDefinition::new("commands");

/// Snapshots: (stream key, component digest) → snapshot record.
pub(super) const SNAPSHOTS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("snapshots");

/// Each namespace's stored payload bytes: namespace → bytes (what its
/// `max_stored_event_bytes` quota is checked against). Written with the
/// events, in the same transaction. Added to format 2 later: a store
/// without it gets it, counted from its events, when first opened.
pub(super) const NAMESPACE_BYTES: TableDefinition<'static, &str, u64> =
    TableDefinition::new("namespace_bytes");

/// Store-wide settings: name → value.
pub(super) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// The [`META`] key of the number of the last batch the durable file holds
/// (see `super::journal`): the journal's entries continue from the next.
pub(super) const JOURNAL_LSN_KEY: &str = "journal_lsn";

/// The [`META`] key of the journal's current generation: a random number
/// drawn at each checkpoint, which every entry written after it carries.
pub(super) const JOURNAL_GENERATION_KEY: &str = "journal_generation";

/// The names of all tables, for telling an Aether store from another redb file.
pub(super) const TABLE_NAMES: [&str; 8] = [
    "events",
    "namespace_bytes",
    "namespace_log",
    "stream_index",
    "stream_heads",
    "commands",
    "snapshots",
    "meta",
];

pub(crate) use aether_core::namespace::layout::{parse_stream_key, stream_key};
