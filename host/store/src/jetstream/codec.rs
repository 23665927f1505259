//! How events and snapshots are laid out in JetStream messages and KV
//! values.

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::StreamMessage;

use super::{BACKEND, unavailable};
use crate::{
    AppendError, BatchEvent, EventMetadata, RecordedEvent, Snapshot, StoreError, StreamId,
    VersionConflict,
};
use aether_core::namespace::layout::{parse_store_subject, stream_key};

const VERSION: &str = "Aether-Version";
const EVENT_ID: &str = "Aether-Event-Id";
const EVENT_TYPE: &str = "Aether-Event-Type";
const CONTENT_TYPE: &str = "Aether-Content-Type";
const TIMESTAMP: &str = "Aether-Timestamp-Ms";
const COMMAND: &str = "Aether-Command-Id";
const CORRELATION: &str = "Aether-Correlation-Id";
const CAUSATION: &str = "Aether-Causation-Id";
const DIGEST: &str = "Aether-Component-Digest";

/// Marks an append JetStream reported as a duplicate (internal).
pub(super) const DUPLICATE: &str = "duplicate message id";

/// Starts the message of a publish that reached no stream, or that its
/// stream got only part of: nothing was stored, and the same publish may
/// succeed a moment later. That happens right after a namespace's stream
/// is created, until every server routes its subjects to it.
const NOT_ROUTED: &str = "the namespace's stream did not get the publish (yet)";

/// A publish that stored nothing because it did not (fully) reach its
/// stream; see [`NOT_ROUTED`].
pub(super) fn not_routed(detail: impl std::fmt::Display) -> AppendError {
    unavailable(format!("{NOT_ROUTED}: {detail}")).into()
}

/// Whether an append failed as [`not_routed`], so trying again is safe
/// and may succeed.
pub(super) fn is_not_routed(error: &AppendError) -> bool {
    matches!(error, AppendError::Store(StoreError::Unavailable { message, .. })
        if message.starts_with(NOT_ROUTED))
}

/// The headers that carry everything of `event` but its data.
pub(super) fn headers(event: &RecordedEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(VERSION, event.version.to_string().as_str());
    headers.insert(EVENT_ID, event.id.to_string().as_str());
    headers.insert(EVENT_TYPE, event.event_type.as_str());
    headers.insert(CONTENT_TYPE, event.content_type.as_str());
    headers.insert(TIMESTAMP, event.timestamp_ms.to_string().as_str());
    let metadata = &event.metadata;
    for (name, value) in [
        (COMMAND, &metadata.command_id),
        (CORRELATION, &metadata.correlation_id),
        (CAUSATION, &metadata.causation_id),
        (DIGEST, &metadata.component_digest),
    ] {
        if let Some(value) = value {
            headers.insert(name, value.as_str());
        }
    }
    headers
}

fn header<'a>(message: &'a StreamMessage, name: &str) -> Option<&'a str> {
    message.headers.get(name).map(|v| v.as_str())
}

fn damaged(message: &StreamMessage, what: String) -> StoreError {
    StoreError::Corrupt {
        location: format!(
            "{BACKEND} sequence {} ({})",
            message.sequence, message.subject
        ),
        message: what,
    }
}

/// The version an event message carries.
pub(super) fn version(message: &StreamMessage) -> Result<u64, StoreError> {
    header(message, VERSION)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| damaged(message, format!("no valid {VERSION} header")))
}

/// The event's headers of a message (the first value of each), found in
/// one pass over its headers: looking each up by name would build (and
/// allocate) a header name and hash it, ten times per event read.
#[derive(Default)]
pub(super) struct Fields<'a> {
    version: Option<&'a str>,
    id: Option<&'a str>,
    event_type: Option<&'a str>,
    content_type: Option<&'a str>,
    timestamp: Option<&'a str>,
    command: Option<&'a str>,
    correlation: Option<&'a str>,
    causation: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Fields<'a> {
    pub(super) fn of(message: &'a StreamMessage) -> Self {
        let mut fields = Fields::default();
        for (name, values) in message.headers.iter() {
            let field = match name.as_ref() {
                VERSION => &mut fields.version,
                EVENT_ID => &mut fields.id,
                EVENT_TYPE => &mut fields.event_type,
                CONTENT_TYPE => &mut fields.content_type,
                TIMESTAMP => &mut fields.timestamp,
                COMMAND => &mut fields.command,
                CORRELATION => &mut fields.correlation,
                CAUSATION => &mut fields.causation,
                DIGEST => &mut fields.digest,
                _ => continue,
            };
            *field = values.first().map(|v| v.as_str());
        }
        fields
    }

    /// The checks every decoded event passes, whatever it is decoded
    /// into: (its id, its version, its type).
    fn checked(&self, message: &StreamMessage) -> Result<(uuid::Uuid, u64, &'a str), StoreError> {
        let id = self
            .id
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| damaged(message, format!("no valid {EVENT_ID} header")))?;
        let version = self
            .version
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| damaged(message, format!("no valid {VERSION} header")))?;
        let event_type = self
            .event_type
            .ok_or_else(|| damaged(message, format!("no {EVENT_TYPE} header")))?;
        Ok((id, version, event_type))
    }

    fn timestamp_ms(&self) -> u64 {
        self.timestamp.and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// The event in `message`, of `stream`.
pub(super) fn decode(
    stream: &StreamId,
    message: &StreamMessage,
) -> Result<RecordedEvent, StoreError> {
    let fields = Fields::of(message);
    let (id, version, event_type) = fields.checked(message)?;
    let text = |value: Option<&str>| value.map(str::to_owned);
    Ok(RecordedEvent {
        id,
        stream: stream.clone(),
        version,
        position: message.sequence,
        event_type: event_type.to_owned(),
        content_type: text(fields.content_type)
            .unwrap_or_else(|| crate::JSON_CONTENT_TYPE.to_owned()),
        data: message.payload.to_vec(),
        metadata: EventMetadata {
            command_id: text(fields.command),
            correlation_id: text(fields.correlation),
            causation_id: text(fields.causation),
            component_digest: text(fields.digest),
        },
        timestamp_ms: fields.timestamp_ms(),
    })
}

/// The event in `message` as a replay batch holds it (see
/// [`crate::ReplayBatch`]), with its command id: the same checks as
/// [`decode`], and the same fields, without building a [`RecordedEvent`].
pub(super) fn decode_replay<'a>(
    message: &'a StreamMessage,
) -> Result<(BatchEvent<'a>, Option<&'a str>), StoreError> {
    let fields = Fields::of(message);
    let (_, version, event_type) = fields.checked(message)?;
    let event = BatchEvent {
        version,
        timestamp_ms: fields.timestamp_ms(),
        event_type,
        content_type: fields.content_type.unwrap_or(crate::JSON_CONTENT_TYPE),
        data: &message.payload,
    };
    Ok((event, fields.command))
}

