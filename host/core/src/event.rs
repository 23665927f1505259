//! The event envelope: what an append asks for and what the store records.
//!
//! Payloads are opaque bytes with a content type (JSON by default, so every
//! guest language can read them); the store never looks inside them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::namespace::{AggregateId, AggregateType, Namespace};

/// The content type of JSON payloads, the default for guest events.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The name of one aggregate's stream. Displays as `namespace/type/id`, which
/// is unambiguous because none of the three names may contain `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    /// The tenant the stream belongs to.
    pub namespace: Namespace,
    /// The aggregate type, which selects the component.
    pub aggregate_type: AggregateType,
    /// The aggregate's identity within its type.
    pub aggregate_id: AggregateId,
}

impl StreamId {
    /// Names the stream of one aggregate.
    pub fn new(
        namespace: Namespace,
        aggregate_type: AggregateType,
        aggregate_id: AggregateId,
    ) -> StreamId {
        StreamId {
            namespace,
            aggregate_type,
            aggregate_id,
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.namespace, self.aggregate_type, self.aggregate_id
        )
    }
}

/// An event to append, as decided by an aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's type name, chosen by the aggregate (e.g. `deposited`).
    pub event_type: String,
    /// The media type of `data` (e.g. [`JSON_CONTENT_TYPE`]).
    pub content_type: String,
    /// The payload, stored opaquely.
    pub data: Vec<u8>,
}

impl NewEvent {
    /// An event with an explicit content type.
    pub fn new(
        event_type: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> NewEvent {
        NewEvent {
            event_type: event_type.into(),
            content_type: content_type.into(),
            data: data.into(),
        }
    }

    /// An event whose payload is JSON (already encoded).
    pub fn json(event_type: impl Into<String>, data: impl Into<Vec<u8>>) -> NewEvent {
        NewEvent::new(event_type, JSON_CONTENT_TYPE, data)
    }
}

/// Where an event came from; stored with every event of an append.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The id of the command that produced the events; the idempotency key of
    /// an append (unique per stream).
    pub command_id: Option<String>,
    /// Groups everything that follows from one original request.
    pub correlation_id: Option<String>,
    /// The id of the message (command or event) that directly caused this one.
    pub causation_id: Option<String>,
    /// blake3 digest of the component that decided the events.
    pub component_digest: Option<String>,
}

/// The version a writer believes the stream is at; the optimistic concurrency
/// check of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version (no concurrency check).
    Any,
    /// Append only if the stream is exactly at this version. `Exact(0)` means
    /// the stream must not exist yet.
    Exact(u64),
}

impl ExpectedVersion {
    /// Checks this expectation against the stream's `actual` version; the one
    /// place that decides what counts as a conflict, shared by all backends.
    pub fn check(self, stream: &StreamId, actual: u64) -> Result<(), VersionConflict> {
        match self {
            ExpectedVersion::Exact(expected) if expected != actual => Err(VersionConflict {
                stream: stream.clone(),
                expected,
                actual,
            }),
            _ => Ok(()),
        }
    }
}

/// One command's worth of events for one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// The stream to append to.
    pub stream: StreamId,
    /// The version the writer decided against.
    pub expected: ExpectedVersion,
    /// The events, in order; at least one.
    pub events: Vec<NewEvent>,
    /// Stored with every event.
    pub metadata: EventMetadata,
    /// When the command was handled (Unix milliseconds); the guest saw this
    /// time, so it is stored rather than the time of writing.
    pub timestamp_ms: u64,
}

/// An event as stored: the envelope plus its identity and place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Unique id (UUIDv7) assigned by the store. Serialised as its hyphenated
    /// string form.
    #[serde(with = "uuid_as_string")]
    pub id: Uuid,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// 1-based position within the stream.
    pub version: u64,
    /// 1-based position in the log of the stream's namespace (positions of
    /// different namespaces are unrelated).
    pub position: u64,
    /// See [`NewEvent::event_type`].
    pub event_type: String,
    /// See [`NewEvent::content_type`].
    pub content_type: String,
    /// See [`NewEvent::data`].
    pub data: Vec<u8>,
    /// The metadata of the append that recorded the event.
    pub metadata: EventMetadata,
    /// The append's timestamp (Unix milliseconds).
    pub timestamp_ms: u64,
}

