//! Things each namespace has in progress on this node at once, capped by a
//! per-namespace limit: live event streams (`…/events/live`, capped by
//! `max_live_streams`) and component uploads (`max_concurrent_uploads`),
//! one [`NamespaceSlots`] for each.
//!
//! Each stream or upload holds a [`Slot`]; the slot is given back when it
//! is dropped (the stream's response or the upload's handler ends: done,
//! the client went away, or the node is shutting down).
//!
//! **Invariant:** a namespace never has more than its limit in progress on
//! a node: a slot is taken, and checked against the limit, under one lock
//! before the stream reads anything or the upload's body is read.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether_core::namespace::Namespace;
use tokio::sync::Notify;

/// How long a live stream or an upload waits for one of its namespace's
/// slots before it is refused (`too_many_streams`, `too_many_uploads`).
pub(crate) const SLOT_WAIT: Duration = Duration::from_secs(1);

/// How many of one kind of thing each namespace has in progress.
#[derive(Debug, Default)]
pub(crate) struct NamespaceSlots {
    open: Mutex<HashMap<Namespace, usize>>,
    /// Told whenever a slot is given back, of any namespace.
    freed: Notify,
}

/// One stream's or upload's place in its namespace's count, given back on
/// drop.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<NamespaceSlots>,
    namespace: Namespace,
}

/// The namespace already has `limit` in progress.
#[derive(Debug)]
pub(crate) struct Full {
    pub(crate) limit: usize,
}

impl NamespaceSlots {
    /// Takes a slot for `namespace`, unless it already has `limit` in
    /// progress.
    fn open(self: &Arc<Self>, namespace: &Namespace, limit: usize) -> Result<Slot, Full> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(namespace.clone()).or_default();
        if *count >= limit {
            return Err(Full { limit });
        }
        *count += 1;
        Ok(Slot {
            slots: self.clone(),
            namespace: namespace.clone(),
        })
    }

    /// Takes a slot for `namespace`; if it already has `limit` in
    /// progress, waits up to [`SLOT_WAIT`] for one of them to be given back
    /// before it gives up.
    pub(crate) async fn open_within(
        self: &Arc<Self>,
        namespace: &Namespace,
        limit: usize,
    ) -> Result<Slot, Full> {
        let deadline = tokio::time::Instant::now() + SLOT_WAIT;
        loop {
            // Registered before the check, so a slot given back between the
            // check and the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.open(namespace, limit) {
                Ok(slot) => return Ok(slot),
                Err(full) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(full);
                    }
                }
            }
        }
    }

    /// How many each namespace with any has in progress.
    pub(crate) fn counts(&self) -> Vec<(Namespace, usize)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<_> = open.iter().map(|(ns, n)| (ns.clone(), *n)).collect();
        counts.sort();
        counts
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.namespace) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.namespace);
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
