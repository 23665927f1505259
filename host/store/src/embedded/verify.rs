//! The full verification that [`EmbeddedStore::open`](super::EmbeddedStore::open)
//! runs before serving anything.
//!
//! redb's own integrity check (run by the open) proves that every page is the
//! one redb wrote; this proves that what redb holds is a consistent event
//! store: every event record's checksum, log sequences gapless from 1, every
//! namespace's positions and every stream's versions gapless from 1 in log
//! order, the namespace logs and the stream index pointing at exactly those
//! events, stream heads matching the index, command ids pointing at stored
//! versions, each namespace's stored-bytes count, and every snapshot's
//! checksum.
//!
//! Cost: one pass over every table, decoding and hashing every record; memory
//! is two `u64`s per event (the log sequences of each stream and of each
//! namespace) plus the stream keys and namespace names.

use std::collections::HashMap;
use std::path::Path;

use redb::{ReadTransaction, ReadableTable};

use super::errors::{InFile, corrupt};
use super::tables::{
    COMMANDS, EVENTS, NAMESPACE_BYTES, NAMESPACE_LOG, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX,
    parse_stream_key, stream_key,
};
use super::{codec, read};
use crate::StoreError;

/// What a successful verification saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verified {
    /// Events in the store, all namespaces together (= the last log
    /// sequence).
    pub(super) events: u64,
    /// Streams with at least one event.
    pub(super) streams: u64,
}

/// Verifies everything; the first inconsistency is the error.
pub(super) fn verify(path: &Path, txn: &ReadTransaction) -> Result<Verified, StoreError> {
    let events = txn.open_table(EVENTS).in_file(path)?;

    // The log: gapless sequences, valid records, per-namespace positions and
    // per-stream versions 1, 2, 3…
    let mut streams: HashMap<String, Vec<u64>> = HashMap::new();
    let mut namespaces: HashMap<String, Vec<u64>> = HashMap::new();
    let mut payload_bytes: HashMap<String, u64> = HashMap::new();
    let mut count = 0;
    for entry in events.iter().in_file(path)? {
        let (sequence, record) = entry.in_file(path)?;
        let sequence = sequence.value();
        count += 1;
        if sequence != count {
            let message = format!("the log skips from sequence {} to {sequence}", count - 1);
            return Err(corrupt(path, format_args!("log sequence {count}"), message));
        }
        let event = codec::decode_event(sequence, record.value())
            .map_err(|m| corrupt(path, read::at_sequence(sequence), m))?;
        let logged = namespaces
            .entry(event.stream.namespace.as_str().to_owned())
            .or_default();
        if event.position != logged.len() as u64 + 1 {
            let message = format!(
                "namespace {} position {} follows position {} in the log",
                event.stream.namespace,
                event.position,
                logged.len()
            );
            return Err(corrupt(path, read::at_sequence(sequence), message));
        }
        logged.push(sequence);
        *payload_bytes
            .entry(event.stream.namespace.as_str().to_owned())
            .or_default() += event.data.len() as u64;
        let sequences = streams.entry(stream_key(&event.stream)).or_default();
        if event.version != sequences.len() as u64 + 1 {
            let message = format!(
                "{} version {} follows version {} in the log",
                event.stream,
                event.version,
                sequences.len()
            );
            return Err(corrupt(path, read::at_sequence(sequence), message));
        }
        sequences.push(sequence);
    }

    // Each namespace log holds exactly one entry per event of its
    // namespace, pointing at it.
    let log = txn.open_table(NAMESPACE_LOG).in_file(path)?;
    let mut logged = 0u64;
    for entry in log.iter().in_file(path)? {
        let (key, sequence) = entry.in_file(path)?;
        let ((namespace, position), sequence) = (key.value(), sequence.value());
        let stored = namespaces
            .get(namespace)
            .and_then(|sequences| sequences.get(usize::try_from(position.checked_sub(1)?).ok()?));
        if stored != Some(&sequence) {
            let message = format!(
                "the namespace log points at log sequence {sequence}, the log has this \
                 position at {stored:?}"
            );
            return Err(corrupt(
                path,
                format_args!("namespace log {namespace} position {position}"),
                message,
            ));
        }
        logged += 1;
    }
    if logged != count {
        let message = format!("the namespace logs have {logged} entries for {count} events");
        return Err(corrupt(path, "namespace log", message));
    }

    // The index holds exactly one entry per event, pointing at it.
    let index = txn.open_table(STREAM_INDEX).in_file(path)?;
    let mut indexed = 0u64;
    for entry in index.iter().in_file(path)? {
        let (key, sequence) = entry.in_file(path)?;
        let ((stream, version), sequence) = (key.value(), sequence.value());
        let logged = streams
            .get(stream)
            .and_then(|sequences| sequences.get(usize::try_from(version.checked_sub(1)?).ok()?));
        if logged != Some(&sequence) {
            let message = format!(
                "the index points at log sequence {sequence}, the log has this version at \
                 {logged:?}"
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

    // Each namespace's byte count is the sum of its payloads.
    let bytes = txn.open_table(NAMESPACE_BYTES).in_file(path)?;
    let mut counted = 0usize;
    for entry in bytes.iter().in_file(path)? {
        let (namespace, stored) = entry.in_file(path)?;
        let (namespace, stored) = (namespace.value(), stored.value());
        let logged = payload_bytes.get(namespace).copied().unwrap_or(0);
        if stored != logged {
            let message = format!("counted as {stored} bytes, its events hold {logged}");
            return Err(corrupt(
                path,
                format_args!("stored bytes of namespace {namespace}"),
                message,
            ));
        }
        counted += 1;
    }
    if counted != payload_bytes.len() {
        let message = format!(
            "{counted} namespaces counted, {} have events",
            payload_bytes.len()
        );
        return Err(corrupt(path, "namespace bytes", message));
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
