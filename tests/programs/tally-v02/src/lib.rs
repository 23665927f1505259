//! The tally of `tests/programs/tally-v01`, written against the frozen WIT
//! `aether:aggregate@0.2.0` (`wit/deps/aggregate-0.2.0/`), without any SDK:
//! it keeps the host's 0.2.0 bindings under test now that every SDK
//! targets 0.3.0. In 0.2.0 a command takes two calls: `handle` decides
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

use serde::Deserialize;

include!("../../tally_methods.rs");

wit_bindgen::generate!({
    path: "../../../wit/deps/aggregate-0.2.0",
    world: "aggregate-component",
});

use aether::aggregate::types::{ApplyError, Command, NewEvent, Rejection};
use exports::aether::aggregate::handler::{Guest, GuestAggregate};

#[derive(Deserialize)]
struct Amount {
    amount: u64,
}

struct Tally {
    balance: Cell<u64>,
}

/// One event of a batch: (version, type, content type, data).
type Stored<'a> = (u64, &'a [u8], &'a [u8], &'a [u8]);

/// The events of a batch, in order (the host guarantees the layout; a
/// batch that breaks it ends the iteration with `None` in the item).
fn events(mut batch: &[u8]) -> impl Iterator<Item = Option<Stored<'_>>> {
    std::iter::from_fn(move || {
        if batch.is_empty() {
            return None;
        }
        let event = (|| {
            let header = batch.get(..28)?;
            let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
            let version = u64::from_le_bytes(header[..8].try_into().unwrap());
            let lens = [u32_at(16), u32_at(20), u32_at(24)].map(|n| n as usize);
            let end = 28 + lens.iter().sum::<usize>();
            let body = batch.get(28..end)?;
            let (event_type, rest) = body.split_at(lens[0]);
            let (content_type, data) = rest.split_at(lens[1]);
            batch = &batch[end..];
            Some((version, event_type, content_type, data))
        })();
        if event.is_none() {
            batch = &[];
        }
        Some(event)
    })
}

impl GuestAggregate for Tally {
    fn new(_id: String) -> Self {
        Self {
            balance: Cell::new(0),
        }
    }

    fn apply(&self, batch: Vec<u8>) -> Result<(), ApplyError> {
        let mut last = 0;
        for event in events(&batch) {
            let failed = |version: u64, message: String| ApplyError { version, message };
            let Some((version, event_type, content_type, data)) = event else {
                return Err(failed(last + 1, "malformed batch".into()));
            };
            last = version;
            if content_type != b"application/json" {
                return Err(failed(version, "unsupported content type".into()));
            }
            match event_type {
                b"Opened" => {}
                b"Deposited" => {
                    let Amount { amount } = serde_json::from_slice(data)
                        .map_err(|e| failed(version, format!("invalid Deposited: {e}")))?;
                    self.balance.set(self.balance.get().saturating_add(amount));
                }
                other => {
                    let other = String::from_utf8_lossy(other);
                    let message = format!("cannot apply event: unknown type \"{other}\"");
                    return Err(failed(version, message));
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
