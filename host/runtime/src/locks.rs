//! Per-aggregate ordering: one command at a time per aggregate, in arrival
//! order.
//!
//! **Architecture invariant:** between activation and reply, a command
//! holds its aggregate's lock, so one aggregate's commands never interleave
//! (tokio's mutex is fair: waiters are served first come, first served).
//! Different aggregates never wait on each other here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use aether_store::StreamId;

#[derive(Default)]
pub(crate) struct AggregateLocks {
    locks: Mutex<HashMap<StreamId, Arc<AsyncMutex<()>>>>,
}

/// Holds an aggregate's lock; releasing it forgets the lock when nobody
/// else waits for it, so the map only holds aggregates in use.
pub(crate) struct AggregateGuard<'a> {
    owner: &'a AggregateLocks,
    stream: StreamId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl AggregateLocks {
    pub(crate) async fn lock(&self, stream: &StreamId) -> AggregateGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(stream.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        AggregateGuard {
            owner: self,
            stream: stream.clone(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for AggregateGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.owner.locks.lock().unwrap_or_else(|e| e.into_inner());
        self.guard = None;
        // Only the map holds it now: nobody holds or waits for this lock.
        if locks
            .get(&self.stream)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_core::namespace::{AggregateId, AggregateType, Namespace};

    fn stream(id: &str) -> StreamId {
        StreamId::new(
            Namespace::new("ns").unwrap(),
            AggregateType::new("counter").unwrap(),
            AggregateId::new(id).unwrap(),
        )
    }

    #[tokio::test]
    async fn same_aggregate_waits_other_does_not() {
        let locks = AggregateLocks::default();
        let a = locks.lock(&stream("a")).await;
        // Another aggregate's lock is free.
        let b =
            tokio::time::timeout(std::time::Duration::from_secs(1), locks.lock(&stream("b"))).await;
        assert!(b.is_ok());
        // The same aggregate's lock is not.
        let again = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            locks.lock(&stream("a")),
        )
        .await;
        assert!(again.is_err());
        drop(b);
        drop(a);
        assert_eq!(locks.len(), 0, "released locks are forgotten");
    }
}
