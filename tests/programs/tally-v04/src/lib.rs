//! The tally of `tests/programs/tally-v02`, written against the current WIT
//! `aether:aggregate@0.4.0` (`wit/aggregate.wit`) without any SDK: a second
//! 0.4.0 guest beside the Python SDK's, and one that can lie. `execute`
//! decides and applies in one call and hands the decided events back as
//! one buffer in the batch layout, stamped with their versions and the
//! command's timestamp.
//!
//! Events and view as in `tally-v02`. Commands:
//! - `Deposit` (`{"amount": n}`) decides one `Deposited`;
//! - `Transmogrify` (any data) decides `Deposited` of 1 and then
//!   `Transmogrified`, which `apply` refuses: `execute` fails with
//!   `unapplied` (both events, the error at the second's version);
//! - `Lie` (`{"how": "…"}`) adds 1 000 000 to the balance, then hands back a
//!   `Deposited` of 1 in a buffer that breaks the batch rules the way `how`
//!   names: `version`, `timestamp`, `truncated`, `trailing`, `utf8`,
//!   `lengths`; the host must store nothing and forget the state.
#![allow(missing_docs, unreachable_pub, unsafe_code)]

use std::cell::Cell;

use serde::Deserialize;

include!("../../tally_methods.rs");

wit_bindgen::generate!({
    path: "../../../wit/aggregate.wit",
    world: "aggregate-component",
});

use aether::aggregate::types::{ApplyError, Decision, Rejection, Unapplied};
use exports::aether::aggregate::handler::{Guest, GuestAggregate};

#[derive(Deserialize)]
struct Lie {
    how: String,
}

fn rejected(code: &str, message: String) -> Decision {
    Decision::Rejected(Rejection {
        code: code.into(),
        message,
    })
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
        command_type: String,
        _content_type: String,
        data: Vec<u8>,
        first_version: u64,
        timestamp_ms: u64,
    ) -> Decision {
        let mut batch = Vec::new();
        let stamp = (first_version, timestamp_ms);
        match command_type.as_str() {
            "Deposit" => {
                let Amount { amount } = match serde_json::from_slice(&data) {
                    Ok(amount) => amount,
                    Err(e) => return rejected("malformed-command", e.to_string()),
                };
                push(
                    &mut batch,
                    stamp,
                    "Deposited",
                    format!("{{\"amount\":{amount}}}").as_bytes(),
                );
            }
            "Transmogrify" => {
                push(&mut batch, stamp, "Deposited", br#"{"amount":1}"#);
                push(
                    &mut batch,
                    (first_version + 1, timestamp_ms),
                    "Transmogrified",
                    b"{}",
                );
            }
            "Lie" => {
                let Lie { how } = match serde_json::from_slice(&data) {
                    Ok(lie) => lie,
                    Err(e) => return rejected("malformed-command", e.to_string()),
                };
                self.balance.set(self.balance.get() + 1_000_000);
                let stamp = match how.as_str() {
                    "version" => (first_version + 1, timestamp_ms),
                    "timestamp" => (first_version, timestamp_ms + 1),
                    _ => stamp,
                };
                push(&mut batch, stamp, "Deposited", br#"{"amount":1}"#);
                match how.as_str() {
                    "truncated" => {
                        batch.pop();
                    }
                    "trailing" => batch.push(b'}'),
                    "utf8" => batch[28] = 0xff,
                    "lengths" => batch[24..28].copy_from_slice(&u32::MAX.to_le_bytes()),
                    _ => {}
                }
                return Decision::Events(batch);
            }
            other => {
                return rejected("malformed-command", format!("unknown type \"{other}\""));
            }
        }
        // Applied as a replay would: through `apply`, from the bytes.
        match self.apply(batch.clone()) {
            Ok(()) => Decision::Events(batch),
            Err(error) => Decision::Unapplied(Unapplied {
                events: batch,
                error,
            }),
        }
    }

    tally_state_methods!();
}

struct Component;

impl Guest for Component {
    type Aggregate = Tally;
}

export!(Component);
