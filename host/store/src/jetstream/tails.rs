//! The last message (sequence and version) of streams this store has
//! appended to or looked at, so that an append expecting the version this
//! store last saw publishes at once, without first asking the stream
//! leader for the aggregate's last message.
//!
//! **Invariant:** a version's sequence never changes (the streams deny
//! deletes and purges), so an entry (sequence, version) stays true of
//! that version forever. An append that expects exactly the remembered
//! version publishes with `Nats-Expected-Last-Subject-Sequence` set to the
//! remembered sequence: JetStream stores it only if the aggregate's last
//! message is still that one, i.e. the stream is still at that version,
//! and refuses it otherwise (then the append asks the leader, as any
//! conflict does). So a stale entry costs a refused publish, never a wrong
//! answer.
//!
//! Bounded: forgotten all at once when it holds [`MAX_TAILS`] streams.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::StreamId;

/// How many streams are remembered before the memory starts over.
const MAX_TAILS: usize = 65_536;

/// See the module docs.
#[derive(Default)]
pub(super) struct Tails(Mutex<HashMap<StreamId, (u64, u64)>>);

impl Tails {
    /// The remembered last message of `stream` if it is at `version`.
    pub(super) fn at(&self, stream: &StreamId, version: u64) -> Option<(u64, u64)> {
        let tails = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tails.get(stream).copied().filter(|&(_, v)| v == version)
    }

    /// Remembers that `stream`'s last message was (`sequence`, `version`),
    /// unless a later one is remembered.
    pub(super) fn note(&self, stream: &StreamId, sequence: u64, version: u64) {
        let mut tails = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if tails.get(stream).is_some_and(|&(_, v)| v >= version) {
            return;
        }
        if tails.len() >= MAX_TAILS && !tails.contains_key(stream) {
            tails.clear();
        }
        tails.insert(stream.clone(), (sequence, version));
    }
}
