//! The shard gate: which shards this node serves right now, until when it
//! may, and the commands in flight on each.
//!
//! Ownership is bounded by a deadline on the monotonic clock
//! ([`Instant`]), `owned_until`. Only a confirmed heartbeat renews it, to
//! `beat_started_at + lease_ttl - heartbeat`: measured from *before* the
//! heartbeat was sent, it always ends at least one heartbeat before the
//! NATS servers can expire this node's membership entry (they start their
//! TTL when they store the beat, which is later). A process paused by the
//! OS or cut off from NATS therefore stops serving by itself, before any
//! other node can take its shards, whatever its coordinator was doing.
//!
//! A heartbeat confirmed before the deadline [`extends`](ShardGate::extend)
//! it (the entry never expired, so nobody took a shard from this node).
//! Once it has lapsed, only [`renew`](ShardGate::renew) sets it again, and
//! the coordinator calls that only after releasing every shard and
//! starting a new incarnation.
//!
//! **Invariant:** a command or read runs on this node only while it holds
//! a [`Pass`] for its shard, and a pass is only given for an open shard of
//! this gate while the ownership deadline has not passed and the gate has
//! not failed. Hand-off closes a shard first (new arrivals are turned away
//! and retried elsewhere by their sender), then waits for
//! [`ShardGate::drained`]: when that returns, nothing of the shard runs
//! here any more.
//!
//! **Invariant:** the answer of work done under a pass leaves this node
//! only if [`Pass::still_owned`] holds after the work, or the answer is a
//! command that stored events (true whenever it was stored: the store's
//! version check fences a stale writer). A shard number out of range is
//! refused (no pass, nothing opened), never a panic.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

/// The shards a node serves and their in-flight work.
pub struct ShardGate {
    state: Mutex<State>,
    released: Notify,
}

struct State {
    open: Vec<bool>,
    in_flight: Vec<u32>,
    /// Until when this node may answer for its open shards; `None` until
    /// the first confirmed heartbeat.
    owned_until: Option<Instant>,
    /// A background task of the cluster panicked: nothing is served again.
    failed: bool,
}

impl State {
    fn owned(&self, now: Instant) -> bool {
        !self.failed && self.owned_until.is_some_and(|until| now < until)
    }
}

/// Permission to run one command or read of a shard; dropping it ends it.
pub struct Pass {
    gate: Arc<ShardGate>,
    shard: u32,
}

impl Pass {
    /// Whether this node still owns the shard now (the deadline has not
    /// passed): checked after the work, before its answer leaves.
    pub fn still_owned(&self) -> bool {
        self.gate.state().owned(Instant::now())
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.state().in_flight[self.shard as usize] -= 1;
        self.gate.released.notify_waiters();
    }
}

