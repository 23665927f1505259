//! Record encoding and decoding: round trips, refusals, the replay text checks.

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

/// Decodes as a stream read does: `None` if the record is of another
/// stream.
fn decode_stream_event(
    stream: &StreamId,
    sequence: u64,
    record: &[u8],
) -> Result<Option<RecordedEvent>, String> {
    let fields = event_fields(sequence, record)?;
    if !fields.is_of(stream) {
        return Ok(None);
    }
    let mut out = Vec::new();
    fields.push_onto(stream.clone(), &mut out)?;
    Ok(out.pop())
}

/// Decodes as an activation's read does: into a replay batch.
fn decode_replay(sequence: u64, record: &[u8]) -> Result<ReplayBatch, String> {
    let mut batch = ReplayBatch::default();
    let mut text = ReplayText::default();
    event_fields(sequence, record)?.replay_onto(&mut batch, &mut text)?;
    Ok(batch)
}

#[test]
fn a_replay_read_writes_the_event_as_a_batch_of_it_would() {
    let event = event();
    let record = encode_event(77, &event).unwrap();
    let batch = decode_replay(77, &record).unwrap();
    assert_eq!(batch, ReplayBatch::from_events(&[event]));
    assert_eq!(batch.command_ids().collect::<Vec<_>>(), ["cmd-1"]);
}

#[test]
fn a_replay_read_of_a_run_checks_text_once_and_follows_every_change() {
    // Events whose text fields repeat, change, and come and go.
    let mut events = Vec::new();
    for (i, (event_type, command_id, digest)) in [
        ("deposited", Some("cmd-1"), Some("d1")),
        ("deposited", Some("cmd-1"), Some("d1")),
        ("withdrawn", Some("cmd-2"), None),
        ("withdrawn", None, None),
        ("deposited", Some("cmd-2"), Some("d2")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event();
        e.version = i as u64 + 1;
        e.event_type = event_type.into();
        e.metadata.command_id = command_id.map(str::to_owned);
        e.metadata.component_digest = digest.map(str::to_owned);
        events.push(e);
    }
    let (mut batch, mut text) = (ReplayBatch::default(), ReplayText::default());
    for (i, e) in events.iter().enumerate() {
        let record = encode_event(i as u64 + 1, e).unwrap();
        event_fields(i as u64 + 1, &record)
            .unwrap()
            .replay_onto(&mut batch, &mut text)
            .unwrap();
    }
    assert_eq!(batch, ReplayBatch::from_events(&events));
    assert_eq!(batch.command_ids().collect::<Vec<_>>(), ["cmd-1", "cmd-2"]);
}

#[test]
fn a_stream_read_decodes_the_same_event_and_tells_other_streams_apart() {
    let event = event();
    let record = encode_event(77, &event).unwrap();
    assert_eq!(
        decode_stream_event(&stream(), 77, &record).unwrap(),
        Some(event.clone())
    );
    let other = StreamId::new(
        "bank".parse().unwrap(),
        "bank-account".parse().unwrap(),
        "acc-2".parse().unwrap(),
    );
    assert_eq!(decode_stream_event(&other, 77, &record).unwrap(), None);
    // An event decoded before lends its strings only when they are the
    // same.
    let mut previous = event.clone();
    let read_after = |previous: &RecordedEvent| {
        let mut out = vec![previous.clone()];
        event_fields(77, &record)
            .unwrap()
            .push_onto(stream(), &mut out)
            .unwrap();
        out.pop().unwrap()
    };
    assert_eq!(read_after(&previous), event);
    previous.event_type = "withdrawn".into();
    previous.content_type = "application/octet-stream".into();
    assert_eq!(read_after(&previous), event);
}

#[test]
fn a_text_field_that_is_not_utf8_is_refused() {
    let mut event = event();
    event.event_type = "dépôt".into();
    let mut record = encode_event(77, &event).unwrap();
    // "é" is 0xC3 0xA9: make it an invalid sequence, and seal again.
    let at = record.windows(2).position(|w| w == [0xC3, 0xA9]).unwrap();
    record[at + 1] = 0x41;
    let body = record.len() - 4;
    record.truncate(body);
    Seal::Crc32.seal(&mut record, &event_key(77));
    let error = decode_event(77, &record).unwrap_err();
    assert!(error.contains("not UTF-8"), "{error}");
    let error = decode_stream_event(&stream(), 77, &record).unwrap_err();
    assert!(error.contains("not UTF-8"), "{error}");
    let error = decode_replay(77, &record).unwrap_err();
    assert!(error.contains("not UTF-8"), "{error}");
    // Nor does an event decoded before make it pass.
    let fields = event_fields(77, &record).unwrap();
    assert!(
        fields
            .push_onto(stream(), &mut vec![event.clone()])
            .is_err()
    );
    let (mut batch, mut text) = (ReplayBatch::default(), ReplayText::default());
    let valid = encode_event(76, &event).unwrap();
    let valid = event_fields(76, &valid).unwrap();
    valid.replay_onto(&mut batch, &mut text).unwrap();
    let fields = event_fields(77, &record).unwrap();
    let error = fields.replay_onto(&mut batch, &mut text).unwrap_err();
    assert!(error.contains("not UTF-8"), "{error}");
}

#[test]
fn event_round_trips_and_has_the_documented_layout() {
    let event = event();
    let record = encode_event(77, &event).unwrap();
    assert_eq!(decode_event(77, &record).unwrap(), event);
    assert_eq!(record[0], 3, "record version");
    assert_eq!(&record[1..17], event.id.as_bytes());
    assert_eq!(record[17..25], 3u64.to_le_bytes(), "version");
    assert_eq!(record[25..33], 77u64.to_le_bytes(), "log sequence");
    assert_eq!(record[33..41], 42u64.to_le_bytes(), "namespace position");
    assert_eq!(record[41..49], 99u64.to_le_bytes(), "timestamp");
    assert_eq!(record[49..53], 4u32.to_le_bytes(), "namespace length");
    assert_eq!(&record[53..57], b"bank");
    // The data is the last field, then the CRC-32 of key ‖ body.
    let body = record.len() - 4;
    let data = b"{\"amount\":10}";
    assert_eq!(&record[body - data.len()..body], data);
    assert_eq!(
        record[body - data.len() - 4..body - data.len()],
        (data.len() as u32).to_le_bytes(),
        "data length"
    );
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&77u64.to_le_bytes());
    hasher.update(&record[..body]);
    assert_eq!(record[body..], hasher.finalize().to_le_bytes(), "CRC-32");
}

