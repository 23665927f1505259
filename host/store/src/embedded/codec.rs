//! Byte encoding of the checksummed records: events and snapshots (the layout
//! is documented byte by byte in the [module docs](super)).
//!
//! Decoding verifies the checksum before it parses anything: the only byte
//! it reads first is the record version, which says which checksum the
//! record carries (event records of version 2 end in a truncated blake3,
//! version 3 in a CRC-32) and is itself covered by that checksum. A damaged
//! version byte therefore names a version this build does not read, or
//! picks the other checksum, which then does not verify. So a damaged record
//! is reported as damaged, never half-parsed into wrong data. The checksum
//! also covers the record's table key, so a record that ended up under
//! another key does not verify either (and an event record repeats its key,
//! the log sequence, which is compared as well).
//!
//! Why a CRC is enough for event records: the checksum guards against torn
//! and damaged records (a bug, a bad disk, a crash), not against someone who
//! writes the file on purpose (they could recompute any unkeyed checksum,
//! blake3 included). CRC-32 detects every burst of damage up to 32 bits long
//! (so every flipped bit, every damaged byte) and any other damage except
//! with probability 2⁻³²; and it is a second line: redb checks its
//! own page checksums on open and for a torn commit. It costs about 20 ns
//! per small record (~3 % of a stream read) where the truncated blake3 cost
//! about a quarter of the read. blake3 stays where a digest must be collision-resistant (component
//! digests) and in snapshot records, which are read once per activation.

use uuid::Uuid;

use crate::{BatchEvent, EventMetadata, RecordedEvent, ReplayBatch, Snapshot, StreamId};
use aether_core::namespace::{AggregateId, AggregateType, Namespace};

/// The first byte of every event record written by this build: version 3,
/// sealed with a CRC-32 ([`Seal::Crc32`]).
pub(super) const EVENT_RECORD_VERSION: u8 = 3;

/// Event records of version 2 (written until 2026-12-03) have the same
/// fields as version 3 and end in a truncated blake3 ([`Seal::Blake3`]);
/// they are still read. Version 1 (no namespace position) is refused.
pub(super) const EVENT_RECORD_VERSION_BLAKE3: u8 = 2;

/// The first byte of every snapshot record written by this build (sealed
/// with [`Seal::Blake3`]).
pub(super) const SNAPSHOT_RECORD_VERSION: u8 = 1;

/// The checksum that ends a record, chosen by its record version. Both
/// cover the record's key, then every byte of the record before the
/// checksum (the version byte included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seal {
    /// The first 16 bytes of blake3(key ‖ body): event records of version 2,
    /// snapshot records.
    Blake3,
    /// CRC-32 (IEEE, as `crc32fast` and zlib compute it) of key ‖ body,
    /// 4 bytes little-endian: event records of version 3.
    Crc32,
}

impl Seal {
    /// The checksum's length in bytes.
    pub(super) const fn len(self) -> usize {
        match self {
            Seal::Blake3 => 16,
            Seal::Crc32 => 4,
        }
    }

    /// The seal of an event record of `version`, or why it is not read.
    fn of_event(version: u8) -> Result<Seal, String> {
        match version {
            EVENT_RECORD_VERSION => Ok(Seal::Crc32),
            EVENT_RECORD_VERSION_BLAKE3 => Ok(Seal::Blake3),
            other => Err(format!(
                "record version {other} is not supported (this build reads event records of \
                 versions {EVENT_RECORD_VERSION_BLAKE3} and {EVENT_RECORD_VERSION})"
            )),
        }
    }

    /// Whether `sum` is this checksum of `key` ‖ `body`.
    fn verifies(self, key: &[u8], body: &[u8], sum: &[u8]) -> bool {
        match self {
            Seal::Blake3 => blake3_sum(key, body) == sum,
            Seal::Crc32 => crc32_sum(key, body) == sum,
        }
    }

    /// Appends this checksum of `key` ‖ `out` to `out`.
    fn seal(self, out: &mut Vec<u8>, key: &[u8]) {
        match self {
            Seal::Blake3 => {
                let sum = blake3_sum(key, out);
                out.extend_from_slice(&sum);
            }
            Seal::Crc32 => {
                let sum = crc32_sum(key, out);
                out.extend_from_slice(&sum);
            }
        }
    }
}