/// The result of a successful append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The recorded events, in order.
    pub events: Vec<RecordedEvent>,
    /// `true` when the command id had already been appended to this stream:
    /// `events` are the ones recorded the first time and nothing was written.
    pub duplicate: bool,
}

impl AppendOutcome {
    /// The stream version after the append (the last event's version); 0 if
    /// there are no events.
    pub fn last_version(&self) -> u64 {
        self.events.last().map_or(0, |event| event.version)
    }

    /// The namespace position of the last event; 0 if there are no events.
    pub fn last_position(&self) -> u64 {
        self.events.last().map_or(0, |event| event.position)
    }
}

/// An aggregate's state at a version, as serialised by the component that made
/// it. Only a component with the same snapshot key can restore it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The stream the state was derived from.
    pub stream: StreamId,
    /// The version of the last event folded into the state.
    pub version: u64,
    /// Which components can read the state: the snapshot key of the
    /// component that serialised it (its blake3 digest, or `schema:<v>`
    /// when it declares a state schema; see `runtime::LoadedComponent`).
    #[serde(alias = "component_digest")]
    pub snapshot_key: String,
    /// The state, opaque to the host.
    pub state: Vec<u8>,
    /// When the snapshot was taken (Unix milliseconds).
    pub timestamp_ms: u64,
}

/// Serde for [`Uuid`] as its hyphenated string, without the `uuid/serde`
/// feature.
mod uuid_as_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use uuid::Uuid;

    pub(super) fn serialize<S: Serializer>(id: &Uuid, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&id.hyphenated())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Uuid, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Uuid::parse_str(&text)
            .map_err(|error| D::Error::custom(format!("invalid event id {text:?}: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordedEvent {
        let stream = StreamId::new(
            "bank".parse().unwrap(),
            "bank-account".parse().unwrap(),
            "acc-1".parse().unwrap(),
        );
        RecordedEvent {
            id: Uuid::now_v7(),
            stream,
            version: 5,
            position: 10,
            event_type: "opened".into(),
            content_type: JSON_CONTENT_TYPE.into(),
            data: b"{}".to_vec(),
            metadata: EventMetadata::default(),
            timestamp_ms: 7,
        }
    }

    #[test]
    fn recorded_event_round_trips_through_json_with_a_string_id() {
        let event = sample();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["id"], serde_json::Value::String(event.id.to_string()));
        assert_eq!(json["stream"]["aggregate_type"], "bank-account");
        let back: RecordedEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, event);

        let mut bad = json;
        bad["id"] = "not-a-uuid".into();
        let error = serde_json::from_value::<RecordedEvent>(bad).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("invalid event id \"not-a-uuid\""),
            "{error}"
        );
    }

    #[test]
    fn expected_version_check() {
        let stream = sample().stream;
        assert_eq!(ExpectedVersion::Any.check(&stream, 3), Ok(()));
        assert_eq!(ExpectedVersion::Exact(3).check(&stream, 3), Ok(()));
        let conflict = ExpectedVersion::Exact(3).check(&stream, 5).unwrap_err();
        assert_eq!(
            conflict.to_string(),
            "version conflict on bank/bank-account/acc-1: expected version 3, found 5"
        );
    }
}

/// An append's expected version did not match the stream's actual version, so
/// nothing was written.
///
/// The caller should reload the aggregate (its live state is stale), run the
/// command again against the new state and let the aggregate decide again, or
/// report the conflict to the user (HTTP 409). The store never retries: only the
/// application knows whether the command still makes sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("version conflict on {stream}: expected version {expected}, found {actual}")]
pub struct VersionConflict {
    /// The stream appended to.
    pub stream: StreamId,
    /// The version the writer expected.
    pub expected: u64,
    /// The stream's version when the append was checked.
    pub actual: u64,
}

/// Where the runtime publishes the events the store has acknowledged (the
/// event bus implements it). The runtime depends only on this trait, so it
/// runs without a bus when it is embedded.
///
/// **Architecture invariant:** `publish` is called only after the store has
/// acknowledged `events`, in version order per stream, and must never block
/// the caller (it is on the command path).
pub trait EventSink: Send + Sync + 'static {
    /// Publishes stored events; never blocks.
    fn publish(&self, events: &[RecordedEvent]);
}

/// A sink that drops every event: the runtime's sink when nothing listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSink;

impl EventSink for NoSink {
    fn publish(&self, _events: &[RecordedEvent]) {}
}
