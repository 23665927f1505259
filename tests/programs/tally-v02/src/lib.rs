//! The tally of `tests/programs/tally-v01`, written against the frozen WIT
//! `aether:aggregate@0.2.0` (`wit/deps/aggregate-0.2.0/`), without any SDK:
//! it keeps the host's 0.2.0 bindings under test now that every SDK
//! targets a later version. In 0.2.0 a command takes two calls: `handle` decides
//! without changing the state, then the host calls `apply` with the events
//! it decided; `apply` receives a batch as one buffer (the layout is on
//! `apply` in the WIT).
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
    path: "../../../wit/deps/aggregate-0.2.0",
    world: "aggregate-component",
});

use aether::aggregate::types::{ApplyError, Command, NewEvent, Rejection};
use exports::aether::aggregate::handler::{Guest, GuestAggregate};

impl GuestAggregate for Tally {
    fn new(_id: String) -> Self {
        Self {
            balance: Cell::new(0),
        }
    }

    tally_apply_batch!();

    tally_methods!();
}

struct Component;

impl Guest for Component {
    type Aggregate = Tally;
}

export!(Component);
