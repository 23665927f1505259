//! The checker on small hand-made histories: a correct one has no
//! anomaly, and each anomaly, planted alone, is counted once and alone.

use std::time::{Duration, Instant};

use super::super::history::{Change, FinalState, Kind, Op, Outcome, Stored, StoredEvent};
use super::{Anomalies, check};

/// A history of one account built by hand, times in ms from `t0`.
struct Given {
    t0: Instant,
    ops: Vec<Op>,
    stored: Stored,
}

impl Given {
    /// acc-0: opened (v1), 10 deposited (v2), 5 withdrawn with expected
    /// version 2 (v3); a withdrawal of 8 rejected while the deposit was in
    /// flight (legitimately: v1 had 0); a withdrawal of 100 rejected; a
    /// read of v3; a conflict; every node answers v3, balance 5.
    fn correct() -> Given {
        let mut given = Given {
            t0: Instant::now(),
            ops: Vec::new(),
            stored: Stored {
                events: vec![Vec::new()],
                states: Vec::new(),
            },
        };
        given.command("open", Kind::Open, None, (0, 10), acked(1));
        given.command("c1", Kind::Deposit(10), None, (20, 30), acked(2));
        given.command("c2", Kind::Withdraw(5), Some(2), (40, 50), acked(3));
        given.command(
            "c3",
            Kind::Withdraw(8),
            None,
            (15, 35),
            rejected("insufficient-funds"),
        );
        given.command(
            "c4",
            Kind::Withdraw(100),
            None,
            (60, 70),
            rejected("insufficient-funds"),
        );
        given.read((80, 90), 3, 5);
        given.command("c5", Kind::Deposit(1), Some(1), (100, 110), conflict(1, 3));
        given.event(1, Change::Opened, "open", 1_000);
        given.event(2, Change::Deposited(10), "c1", 1_001);
        given.event(3, Change::Withdrawn(5), "c2", 1_002);
        given.final_state(3, 5);
        given
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn command(
        &mut self,
        id: &str,
        kind: Kind,
        expected_version: Option<u64>,
        (invoked, completed): (u64, u64),
        outcome: Outcome,
    ) {
        self.ops.push(Op {
            account: 0,
            node: 0,
            kind,
            correlation: Some(id.to_owned()),
            command_id: Some(id.to_owned()),
            expected_version,
            invoked: self.at(invoked),
            completed: self.at(completed),
            outcome,
        });
    }

    fn read(&mut self, (invoked, completed): (u64, u64), version: u64, balance: u64) {
        self.ops.push(Op {
            account: 0,
            node: 1,
            kind: Kind::Read,
            correlation: None,
            command_id: None,
            expected_version: None,
            invoked: self.at(invoked),
            completed: self.at(completed),
            outcome: Outcome::Read { version, balance },
        });
    }

    fn event(&mut self, version: u64, change: Change, id: &str, timestamp_ms: u64) {
        self.stored.events[0].push(StoredEvent {
            version,
            change,
            command_id: Some(id.to_owned()),
            correlation: Some(id.to_owned()),
            timestamp_ms,
        });
    }

    fn final_state(&mut self, version: u64, balance: u64) {
        self.stored.states = (0..3)
            .map(|node| FinalState {
                account: 0,
                node,
                version,
                balance,
            })
            .collect();
    }

    fn check(&self) -> Anomalies {
        check(&self.ops, &self.stored)
    }
}

fn acked(version: u64) -> Outcome {
    Outcome::Acked {
        versions: vec![version],
        duplicate: false,
    }
}

fn rejected(code: &str) -> Outcome {
    Outcome::Rejected {
        code: code.to_owned(),
    }
}

fn conflict(expected: u64, actual: u64) -> Outcome {
    Outcome::Conflict { expected, actual }
}

/// `count` is 1 and every other count 0.
#[track_caller]
fn only(found: &Anomalies, count: &str) {
    for (name, n) in found.counts() {
        let want = usize::from(name == count);
        assert_eq!(n, want, "{name} should be {want}: {found}");
    }
    assert!(
        !found.examples.is_empty() && found.examples.iter().all(|(c, _)| *c == count),
        "the anomaly is described: {found}"
    );
}

#[test]
fn a_correct_history_has_no_anomaly() {
    let found = Given::correct().check();
    assert!(found.is_clean(), "{found}");
    assert!(found.examples.is_empty(), "{found}");
}

#[test]
fn a_duplicate_answer_of_a_retry_is_not_an_anomaly() {
    let mut given = Given::correct();
    given.ops.push(Op {
        outcome: Outcome::Acked {
            versions: vec![2],
            duplicate: true,
        },
        ..given.ops[1].clone()
    });
    let found = given.check();
    assert!(found.is_clean(), "{found}");
}

#[test]
fn an_acknowledged_command_that_is_not_stored_is_lost() {
    let mut given = Given::correct();
    given.command("c6", Kind::Deposit(1), None, (200, 210), acked(4));
    only(&given.check(), "lost");
}

#[test]
fn an_acknowledgement_stored_at_another_version_is_lost() {
    let mut given = Given::correct();
    given.ops[2].outcome = acked(2);
    given.ops[2].expected_version = Some(1);
    only(&given.check(), "lost");
}

#[test]
fn a_command_stored_twice_is_duplicated() {
    let mut given = Given::correct();
    given.event(4, Change::Deposited(10), "c1", 1_003);
    given.final_state(4, 15);
    only(&given.check(), "duplicated");
}

#[test]
fn a_missing_version_is_a_gap() {
    let mut given = Given::correct();
    given.event(5, Change::Deposited(1), "c7", 1_003);
    given.final_state(5, 6);
    only(&given.check(), "version_gaps");
}

#[test]
fn a_read_older_than_a_completed_acknowledgement_is_stale() {
    let mut given = Given::correct();
    given.read((120, 130), 2, 10);
    only(&given.check(), "stale_reads");
}

#[test]
fn a_read_of_the_empty_aggregate_after_writes_is_stale() {
    let mut given = Given::correct();
    given.read((120, 130), 0, 0);
    only(&given.check(), "stale_reads");
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_side() {
    let mut given = Given::correct();
    // Invoked before c2 completed: v2 is one of the states it may see.
    given.read((45, 55), 2, 10);
    assert!(given.check().is_clean(), "{}", given.check());
}

#[test]
fn a_read_balance_the_events_do_not_give_is_inconsistent() {
    let mut given = Given::correct();
    given.read((120, 130), 3, 7);
    only(&given.check(), "inconsistent_reads");
}

#[test]
fn a_rejection_no_state_of_the_interval_gives_is_stale() {
    let mut given = Given::correct();
    // The balance was 5 (v3) throughout; 3 was there to take.
    given.command(
        "c8",
        Kind::Withdraw(3),
        None,
        (120, 130),
        rejected("insufficient-funds"),
    );
    only(&given.check(), "stale_decisions");
}

#[test]
fn a_rejection_at_a_stale_expected_version_is_stale() {
    let mut given = Given::correct();
    // At v1 the balance was 0, but v3 was acknowledged before: the answer
    // should have been a conflict.
    given.command(
        "c8",
        Kind::Withdraw(3),
        Some(1),
        (120, 130),
        rejected("insufficient-funds"),
    );
    only(&given.check(), "stale_decisions");
}

#[test]
fn a_conflict_with_an_actual_version_before_an_acknowledged_one_is_stale() {
    let mut given = Given::correct();
    given.command("c8", Kind::Deposit(1), Some(3), (120, 130), conflict(3, 2));
    only(&given.check(), "stale_decisions");
}

#[test]
fn a_stored_withdrawal_beyond_the_balance_is_invalid() {
    let mut given = Given::correct();
    given.event(4, Change::Withdrawn(50), "c9", 1_003);
    given.final_state(4, 0);
    only(&given.check(), "invalid_events");
}

#[test]
fn an_acknowledgement_past_its_expected_version_ignored_it() {
    let mut given = Given::correct();
    given.command("c10", Kind::Deposit(1), Some(1), (120, 130), acked(4));
    given.event(4, Change::Deposited(1), "c10", 1_003);
    given.final_state(4, 6);
    only(&given.check(), "ignored_expected_versions");
}

#[test]
fn a_conflict_for_a_stored_command_is_counted() {
    let mut given = Given::correct();
    // c1 (stored at v2) sent again with its old expected version.
    given.command("c1", Kind::Deposit(10), Some(1), (120, 130), conflict(1, 3));
    only(&given.check(), "conflicts_for_stored");
}

#[test]
fn a_node_answering_an_empty_aggregate_after_recovery_is_a_mismatch() {
    let mut given = Given::correct();
    given.stored.states[1].version = 0;
    given.stored.states[1].balance = 0;
    only(&given.check(), "state_mismatches");
}

#[test]
fn an_event_stamped_before_the_previous_one_goes_backwards() {
    let mut given = Given::correct();
    given.stored.events[0][2].timestamp_ms = 990;
    only(&given.check(), "timestamps_backwards");
}
