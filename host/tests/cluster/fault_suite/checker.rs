//! The checker: what a history and the store after recovery must agree on.
//!
//! Every count of [`Anomalies`] must be 0 on a correct cluster:
//!
//! - `lost`: an acknowledged command whose events are not stored at the
//!   versions it was acknowledged with (matched by correlation id).
//! - `duplicated`: a logical command (correlation id, else command id)
//!   stored more than once; the bank account decides one event per command.
//! - `version_gaps`: stored events whose version is not their place in the
//!   stream (1, 2, 3…).
//! - `stale_reads`: a read whose version is lower than that of an
//!   acknowledged write that completed before the read was invoked.
//! - `inconsistent_reads`: a read whose balance is not the replay of the
//!   stored events up to its version, or whose version is past them.
//! - `stale_decisions`: a rejection, or a conflict's `actual`, that no
//!   state the stream was in during the operation could give. The stream
//!   was at least at the highest version acknowledged before the op was
//!   invoked (`lo`) and at most at the highest stored version whose command
//!   was first invoked before the op completed (`hi`); the states are
//!   replayed from the stored events. With `expected_version` E, only E is
//!   a candidate.
//! - `invalid_events`: a stored event the rules would not have decided at
//!   the version before it (a withdrawal beyond the balance, a second open).
//! - `ignored_expected_versions`: a command acknowledged with
//!   `expected_version` E whose first event is not at E + 1.
//! - `conflicts_for_stored`: a 409 for a command whose command id is stored.
//! - `state_mismatches`: an account's state, as a node answers it after
//!   recovery, that is not the replay of its stored events.
//! - `timestamps_backwards`: an event with an earlier `timestamp_ms` than
//!   the event before it in its stream.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use super::history::{Change, Kind, Op, Outcome, Stored, StoredEvent};

/// The anomalies found; see the module docs for each count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Anomalies {
    pub(crate) lost: usize,
    pub(crate) duplicated: usize,
    pub(crate) version_gaps: usize,
    pub(crate) stale_reads: usize,
    pub(crate) inconsistent_reads: usize,
    pub(crate) stale_decisions: usize,
    pub(crate) invalid_events: usize,
    pub(crate) ignored_expected_versions: usize,
    pub(crate) conflicts_for_stored: usize,
    pub(crate) state_mismatches: usize,
    pub(crate) timestamps_backwards: usize,
    /// The first few anomalies of each count, described, for the test log.
    pub(crate) examples: Vec<(&'static str, String)>,
}

/// How many examples of each count an [`Anomalies`] keeps.
const EXAMPLES: usize = 4;

impl Anomalies {
    /// The counts, by name.
    pub(crate) fn counts(&self) -> [(&'static str, usize); 11] {
        [
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("version_gaps", self.version_gaps),
            ("stale_reads", self.stale_reads),
            ("inconsistent_reads", self.inconsistent_reads),
            ("stale_decisions", self.stale_decisions),
            ("invalid_events", self.invalid_events),
            ("ignored_expected_versions", self.ignored_expected_versions),
            ("conflicts_for_stored", self.conflicts_for_stored),
            ("state_mismatches", self.state_mismatches),
            ("timestamps_backwards", self.timestamps_backwards),
        ]
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0)
    }

    fn note(&mut self, count: &'static str, example: impl FnOnce() -> String) {
        if self.examples.iter().filter(|(c, _)| *c == count).count() < EXAMPLES {
            self.examples.push((count, example()));
        }
    }
}

impl fmt::Display for Anomalies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = self
            .counts()
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        write!(f, "{}", counts.join(" "))?;
        for (count, example) in &self.examples {
            write!(f, "\n  - {count}: {example}")?;
        }
        Ok(())
    }
}

/// An account as the rules see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Account {
    open: bool,
    balance: u64,
}

