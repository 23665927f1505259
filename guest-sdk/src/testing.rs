//! A given/when/then harness for testing an [`Aggregate`] natively.
//!
//! ```
//! # use aether_guest::{Aggregate, Rejection};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Default, Serialize, Deserialize)]
//! # pub struct Counter { value: u64 }
//! # #[derive(Serialize, Deserialize)]
//! # pub enum Command { Increment { by: u64 } }
//! # #[derive(Serialize, Deserialize)]
//! # pub enum Event { Incremented { by: u64 } }
//! # impl Aggregate for Counter {
//! #     type Command = Command;
//! #     type Event = Event;
//! #     fn handle(&self, Command::Increment { by }: Command) -> Result<Vec<Event>, Rejection> {
//! #         Ok(vec![Event::Incremented { by }])
//! #     }
//! #     fn apply(&mut self, Event::Incremented { by }: Event) { self.value += by; }
//! # }
//! use aether_guest::testing::AggregateTest;
//!
//! AggregateTest::<Counter>::given(vec![Event::Incremented { by: 2 }])
//!     .when(Command::Increment { by: 3 })
//!     .then_events(vec![Event::Incremented { by: 3 }])
//!     .then_state(|counter| assert_eq!(counter.value, 5));
//! ```
//!
//! Everything crosses the [wire format](crate#wire-format) as it would in a
//! component: given events, the command and the produced events are encoded
//! and decoded before the aggregate sees them, so a serde mistake (a skipped
//! field, a rename that does not round-trip) fails here rather than in the
//! host. Events are compared by their wire form, so event types need not
//! implement `PartialEq`. A failed check panics with the expected and actual
//! values as JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Aggregate, Rejection, wire};

/// The "given" step: an aggregate built from past events.
pub struct AggregateTest<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from the initial state (no events).
    pub fn given_no_previous_events() -> Self {
        Self {
            state: A::default(),
        }
    }

    /// Starts from the state after applying `events`, in order.
    pub fn given(events: Vec<A::Event>) -> Self {
        let mut state = A::default();
        for event in &events {
            state.apply(through_wire::<A::Event, _>("given event", event));
        }
        Self { state }
    }

    /// Starts from a state restored from a snapshot: `state` goes through
    /// `serde_json` as the snapshot would.
    pub fn given_state(state: &A) -> Self {
        let json = serde_json::to_vec(state)
            .unwrap_or_else(|error| panic!("cannot snapshot the given state: {error}"));
        let state = serde_json::from_slice(&json).unwrap_or_else(|error| {
            panic!(
                "cannot restore the given state from its snapshot {}: {error}",
                lossy(&json)
            )
        });
        Self { state }
    }

    /// The "when" step: decides `command` against the given state, after
    /// sending it through the wire format (hence `Serialize`).
    #[must_use = "check the outcome with then_events, then_rejected or then_state"]
    pub fn when(self, command: A::Command) -> Outcome<A>
    where
        A::Command: Serialize,
    {
        let command: A::Command = through_wire("command", &command);
        let mut state = self.state;
        let result = state.handle(command).map(|events| {
            events
                .iter()
                .map(|event| {
                    let (event_type, data) = encode_or_panic("produced event", event);
                    let decoded = decode_or_panic::<A::Event>("produced event", &event_type, &data);
                    state.apply(decoded);
                    WireEvent::new(event_type, &data)
                })
                .collect()
        });
        Outcome { state, result }
    }
}

/// The "then" step: what the command produced, and the state after the
/// produced events were applied (unchanged if the command was rejected).
/// Each check returns the outcome so checks can be chained.
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<WireEvent>, Rejection>,
}

