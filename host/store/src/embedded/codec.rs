//! Byte encoding of the checksummed records: events and snapshots (the layout
//! is documented byte by byte in the [module docs](super)).
//!
//! Decoding verifies the checksum before it looks at anything else, so a
//! damaged record is reported as damaged, never half-parsed into wrong data.
//! The checksum also covers the record's table key, so a record that ended up
//! under another key does not verify either.

use uuid::Uuid;

use crate::{EventMetadata, RecordedEvent, Snapshot, StreamId};
use aether_core::namespace::{AggregateId, AggregateType, Namespace};

/// The first byte of every event record written by this build (1 was the
/// record of format version 1, without a namespace position).
pub(super) const EVENT_RECORD_VERSION: u8 = 2;

/// The first byte of every snapshot record written by this build.
pub(super) const SNAPSHOT_RECORD_VERSION: u8 = 1;

/// Bytes of the truncated blake3 checksum that ends every record.
pub(super) const CHECKSUM_LEN: usize = 16;

/// A field longer than a u32 length prefix can describe.
#[derive(Debug)]
pub(super) struct TooLarge(pub(super) &'static str);

/// Encodes an event stored under the log sequence `sequence` (its key).
pub(super) fn encode_event(sequence: u64, event: &RecordedEvent) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::with_capacity(128 + event.data.len());
    out.push(EVENT_RECORD_VERSION);
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
    seal(&mut out, &event_key(sequence));
    Ok(out)
}

/// Decodes and verifies the event record stored under the log sequence
/// `sequence`.
pub(super) fn decode_event(sequence: u64, record: &[u8]) -> Result<RecordedEvent, String> {
    decode_event_with(sequence, record, |r| {
        Ok(Some(StreamId::new(
            Namespace::new(r.text()?).map_err(|e| e.to_string())?,
            AggregateType::new(r.text()?).map_err(|e| e.to_string())?,
            AggregateId::new(r.text()?).map_err(|e| e.to_string())?,
        )))
    })
    .map(|event| event.expect("the stream is always given"))
}

/// As [`decode_event`], for a record the stream index says is of `stream`:
/// its names are compared with the stream's (the bytes, verified by the
/// checksum) instead of copied and validated again. `None` if the record
/// is of another stream (the caller reports that as damage).
pub(super) fn decode_stream_event(
    stream: &StreamId,
    sequence: u64,
    record: &[u8],
) -> Result<Option<RecordedEvent>, String> {
    decode_event_with(sequence, record, |r| {
        let same = r.bytes()? == stream.namespace.as_str().as_bytes();
        let same = r.bytes()? == stream.aggregate_type.as_str().as_bytes() && same;
        let same = r.bytes()? == stream.aggregate_id.as_str().as_bytes() && same;
        Ok(same.then(|| stream.clone()))
    })
}

/// Decodes and verifies an event record, reading its three names with
/// `names` (`None`: not the stream the caller expected; nothing more is
/// decoded).
fn decode_event_with(
    sequence: u64,
    record: &[u8],
    names: impl FnOnce(&mut Reader<'_>) -> Result<Option<StreamId>, String>,
) -> Result<Option<RecordedEvent>, String> {
    let mut r = Reader::open(record, &event_key(sequence), EVENT_RECORD_VERSION)?;
    let id = Uuid::from_bytes(r.array()?);
    let version = r.u64()?;
    let stored_sequence = r.u64()?;
    let position = r.u64()?;
    let timestamp_ms = r.u64()?;
    let Some(stream) = names(&mut r)? else {
        return Ok(None);
    };
    let event_type = r.text()?;
    let content_type = r.text()?;
    let mut optional = || -> Result<Option<String>, String> {
        match r.byte()? {
            0 => Ok(None),
            1 => r.text().map(Some),
            tag => Err(format!("an optional field has tag {tag}, expected 0 or 1")),
        }
    };
    let metadata = EventMetadata {
        command_id: optional()?,
        correlation_id: optional()?,
        causation_id: optional()?,
        component_digest: optional()?,
    };
    let data = r.bytes()?.to_vec();
    r.finish()?;
    if stored_sequence != sequence {
        return Err(format!(
            "the record says log sequence {stored_sequence} but is stored under {sequence}"
        ));
    }
    Ok(Some(RecordedEvent {
        id,
        stream,
        version,
        position,
        event_type,
        content_type,
        data,
        metadata,
        timestamp_ms,
    }))
}

/// Encodes a snapshot; its stream and digest are the key it is stored under.
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::with_capacity(48 + snapshot.state.len());
    out.push(SNAPSHOT_RECORD_VERSION);
    out.extend_from_slice(&snapshot.version.to_le_bytes());
    out.extend_from_slice(&snapshot.timestamp_ms.to_le_bytes());
    put(&mut out, "snapshot state", &snapshot.state)?;
    let key = snapshot_key(&snapshot.stream, &snapshot.snapshot_key)?;
    seal(&mut out, &key);
    Ok(out)
}

