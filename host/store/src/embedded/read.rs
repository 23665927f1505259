//! Reading events and snapshots from the tables, inside a read transaction
//! (the [`EventStore`](crate::EventStore) reads) or the writer's write
//! transaction (a duplicate command's original events).
//!
//! Every record is verified as it is read (its checksum, and that it is the
//! event the index promised: same stream and version, or same namespace and
//! position), so damaged data turns into [`StoreError::Corrupt`] instead of
//! being served.
//!
//! What a read does per event, and no more: verify the record's checksum,
//! split it into fields that still borrow the record
//! ([`codec::event_fields`]), compare them with what the index promised,
//! then copy them out. Into a [`RecordedEvent`]: one clone of the stream
//! (the caller's, or the one of the event before it in the batch when the
//! names are the same bytes, so names are not validated again), the event
//! type and content type (copies of the event before's when the same
//! bytes, so not UTF-8 checked again), the metadata and the data. Into a
//! [`ReplayBatch`] (an activation's read): the fields a replay uses, each
//! copied once into the batch's buffer, with no allocation per event.

use std::path::Path;

use redb::ReadableTable;

use super::codec;
use super::errors::{InFile, corrupt};
use crate::{RecordedEvent, ReplayBatch, Snapshot, StoreError, StreamId};

/// The events table, in either kind of transaction.
pub(super) trait EventsTable: ReadableTable<u64, &'static [u8]> {}
impl<T: ReadableTable<u64, &'static [u8]>> EventsTable for T {}

