//! Reading events and snapshots from the tables, inside a read transaction
//! (the [`EventStore`](crate::store::EventStore) reads) or the writer's write
//! transaction (a duplicate command's original events).
//!
//! Every record is verified as it is read (its checksum, and that it is the
//! event the index promised: same stream, version and position), so damaged
//! data turns into [`StoreError::Corrupt`] instead of being served.

use std::path::Path;

use redb::ReadableTable;

use super::codec;
use super::errors::{InFile, corrupt};
use crate::store::{RecordedEvent, Snapshot, StoreError, StreamId};

/// The events table, in either kind of transaction.
pub(super) trait EventsTable: ReadableTable<u64, &'static [u8]> {}
impl<T: ReadableTable<u64, &'static [u8]>> EventsTable for T {}

/// The per-stream index, in either kind of transaction.
pub(super) trait IndexTable: ReadableTable<(&'static str, u64), u64> {}
impl<T: ReadableTable<(&'static str, u64), u64>> IndexTable for T {}

/// The event at `position`, verified.
pub(super) fn event_at(
    path: &Path,
    events: &impl EventsTable,
    position: u64,
) -> Result<Option<RecordedEvent>, StoreError> {
    let Some(record) = events.get(position).in_file(path)? else {
        return Ok(None);
    };
    codec::decode_event(position, record.value())
        .map(Some)
        .map_err(|message| corrupt(path, format_args!("event at position {position}"), message))
}

/// Events of `stream` from version `from` (at least 1), at most `limit`.
/// The versions read must be consecutive, and each one must point at an event
/// of this stream with that version.
pub(super) fn stream_events(
    path: &Path,
    index: &impl IndexTable,
    events: &impl EventsTable,
    stream: &StreamId,
    key: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let from = from.max(1);
    let range = index.range((key, from)..=(key, u64::MAX)).in_file(path)?;
    let mut out = Vec::new();
    for (expected, entry) in (from..).zip(range.take(limit)) {
        let (entry_key, position) = entry.in_file(path)?;
        let (version, position) = (entry_key.value().1, position.value());
        let at = || format!("stream {stream} version {expected}");
        if version != expected {
            return Err(corrupt(
                path,
                at(),
                format!(
                    "the stream index skips from version {} to {version}",
                    expected - 1
                ),
            ));
        }
        let event = event_at(path, events, position)?.ok_or_else(|| {
            corrupt(
                path,
                at(),
                format!("the stream index points at position {position}, which holds no event"),
            )
        })?;
        if event.stream != *stream || event.version != version {
            return Err(corrupt(
                path,
                at(),
                format!(
                    "the stream index points at position {position}, which holds {} version {}",
                    event.stream, event.version
                ),
            ));
        }
        out.push(event);
    }
    Ok(out)
}

/// The events the command `command_id` recorded on `stream`, verified to
/// be all there; `None` if no such command was recorded.
pub(super) fn command_events(
    path: &Path,
    commands: &impl ReadableTable<(&'static str, &'static str), (u64, u64)>,
    index: &impl IndexTable,
    events: &impl EventsTable,
    stream: &StreamId,
    key: &str,
    command_id: &str,
) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
    let Some(range) = commands.get((key, command_id)).in_file(path)? else {
        return Ok(None);
    };
    let (first, last) = range.value();
    let damaged = |message: String| {
        corrupt(
            path,
            format_args!("command {command_id:?} of {stream}"),
            message,
        )
    };
    if first == 0 || last < first {
        return Err(damaged(format!(
            "the command is recorded as versions {first}..={last}"
        )));
    }
    let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
    let recorded = stream_events(path, index, events, stream, key, first, count)?;
    if recorded.len() != count {
        return Err(damaged(format!(
            "the command is recorded as versions {first}..={last}, but only {} of them are stored",
            recorded.len()
        )));
    }
    Ok(Some(recorded))
}

/// The global log from position `from` (at least 1), at most `limit`; the
/// positions read must be consecutive.
pub(super) fn log_events(
    path: &Path,
    events: &impl EventsTable,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let from = from.max(1);
    let range = events.range(from..).in_file(path)?;
    let mut out = Vec::new();
    for (expected, entry) in (from..).zip(range.take(limit)) {
        let (position, record) = entry.in_file(path)?;
        let position = position.value();
        if position != expected {
            return Err(corrupt(
                path,
                format_args!("position {expected}"),
                format!("the log skips from position {} to {position}", expected - 1),
            ));
        }
        let event = codec::decode_event(position, record.value()).map_err(|message| {
            corrupt(path, format_args!("event at position {position}"), message)
        })?;
        out.push(event);
    }
    Ok(out)
}

/// Position of the last event in the log; 0 when empty.
pub(super) fn head_position(path: &Path, events: &impl EventsTable) -> Result<u64, StoreError> {
    Ok(events
        .last()
        .in_file(path)?
        .map_or(0, |(position, _)| position.value()))
}

/// The stored snapshot of (stream, digest), verified.
pub(super) fn snapshot(
    path: &Path,
    snapshots: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    stream: &StreamId,
    key: &str,
    component_digest: &str,
) -> Result<Option<Snapshot>, StoreError> {
    let Some(record) = snapshots.get((key, component_digest)).in_file(path)? else {
        return Ok(None);
    };
    codec::decode_snapshot(stream, component_digest, record.value())
        .map(Some)
        .map_err(|message| {
            corrupt(
                path,
                format_args!("snapshot of {stream} by {component_digest}"),
                message,
            )
        })
}