/// A field longer than a u32 length prefix can describe.
#[derive(Debug)]
pub(super) struct TooLarge(pub(super) &'static str);

/// Encodes an event stored under the log sequence `sequence` (its key), as
/// a record of the current version ([`EVENT_RECORD_VERSION`]).
pub(super) fn encode_event(sequence: u64, event: &RecordedEvent) -> Result<Vec<u8>, TooLarge> {
    encode_event_as(sequence, event, EVENT_RECORD_VERSION, Seal::Crc32)
}

/// Encodes an event as a record of `version` sealed with `seal` (versions 2
/// and 3 have the same fields; tests write version 2 records with it).
pub(super) fn encode_event_as(
    sequence: u64,
    event: &RecordedEvent,
    version: u8,
    seal: Seal,
) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::with_capacity(128 + event.data.len());
    out.push(version);
    out.extend_from_slice(event.id.as_bytes());
    for number in [event.version, sequence, event.position, event.timestamp_ms] {
        out.extend_from_slice(&number.to_le_bytes());
    }
    let stream = &event.stream;
    put(&mut out, "namespace", stream.namespace.as_str().as_bytes())?;
    put(
        &mut out,
        "aggregate type",
        stream.aggregate_type.as_str().as_bytes(),
    )?;
    put(
        &mut out,
        "aggregate id",
        stream.aggregate_id.as_str().as_bytes(),
    )?;
    put(&mut out, "event type", event.event_type.as_bytes())?;
    put(&mut out, "content type", event.content_type.as_bytes())?;
    let metadata = &event.metadata;
    for (name, field) in [
        ("command id", &metadata.command_id),
        ("correlation id", &metadata.correlation_id),
        ("causation id", &metadata.causation_id),
        ("component digest", &metadata.component_digest),
    ] {
        match field {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                put(&mut out, name, text.as_bytes())?;
            }
        }
    }
    put(&mut out, "event data", &event.data)?;
    seal.seal(&mut out, &event_key(sequence));
    Ok(out)
}

/// An event record, verified (checksum, version, every field's length, the
/// log sequence it repeats) and split into its fields, which are still the
/// record's bytes: nothing is copied or allocated until the caller knows it
/// wants the event ([`EventFields::into_event`], [`EventFields::push_onto`]).
pub(super) struct EventFields<'a> {
    pub(super) id: Uuid,
    pub(super) version: u64,
    pub(super) position: u64,
    pub(super) timestamp_ms: u64,
    /// Namespace, aggregate type, aggregate id.
    names: [&'a [u8]; 3],
    event_type: &'a [u8],
    content_type: &'a [u8],
    /// Command id, correlation id, causation id, component digest.
    metadata: [Option<&'a [u8]>; 4],
    data: &'a [u8],
}

/// Verifies the event record stored under the log sequence `sequence` and
/// splits it into its fields.
pub(super) fn event_fields(sequence: u64, record: &[u8]) -> Result<EventFields<'_>, String> {
    let mut r = Reader::open_event(record, &event_key(sequence))?;
    let id = Uuid::from_bytes(r.array()?);
    let version = r.u64()?;
    let stored_sequence = r.u64()?;
    let position = r.u64()?;
    let timestamp_ms = r.u64()?;
    let names = [r.bytes()?, r.bytes()?, r.bytes()?];
    let event_type = r.bytes()?;
    let content_type = r.bytes()?;
    let mut optional = || -> Result<Option<&[u8]>, String> {
        match r.byte()? {
            0 => Ok(None),
            1 => r.bytes().map(Some),
            tag => Err(format!("an optional field has tag {tag}, expected 0 or 1")),
        }
    };
    let metadata = [optional()?, optional()?, optional()?, optional()?];
    let data = r.bytes()?;
    r.finish()?;
    if stored_sequence != sequence {
        return Err(format!(
            "the record says log sequence {stored_sequence} but is stored under {sequence}"
        ));
    }
    Ok(EventFields {
        id,
        version,
        position,
        timestamp_ms,
        names,
        event_type,
        content_type,
        metadata,
        data,
    })
}

