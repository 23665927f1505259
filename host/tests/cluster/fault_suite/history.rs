//! What the clients did and saw, and what the store holds afterwards: the
//! two inputs of the checker.
//!
//! Every client attempt is one [`Op`] with the instants it was invoked and
//! completed (one `Instant` clock for all threads, so "completed before
//! invoked" orders operations of different clients). A retry of a command
//! is a new op with the same correlation id (and command id): the
//! correlation id names the logical command, whether or not it carries a
//! command id, and is stored in every event's metadata, so an event leads
//! back to the command that produced it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use crate::support::Http;

/// What an operation asked of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Open` (the accounts are opened before the load).
    Open,
    /// `Deposit { amount }`.
    Deposit(u64),
    /// `Withdraw { amount }`, sometimes more than the balance.
    Withdraw(u64),
    /// `GET …/bank-account/<id>`.
    Read,
}

/// How an operation ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 200: the command's events are stored at `versions`.
    Acked { versions: Vec<u64>, duplicate: bool },
    /// 422 `rejected` with the aggregate's rejection code.
    Rejected { code: String },
    /// 409 `version_conflict`.
    Conflict { expected: u64, actual: u64 },
    /// 200 on a state read.
    Read { version: u64, balance: u64 },
    /// Anything else: a retryable or indeterminate answer (503, 504), a
    /// lost connection or a client timeout (`status` None). A command that
    /// failed so may or may not have been carried out.
    Failed { status: Option<u16>, error: String },
}

/// One client attempt.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) account: usize,
    /// The index of the node the request was sent to.
    pub(crate) node: usize,
    pub(crate) kind: Kind,
    /// The logical command (shared by its retries); None for reads.
    pub(crate) correlation: Option<String>,
    pub(crate) command_id: Option<String>,
    pub(crate) expected_version: Option<u64>,
    pub(crate) invoked: Instant,
    pub(crate) completed: Instant,
    pub(crate) outcome: Outcome,
}

impl Op {
    /// The highest version this op saw the account at, if it was answered
    /// with one (an acknowledgement or a read).
    pub(crate) fn seen_version(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Acked { versions, .. } => versions.iter().copied().max(),
            Outcome::Read { version, .. } => Some(*version),
            _ => None,
        }
    }

    pub(crate) fn is_ack(&self) -> bool {
        matches!(self.outcome, Outcome::Acked { .. })
    }
}

/// The history, shared by the client threads.
#[derive(Clone, Default)]
pub(crate) struct History(Arc<Mutex<Vec<Op>>>);

impl History {
    pub(crate) fn record(&self, op: Op) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// Every op so far, in the order they completed.
    pub(crate) fn ops(&self) -> Vec<Op> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What an event did to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Opened,
    Deposited(u64),
    Withdrawn(u64),
    /// An event type the checker does not know (counted as invalid).
    Other(String),
}

/// One stored event.
#[derive(Clone, Debug)]
pub(crate) struct StoredEvent {
    pub(crate) version: u64,
    pub(crate) change: Change,
    pub(crate) command_id: Option<String>,
    pub(crate) correlation: Option<String>,
    pub(crate) timestamp_ms: u64,
}

/// An account's state as a node answered it after recovery.
#[derive(Clone, Debug)]
pub(crate) struct FinalState {
    pub(crate) account: usize,
    pub(crate) node: usize,
    pub(crate) version: u64,
    pub(crate) balance: u64,
}

/// The store after the run: every account's events (index = account) and
/// its state as every running node answers it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stored {
    pub(crate) events: Vec<Vec<StoredEvent>>,
    pub(crate) states: Vec<FinalState>,
}

/// The path of account `account`.
pub(crate) fn account_path(account: usize) -> String {
    format!("/v1/namespaces/bank/aggregates/bank-account/acc-{account}")
}

impl Stored {
    /// Reads the events of `accounts` accounts through `events_from`, and
    /// every account's state through each of `state_from` (node index and
    /// client).
    pub(crate) fn read(
        events_from: &Http,
        state_from: &[(usize, Http)],
        accounts: usize,
    ) -> Stored {
        let events = (0..accounts).map(|a| read_events(events_from, a)).collect();
        let mut states = Vec::new();
        for (node, client) in state_from {
            for account in 0..accounts {
                let (status, body) = client.get(&account_path(account));
                assert_eq!(
                    status, 200,
                    "final read of acc-{account} on node {node}: {body}"
                );
                states.push(FinalState {
                    account,
                    node: *node,
                    version: body["version"].as_u64().unwrap_or(0),
                    balance: body["state"]["balance"].as_u64().unwrap_or(0),
                });
            }
        }
        Stored { events, states }
    }
}

/// Every event of one account, page by page.
fn read_events(client: &Http, account: usize) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let (status, page) = client.get(&format!("{}/events?from={from}", account_path(account)));
        assert_eq!(status, 200, "events of acc-{account}: {page}");
        let batch = page["events"].as_array().cloned().unwrap_or_default();
        for event in &batch {
            events.push(stored_event(event));
        }
        match page["next_version"].as_u64() {
            Some(next) if !batch.is_empty() && next > from => from = next,
            _ => return events,
        }
    }
}

fn stored_event(event: &Value) -> StoredEvent {
    let amount = event["data"]["amount"].as_u64().unwrap_or(0);
    let change = match event["event_type"].as_str().unwrap_or("") {
        "Opened" => Change::Opened,
        "Deposited" => Change::Deposited(amount),
        "Withdrawn" => Change::Withdrawn(amount),
        other => Change::Other(other.to_owned()),
    };
    let text = |field: &str| event["metadata"][field].as_str().map(str::to_owned);
    StoredEvent {
        version: event["version"].as_u64().unwrap_or(0),
        change,
        command_id: text("command_id"),
        correlation: text("correlation_id"),
        timestamp_ms: event["timestamp_ms"].as_u64().unwrap_or(0),
    }
}
