//! The redb tables of the embedded store and the keys they use.
//!
//! Every table is created when a store is first opened, so readers never meet
//! a missing table. Keys name streams by [`stream_key`]; the values that carry
//! event and snapshot data are checksummed records (see [`super::codec`]).

use redb::TableDefinition;

use crate::store::StreamId;

/// The on-disk format this build reads and writes, stored under
/// [`FORMAT_VERSION_KEY`] in [`META`]. Bump it whenever a table or record
/// layout changes; a store with another version refuses to open.
pub(super) const FORMAT_VERSION: u64 = 1;

/// The [`META`] key of the format version.
pub(super) const FORMAT_VERSION_KEY: &str = "format_version";

/// The global log: position → event record.
pub(super) const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("events");

/// Per-stream index: (stream key, version) → position.
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

/// Store-wide settings: name → value.
pub(super) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// The names of all tables, for telling an Aether store from another redb file.
pub(super) const TABLE_NAMES: [&str; 6] = [
    "events",
    "stream_index",
    "stream_heads",
    "commands",
    "snapshots",
    "meta",
];

/// The key of a stream in every table: `namespace/aggregate-type/aggregate-id`.
///
/// Unambiguous because validated names never contain `/` (see
/// [`crate::namespace`]), and it sorts all of one namespace's streams together.
pub(crate) fn stream_key(stream: &StreamId) -> String {
    stream.to_string()
}

/// The stream a [`stream_key`] names; `None` if it names none.
pub(super) fn parse_stream_key(key: &str) -> Option<StreamId> {
    let mut parts = key.split('/');
    let stream = StreamId::new(
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_are_the_display_form() {
        let stream = StreamId::new(
            "bank".parse().unwrap(),
            "bank-account".parse().unwrap(),
            "acc-1".parse().unwrap(),
        );
        assert_eq!(stream_key(&stream), "bank/bank-account/acc-1");
        assert_eq!(parse_stream_key("bank/bank-account/acc-1"), Some(stream));
        for bad in [
            "bank/bank-account",
            "bank/bank-account/acc-1/x",
            "Bank/a/b",
            "",
        ] {
            assert_eq!(parse_stream_key(bad), None, "{bad:?}");
        }
    }
}
