//! Things each namespace (or each client) has in progress on this node at
//! once, capped by a limit: per namespace, live event streams
//! (`…/events/live`, capped by `max_live_streams`) and component uploads
//! (`max_concurrent_uploads`), one [`NamespaceSlots`] for each; per client
//! address, open connections (`max_connections_per_address`, the
//! [`Slots`] of `peers.rs`).
//!
//! Each stream, upload or connection holds a [`Slot`]; the slot is given
//! back when it is dropped (the stream's response, the upload's handler or
//! the connection ends: done, the client went away, or the node is shutting
//! down).
//!
//! **Invariant:** a key never has more than its limit in progress on a
//! node: a slot is taken, and checked against the limit, under one lock
//! before the stream reads anything, the upload's body is read or the
//! connection is served. A key with nothing in progress has no entry.
//!
//! A stream or upload that finds its namespace full waits up to
//! [`SLOT_WAIT`] for a slot ([`NamespaceSlots::open_within`]) before it is
//! refused: a refusal at once let one tenant's four uploaders, two of them
//! refused again and again, send the node ~3 100 requests a second, each a
//! new connection to accept, authenticate and answer, which took another
//! tenant's p99 to 2.6–3.3 times its figure alone on two cores (1.5 with
//! the wait; BENCHMARKS.md, "Uploads that wait for a slot"). A client that
//! asks for more at once than its limit is served in turn instead.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether_core::namespace::Namespace;
use tokio::sync::Notify;

/// How long a live stream or an upload waits for one of its namespace's
/// slots before it is refused (`too_many_streams`, `too_many_uploads`).
pub(crate) const SLOT_WAIT: Duration = Duration::from_secs(1);

/// How many of one kind of thing each key has in progress.
#[derive(Debug)]
pub(crate) struct Slots<K: Eq + Hash + Clone> {
    open: Mutex<HashMap<K, usize>>,
    /// Told whenever a slot is given back, of any key.
    freed: Notify,
}

/// Streams or uploads, per namespace.
pub(crate) type NamespaceSlots = Slots<Namespace>;

impl<K: Eq + Hash + Clone> Default for Slots<K> {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            freed: Notify::new(),
        }
    }
}

/// One stream's, upload's or connection's place in its key's count, given
/// back on drop.
#[derive(Debug)]
pub(crate) struct Slot<K: Eq + Hash + Clone = Namespace> {
    slots: Arc<Slots<K>>,
    key: K,
}

/// The key already has `limit` in progress.
#[derive(Debug)]
pub(crate) struct Full {
    pub(crate) limit: usize,
}

impl<K: Eq + Hash + Clone> Slots<K> {
    /// Takes a slot for `key`, unless it already has `limit` in progress.
    pub(crate) fn open(self: &Arc<Self>, key: &K, limit: usize) -> Result<Slot<K>, Full> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.get(key).copied().unwrap_or(0) >= limit {
            return Err(Full { limit });
        }
        *open.entry(key.clone()).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            key: key.clone(),
        })
    }

    /// Takes a slot for `key`; if it already has `limit` in progress,
    /// waits up to [`SLOT_WAIT`] for one of them to be given back before it
    /// gives up.
    pub(crate) async fn open_within(
        self: &Arc<Self>,
        key: &K,
        limit: usize,
    ) -> Result<Slot<K>, Full> {
        let deadline = tokio::time::Instant::now() + SLOT_WAIT;
        loop {
            // Registered before the check, so a slot given back between the
            // check and the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.open(key, limit) {
                Ok(slot) => return Ok(slot),
                Err(full) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(full);
                    }
                }
            }
        }
    }

    /// How many each key with any has in progress, in key order.
    pub(crate) fn counts(&self) -> Vec<(K, usize)>
    where
        K: Ord,
    {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<_> = open.iter().map(|(key, n)| (key.clone(), *n)).collect();
        counts.sort();
        counts
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
        drop(open);
        self.slots.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_gets_at_most_its_limit_and_slots_come_back() {
        let streams = Arc::new(NamespaceSlots::default());
        let a = Namespace::new("a").unwrap();
        let b = Namespace::new("b").unwrap();
        let first = streams.open(&a, 2).unwrap();
        let _second = streams.open(&a, 2).unwrap();
        assert_eq!(streams.open(&a, 2).unwrap_err().limit, 2);
        // Another namespace has its own count.
        let _other = streams.open(&b, 2).unwrap();
        drop(first);
        assert_eq!(streams.counts(), vec![(a.clone(), 1), (b.clone(), 1)]);
        let _again = streams.open(&a, 2).unwrap();
        assert!(streams.open(&a, 2).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_namespace_waits_for_a_slot_given_back_and_gives_up_after_the_wait() {
        let uploads = Arc::new(NamespaceSlots::default());
        let a = Namespace::new("a").unwrap();
        let held = uploads.open(&a, 1).unwrap();
        let wait = SLOT_WAIT;

        // Nothing given back: refused when the wait is over, not before.
        let started = tokio::time::Instant::now();
        assert_eq!(uploads.open_within(&a, 1).await.unwrap_err().limit, 1);
        assert_eq!(started.elapsed(), wait);

        // A slot given back during the wait is taken.
        let waiting = tokio::spawn({
            let (uploads, a) = (uploads.clone(), a.clone());
            async move { uploads.open_within(&a, 1).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished());
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
        assert!(tokio::time::Instant::now() < started + 2 * wait);
    }
}
