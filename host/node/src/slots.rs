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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aether_core::namespace::Namespace;

/// How many of one kind of thing each namespace has in progress.
#[derive(Debug, Default)]
pub(crate) struct NamespaceSlots {
    open: Mutex<HashMap<Namespace, usize>>,
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
    pub(crate) fn open(
        self: &Arc<Self>,
        namespace: &Namespace,
        limit: usize,
    ) -> Result<Slot, Full> {
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
}