/// Decodes and verifies the snapshot record stored under (stream, digest).
pub(super) fn decode_snapshot(
    stream: &StreamId,
    component_key: &str,
    record: &[u8],
) -> Result<Snapshot, String> {
    let key = snapshot_key(stream, component_key).map_err(|TooLarge(what)| what.to_owned())?;
    let mut r = Reader::open(record, &key, SNAPSHOT_RECORD_VERSION)?;
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

fn checksum(key: &[u8], body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key).update(body);
    let mut sum = [0; CHECKSUM_LEN];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_LEN]);
    sum
}

fn seal(out: &mut Vec<u8>, key: &[u8]) {
    let sum = checksum(key, out);
    out.extend_from_slice(&sum);
}

/// A cursor over a verified record body.
struct Reader<'a> {
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Verifies the checksum and the record version (`expected`), and
    /// positions the cursor after the version byte.
    fn open(record: &'a [u8], key: &[u8], expected: u8) -> Result<Reader<'a>, String> {
        let Some(split) = record.len().checked_sub(CHECKSUM_LEN) else {
            return Err(format!(
                "the record is {} bytes long, shorter than its checksum",
                record.len()
            ));
        };
        let (body, sum) = record.split_at(split);
        if checksum(key, body) != sum {
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

    fn text(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("a text field is not UTF-8: {e}"))
    }

    fn finish(self) -> Result<(), String> {
        match self.body.len() {
            0 => Ok(()),
            extra => Err(format!("{extra} unexpected bytes after the last field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::AppendRequestExt;
    use crate::{AppendRequest, ExpectedVersion, NewEvent};

    fn stream() -> StreamId {
        StreamId::new(
            "bank".parse().unwrap(),
            "bank-account".parse().unwrap(),
            "acc-1".parse().unwrap(),
        )
    }

    fn event() -> RecordedEvent {
        let request = AppendRequest {
            stream: stream(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::json("deposited", b"{\"amount\":10}".to_vec())],
            metadata: EventMetadata {
                command_id: Some("cmd-1".into()),
                correlation_id: None,
                causation_id: Some("cause".into()),
                component_digest: Some("blake3:abc".into()),
            },
            timestamp_ms: 99,
        };
        request.record(2, 41).remove(0)
    }

    #[test]
    fn event_round_trips_and_has_the_documented_layout() {
        let event = event();
        let record = encode_event(77, &event).unwrap();
        assert_eq!(decode_event(77, &record).unwrap(), event);
        assert_eq!(record[0], EVENT_RECORD_VERSION);
        assert_eq!(&record[1..17], event.id.as_bytes());
        assert_eq!(record[17..25], 3u64.to_le_bytes(), "version");
        assert_eq!(record[25..33], 77u64.to_le_bytes(), "log sequence");
        assert_eq!(record[33..41], 42u64.to_le_bytes(), "namespace position");
        assert_eq!(record[41..49], 99u64.to_le_bytes(), "timestamp");
        assert_eq!(record[49..53], 4u32.to_le_bytes(), "namespace length");
        assert_eq!(&record[53..57], b"bank");
    }

    #[test]
    fn a_record_of_format_version_1_is_refused_by_its_version() {
        let mut record = encode_event(77, &event()).unwrap();
        record[0] = 1;
        let body = record.len() - CHECKSUM_LEN;
        let sum = checksum(&event_key(77), &record[..body]);
        record[body..].copy_from_slice(&sum);
        let error = decode_event(77, &record).unwrap_err();
        assert!(
            error.contains("record version 1 is not supported"),
            "{error}"
        );
    }

    #[test]
    fn every_flipped_bit_of_an_event_is_detected() {
        let record = encode_event(42, &event()).unwrap();
        for index in 0..record.len() {
            for bit in 0..8 {
                let mut damaged = record.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    decode_event(42, &damaged).is_err(),
                    "byte {index} bit {bit}"
                );
            }
        }
        assert!(decode_event(42, &record[..record.len() - 1]).is_err());
        assert!(decode_event(42, &[]).is_err());
        let moved = decode_event(43, &record).unwrap_err();
        assert!(moved.contains("checksum"), "{moved}");
    }

    #[test]
    fn snapshot_round_trips_and_is_bound_to_its_key() {
        let snapshot = Snapshot {
            stream: stream(),
            version: 7,
            snapshot_key: "blake3:abc".into(),
            state: b"state".to_vec(),
            timestamp_ms: 5,
        };
        let record = encode_snapshot(&snapshot).unwrap();
        assert_eq!(
            decode_snapshot(&stream(), "blake3:abc", &record).unwrap(),
            snapshot
        );
        assert!(decode_snapshot(&stream(), "blake3:other", &record).is_err());
        let mut damaged = record;
        damaged[3] ^= 0x10;
        assert!(decode_snapshot(&stream(), "blake3:abc", &damaged).is_err());
    }
}