impl EventFields<'_> {
    /// Whether the record is of `stream` (its names' bytes are the
    /// stream's; the names in `stream` are valid, so equal bytes are too).
    pub(super) fn is_of(&self, stream: &StreamId) -> bool {
        self.names
            == [
                stream.namespace.as_str().as_bytes(),
                stream.aggregate_type.as_str().as_bytes(),
                stream.aggregate_id.as_str().as_bytes(),
            ]
    }

    /// The record's stream, its names validated.
    pub(super) fn stream(&self) -> Result<StreamId, String> {
        let [namespace, aggregate_type, aggregate_id] = self.names;
        Ok(StreamId::new(
            Namespace::new(text(namespace)?).map_err(|e| e.to_string())?,
            AggregateType::new(text(aggregate_type)?).map_err(|e| e.to_string())?,
            AggregateId::new(text(aggregate_id)?).map_err(|e| e.to_string())?,
        ))
    }

    /// The event, of `stream` (the caller took it from
    /// [`EventFields::stream`]).
    pub(super) fn into_event(self, stream: StreamId) -> Result<RecordedEvent, String> {
        let strings = self.strings(None)?;
        Ok(self.event(stream, strings))
    }

    /// Appends the event, of `stream` (the caller checked
    /// [`EventFields::is_of`] or took it from [`EventFields::stream_like`]),
    /// to `out`. The event before it in `out` lends its event type and
    /// content type when they are the same bytes (as in most runs of
    /// events): a copy of a `String` needs no UTF-8 check.
    pub(super) fn push_onto(
        self,
        stream: StreamId,
        out: &mut Vec<RecordedEvent>,
    ) -> Result<(), String> {
        let previous = out.last();
        let fields = self.strings(previous)?;
        // Built in `out`'s push, not passed through a `Result`.
        out.push(self.event(stream, fields));
        Ok(())
    }

    /// Appends the event to a replay batch, of the stream the caller
    /// checked ([`EventFields::is_of`]): the fields a replay uses, copied
    /// once, straight from the record. Every text field is UTF-8 checked as
    /// a read of the whole event would, so a record refused there is
    /// refused here too; `text` holds the event before's, so a field with
    /// the same bytes (most runs of events) is not checked again.
    pub(super) fn replay_onto(
        &self,
        batch: &mut ReplayBatch,
        text: &mut ReplayText,
    ) -> Result<(), String> {
        checked(&mut text.event_type, self.event_type)?;
        checked(&mut text.content_type, self.content_type)?;
        for (slot, bytes) in text.metadata.iter_mut().zip(self.metadata) {
            match bytes {
                Some(bytes) => checked(slot.get_or_insert_default(), bytes)?,
                None => *slot = None,
            }
        }
        let event = BatchEvent {
            version: self.version,
            timestamp_ms: self.timestamp_ms,
            event_type: &text.event_type,
            content_type: &text.content_type,
            data: self.data,
        };
        // The command id is the first of the metadata.
        batch.push(event, text.metadata[0].as_deref());
        Ok(())
    }

    /// The record's stream: a copy of `previous`'s if the names are the
    /// same bytes (no validation needed), else [`EventFields::stream`].
    pub(super) fn stream_like(&self, previous: Option<&StreamId>) -> Result<StreamId, String> {
        match previous {
            Some(previous) if self.is_of(previous) => Ok(previous.clone()),
            _ => self.stream(),
        }
    }

    /// The record's namespace (its bytes, not yet validated).
    pub(super) fn namespace(&self) -> &[u8] {
        self.names[0]
    }

    /// The event type, content type and metadata, UTF-8 checked (or lent by
    /// `previous`).
    fn strings(&self, previous: Option<&RecordedEvent>) -> Result<Strings, String> {
        let lent = |field: fn(&RecordedEvent) -> &str| previous.map(field);
        let optional = |field: Option<&[u8]>| field.map(text).transpose();
        let [command_id, correlation_id, causation_id, component_digest] = self.metadata;
        Ok(Strings {
            event_type: same_or_text(lent(|p| &p.event_type), self.event_type)?,
            content_type: same_or_text(lent(|p| &p.content_type), self.content_type)?,
            metadata: EventMetadata {
                command_id: optional(command_id)?,
                correlation_id: optional(correlation_id)?,
                causation_id: optional(causation_id)?,
                component_digest: optional(component_digest)?,
            },
        })
    }

    #[inline(always)]
    fn event(&self, stream: StreamId, strings: Strings) -> RecordedEvent {
        RecordedEvent {
            id: self.id,
            stream,
            version: self.version,
            position: self.position,
            event_type: strings.event_type,
            content_type: strings.content_type,
            data: self.data.to_vec(),
            metadata: strings.metadata,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// The text fields of an event, checked.
struct Strings {
    event_type: String,
    content_type: String,
    metadata: EventMetadata,
}

/// `bytes` as a `String`: a copy of `same` if they are its bytes, else
/// validated as UTF-8.
/// The text fields of the event last appended to a replay batch, UTF-8
/// checked: event type, content type, and the metadata (command id,
/// correlation id, causation id, component digest).
#[derive(Debug, Default)]
pub(super) struct ReplayText {
    event_type: String,
    content_type: String,
    metadata: [Option<String>; 4],
}

/// Makes `slot` the text of `bytes`, UTF-8 checking them only when they
/// are not already its bytes.
fn checked(slot: &mut String, bytes: &[u8]) -> Result<(), String> {
    if slot.as_bytes() != bytes {
        let text = str_of(bytes)?;
        slot.clear();
        slot.push_str(text);
    }
    Ok(())
}

fn same_or_text(same: Option<&str>, bytes: &[u8]) -> Result<String, String> {
    match same {
        Some(same) if same.as_bytes() == bytes => Ok(same.to_owned()),
        _ => text(bytes),
    }
}

/// `bytes` (a text field) as a `String`.
fn text(bytes: &[u8]) -> Result<String, String> {
    str_of(bytes).map(str::to_owned)
}

/// `bytes` (a text field) as a `str`.
fn str_of(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("a text field is not UTF-8: {e}"))
}

/// Decodes and verifies the event record stored under the log sequence
/// `sequence`.
pub(super) fn decode_event(sequence: u64, record: &[u8]) -> Result<RecordedEvent, String> {
    let fields = event_fields(sequence, record)?;
    let stream = fields.stream()?;
    fields.into_event(stream)
}

/// Encodes a snapshot; its stream and digest are the key it is stored under.
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::with_capacity(48 + snapshot.state.len());
    out.push(SNAPSHOT_RECORD_VERSION);
    out.extend_from_slice(&snapshot.version.to_le_bytes());
    out.extend_from_slice(&snapshot.timestamp_ms.to_le_bytes());
    put(&mut out, "snapshot state", &snapshot.state)?;
    let key = snapshot_key(&snapshot.stream, &snapshot.snapshot_key)?;
    Seal::Blake3.seal(&mut out, &key);
    Ok(out)
}

