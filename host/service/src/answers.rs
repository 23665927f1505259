//! The answers: what a request returns when it succeeds. Their JSON is the
//! API's bodies; fields are declared in the order the API has always
//! written them (alphabetical), so a body is the same bytes whichever
//! node, transport or code path produced it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use aether_store::RecordedEvent;

/// An event as the API shows it: a JSON payload as JSON, any other as text
/// (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventJson {
    /// The payload's content type, e.g. `application/json`.
    pub content_type: String,
    /// The payload.
    pub data: Value,
    /// The event's type, e.g. `Deposited`.
    pub event_type: String,
    /// Its unique id (UUIDv7).
    pub id: String,
    /// Where it came from.
    pub metadata: MetadataJson,
    /// Its position in the namespace's log.
    pub position: u64,
    /// Its stream, `namespace/type/id`.
    pub stream: String,
    /// When it was stored (Unix milliseconds).
    pub timestamp_ms: u64,
    /// Its version in the stream (from 1).
    pub version: u64,
}

/// An event's metadata as the API shows it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetadataJson {
    /// The id of the message that directly caused it.
    pub causation_id: Option<String>,
    /// The id of the command that produced it.
    pub command_id: Option<String>,
    /// The digest of the component that decided it.
    pub component_digest: Option<String>,
    /// Groups everything that follows from one original request.
    pub correlation_id: Option<String>,
}

impl From<&RecordedEvent> for EventJson {
    fn from(event: &RecordedEvent) -> Self {
        let data = serde_json::from_slice::<Value>(&event.data)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.data).into_owned()));
        let metadata = &event.metadata;
        Self {
            content_type: event.content_type.clone(),
            data,
            event_type: event.event_type.clone(),
            id: event.id.to_string(),
            metadata: MetadataJson {
                causation_id: metadata.causation_id.clone(),
                command_id: metadata.command_id.clone(),
                component_digest: metadata.component_digest.clone(),
                correlation_id: metadata.correlation_id.clone(),
            },
            position: event.position,
            stream: event.stream.to_string(),
            timestamp_ms: event.timestamp_ms,
            version: event.version,
        }
    }
}

/// A command carried out: `POST …/commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandAnswer {
    /// The command id was stored before: `events` are the ones stored the
    /// first time, nothing new was written.
    pub duplicate: bool,
    /// The events it stored (none if the aggregate decided nothing).
    pub events: Vec<EventJson>,
    /// The aggregate's version afterwards.
    pub version: u64,
}

impl CommandAnswer {
    /// Whether it stored events (a success that is true whoever answered
    /// it: the store's version check fences a stale writer).
    pub fn stored_events(&self) -> bool {
        !self.events.is_empty()
    }
}

impl From<&aether_runtime::CommandOutcome> for CommandAnswer {
    fn from(outcome: &aether_runtime::CommandOutcome) -> Self {
        Self {
            duplicate: outcome.duplicate,
            events: outcome.events.iter().map(EventJson::from).collect(),
            version: outcome.version,
        }
    }
}

/// An aggregate's state: `GET …/{type}/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateAnswer {
    /// The component's view, as JSON text (not parsed by the node: a large
    /// view costs the shared workers a copy, not a parse).
    pub state: Vec<u8>,
    /// The stream, `namespace/type/id`.
    pub stream: String,
    /// The version the view is of.
    pub version: u64,
}

impl StateAnswer {
    /// The API's body: `{"state":…,"stream":…,"version":…}`, the view's
    /// bytes as they are (the same bytes [`Serialize`] writes).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let name = serde_json::to_vec(&self.stream).expect("a string encodes");
        let mut body = Vec::with_capacity(self.state.len() + name.len() + 48);
        body.extend_from_slice(b"{\"state\":");
        body.extend_from_slice(&self.state);
        body.extend_from_slice(b",\"stream\":");
        body.extend_from_slice(&name);
        body.extend_from_slice(format!(",\"version\":{}}}", self.version).as_bytes());
        body
    }

    /// The view, parsed.
    pub fn view(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(&self.state)
    }
}

#[derive(Serialize, Deserialize)]
struct StateWire<S> {
    state: S,
    stream: String,
    version: u64,
}

impl Serialize for StateAnswer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.state).map_err(serde::ser::Error::custom)?;
        let state = RawValue::from_string(text.to_owned()).map_err(serde::ser::Error::custom)?;
        StateWire {
            state,
            stream: self.stream.clone(),
            version: self.version,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StateAnswer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = StateWire::<Box<RawValue>>::deserialize(deserializer)?;
        Ok(Self {
            state: wire.state.get().as_bytes().to_vec(),
            stream: wire.stream,
            version: wire.version,
        })
    }
}

/// A page of an aggregate's events: `GET …/{type}/{id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// The events, in version order.
    pub events: Vec<EventJson>,
    /// The version to ask from for the next page.
    pub next_version: u64,
    /// The stream, `namespace/type/id`.
    pub stream: String,
    /// The stream's version when it was read.
    pub version: u64,
}

/// Why the active component of an aggregate type changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A component was uploaded and activated.
    Deploy,
    /// A component deployed before was activated again.
    Activate,
    /// The component active before the current one was activated again.
    Rollback,
}

/// A change of the active component: a deploy, activation or rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationAnswer {
    /// Why.
    pub action: Action,
    /// The aggregate type.
    pub aggregate_type: String,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// The component now active.
    pub digest: String,
    /// The namespace.
    pub namespace: String,
    /// The component active before, if any.
    pub previous: Option<String>,
    /// The component's size in bytes.
    pub size: usize,
    /// The component's declared state schema, if any.
    pub state_schema: Option<String>,
    /// In a cluster: the members that did not confirm, within the wait,
    /// that they decide with the new component (none: every member does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed_nodes: Vec<String>,
    /// A verified deploy's report (`?verify=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Value>,
}

