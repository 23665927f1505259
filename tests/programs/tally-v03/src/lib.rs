//! The tally of `tests/programs/tally-v02`, written against the frozen WIT
//! `aether:aggregate@0.3.0` (`wit/deps/aggregate-0.3.0/`), without any SDK:
//! it keeps the host's 0.3.0 bindings under test now that every SDK
//! targets 0.4.0. In 0.3.0 `execute` decides and applies in one call, takes
//! the command as a `command` record and gives the decided events back as a
//! `list<new-event>` in a `decision` record, with a rejection as the
//! `result`'s error.
//!
//! Events and view as in `tally-v02`. Commands:
//! - `Deposit` (`{"amount": n}`) decides one `Deposited`;
//! - `Transmogrify` (any data) decides `Deposited` of 1 and then
//!   `Transmogrified`, which `apply` refuses: the decision carries both
//!   events and the `apply-error` at the second's version.
#![allow(missing_docs, unreachable_pub, unsafe_code)]

use std::cell::Cell;

include!("../../tally_methods.rs");

wit_bindgen::generate!({
    path: "../../../wit/deps/aggregate-0.3.0",
    world: "aggregate-component",
});

use aether::aggregate::types::{ApplyError, Command, Decision, NewEvent, Rejection};
use exports::aether::aggregate::handler::{Guest, GuestAggregate};

fn event(event_type: &str, data: &[u8]) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        content_type: "application/json".into(),
        data: data.to_vec(),
    }
}

/// The batch `apply` takes, for `events` stamped from `first_version`.
fn batch(events: &[NewEvent], first_version: u64, timestamp_ms: u64) -> Vec<u8> {
    let mut batch = Vec::new();
    for (version, event) in (first_version..).zip(events) {
        push(
            &mut batch,
            (version, timestamp_ms),
            &event.event_type,
            &event.data,
        );
    }
    batch
}

impl GuestAggregate for Tally {
    fn new(_id: String) -> Self {
        Self {
            balance: Cell::new(0),
        }
    }

    tally_apply_batch!();

    fn execute(
        &self,
        command: Command,
        first_version: u64,
        timestamp_ms: u64,
    ) -> Result<Decision, Rejection> {
        let rejection = |message: String| Rejection {
            code: "malformed-command".into(),
            message,
        };
        let events = match command.command_type.as_str() {
            "Deposit" => {
                let Amount { amount } =
                    serde_json::from_slice(&command.data).map_err(|e| rejection(e.to_string()))?;
                vec![event(
                    "Deposited",
                    format!("{{\"amount\":{amount}}}").as_bytes(),
                )]
            }
            "Transmogrify" => vec![
                event("Deposited", br#"{"amount":1}"#),
                event("Transmogrified", b"{}"),
            ],
            other => return Err(rejection(format!("unknown type \"{other}\""))),
        };
        // Applied as a replay would: through `apply`, from the bytes.
        let apply_error = self
            .apply(batch(&events, first_version, timestamp_ms))
            .err();
        Ok(Decision {
            events,
            apply_error,
        })
    }

    tally_state_methods!();
}

struct Component;

impl Guest for Component {
    type Aggregate = Tally;
}

export!(Component);