impl ShardGate {
    /// A gate of `shards` shards, all closed, owning nothing.
    pub fn new(shards: u32) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                open: vec![false; shards as usize],
                in_flight: vec![0; shards as usize],
                owned_until: None,
                failed: false,
            }),
            released: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pass for `shard` if this node serves it and its ownership has not
    /// lapsed.
    pub fn enter(self: &Arc<Self>, shard: u32) -> Option<Pass> {
        let mut state = self.state();
        if !*state.open.get(shard as usize)? || !state.owned(Instant::now()) {
            return None;
        }
        state.in_flight[shard as usize] += 1;
        Some(Pass {
            gate: self.clone(),
            shard,
        })
    }

    /// Extends ownership to `until` if it has not lapsed yet (a heartbeat
    /// confirmed before the deadline: the membership entry never expired);
    /// false if it had lapsed, and then nothing changes.
    pub fn extend(&self, until: Instant) -> bool {
        let mut state = self.state();
        if !state.owned(Instant::now()) {
            return false;
        }
        if state.owned_until.is_none_or(|current| current < until) {
            state.owned_until = Some(until);
        }
        true
    }

    /// Sets ownership to `until` whether or not it had lapsed (never
    /// shortens it; ignored once the gate has failed). Only for a node
    /// that released every shard and started a new incarnation before the
    /// heartbeat confirming it.
    pub fn renew(&self, until: Instant) {
        let mut state = self.state();
        if !state.failed && state.owned_until.is_none_or(|current| current < until) {
            state.owned_until = Some(until);
        }
    }

    /// Whether the ownership deadline has passed (or was never set): this
    /// node must serve nothing.
    pub fn lapsed(&self) -> bool {
        !self.state().owned(Instant::now())
    }

    /// Ends ownership for good (a background task failed): no pass is
    /// given again, and passes held fail [`Pass::still_owned`].
    pub fn fail(&self) {
        let mut state = self.state();
        state.failed = true;
        state.owned_until = None;
    }

    /// Starts serving `shards`; numbers out of range are refused (logged).
    pub fn open(&self, shards: &[u32]) {
        let mut state = self.state();
        for &shard in shards {
            match state.open.get_mut(shard as usize) {
                Some(open) => *open = true,
                None => tracing::error!(shard, "refused to open a shard out of range"),
            }
        }
    }

    /// Stops giving passes for `shards` (passes already given stay valid).
    pub fn close(&self, shards: &[u32]) {
        let mut state = self.state();
        for &shard in shards {
            if let Some(open) = state.open.get_mut(shard as usize) {
                *open = false;
            }
        }
    }

    /// The shards served now.
    pub fn serving(&self) -> Vec<u32> {
        let state = self.state();
        (0..state.open.len() as u32)
            .filter(|&s| state.open[s as usize])
            .collect()
    }

    /// Returns once no pass of `shards` is held.
    pub async fn drained(&self, shards: &[u32]) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let busy = {
                let state = self.state();
                shards
                    .iter()
                    .any(|&s| state.in_flight.get(s as usize).is_some_and(|&n| n > 0))
            };
            if !busy {
                return;
            }
            released.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn owned_gate(shards: u32, for_: Duration) -> Arc<ShardGate> {
        let gate = ShardGate::new(shards);
        gate.renew(Instant::now() + for_);
        gate
    }

    #[tokio::test]
    async fn a_closed_shard_gives_no_pass_and_drains_the_ones_given() {
        let gate = owned_gate(4, Duration::from_secs(60));
        assert!(gate.enter(1).is_none(), "shards start closed");
        gate.open(&[1, 2]);
        assert_eq!(gate.serving(), vec![1, 2]);
        let pass = gate.enter(1).expect("open");
        gate.close(&[1]);
        assert!(gate.enter(1).is_none());
        assert!(gate.enter(2).is_some());

        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.drained(&[1]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a pass of shard 1 is still held");
        drop(pass);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("drained once the pass is dropped")
            .unwrap();
        gate.drained(&[0, 3]).await;
    }

    #[test]
    fn no_pass_before_the_first_renewal_or_after_the_deadline() {
        let gate = ShardGate::new(2);
        gate.open(&[0]);
        assert!(gate.lapsed());
        assert!(gate.enter(0).is_none(), "never renewed: owns nothing");

        gate.renew(Instant::now() + Duration::from_millis(40));
        assert!(gate.enter(0).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(gate.lapsed());
        assert!(gate.enter(0).is_none(), "the deadline passed");
        assert_eq!(gate.serving(), vec![0], "still open: only time ran out");

        gate.renew(Instant::now() + Duration::from_secs(60));
        assert!(gate.enter(0).is_some(), "a confirmed beat renews it");
    }

    #[test]
    fn a_pass_whose_deadline_lapsed_during_the_work_is_no_longer_owned() {
        let gate = ShardGate::new(1);
        gate.open(&[0]);
        gate.renew(Instant::now() + Duration::from_millis(40));
        let pass = gate.enter(0).expect("owned");
        assert!(pass.still_owned());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!pass.still_owned(), "the work outlived the deadline");
    }

    #[test]
    fn a_lapsed_ownership_is_not_extended() {
        let gate = ShardGate::new(1);
        gate.open(&[0]);
        assert!(!gate.extend(Instant::now() + Duration::from_secs(60)));
        gate.renew(Instant::now() + Duration::from_millis(40));
        assert!(gate.extend(Instant::now() + Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            !gate.extend(Instant::now() + Duration::from_secs(60)),
            "a beat confirmed after the deadline extends nothing"
        );
        assert!(gate.enter(0).is_none());
    }

    #[test]
    fn renewal_never_shortens_and_a_failed_gate_stays_closed() {
        let gate = owned_gate(1, Duration::from_secs(60));
        gate.open(&[0]);
        gate.renew(Instant::now());
        assert!(gate.enter(0).is_some(), "an older deadline is ignored");

        let pass = gate.enter(0).unwrap();
        gate.fail();
        assert!(!pass.still_owned());
        gate.renew(Instant::now() + Duration::from_secs(60));
        assert!(gate.enter(0).is_none(), "a failed gate is never renewed");
    }

    #[test]
    fn a_shard_out_of_range_is_refused_not_a_panic() {
        let gate = owned_gate(128, Duration::from_secs(60));
        gate.open(&[5, 200]);
        gate.close(&[300]);
        assert_eq!(gate.serving(), vec![5]);
        assert!(gate.enter(200).is_none());
        assert!(gate.enter(u32::MAX).is_none());
    }
}
