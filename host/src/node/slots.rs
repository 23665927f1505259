//! The live event streams (`…/events/live`) each namespace has open on this
//! node, capped by its `max_live_streams` limit.
//!
//! Each open stream holds a [`StreamSlot`]; the slot is given back when the
//! stream's response is dropped (the client went away, or the node is
//! shutting down).
//!
//! **Invariant:** a namespace never has more than its `max_live_streams`
//! streams open on a node: a slot is taken, and checked against the limit,
//! under one lock before the stream starts reading anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::namespace::Namespace;

/// How many live streams each namespace has open.
#[derive(Debug, Default)]
pub(crate) struct LiveStreams {
    open: Mutex<HashMap<Namespace, usize>>,
}

/// One open stream's place in its namespace's count, given back on drop.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    streams: Arc<LiveStreams>,
    namespace: Namespace,
}

/// The namespace already has `limit` live streams open.
#[derive(Debug)]
pub(crate) struct TooManyStreams {
    pub(crate) limit: usize,
}

impl LiveStreams {
    /// Takes a slot for a new stream of `namespace`, unless it already has
    /// `limit` open.
    pub(crate) fn open(
        self: &Arc<Self>,
        namespace: &Namespace,
        limit: usize,
    ) -> Result<StreamSlot, TooManyStreams> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(namespace.clone()).or_default();
        if *count >= limit {
            return Err(TooManyStreams { limit });
        }
        *count += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            namespace: namespace.clone(),
        })
    }

    /// How many live streams each namespace with any has open.
    pub(crate) fn counts(&self) -> Vec<(Namespace, usize)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<_> = open.iter().map(|(ns, n)| (ns.clone(), *n)).collect();
        counts.sort();
        counts
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
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
        let streams = Arc::new(LiveStreams::default());
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
