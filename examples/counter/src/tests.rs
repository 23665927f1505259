use aether_guest::testing::AggregateTest;
use serde_json::json;

use super::{Command, Counter, Event};

#[test]
fn increment_adds() {
    AggregateTest::<Counter>::given_no_previous_events()
        .when(Command::Increment { by: 3 })
        .then_events(vec![Event::Incremented { by: 3 }])
        .then_state(|counter| assert_eq!(counter.value, 3));
}

#[test]
fn decrement_subtracts() {
    AggregateTest::<Counter>::given(vec![Event::Incremented { by: 5 }])
        .when(Command::Decrement { by: 5 })
        .then_events(vec![Event::Decremented { by: 5 }])
        .then_view(json!({ "value": 0 }));
}

#[test]
fn decrement_below_zero_is_rejected() {
    AggregateTest::<Counter>::given(vec![Event::Incremented { by: 2 }])
        .when(Command::Decrement { by: 3 })
        .then_rejected_with("below-zero", "cannot decrement by 3: the value is 2")
        .then_state(|counter| assert_eq!(counter.value, 2));
}

#[test]
fn increment_past_the_maximum_is_rejected() {
    AggregateTest::<Counter>::given(vec![Event::Incremented { by: u64::MAX }])
        .when(Command::Increment { by: 1 })
        .then_rejected("overflow");
}

#[test]
fn reset_goes_back_to_zero() {
    AggregateTest::<Counter>::given(vec![
        Event::Incremented { by: 4 },
        Event::Decremented { by: 1 },
    ])
    .when(Command::Reset)
    .then_events(vec![Event::Reset])
    .then_state(|counter| assert_eq!(counter.value, 0));
}

#[test]
fn reset_at_zero_produces_nothing() {
    AggregateTest::<Counter>::given(vec![Event::Incremented { by: 1 }, Event::Reset])
        .when(Command::Reset)
        .then_events(vec![]);
}
