//! How events and snapshots are laid out in JetStream messages and KV
//! values.

use std::borrow::Cow;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::StreamMessage;

use super::{BACKEND, unavailable};
use crate::{
    AppendError, BatchEvent, EventMetadata, RecordedEvent, Snapshot, StoreError, StreamId,
    VersionConflict,
};
use aether_core::namespace::layout::{parse_store_subject, stream_key};

mod envelope;

pub(super) use envelope::headers;
use envelope::{Envelope, Required};

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
    let envelope = envelope_of(message)?;
    number(&envelope.version).ok_or_else(|| damaged(message, envelope.missing(Required::Version)))
}

fn envelope_of(message: &StreamMessage) -> Result<Envelope<'_>, StoreError> {
    Envelope::of(&message.headers).map_err(|what| damaged(message, what))
}

/// The checks every decoded event passes, whatever it is decoded into:
/// its id, its version, its type.
fn checked<'e>(
    message: &StreamMessage,
    envelope: &'e Envelope<'_>,
) -> Result<(uuid::Uuid, u64, &'e str), StoreError> {
    let missing = |field| damaged(message, envelope.missing(field));
    let id = number(&envelope.id).ok_or_else(|| missing(Required::Id))?;
    let version = number(&envelope.version).ok_or_else(|| missing(Required::Version))?;
    let event_type = envelope
        .event_type
        .as_deref()
        .ok_or_else(|| missing(Required::Type))?;
    Ok((id, version, event_type))
}

/// A field of the envelope read as a number (or an id), if it is one.
fn number<T: std::str::FromStr>(field: &Option<Cow<'_, str>>) -> Option<T> {
    field.as_deref().and_then(|v| v.parse().ok())
}

fn timestamp_ms(envelope: &Envelope<'_>) -> u64 {
    number(&envelope.timestamp).unwrap_or(0)
}

/// The event in `message`, of `stream`.
pub(super) fn decode(
    stream: &StreamId,
    message: &StreamMessage,
) -> Result<RecordedEvent, StoreError> {
    let envelope = envelope_of(message)?;
    let (id, version, event_type) = checked(message, &envelope)?;
    let text = |value: &Option<Cow<'_, str>>| value.as_deref().map(str::to_owned);
    Ok(RecordedEvent {
        id,
        stream: stream.clone(),
        version,
        position: message.sequence,
        event_type: event_type.to_owned(),
        content_type: text(&envelope.content_type)
            .unwrap_or_else(|| crate::JSON_CONTENT_TYPE.to_owned()),
        data: message.payload.to_vec(),
        metadata: EventMetadata {
            command_id: text(&envelope.command),
            correlation_id: text(&envelope.correlation),
            causation_id: text(&envelope.causation),
            component_digest: text(&envelope.digest),
        },
        timestamp_ms: timestamp_ms(&envelope),
    })
}

/// The event in `message` as a replay batch holds it (see
/// [`crate::ReplayBatch`]), with its command id: the same checks as
/// [`decode`], and the same fields, without building a [`RecordedEvent`].
pub(super) struct ReplayEvent<'a> {
    envelope: Envelope<'a>,
    version: u64,
    data: &'a [u8],
}

impl<'a> ReplayEvent<'a> {
    pub(super) fn decode(message: &'a StreamMessage) -> Result<Self, StoreError> {
        let envelope = envelope_of(message)?;
        let (_, version, _) = checked(message, &envelope)?;
        Ok(ReplayEvent {
            envelope,
            version,
            data: &message.payload,
        })
    }

    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// The event, and its command id.
    pub(super) fn event(&self) -> (BatchEvent<'_>, Option<&str>) {
        let envelope = &self.envelope;
        let event = BatchEvent {
            version: self.version,
            timestamp_ms: timestamp_ms(envelope),
            // Checked in `decode`.
            event_type: envelope.event_type.as_deref().unwrap_or_default(),
            content_type: envelope
                .content_type
                .as_deref()
                .unwrap_or(crate::JSON_CONTENT_TYPE),
            data: self.data,
        };
        (event, envelope.command.as_deref())
    }
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