/// Decodes and verifies the snapshot record stored under (stream, digest).
pub(super) fn decode_snapshot(
    stream: &StreamId,
    component_key: &str,
    record: &[u8],
) -> Result<Snapshot, String> {
    let key = snapshot_key(stream, component_key).map_err(|TooLarge(what)| what.to_owned())?;
    let mut r = Reader::open(record, &key, Seal::Blake3, SNAPSHOT_RECORD_VERSION)?;
    let version = r.u64()?;
    let timestamp_ms = r.u64()?;
    let state = r.bytes()?.to_vec();
    r.finish()?;
    Ok(Snapshot {
        stream: stream.clone(),
        version,
        snapshot_key: component_key.to_owned(),
        state,
        timestamp_ms,
    })
}

fn event_key(sequence: u64) -> [u8; 8] {
    sequence.to_le_bytes()
}

fn snapshot_key(stream: &StreamId, component_key: &str) -> Result<Vec<u8>, TooLarge> {
    let mut key = Vec::new();
    put(
        &mut key,
        "stream",
        super::tables::stream_key(stream).as_bytes(),
    )?;
    put(&mut key, "snapshot key", component_key.as_bytes())?;
    Ok(key)
}

fn put(out: &mut Vec<u8>, what: &'static str, bytes: &[u8]) -> Result<(), TooLarge> {
    let len = u32::try_from(bytes.len()).map_err(|_| TooLarge(what))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn blake3_sum(key: &[u8], body: &[u8]) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key).update(body);
    let mut sum = [0; 16];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    sum
}

fn crc32_sum(key: &[u8], body: &[u8]) -> [u8; 4] {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(body);
    hasher.finalize().to_le_bytes()
}

/// A cursor over a verified record body.
struct Reader<'a> {
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Verifies an event record: its version (2 or 3) picks the checksum,
    /// which must verify; positions the cursor after the version byte.
    fn open_event(record: &'a [u8], key: &[u8]) -> Result<Reader<'a>, String> {
        let Some(&version) = record.first() else {
            return Err("the record is empty".to_owned());
        };
        // Read before the checksum is verified, but covered by it: see the
        // module docs.
        let seal = Seal::of_event(version)?;
        Reader::open(record, key, seal, version)
    }

    /// Verifies the checksum `seal` and the record version (`expected`),
    /// and positions the cursor after the version byte.
    fn open(record: &'a [u8], key: &[u8], seal: Seal, expected: u8) -> Result<Reader<'a>, String> {
        let Some(split) = record.len().checked_sub(seal.len()) else {
            return Err(format!(
                "the record is {} bytes long, shorter than its checksum",
                record.len()
            ));
        };
        let (body, sum) = record.split_at(split);
        if !seal.verifies(key, body, sum) {
            return Err("the record's checksum does not match its bytes".to_owned());
        }
        let mut reader = Reader { body };
        match reader.byte()? {
            version if version == expected => Ok(reader),
            other => Err(format!(
                "record version {other} is not supported (expected {expected})"
            )),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if self.body.len() < len {
            return Err(format!(
                "the record ends early: {len} more bytes expected, {} left",
                self.body.len()
            ));
        }
        let (head, rest) = self.body.split_at(len);
        self.body = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.array()?);
        self.take(usize::try_from(len).map_err(|e| e.to_string())?)
    }

    fn finish(self) -> Result<(), String> {
        match self.body.len() {
            0 => Ok(()),
            extra => Err(format!("{extra} unexpected bytes after the last field")),
        }
    }
}

#[cfg(test)]
mod tests;
