//! The shard gate: which shards this node serves right now, and the
//! commands in flight on each.
//!
//! **Invariant:** a command or read runs on this node only while it holds
//! a [`Pass`] for its shard, and a pass is only given for an open shard.
//! Hand-off closes a shard first (new arrivals are turned away and retried
//! elsewhere by their sender), then waits for [`ShardGate::drained`]: when
//! that returns, nothing of the shard runs here any more.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The shards a node serves and their in-flight work.
pub struct ShardGate {
    state: Mutex<State>,
    released: Notify,
}

struct State {
    open: Vec<bool>,
    in_flight: Vec<u32>,
}

/// Permission to run one command or read of a shard; dropping it ends it.
pub struct Pass {
    gate: Arc<ShardGate>,
    shard: u32,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.state().in_flight[self.shard as usize] -= 1;
        self.gate.released.notify_waiters();
    }
}

impl ShardGate {
    /// A gate of `shards` shards, all closed.
    pub fn new(shards: u32) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                open: vec![false; shards as usize],
                in_flight: vec![0; shards as usize],
            }),
            released: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pass for `shard` if this node serves it.
    pub fn enter(self: &Arc<Self>, shard: u32) -> Option<Pass> {
        let mut state = self.state();
        if !*state.open.get(shard as usize)? {
            return None;
        }
        state.in_flight[shard as usize] += 1;
        Some(Pass {
            gate: self.clone(),
            shard,
        })
    }

    /// Starts serving `shards`.
    pub fn open(&self, shards: &[u32]) {
        let mut state = self.state();
        for &shard in shards {
            state.open[shard as usize] = true;
        }
    }

    /// Stops giving passes for `shards` (passes already given stay valid).
    pub fn close(&self, shards: &[u32]) {
        let mut state = self.state();
        for &shard in shards {
            state.open[shard as usize] = false;
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
                shards.iter().any(|&s| state.in_flight[s as usize] > 0)
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

    #[tokio::test]
    async fn a_closed_shard_gives_no_pass_and_drains_the_ones_given() {
        let gate = ShardGate::new(4);
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
}