#[test]
fn a_version_2_record_is_the_same_fields_sealed_with_blake3_and_still_reads() {
    let event = event();
    let v3 = encode_event(77, &event).unwrap();
    let v2 = encode_event_as(77, &event, 2, Seal::Blake3).unwrap();
    assert_eq!(v2[0], 2, "record version");
    assert_eq!(v2[1..v2.len() - 16], v3[1..v3.len() - 4], "the same fields");
    let body = v2.len() - 16;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&77u64.to_le_bytes()).update(&v2[..body]);
    assert_eq!(v2[body..], hasher.finalize().as_bytes()[..16], "blake3");
    assert_eq!(decode_event(77, &v2).unwrap(), event);
    assert_eq!(
        decode_stream_event(&stream(), 77, &v2).unwrap(),
        Some(event)
    );
}

#[test]
fn a_record_of_format_version_1_is_refused_by_its_version() {
    // Version 1 records ended in the truncated blake3 too.
    let record = encode_event_as(77, &event(), 1, Seal::Blake3).unwrap();
    let error = decode_event(77, &record).unwrap_err();
    assert!(
        error.contains("record version 1 is not supported"),
        "{error}"
    );
}

#[test]
fn a_record_sealed_with_the_other_versions_checksum_is_refused() {
    let event = event();
    for (version, seal) in [(3, Seal::Blake3), (2, Seal::Crc32)] {
        let record = encode_event_as(77, &event, version, seal).unwrap();
        assert!(decode_event(77, &record).is_err(), "version {version}");
    }
}

#[test]
fn every_flipped_bit_of_an_event_is_detected() {
    for (version, seal) in [(3, Seal::Crc32), (2, Seal::Blake3)] {
        let record = encode_event_as(42, &event(), version, seal).unwrap();
        assert!(decode_event(42, &record).is_ok());
        for index in 0..record.len() {
            for bit in 0..8 {
                let mut damaged = record.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    decode_event(42, &damaged).is_err(),
                    "version {version}: byte {index} bit {bit}"
                );
                assert!(
                    decode_stream_event(&stream(), 42, &damaged).is_err(),
                    "version {version}: byte {index} bit {bit}, read as a stream's"
                );
                assert!(
                    decode_replay(42, &damaged).is_err(),
                    "version {version}: byte {index} bit {bit}, read for a replay"
                );
            }
        }
        assert!(decode_event(42, &record[..record.len() - 1]).is_err());
        assert!(decode_event(42, &[]).is_err());
        let moved = decode_event(43, &record).unwrap_err();
        assert!(moved.contains("checksum"), "version {version}: {moved}");
        let moved = decode_stream_event(&stream(), 43, &record).unwrap_err();
        assert!(moved.contains("checksum"), "version {version}: {moved}");
    }
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
