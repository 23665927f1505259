//! What the node answered the attackers of `tenant_abuse`, per attack:
//! `<status> <error code>` (`200` alone for a success), or what became of
//! the connection (`opened`, `closed by the node`, `no answer`…); each
//! request is also counted as `sent` (one still unanswered when the attack
//! stops has no answer in the tally).

use std::collections::BTreeMap;
use std::sync::Mutex;

use aether_host::service::ErrorCode;
use serde_json::json;

use super::attacks::Kind;
use super::node::Answer;

/// What the node answered, per attack kind.
#[derive(Default)]
pub(crate) struct Tally {
    counts: Mutex<BTreeMap<Kind, BTreeMap<String, u64>>>,
    /// Answers outside what the attack may get (see [`expected`]): the
    /// first few, and how many.
    unexpected: Mutex<(u64, Vec<String>)>,
}

impl Tally {
    pub(super) fn add(&self, kind: Kind, outcome: &str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(kind)
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }

    /// Tallies an answer, and notes it if it is not one the attack may get.
    pub(super) fn answer(&self, kind: Kind, answer: &Answer) {
        let outcome = answer.outcome();
        if !expected(answer.status, &outcome) {
            let mut unexpected = self.unexpected.lock().unwrap();
            unexpected.0 += 1;
            if unexpected.1.len() < 5 {
                unexpected
                    .1
                    .push(format!("{}: {}", kind.name(), answer.json()));
            }
        }
        self.add(kind, &outcome);
    }

    /// `other`'s counts added to these.
    pub(crate) fn merge(&self, other: &Tally) {
        let mut counts = self.counts.lock().unwrap();
        for (kind, outcomes) in other.counts.lock().unwrap().iter() {
            let mine = counts.entry(*kind).or_default();
            for (outcome, n) in outcomes {
                *mine.entry(outcome.clone()).or_default() += n;
            }
        }
        let other = other.unexpected.lock().unwrap();
        let mut mine = self.unexpected.lock().unwrap();
        mine.0 += other.0;
        let room = 5usize.saturating_sub(mine.1.len());
        mine.1.extend(other.1.iter().take(room).cloned());
    }

    /// How many times `kind` ended in `outcome`.
    pub(crate) fn count(&self, kind: Kind, outcome: &str) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts
            .get(&kind)
            .and_then(|o| o.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Every count, as JSON (`{"hostile": {"500 deadline_exceeded": 12}}`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let counts = self.counts.lock().unwrap();
        counts
            .iter()
            .map(|(kind, outcomes)| (kind.name().to_owned(), json!(outcomes)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// The answers no attack should get: how many, and the first few.
    pub(crate) fn unexpected(&self) -> (u64, Vec<String>) {
        self.unexpected.lock().unwrap().clone()
    }
}

/// Whether an attacker may get this answer: anything but a 5xx, except
/// 503 (overloaded, unavailable), 507 (a storage quota) and a guest failure
/// (tenant B's own component failing at its limits is a 500).
fn expected(status: u16, outcome: &str) -> bool {
    let code = outcome.split_once(' ').map_or("", |(_, code)| code);
    status < 500
        || status == 503
        || status == 507
        || code
            .parse::<ErrorCode>()
            .is_ok_and(ErrorCode::is_guest_failure)
}