/// The event in `message`, whichever stream its subject names.
pub(super) fn decode_any(
    prefix: &str,
    message: &StreamMessage,
) -> Result<RecordedEvent, StoreError> {
    let stream = parse_store_subject(prefix, message.subject.as_str())
        .ok_or_else(|| damaged(message, "the subject names no stream".into()))?;
    decode(&stream, message)
}

/// The `Nats-Msg-Id` of a command on a stream.
pub(super) fn message_id(stream_key: &str, command_id: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(stream_key.as_bytes());
    hasher.update(&[0]);
    hasher.update(command_id.as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// Whether JetStream refused a publish because the subject moved on
/// (error codes 10071 and 10164).
pub(super) fn is_conflict(error: &PublishError) -> bool {
    error.kind() == PublishErrorKind::WrongLastSequence
        || error.to_string().contains("10164")
        || error.to_string().contains("10071")
}

/// The answer to a batch's commit: the last sequence, or a conflict.
pub(super) fn batch_ack(
    payload: &[u8],
    stream: &StreamId,
    current: u64,
) -> Result<u64, AppendError> {
    let reply: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| unavailable(format!("the batch commit's answer is not JSON: {e}")))?;
    if let Some(error) = reply.get("error") {
        let code = error["err_code"].as_u64().unwrap_or(0);
        if code == 10071 || code == 10164 {
            return Err(VersionConflict {
                stream: stream.clone(),
                expected: current,
                actual: current + 1,
            }
            .into());
        }
        // A missing or incomplete batch: the stream got the commit but not
        // every message before it (its subjects were being routed to it
        // while the batch went out), so it stored none of them.
        if code == 10175 || code == 10176 {
            return Err(not_routed(format!("the batch was refused: {error}")));
        }
        return Err(unavailable(format!("the batch was refused: {error}")).into());
    }
    if reply["duplicate"].as_bool() == Some(true) {
        return Err(AppendError::Invalid(DUPLICATE.into()));
    }
    reply["seq"].as_u64().ok_or_else(|| {
        unavailable(format!(
            "the batch commit's answer has no sequence: {reply}"
        ))
        .into()
    })
}

/// The KV key of a snapshot: a digest, since stream keys hold characters
/// KV keys may not.
pub(super) fn snapshot_key(stream: &StreamId, component_key: &str) -> String {
    message_id(&stream_key(stream), component_key)
}

/// A snapshot as a KV value: its version (8 bytes, big endian), its
/// timestamp (8 bytes), then the state.
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> bytes::Bytes {
    let mut out = Vec::with_capacity(16 + snapshot.state.len());
    out.extend_from_slice(&snapshot.version.to_be_bytes());
    out.extend_from_slice(&snapshot.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&snapshot.state);
    out.into()
}

/// The version a stored snapshot value holds (0 if it is too short).
pub(super) fn snapshot_version(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// A stored snapshot value, back.
pub(super) fn decode_snapshot(
    stream: &StreamId,
    component_key: &str,
    value: &[u8],
) -> Result<Snapshot, StoreError> {
    if value.len() < 16 {
        return Err(StoreError::Corrupt {
            location: format!("{BACKEND} snapshot of {stream}"),
            message: format!("{} bytes, shorter than its 16-byte header", value.len()),
        });
    }
    Ok(Snapshot {
        stream: stream.clone(),
        version: snapshot_version(value),
        snapshot_key: component_key.to_owned(),
        state: value[16..].to_vec(),
        timestamp_ms: u64::from_be_bytes(value[8..16].try_into().unwrap_or_default()),
    })
}