/// An aggregate type's deployment history: `GET …/{type}/components`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryAnswer {
    /// The active digest, if any.
    pub active: Option<String>,
    /// The aggregate type.
    pub aggregate_type: String,
    /// Every change, oldest first.
    pub history: Vec<ActivationAnswer>,
}

/// One deployed aggregate type and its active component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateTypeAnswer {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The active component's digest.
    pub digest: String,
}

/// The aggregate types of a namespace: `GET …/aggregates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateTypesAnswer {
    /// Each type and its active digest.
    pub aggregate_types: Vec<AggregateTypeAnswer>,
}

/// The answer to a request routed to a shard's owner: what a single node
/// would have answered, typed. The cluster carries it (or the
/// [`ServiceError`](crate::ServiceError)) between nodes as it is and never builds HTTP statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answered {
    /// A command carried out.
    Command(CommandAnswer),
    /// An aggregate's state.
    State(StateAnswer),
}

impl Answered {
    /// Whether it is a command's success that stored events: true whoever
    /// answered it, since the store's version check fences a stale writer.
    pub fn stored_events(&self) -> bool {
        matches!(self, Answered::Command(answer) if answer.stored_events())
    }
}

/// The reply to a request on the NATS submit subject: the status and body
/// the HTTP API would answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Envelope {
    /// The envelope of a successful answer.
    pub fn ok(answer: &impl Serialize) -> Self {
        Self {
            status: 200,
            body: serde_json::to_value(answer).expect("an answer encodes"),
        }
    }

    /// The envelope of an error.
    pub fn error(error: &crate::ServiceError) -> Self {
        Self {
            status: error.http_status(),
            body: error.body(),
        }
    }
}

impl From<&Result<Answered, crate::ServiceError>> for Envelope {
    fn from(reply: &Result<Answered, crate::ServiceError>) -> Self {
        match reply {
            Ok(Answered::Command(answer)) => Envelope::ok(answer),
            Ok(Answered::State(answer)) => Envelope::ok(answer),
            Err(error) => Envelope::error(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_core::namespace::layout::parse_stream_key;
    use aether_store::{EventMetadata, RecordedEvent};

    fn event() -> RecordedEvent {
        RecordedEvent {
            id: uuid_of("0190b3c2-7d7e-7a6b-9c1d-2e3f4a5b6c7d"),
            stream: parse_stream_key("bank/account/a-1").unwrap(),
            version: 3,
            position: 9,
            event_type: "Deposited".into(),
            content_type: "application/json".into(),
            data: br#"{"amount":5,"note":"x"}"#.to_vec(),
            metadata: EventMetadata {
                command_id: Some("c-1".into()),
                correlation_id: None,
                causation_id: Some("k".into()),
                component_digest: Some("d".into()),
            },
            timestamp_ms: 1_700_000_000_000,
        }
    }

    fn uuid_of(text: &str) -> uuid::Uuid {
        text.parse().unwrap()
    }

    /// The API's bytes for [`event`] (as `RecordedEvent::to_json` wrote
    /// them before the typed answers replaced it).
    const EVENT: &str = r#"{"content_type":"application/json","data":{"amount":5,"note":"x"},"event_type":"Deposited","id":"0190b3c2-7d7e-7a6b-9c1d-2e3f4a5b6c7d","metadata":{"causation_id":"k","command_id":"c-1","component_digest":"d","correlation_id":null},"position":9,"stream":"bank/account/a-1","timestamp_ms":1700000000000,"version":3}"#;

    #[test]
    fn an_event_has_the_apis_bytes() {
        let event = event();
        let typed = serde_json::to_string(&EventJson::from(&event)).unwrap();
        assert_eq!(typed, EVENT);
        let text = RecordedEvent {
            data: b"not json".to_vec(),
            ..event
        };
        let typed = serde_json::to_string(&EventJson::from(&text)).unwrap();
        assert_eq!(
            typed,
            EVENT.replace(r#"{"amount":5,"note":"x"}"#, r#""not json""#)
        );
    }

    #[test]
    fn a_command_answer_has_the_apis_bytes() {
        let event = event();
        let answer = CommandAnswer {
            duplicate: false,
            events: vec![EventJson::from(&event)],
            version: 3,
        };
        let bytes = format!(r#"{{"duplicate":false,"events":[{EVENT}],"version":3}}"#);
        assert_eq!(serde_json::to_string(&answer).unwrap(), bytes);
        let back: CommandAnswer = serde_json::from_str(&bytes).unwrap();
        assert_eq!(back, answer);
    }

    #[test]
    fn a_state_answer_keeps_the_views_bytes_and_crosses_the_wire() {
        let answer = StateAnswer {
            state: br#"{"balance":18446744073709551615,"z":1.5e300,"a":[]}"#.to_vec(),
            stream: "bank/account/a-\"1".into(),
            version: 7,
        };
        let bytes = answer.to_json_bytes();
        assert_eq!(serde_json::to_vec(&answer).unwrap(), bytes);
        assert_eq!(
            bytes,
            br#"{"state":{"balance":18446744073709551615,"z":1.5e300,"a":[]},"stream":"bank/account/a-\"1","version":7}"#
        );
        assert_eq!(
            serde_json::from_slice::<StateAnswer>(&bytes).unwrap(),
            answer
        );
    }
}
