//! The resource driven as the host would, natively.

use serde::{Deserialize, Serialize};

use super::{Resource, wit};
use crate::batch::{self, BatchEvent};
use crate::{Aggregate, Rejection};
use wit::GuestAggregate as _;

#[derive(Default, Serialize, Deserialize)]
struct Tally {
    total: u32,
}

#[derive(Serialize, Deserialize)]
enum Command {
    Add {
        n: u32,
    },
    Nothing,
    /// Decides an event, then one that cannot be decoded again.
    AddAndBreak {
        n: u32,
    },
}

#[derive(Serialize, Deserialize)]
enum Event {
    Added {
        n: u32,
    },
    /// Written, but never read back: a replay could not apply it.
    #[serde(skip_deserializing)]
    Unreadable,
}

impl Aggregate for Tally {
    type Command = Command;
    type Event = Event;

    fn handle(&self, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Add { n: 0 } => Err(Rejection::new("zero", "adding 0 changes nothing")),
            Command::Add { n } => Ok(vec![Event::Added { n }]),
            Command::Nothing => Ok(vec![]),
            Command::AddAndBreak { n } => Ok(vec![
                Event::Added { n },
                Event::Unreadable,
                Event::Added { n },
            ]),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Added { n } => self.total += n,
            Event::Unreadable => unreachable!("never decoded"),
        }
    }
}

fn event(version: u64, event_type: &'static str, data: &'static str) -> BatchEvent<'static> {
    BatchEvent {
        version,
        event_type: event_type.as_bytes(),
        content_type: b"application/json",
        data: data.as_bytes(),
    }
}

/// A JSON command: (type, content type, data).
fn command(command_type: &str, data: &str) -> (String, String, Vec<u8>) {
    (command_type.into(), "application/json".into(), data.into())
}

const TIMESTAMP_MS: u64 = 1_700_000_000_000;

/// `execute` at version 10 (the state does not know its version).
fn execute(tally: &Resource<Tally>, command: (String, String, Vec<u8>)) -> wit::Decision {
    let (command_type, content_type, data) = command;
    tally.execute(command_type, content_type, data, 10, TIMESTAMP_MS)
}

/// The events of a decision's batch, after checking each is stamped as the
/// host will store it: versions from 10, the command's timestamp.
fn decided(batch: &[u8]) -> Vec<BatchEvent<'_>> {
    let events: Vec<_> = batch::events(batch).collect::<Result<_, _>>().unwrap();
    let mut offset = 0;
    for (version, event) in (10..).zip(&events) {
        assert_eq!(event.version, version);
        let stamp = u64::from_le_bytes(batch[offset + 8..offset + 16].try_into().unwrap());
        assert_eq!(stamp, TIMESTAMP_MS);
        offset += 28 + event.event_type.len() + event.content_type.len() + event.data.len();
    }
    events
}

fn events_of(decision: wit::Decision) -> Vec<u8> {
    match decision {
        wit::Decision::Events(batch) => batch,
        wit::Decision::Rejected(r) => panic!("rejected: {} ({})", r.message, r.code),
        wit::Decision::Unapplied(u) => panic!("unapplied: {}", u.error.message),
    }
}

fn rejection_of(decision: wit::Decision) -> super::Rejection {
    match decision {
        wit::Decision::Rejected(rejection) => rejection,
        _ => panic!("expected a rejection"),
    }
}

fn resource() -> Resource<Tally> {
    Resource::new("tally-1".into())
}

