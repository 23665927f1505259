//! The full verification that [`EmbeddedStore::open`](super::EmbeddedStore::open)
//! runs before serving anything.
//!
//! redb's own integrity check (run by the open) proves that every page is the
//! one redb wrote; this proves that what redb holds is a consistent event
//! store: every event record's checksum, positions gapless from 1, every
//! stream's versions gapless from 1 in log order, the stream index pointing at
//! exactly those events, stream heads matching the index, command ids pointing
//! at stored versions, and every snapshot's checksum.
//!
//! Cost: one pass over every table, decoding and hashing every record; memory
//! is one `u64` per event (the positions of each stream) plus the stream keys.

use std::collections::HashMap;
use std::path::Path;

use redb::{ReadTransaction, ReadableTable};

use super::errors::{InFile, corrupt};
use super::tables::{
    COMMANDS, EVENTS, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX, parse_stream_key, stream_key,
};
use super::{codec, read};
use crate::store::StoreError;

/// What a successful verification saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verified {
    /// Events in the log (= the head position).
    pub(super) events: u64,
    /// Streams with at least one event.
    pub(super) streams: u64,
}

/// Verifies everything; the first inconsistency is the error.
pub(super) fn verify(path: &Path, txn: &ReadTransaction) -> Result<Verified, StoreError> {
    let events = txn.open_table(EVENTS).in_file(path)?;

    // The log: gapless positions, valid records, per-stream versions 1, 2, 3…
    let mut streams: HashMap<String, Vec<u64>> = HashMap::new();
    let mut count = 0;
    for entry in events.iter().in_file(path)? {
        let (position, record) = entry.in_file(path)?;
        let position = position.value();
        count += 1;
        if position != count {
            let message = format!("the log skips from position {} to {position}", count - 1);
            return Err(corrupt(path, format_args!("position {count}"), message));
        }
        let event = codec::decode_event(position, record.value())
            .map_err(|m| corrupt(path, format_args!("event at position {position}"), m))?;
        let positions = streams.entry(stream_key(&event.stream)).or_default();
        if event.version != positions.len() as u64 + 1 {
            let message = format!(
                "{} version {} follows version {} in the log",
                event.stream,
                event.version,
                positions.len()
            );
            return Err(corrupt(
                path,
                format_args!("event at position {position}"),
                message,
            ));
        }
        positions.push(position);
    }

    // The index holds exactly one entry per event, pointing at it.
    let index = txn.open_table(STREAM_INDEX).in_file(path)?;
    let mut indexed = 0u64;
    for entry in index.iter().in_file(path)? {
        let (key, position) = entry.in_file(path)?;
        let ((stream, version), position) = (key.value(), position.value());
        let logged = streams
            .get(stream)
            .and_then(|positions| positions.get(usize::try_from(version.checked_sub(1)?).ok()?));
        if logged != Some(&position) {
            let message = format!(
                "the index points at position {position}, the log has this version at {logged:?}"
            );
            return Err(corrupt(
                path,
                format_args!("stream index {stream} version {version}"),
                message,
            ));
        }
        indexed += 1;
    }
    if indexed != count {
        let message = format!("the index has {indexed} entries for {count} events");
        return Err(corrupt(path, "stream index", message));
    }

    // Heads: one per stream, equal to its last version.
    let heads = txn.open_table(STREAM_HEADS).in_file(path)?;
    let mut headed = 0u64;
    for entry in heads.iter().in_file(path)? {
        let (stream, head) = entry.in_file(path)?;
        let (stream, head) = (stream.value(), head.value());
        let logged = streams.get(stream).map_or(0, |p| p.len() as u64);
        if logged != head || head == 0 {
            let message = format!("the head says version {head}, the log has {logged} events");
            return Err(corrupt(
                path,
                format_args!("stream head of {stream}"),
                message,
            ));
        }
        headed += 1;
    }
    if headed != streams.len() as u64 {
        let message = format!("{headed} stream heads for {} streams", streams.len());
        return Err(corrupt(path, "stream heads", message));
    }

    // Commands point at versions their stream has.
    let commands = txn.open_table(COMMANDS).in_file(path)?;
    for entry in commands.iter().in_file(path)? {
        let (key, versions) = entry.in_file(path)?;
        let ((stream, command), (first, last)) = (key.value(), versions.value());
        let logged = streams.get(stream).map_or(0, |p| p.len() as u64);
        if first == 0 || last < first || last > logged {
            let message = format!("recorded as versions {first}..={last}, the stream has {logged}");
            return Err(corrupt(
                path,
                format_args!("command {command:?} of {stream}"),
                message,
            ));
        }
    }

    // Snapshots decode under their own key.
    let snapshots = txn.open_table(SNAPSHOTS).in_file(path)?;
    for entry in snapshots.iter().in_file(path)? {
        let (key, _) = entry.in_file(path)?;
        let (stream, digest) = key.value();
        let Some(id) = parse_stream_key(stream) else {
            let message = "the key does not name a stream".to_owned();
            return Err(corrupt(path, format_args!("snapshot {stream:?}"), message));
        };
        read::snapshot(path, &snapshots, &id, stream, digest)?;
    }

    Ok(Verified {
        events: count,
        streams: streams.len() as u64,
    })
}
