//! The harness must fail loudly, and only when it should.

use serde::{Deserialize, Serialize};

use super::AggregateTest;
use crate::{Aggregate, Rejection};

#[derive(Default, Serialize, Deserialize)]
struct Lamp {
    on: bool,
    /// Lost by the snapshot on purpose, to test `then_state`.
    #[serde(skip)]
    switches: u32,
}

#[derive(Serialize, Deserialize)]
enum Command {
    Switch { on: bool },
}

#[derive(Serialize, Deserialize)]
enum Event {
    SwitchedOn,
    SwitchedOff,
}

impl Aggregate for Lamp {
    type Command = Command;
    type Event = Event;

    fn handle(&self, Command::Switch { on }: Command) -> Result<Vec<Event>, Rejection> {
        match (self.on, on) {
            (false, true) => Ok(vec![Event::SwitchedOn]),
            (true, false) => Ok(vec![Event::SwitchedOff]),
            _ => Err(Rejection::new(
                "unchanged",
                format!("the lamp is already {}", label(on)),
            )),
        }
    }

    fn apply(&mut self, event: Event) {
        self.on = matches!(event, Event::SwitchedOn);
        self.switches += 1;
    }
}

fn label(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[test]
fn produced_events_are_checked_and_applied() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: true })
        .then_events(vec![Event::SwitchedOn])
        .then_view(serde_json::json!({ "on": true }));
}

#[test]
fn rejections_are_checked_and_leave_the_state_unchanged() {
    let outcome = AggregateTest::<Lamp>::given(vec![Event::SwitchedOn])
        .when(Command::Switch { on: true })
        .then_rejected("unchanged")
        .then_rejected_with("unchanged", "the lamp is already on")
        .then_view(serde_json::json!({ "on": true }));
    assert_eq!(
        outcome.rejection().map(|r| r.code.as_str()),
        Some("unchanged")
    );
    assert!(outcome.state().on);
}

#[test]
fn given_state_starts_from_a_snapshot() {
    AggregateTest::given_state(&Lamp {
        on: true,
        switches: 0,
    })
    .when(Command::Switch { on: false })
    .then_events(vec![Event::SwitchedOff]);
}

#[test]
#[should_panic(expected = "the command produced other events than expected")]
fn other_events_fail() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: true })
        .then_events(vec![Event::SwitchedOff]);
}

#[test]
#[should_panic(expected = "expected events but the command was rejected")]
fn unexpected_rejection_fails() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: false })
        .then_events(vec![]);
}

#[test]
#[should_panic(
    expected = "expected a rejection with code \"unchanged\" but the command produced events"
)]
fn missing_rejection_fails() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: true })
        .then_rejected("unchanged");
}

#[test]
#[should_panic(expected = "the command was rejected with another code")]
fn other_rejection_code_fails() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: false })
        .then_rejected("already-off");
}

#[test]
#[should_panic(expected = "the rejection has another message")]
fn other_rejection_message_fails() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: false })
        .then_rejected_with("unchanged", "no");
}

#[test]
#[should_panic(expected = "the view differs")]
fn other_view_fails() {
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: true })
        .then_view(serde_json::json!({ "on": false }));
}

#[test]
#[should_panic(expected = "assertion `left == right` failed")]
fn state_lost_by_the_snapshot_fails() {
    // The live state counts one switch; the restored one counts none.
    AggregateTest::<Lamp>::given_no_previous_events()
        .when(Command::Switch { on: true })
        .then_state(|lamp| assert_eq!(lamp.switches, 1));
}

#[test]
#[should_panic(expected = "the command does not survive the wire format")]
fn command_that_does_not_round_trip_fails() {
    #[derive(Default, Serialize, Deserialize)]
    struct Renamer;

    #[derive(Serialize, Deserialize)]
    enum RenameCommand {
        // Serialized as "new", but only "old" is accepted when decoding.
        #[serde(rename(serialize = "new", deserialize = "old"))]
        Rename,
    }

    impl Aggregate for Renamer {
        type Command = RenameCommand;
        type Event = Event;
        fn handle(&self, _: RenameCommand) -> Result<Vec<Event>, Rejection> {
            Ok(vec![])
        }
        fn apply(&mut self, _: Event) {}
    }

    let _ = AggregateTest::<Renamer>::given_no_previous_events().when(RenameCommand::Rename);
}