impl Account {
    /// The bank account's rules: None if `kind` would be carried out, else
    /// the rejection code.
    fn decide(self, kind: &Kind) -> Option<&'static str> {
        match kind {
            Kind::Open if self.open => Some("already-open"),
            Kind::Open | Kind::Read => None,
            _ if !self.open => Some("not-open"),
            Kind::Deposit(0) | Kind::Withdraw(0) => Some("invalid-amount"),
            Kind::Deposit(amount) if self.balance.checked_add(*amount).is_none() => {
                Some("invalid-amount")
            }
            Kind::Withdraw(amount) if *amount > self.balance => Some("insufficient-funds"),
            Kind::Deposit(_) | Kind::Withdraw(_) => None,
        }
    }

    fn apply(mut self, change: &Change) -> Account {
        match change {
            Change::Opened => self.open = true,
            Change::Deposited(amount) => self.balance = self.balance.saturating_add(*amount),
            Change::Withdrawn(amount) => self.balance = self.balance.saturating_sub(*amount),
            Change::Other(_) => {}
        }
        self
    }
}

/// The command that would decide `change`, for the validity of an event.
fn command_of(change: &Change) -> Option<Kind> {
    match change {
        Change::Opened => Some(Kind::Open),
        Change::Deposited(amount) => Some(Kind::Deposit(*amount)),
        Change::Withdrawn(amount) => Some(Kind::Withdraw(*amount)),
        Change::Other(_) => None,
    }
}

/// One account's stored stream, replayed.
struct Replay<'a> {
    events: &'a [StoredEvent],
    /// The state after each event: `states[0]` is the empty account,
    /// `states[i]` the state after the i-th stored event.
    states: Vec<Account>,
}