/// The per-stream index or a namespace's log (both map (name, number) to a
/// log sequence), in either kind of transaction.
pub(super) trait IndexTable: ReadableTable<(&'static str, u64), u64> {}
impl<T: ReadableTable<(&'static str, u64), u64>> IndexTable for T {}

/// At most how many other records a stream read steps over between two
/// events of the stream in one range scan, instead of looking the next one
/// up (a step costs less than a lookup, but not several).
const MAX_SKIP: u64 = 3;

/// What a stream read puts its events into.
pub(super) trait ReadInto: Sized {
    /// Empty, with room for about `events` events.
    fn with_room_for(events: usize) -> Self;

    /// What one read keeps from event to event besides its output.
    type Scratch: Default;

    /// Appends the event `fields`, checked to be of `stream` and to have
    /// the version the index promised; an error says how the record is
    /// damaged.
    fn push(
        &mut self,
        stream: &StreamId,
        fields: codec::EventFields<'_>,
        scratch: &mut Self::Scratch,
    ) -> Result<(), String>;
}

impl ReadInto for Vec<RecordedEvent> {
    fn with_room_for(events: usize) -> Self {
        Vec::with_capacity(events)
    }

    /// (The event before, in `self`, lends its strings.)
    type Scratch = ();

    fn push(
        &mut self,
        stream: &StreamId,
        fields: codec::EventFields<'_>,
        _: &mut (),
    ) -> Result<(), String> {
        fields.push_onto(stream.clone(), self)
    }
}

impl ReadInto for ReplayBatch {
    fn with_room_for(events: usize) -> Self {
        /// About what a small event takes in a batch (header, names, data).
        const EVENT_BYTES: usize = 96;
        ReplayBatch::with_capacity(events.saturating_mul(EVENT_BYTES))
    }

    type Scratch = codec::ReplayText;

    fn push(
        &mut self,
        _: &StreamId,
        fields: codec::EventFields<'_>,
        text: &mut codec::ReplayText,
    ) -> Result<(), String> {
        fields.replay_onto(self, text)
    }
}

/// Where a record stored under the log sequence `sequence` is, in errors.
pub(super) fn at_sequence(sequence: u64) -> String {
    format!("event at log sequence {sequence}")
}

/// Events of `stream` from version `from` (at least 1), at most `limit`,
/// into `O` (owned events, or a replay batch). The versions read must be
/// consecutive, and each one must point at an event of this stream with
/// that version.
///
/// The index is read first; then the records: a run of log sequences at
/// most [`MAX_SKIP`] apart (the events of one append, of an aggregate
/// written alone, or interleaved with a few others) with one range scan of
/// the events table instead of a lookup each.
pub(super) fn stream_events<O: ReadInto>(
    path: &Path,
    index: &impl IndexTable,
    events: &impl EventsTable,
    stream: &StreamId,
    key: &str,
    from: u64,
    limit: usize,
) -> Result<O, StoreError> {
    let from = from.max(1);
    let mut range = index.range((key, from)..=(key, u64::MAX)).in_file(path)?;
    let mut wanted = Vec::with_capacity(limit.min(4096));
    for expected in from..=u64::MAX {
        if wanted.len() == limit {
            break;
        }
        // (Matched here rather than with `in_file`, which would move the
        // two guards into another `Result`.)
        let (entry_key, sequence) = match range.next() {
            Some(Ok(entry)) => entry,
            Some(Err(error)) => return Err(error).in_file(path),
            None => break,
        };
        let version = entry_key.value().1;
        if version != expected {
            return Err(corrupt(
                path,
                format!("stream {stream} version {expected}"),
                format!(
                    "the stream index skips from version {} to {version}",
                    expected - 1
                ),
            ));
        }
        wanted.push((version, sequence.value()));
    }
    let mut out = O::with_room_for(wanted.len());
    let mut scratch = O::Scratch::default();
    // Runs of log sequences close enough together that one range scan over
    // them, stepping over the other streams' records in between, is cheaper
    // than a lookup each.
    let near = |a: &(u64, u64), b: &(u64, u64)| b.1 > a.1 && b.1 - a.1 <= MAX_SKIP + 1;
    for run in wanted.chunk_by(near) {
        let (first, last) = (run[0].1, run[run.len() - 1].1);
        if run.len() == 1 {
            let record = events.get(first).in_file(path)?;
            let value = record.as_ref().map(|r| r.value());
            push_indexed_event(path, stream, run[0], value, (&mut out, &mut scratch))?;
            continue;
        }
        let mut records = events.range(first..=last).in_file(path)?;
        for &(version, sequence) in run {
            // The next record at or after `sequence` (others are skipped
            // without being decoded). Matched here rather than with
            // `in_file`, which would move the two guards into another
            // `Result`.
            let record = loop {
                match records.next() {
                    Some(Ok(record)) if record.0.value() < sequence => continue,
                    Some(Ok(record)) => break Some(record),
                    Some(Err(error)) => return Err(error).in_file(path),
                    None => break None,
                }
            };
            let value = match &record {
                Some((stored, value)) if stored.value() == sequence => Some(value.value()),
                // The table skips this sequence: it holds no event.
                _ => None,
            };
            // (A missing record is an error: the rest of the run is not read.)
            push_indexed_event(
                path,
                stream,
                (version, sequence),
                value,
                (&mut out, &mut scratch),
            )?;
        }
    }
    Ok(out)
}

/// Verifies that the stream index entry (`version`, `sequence`) of `stream`
/// points at `record` (`None`: there is none), an event of this stream with
/// this version, and appends that event to `out`. The record's fields are
/// compared with the stream and version before anything is copied out of
/// them.
fn push_indexed_event<O: ReadInto>(
    path: &Path,
    stream: &StreamId,
    (version, sequence): (u64, u64),
    record: Option<&[u8]>,
    (out, scratch): (&mut O, &mut O::Scratch),
) -> Result<(), StoreError> {
    let at = || format!("stream {stream} version {version}");
    let Some(record) = record else {
        return Err(corrupt(
            path,
            at(),
            format!("the stream index points at log sequence {sequence}, which holds no event"),
        ));
    };
    let damaged = |message| corrupt(path, at_sequence(sequence), message);
    let fields = codec::event_fields(sequence, record).map_err(damaged)?;
    if fields.is_of(stream) && fields.version == version {
        return out.push(stream, fields, scratch).map_err(damaged);
    }
    // Another event: its stream is decoded to say whose.
    let holds = fields.stream().map_err(damaged)?;
    Err(corrupt(
        path,
        at(),
        format!(
            "the stream index points at log sequence {sequence}, which holds {holds} version {}",
            fields.version
        ),
    ))
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
    let recorded: Vec<RecordedEvent> =
        stream_events(path, index, events, stream, key, first, count)?;
    if recorded.len() != count {
        return Err(damaged(format!(
            "the command is recorded as versions {first}..={last}, but only {} of them are stored",
            recorded.len()
        )));
    }
    Ok(Some(recorded))
}

/// The log of `namespace` from position `from` (at least 1), at most
/// `limit`: an index range scan of the namespace log. The positions read
/// must be consecutive, and each one must point at an event of this
/// namespace with that position.
pub(super) fn log_events(
    path: &Path,
    log: &impl IndexTable,
    events: &impl EventsTable,
    namespace: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let from = from.max(1);
    let range = log
        .range((namespace, from)..=(namespace, u64::MAX))
        .in_file(path)?;
    let mut out = Vec::new();
    for (expected, entry) in (from..=u64::MAX).zip(range.take(limit)) {
        let (entry_key, sequence) = entry.in_file(path)?;
        let (position, sequence) = (entry_key.value().1, sequence.value());
        let at = || format!("namespace {namespace} position {expected}");
        if position != expected {
            return Err(corrupt(
                path,
                at(),
                format!(
                    "the namespace log skips from position {} to {position}",
                    expected - 1
                ),
            ));
        }
        let Some(record) = events.get(sequence).in_file(path)? else {
            return Err(corrupt(
                path,
                at(),
                format!(
                    "the namespace log points at log sequence {sequence}, which holds no event"
                ),
            ));
        };
        let damaged = |message| corrupt(path, at_sequence(sequence), message);
        let fields = codec::event_fields(sequence, record.value()).map_err(damaged)?;
        // The names are checked before the position is compared (a record
        // with a damaged name is damaged, whatever it holds).
        let stream = fields
            .stream_like(out.last().map(|e: &RecordedEvent| &e.stream))
            .map_err(damaged)?;
        if fields.namespace() != namespace.as_bytes() || fields.position != position {
            return Err(corrupt(
                path,
                at(),
                format!(
                    "the namespace log points at log sequence {sequence}, which holds {} position {}",
                    stream.namespace, fields.position
                ),
            ));
        }
        fields.push_onto(stream, &mut out).map_err(damaged)?;
    }
    Ok(out)
}

/// The last position of `namespace`'s log; 0 when it has no events.
pub(super) fn namespace_head(
    path: &Path,
    log: &impl IndexTable,
    namespace: &str,
) -> Result<u64, StoreError> {
    let mut range = log
        .range((namespace, 0)..=(namespace, u64::MAX))
        .in_file(path)?;
    match range.next_back() {
        Some(entry) => Ok(entry.in_file(path)?.0.value().1),
        None => Ok(0),
    }
}

/// The last log sequence of the store (across namespaces); 0 when empty.
pub(super) fn last_sequence(path: &Path, events: &impl EventsTable) -> Result<u64, StoreError> {
    Ok(events
        .last()
        .in_file(path)?
        .map_or(0, |(sequence, _)| sequence.value()))
}

/// The stored snapshot of (stream, digest), verified.
pub(super) fn snapshot(
    path: &Path,
    snapshots: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    stream: &StreamId,
    key: &str,
    snapshot_key: &str,
) -> Result<Option<Snapshot>, StoreError> {
    let Some(record) = snapshots.get((key, snapshot_key)).in_file(path)? else {
        return Ok(None);
    };
    codec::decode_snapshot(stream, snapshot_key, record.value())
        .map(Some)
        .map_err(|message| {
            corrupt(
                path,
                format_args!("snapshot of {stream} by {snapshot_key}"),
                message,
            )
        })
}
