use aether_guest::testing::AggregateTest;
use serde_json::json;

use super::{BankAccount, Command, Event, Status};

fn opened() -> Event {
    Event::Opened {
        owner: "Ada".into(),
    }
}

fn open_with(balance: u64) -> AggregateTest<BankAccount> {
    AggregateTest::given(vec![opened(), Event::Deposited { amount: balance }])
}

#[test]
fn open_a_new_account() {
    AggregateTest::<BankAccount>::given_no_previous_events()
        .when(Command::Open {
            owner: "Ada".into(),
        })
        .then_events(vec![opened()])
        .then_view(json!({ "status": "open", "owner": "Ada", "balance": 0 }));
}

#[test]
fn open_an_open_account_is_rejected() {
    AggregateTest::<BankAccount>::given(vec![opened()])
        .when(Command::Open {
            owner: "Bob".into(),
        })
        .then_rejected_with("already-open", "the account is already open for Ada")
        .then_state(|account| assert_eq!(account.owner, "Ada"));
}

#[test]
fn anything_but_open_before_open_is_rejected() {
    for command in [
        Command::Deposit { amount: 1 },
        Command::Withdraw { amount: 1 },
        Command::Close,
    ] {
        AggregateTest::<BankAccount>::given_no_previous_events()
            .when(command)
            .then_rejected("not-open")
            .then_state(|account| assert_eq!(account.status, Status::New));
    }
}

#[test]
fn deposit_adds_to_the_balance() {
    open_with(70)
        .when(Command::Deposit { amount: 30 })
        .then_events(vec![Event::Deposited { amount: 30 }])
        .then_state(|account| assert_eq!(account.balance, 100));
}

#[test]
fn withdraw_takes_from_the_balance() {
    open_with(70)
        .when(Command::Withdraw { amount: 70 })
        .then_events(vec![Event::Withdrawn { amount: 70 }])
        .then_state(|account| assert_eq!(account.balance, 0));
}

#[test]
fn zero_amounts_are_rejected() {
    for command in [
        Command::Deposit { amount: 0 },
        Command::Withdraw { amount: 0 },
    ] {
        open_with(70)
            .when(command)
            .then_rejected_with("invalid-amount", "the amount must be more than 0");
    }
}

#[test]
fn deposit_that_overflows_the_balance_is_rejected() {
    open_with(u64::MAX)
        .when(Command::Deposit { amount: 1 })
        .then_rejected("invalid-amount");
}

#[test]
fn withdrawing_more_than_the_balance_is_rejected() {
    open_with(70)
        .when(Command::Withdraw { amount: 200 })
        .then_rejected_with(
            "insufficient-funds",
            "cannot withdraw 200: the balance is 70",
        )
        .then_state(|account| assert_eq!(account.balance, 70));
}

#[test]
fn close_an_open_account() {
    open_with(70)
        .when(Command::Close)
        .then_events(vec![Event::Closed])
        .then_state(|account| assert_eq!(account.status, Status::Closed));
}

#[test]
fn a_closed_account_rejects_everything() {
    for command in [
        Command::Open {
            owner: "Bob".into(),
        },
        Command::Deposit { amount: 1 },
        Command::Withdraw { amount: 1 },
        Command::Close,
    ] {
        AggregateTest::<BankAccount>::given(vec![opened(), Event::Closed])
            .when(command)
            .then_rejected("account-closed");
    }
}

#[test]
fn replay_rebuilds_the_state() {
    AggregateTest::<BankAccount>::given(vec![
        opened(),
        Event::Deposited { amount: 100 },
        Event::Withdrawn { amount: 30 },
        Event::Deposited { amount: 5 },
    ])
    .when(Command::Withdraw { amount: 75 })
    .then_events(vec![Event::Withdrawn { amount: 75 }])
    .then_view(json!({ "status": "open", "owner": "Ada", "balance": 0 }));
}

#[test]
fn events_use_the_documented_wire_format() {
    let encode = |event: &Event| {
        let (type_name, data) = aether_guest::wire::encode(event).unwrap();
        (type_name, String::from_utf8(data).unwrap())
    };
    assert_eq!(
        encode(&opened()),
        ("Opened".into(), r#"{"owner":"Ada"}"#.into())
    );
    assert_eq!(
        encode(&Event::Withdrawn { amount: 7 }),
        ("Withdrawn".into(), r#"{"amount":7}"#.into())
    );
    assert_eq!(encode(&Event::Closed), ("Closed".into(), "null".into()));
}