impl<'a> Replay<'a> {
    fn of(events: &'a [StoredEvent]) -> Replay<'a> {
        let mut states = vec![Account::default()];
        for event in events {
            let last = *states.last().unwrap_or(&Account::default());
            states.push(last.apply(&event.change));
        }
        Replay { events, states }
    }

    /// The stream's version: its last event's.
    fn head(&self) -> u64 {
        self.events.last().map_or(0, |e| e.version)
    }

    /// The state at `version` (after every event up to it), if the stream
    /// reached it.
    fn at(&self, version: u64) -> Option<Account> {
        if version > self.head() {
            return None;
        }
        let applied = self.events.partition_point(|e| e.version <= version);
        self.states.get(applied).copied()
    }
}

/// Checks `ops` against `stored`.
pub(crate) fn check(ops: &[Op], stored: &Stored) -> Anomalies {
    let mut found = Anomalies::default();
    let replays: Vec<Replay<'_>> = stored.events.iter().map(|e| Replay::of(e)).collect();
    let first_invoked = first_invocations(ops);
    let acked = Acked::index(ops, replays.len());
    check_stream_shape(&replays, &mut found);
    check_acks(ops, &replays, &mut found);
    check_reads(ops, &replays, &acked, &mut found);
    check_decisions(ops, &replays, &acked, &first_invoked, &mut found);
    check_conflicts_for_stored(ops, &replays, &mut found);
    check_final_states(stored, &replays, &mut found);
    found
}

/// When each logical command (correlation id) was first invoked.
fn first_invocations(ops: &[Op]) -> HashMap<&str, Instant> {
    let mut first: HashMap<&str, Instant> = HashMap::new();
    for op in ops {
        if let Some(correlation) = op.correlation.as_deref() {
            let at = first.entry(correlation).or_insert(op.invoked);
            *at = (*at).min(op.invoked);
        }
    }
    first
}

/// Gaps, duplicates, events the rules would not decide, timestamps.
fn check_stream_shape(replays: &[Replay<'_>], found: &mut Anomalies) {
    for (account, replay) in replays.iter().enumerate() {
        let mut commands: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
        for (i, event) in replay.events.iter().enumerate() {
            let place = i as u64 + 1;
            if event.version != place {
                found.version_gaps += 1;
                found.note("version_gaps", || {
                    format!("acc-{account}: event {place} has version {}", event.version)
                });
            }
            let valid =
                command_of(&event.change).is_some_and(|k| replay.states[i].decide(&k).is_none());
            if !valid {
                found.invalid_events += 1;
                found.note("invalid_events", || {
                    format!(
                        "acc-{account} v{}: {:?} stored on {:?}",
                        event.version, event.change, replay.states[i]
                    )
                });
            }
            if i > 0 && event.timestamp_ms < replay.events[i - 1].timestamp_ms {
                found.timestamps_backwards += 1;
                found.note("timestamps_backwards", || {
                    format!(
                        "acc-{account} v{}: timestamp {} ms before v{}'s",
                        event.version,
                        replay.events[i - 1].timestamp_ms - event.timestamp_ms,
                        replay.events[i - 1].version
                    )
                });
            }
            if let Some(key) = event.correlation.as_deref().or(event.command_id.as_deref()) {
                commands.entry(key).or_default().push(event);
            }
        }
        for (key, events) in commands.iter().filter(|(_, v)| v.len() > 1) {
            found.duplicated += events.len() - 1;
            found.note("duplicated", || {
                let at: Vec<(u64, Option<&str>)> = events
                    .iter()
                    .map(|e| (e.version, e.command_id.as_deref()))
                    .collect();
                format!("acc-{account}: command {key} stored at (version, command id) {at:?}")
            });
        }
    }
}

/// Every acknowledgement is stored as acknowledged, after its expected
/// version if it had one.
fn check_acks(ops: &[Op], replays: &[Replay<'_>], found: &mut Anomalies) {
    for op in ops {
        let Outcome::Acked { versions, .. } = &op.outcome else {
            continue;
        };
        let events = replays.get(op.account).map_or(&[][..], |r| r.events);
        let stored_as_acked = !versions.is_empty()
            && versions.iter().all(|&v| {
                events.iter().any(|e| {
                    e.version == v
                        && e.correlation == op.correlation
                        && command_of(&e.change).as_ref() == Some(&op.kind)
                })
            });
        if !stored_as_acked {
            found.lost += 1;
            found.note("lost", || {
                format!("acked but not stored as acked: {}", describe(op))
            });
        }
        if let (Some(expected), Some(first)) = (op.expected_version, versions.iter().min())
            && *first != expected + 1
        {
            found.ignored_expected_versions += 1;
            found.note("ignored_expected_versions", || {
                format!(
                    "acked at v{first} past expected v{expected}: {}",
                    describe(op)
                )
            });
        }
    }
}

/// Per account, the acknowledgements in the order they completed, each
/// with the highest version acknowledged up to it: "the highest version
/// acknowledged before instant t" in O(log n).
struct Acked(Vec<Vec<(Instant, u64)>>);

impl Acked {
    fn index(ops: &[Op], accounts: usize) -> Acked {
        let mut per: Vec<Vec<(Instant, u64)>> = vec![Vec::new(); accounts];
        for op in ops.iter().filter(|o| o.is_ack()) {
            if let (Some(list), Some(version)) = (per.get_mut(op.account), op.seen_version()) {
                list.push((op.completed, version));
            }
        }
        for list in &mut per {
            list.sort();
            let mut highest = 0;
            for entry in list.iter_mut() {
                highest = highest.max(entry.1);
                entry.1 = highest;
            }
        }
        Acked(per)
    }

    /// The highest version of `account` acknowledged before `before`.
    fn before(&self, account: usize, before: Instant) -> u64 {
        let Some(list) = self.0.get(account) else {
            return 0;
        };
        let n = list.partition_point(|(at, _)| *at < before);
        if n == 0 { 0 } else { list[n - 1].1 }
    }
}

/// Stale reads (lower than something already seen) and reads whose balance
/// no stored state at their version has.
fn check_reads(ops: &[Op], replays: &[Replay<'_>], acked: &Acked, found: &mut Anomalies) {
    for op in ops {
        let Outcome::Read { version, balance } = op.outcome else {
            continue;
        };
        let seen = acked.before(op.account, op.invoked);
        if version < seen {
            found.stale_reads += 1;
            found.note("stale_reads", || {
                format!(
                    "read v{version} after v{seen} was acknowledged: {}",
                    describe(op)
                )
            });
        }
        let replayed = replays.get(op.account).and_then(|r| r.at(version));
        if replayed.map(|a| a.balance) != Some(balance) {
            found.inconsistent_reads += 1;
            found.note("inconsistent_reads", || {
                format!(
                    "read balance {balance}, replay gives {replayed:?}: {}",
                    describe(op)
                )
            });
        }
    }
}

/// Rejections and conflicts no state during the op's interval would give.
fn check_decisions(
    ops: &[Op],
    replays: &[Replay<'_>],
    acked: &Acked,
    first_invoked: &HashMap<&str, Instant>,
    found: &mut Anomalies,
) {
    for op in ops {
        let Some(replay) = replays.get(op.account) else {
            continue;
        };
        let interval = || {
            let lo = acked.before(op.account, op.invoked);
            let hi = replay
                .events
                .iter()
                .filter(|e| {
                    e.correlation
                        .as_deref()
                        .and_then(|c| first_invoked.get(c))
                        .is_none_or(|at| *at < op.completed)
                })
                .map(|e| e.version)
                .max()
                .unwrap_or(0)
                .max(lo);
            (lo, hi)
        };
        let stale = match &op.outcome {
            Outcome::Rejected { code } => {
                let (lo, hi) = interval();
                let candidates = match op.expected_version {
                    Some(e) => e..=e,
                    None => lo..=hi,
                };
                let possible = candidates
                    .filter(|v| (lo..=hi).contains(v))
                    .filter_map(|v| replay.at(v))
                    .any(|state| state.decide(&op.kind) == Some(code.as_str()));
                (!possible).then(|| format!("rejected {code} with the stream in v{lo}..=v{hi}"))
            }
            Outcome::Conflict { expected, actual } => {
                let (lo, hi) = interval();
                (actual == expected || !(lo..=hi).contains(actual)).then(|| {
                    format!(
                        "conflict expected {expected} actual {actual}, the stream in v{lo}..=v{hi}"
                    )
                })
            }
            _ => None,
        };
        if let Some(why) = stale {
            found.stale_decisions += 1;
            found.note("stale_decisions", || format!("{why}: {}", describe(op)));
        }
    }
}

/// A 409 for a command that is stored answers "not carried out" for one
/// that was.
fn check_conflicts_for_stored(ops: &[Op], replays: &[Replay<'_>], found: &mut Anomalies) {
    for op in ops {
        let (Outcome::Conflict { .. }, Some(id)) = (&op.outcome, op.command_id.as_deref()) else {
            continue;
        };
        let stored = replays
            .get(op.account)
            .is_some_and(|r| r.events.iter().any(|e| e.command_id.as_deref() == Some(id)));
        if stored {
            found.conflicts_for_stored += 1;
            found.note("conflicts_for_stored", || {
                format!("409 for a stored command: {}", describe(op))
            });
        }
    }
}

/// After recovery every node answers every account's replayed state.
fn check_final_states(stored: &Stored, replays: &[Replay<'_>], found: &mut Anomalies) {
    for state in &stored.states {
        let Some(replay) = replays.get(state.account) else {
            continue;
        };
        let head = replay.head();
        let balance = replay.at(head).map_or(0, |a| a.balance);
        if state.version != head || state.balance != balance {
            found.state_mismatches += 1;
            found.note("state_mismatches", || {
                format!(
                    "node {} answers acc-{} at v{} balance {}; the store has v{head} balance {balance}",
                    state.node, state.account, state.version, state.balance
                )
            });
        }
    }
}

fn describe(op: &Op) -> String {
    format!(
        "acc-{} {:?} via node {} (command {:?}, expected {:?}) -> {:?}",
        op.account, op.kind, op.node, op.command_id, op.expected_version, op.outcome
    )
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