impl<A: Aggregate> Outcome<A> {
    /// Checks that the command produced exactly `expected`, in order.
    #[track_caller]
    pub fn then_events(self, expected: Vec<A::Event>) -> Self {
        let expected: Vec<WireEvent> = expected
            .iter()
            .map(|event| {
                let (event_type, data) = encode_or_panic("expected event", event);
                WireEvent::new(event_type, &data)
            })
            .collect();
        match &self.result {
            Ok(actual) if *actual == expected => {}
            Ok(actual) => panic!(
                "the command produced other events than expected\n\
                 expected: {}\n  actual: {}",
                pretty(&expected),
                pretty(actual)
            ),
            Err(rejection) => panic!(
                "expected events but the command was rejected\n\
                 expected: {}\nrejected: {rejection}",
                pretty(&expected)
            ),
        }
        self
    }

    /// Checks that the command was rejected with `code`.
    #[track_caller]
    pub fn then_rejected(self, code: &str) -> Self {
        match &self.result {
            Err(rejection) if rejection.code == code => {}
            Err(rejection) => panic!(
                "the command was rejected with another code\n\
                 expected code: {code}\n      rejected: {rejection}"
            ),
            Ok(events) => panic!(
                "expected a rejection with code {code:?} but the command produced events\n\
                 events: {}",
                pretty(events)
            ),
        }
        self
    }

    /// Checks that the command was rejected with `code` and exactly `message`.
    #[track_caller]
    pub fn then_rejected_with(self, code: &str, message: &str) -> Self {
        let outcome = self.then_rejected(code);
        if let Err(rejection) = &outcome.result {
            assert_eq!(
                rejection.message, message,
                "the rejection has another message"
            );
        }
        outcome
    }

    /// Runs `check` on the state after the outcome, and again on that state
    /// restored from its snapshot (so a field the snapshot loses shows up).
    #[track_caller]
    pub fn then_state(self, check: impl Fn(&A)) -> Self {
        check(&self.state);
        let snapshot = serde_json::to_vec(&self.state)
            .unwrap_or_else(|error| panic!("cannot snapshot the state: {error}"));
        let restored: A = serde_json::from_slice(&snapshot).unwrap_or_else(|error| {
            panic!(
                "cannot restore the state from its snapshot {}: {error}",
                lossy(&snapshot)
            )
        });
        eprintln!(
            "checking the state restored from the snapshot {}",
            lossy(&snapshot)
        );
        check(&restored);
        self
    }

    /// Checks that [`Aggregate::view`] of the state after the outcome is `expected`.
    #[track_caller]
    pub fn then_view(self, expected: serde_json::Value) -> Self {
        let actual = self.state.view();
        assert!(
            actual == expected,
            "the view differs\nexpected: {}\n  actual: {}",
            pretty(&expected),
            pretty(&actual)
        );
        self
    }

    /// The state after the outcome, for checks the other methods do not cover.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The rejection, if the command was rejected.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.result.as_ref().err()
    }
}

/// An event in its wire form, shown as `{"type": ..., "data": ...}`.
#[derive(Debug, PartialEq, Serialize)]
struct WireEvent {
    #[serde(rename = "type")]
    event_type: String,
    data: serde_json::Value,
}

impl WireEvent {
    fn new(event_type: String, data: &[u8]) -> Self {
        let data = serde_json::from_slice(data)
            .unwrap_or_else(|error| panic!("event {event_type:?} is not valid JSON: {error}"));
        Self { event_type, data }
    }
}

#[track_caller]
fn encode_or_panic<T: Serialize>(what: &str, value: &T) -> (String, Vec<u8>) {
    wire::encode(value).unwrap_or_else(|error| panic!("cannot encode the {what}: {error}"))
}

#[track_caller]
fn decode_or_panic<T: DeserializeOwned>(what: &str, type_name: &str, data: &[u8]) -> T {
    wire::decode(type_name, data).unwrap_or_else(|error| {
        panic!(
            "the {what} does not survive the wire format: {error}\n    data: {}",
            lossy(data)
        )
    })
}

#[track_caller]
fn through_wire<T: DeserializeOwned, S: Serialize>(what: &str, value: &S) -> T {
    let (type_name, data) = encode_or_panic(what, value);
    decode_or_panic(what, &type_name, &data)
}

fn pretty<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|error| format!("<not JSON: {error}>"))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests;
