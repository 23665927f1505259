//! A bank-account-shaped tally written against the frozen WIT
//! `aether:aggregate@0.1.0` (`wit/deps/aggregate-0.1.0/`), where `apply`
//! receives a `list<event>`, without any SDK: it keeps the host's 0.1.0
//! bindings under test now that every SDK targets a later version.
//!
//! Events: `Opened` (any data) and `Deposited` (`{"amount": n}`, added to
//! the balance); any other type, or other content, is an `apply-error` at
//! its version, after the events before it were applied. Commands:
//! `Deposit` (`{"amount": n}`) decides one `Deposited`. The view is
//! `{"balance": n}`.
#![allow(missing_docs, unreachable_pub, unsafe_code)]

use std::cell::Cell;

include!("../../tally_methods.rs");

wit_bindgen::generate!({
    path: "../../../wit/deps/aggregate-0.1.0",
    world: "aggregate-component",
});

use aether::aggregate::types::{ApplyError, Command, Event, NewEvent, Rejection};
use exports::aether::aggregate::handler::{Guest, GuestAggregate};

impl GuestAggregate for Tally {
    fn new(_id: String) -> Self {
        Self {
            balance: Cell::new(0),
        }
    }

    fn apply(&self, events: Vec<Event>) -> Result<(), ApplyError> {
        for event in events {
            let failed = |message: String| ApplyError {
                version: event.version,
                message,
            };
            if event.content_type != "application/json" {
                return Err(failed(format!(
                    "unsupported content type {}",
                    event.content_type
                )));
            }
            match event.event_type.as_str() {
                "Opened" => {}
                "Deposited" => {
                    let Amount { amount } = serde_json::from_slice(&event.data)
                        .map_err(|e| failed(format!("invalid Deposited: {e}")))?;
                    self.balance.set(self.balance.get().saturating_add(amount));
                }
                other => {
                    return Err(failed(format!(
                        "cannot apply event: unknown type \"{other}\""
                    )));
                }
            }
        }
        Ok(())
    }

    tally_methods!();
}

struct Component;

impl Guest for Component {
    type Aggregate = Tally;
}

export!(Component);