#[test]
fn apply_folds_a_batch_into_the_state() {
    let tally = resource();
    let batch = batch::write(&[
        event(1, "Added", r#"{"n":2}"#),
        event(2, "Added", r#"{"n":3}"#),
    ]);
    tally.apply(batch).unwrap();
    assert_eq!(tally.view(), r#"{"total":5}"#);
}

#[test]
fn apply_reports_the_version_that_failed() {
    let tally = resource();
    let batch = batch::write(&[
        event(1, "Added", r#"{"n":2}"#),
        event(2, "Removed", r#"{"n":3}"#),
        event(3, "Added", r#"{"n":4}"#),
    ]);
    let error = tally.apply(batch).unwrap_err();
    assert_eq!(error.version, 2);
    assert_eq!(
        error.message,
        r#"cannot apply event: unknown type "Removed", expected one of "Added""#
    );
    // Events before the failure are applied; nothing after it is.
    assert_eq!(tally.view(), r#"{"total":2}"#);
}

#[test]
fn apply_reports_a_malformed_batch_at_the_version_after_the_last_good_one() {
    let tally = resource();
    let mut bytes = batch::write(&[
        event(1, "Added", r#"{"n":2}"#),
        event(2, "Added", r#"{"n":3}"#),
    ]);
    bytes.truncate(bytes.len() - 1);
    let error = tally.apply(bytes).unwrap_err();
    assert_eq!(error.version, 2);
    assert!(
        error.message.starts_with("the host sent a malformed batch"),
        "{}",
        error.message
    );
    assert_eq!(tally.view(), r#"{"total":2}"#);
}

#[test]
fn apply_reads_json_content_types_with_parameters_and_refuses_names_that_are_not_utf8() {
    let tally = resource();
    let mut with_charset = event(1, "Added", r#"{"n":2}"#);
    with_charset.content_type = b"Application/JSON; charset=utf-8";
    tally.apply(batch::write(&[with_charset])).unwrap();
    assert_eq!(tally.view(), r#"{"total":2}"#);

    let mut not_utf8 = event(2, "Added", r#"{"n":3}"#);
    not_utf8.event_type = b"Add\xffed";
    let error = tally.apply(batch::write(&[not_utf8])).unwrap_err();
    assert_eq!(error.version, 2);
    assert_eq!(
        error.message,
        "cannot apply event: unknown type \"Add\u{fffd}ed\", expected one of \"Added\""
    );
    assert_eq!(tally.view(), r#"{"total":2}"#);
}

#[test]
fn apply_refuses_other_content_types() {
    let tally = resource();
    let mut cbor = event(7, "Added", "");
    cbor.content_type = b"application/cbor";
    let error = tally.apply(batch::write(&[cbor])).unwrap_err();
    assert_eq!(error.version, 7);
    assert!(
        error
            .message
            .starts_with("unsupported content type \"application/cbor\""),
        "{}",
        error.message
    );
}

#[test]
fn execute_encodes_the_events_and_applies_them() {
    let tally = resource();
    let batch = events_of(execute(&tally, command("Add", r#"{"n":4}"#)));
    let events = decided(&batch);
    assert_eq!(events, [event(10, "Added", r#"{"n":4}"#)]);
    assert_eq!(tally.view(), r#"{"total":4}"#);
    // The same state as a replay of the events it decided: the very batch.
    let replayed = resource();
    replayed.apply(batch.clone()).unwrap();
    assert_eq!(replayed.view(), tally.view());

    let nothing = events_of(execute(&tally, command("Nothing", "null")));
    assert!(nothing.is_empty());
    assert_eq!(tally.view(), r#"{"total":4}"#);
}

#[test]
fn execute_reports_the_first_event_it_cannot_apply_at_its_version() {
    let tally = resource();
    events_of(execute(&tally, command("Add", r#"{"n":1}"#)));
    let wit::Decision::Unapplied(unapplied) = execute(&tally, command("AddAndBreak", r#"{"n":2}"#))
    else {
        panic!("the second event does not decode");
    };
    assert_eq!(
        decided(&unapplied.events).len(),
        3,
        "every decided event is returned"
    );
    let error = unapplied.error;
    assert_eq!(error.version, 11, "first version 10, then the second event");
    assert!(
        error.message.starts_with("cannot apply event: "),
        "{}",
        error.message
    );
    // The event before it stays applied; the one after it is not.
    assert_eq!(tally.view(), r#"{"total":3}"#);
}

#[test]
fn execute_returns_business_rejections_and_keeps_the_state() {
    let tally = resource();
    events_of(execute(&tally, command("Add", r#"{"n":5}"#)));
    let rejection = rejection_of(execute(&tally, command("Add", r#"{"n":0}"#)));
    assert_eq!(
        (rejection.code.as_str(), rejection.message.as_str()),
        ("zero", "adding 0 changes nothing")
    );
    assert_eq!(tally.view(), r#"{"total":5}"#);
}

#[test]
fn execute_rejects_malformed_commands() {
    let tally = resource();
    let unknown = rejection_of(execute(&tally, command("Subtract", "{}")));
    assert_eq!(unknown.code, "malformed-command");
    assert_eq!(
        unknown.message,
        r#"unknown type "Subtract", expected one of "Add", "Nothing", "AddAndBreak""#
    );
    let invalid = rejection_of(execute(&tally, command("Add", r#"{"n":"x"}"#)));
    assert_eq!(invalid.code, "malformed-command");
    assert!(
        invalid
            .message
            .starts_with(r#"invalid data for "Add": invalid type: string "x""#),
        "{}",
        invalid.message
    );
    let mut xml = command("Add", "<n>1</n>");
    xml.1 = "text/xml".into();
    assert_eq!(
        rejection_of(execute(&tally, xml)).code,
        "unsupported-content-type"
    );
}

#[test]
fn snapshot_and_restore_round_trip_the_state() {
    let tally = resource();
    tally
        .apply(batch::write(&[event(1, "Added", r#"{"n":9}"#)]))
        .unwrap();
    let snapshot = tally.snapshot();
    assert_eq!(snapshot, br#"{"total":9}"#);

    let other = resource();
    other.restore(snapshot).unwrap();
    assert_eq!(other.view(), r#"{"total":9}"#);
    let error = other.restore(b"{}".to_vec()).unwrap_err();
    assert!(
        error.starts_with("cannot restore the snapshot: missing field `total`"),
        "{error}"
    );
    // A failed restore leaves the state as it was.
    assert_eq!(other.view(), r#"{"total":9}"#);
}

// The macro must expand outside the SDK (it is used by path, not by import).
crate::export_aggregate!(Tally);
