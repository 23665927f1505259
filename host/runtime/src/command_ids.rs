//! What a live aggregate remembers of the command ids stored in its
//! stream, so that a command with a new id needs no store read to know it
//! is new.
//!
//! The memory is a Bloom filter of every command id in the events the
//! aggregate has applied, from its constructor on: it answers *absent*
//! only for an id that is in none of them (no false negatives), and
//! *maybe* otherwise (a stored id, or a false positive once many ids share
//! its [`FILTER_BITS`]). Its size is fixed and allocated with the first id,
//! so an aggregate that never sees one costs nothing and one with very
//! many ids only reads the store more often, never answers wrongly.
//!
//! **Invariant:** *absent* is only answered when the filter saw every
//! event of the live copy (it was activated from version 0, not from a
//! snapshot); an aggregate restored from a snapshot answers *maybe* for
//! every id (the store is asked, as before this memory existed). What
//! *absent* proves is about the live copy's events only: it is true of the
//! stream whenever the store is at the live version, which the command
//! path checks before any answer that relies on it (see
//! `Runtime::execute`).

use std::hash::{DefaultHasher, Hash, Hasher};

/// The filter's size in bits (1 KiB): about one false positive in 450
/// with 500 ids, one in 7 with 2 000.
const FILTER_BITS: usize = 8 * 1024;
/// Bits set per id.
const PROBES: usize = 4;
const WORDS: usize = FILTER_BITS / 64;

/// Whether a command id may be stored in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recall {
    /// In none of the live copy's events.
    Absent,
    /// Perhaps stored: ask the store.
    Maybe,
}

/// The command ids of a live aggregate's events (see the module docs).
#[derive(Debug)]
pub(crate) struct CommandIds {
    /// Allocated with the first id.
    bits: Option<Box<[u64; WORDS]>>,
    /// Whether every event of the live copy went through [`CommandIds::insert`].
    complete: bool,
}

impl CommandIds {
    /// The memory of an aggregate activated at `version`: complete only
    /// from the stream's start.
    pub(crate) fn starting_at(version: u64) -> Self {
        Self {
            bits: None,
            complete: version == 0,
        }
    }

    /// Remembers the command id of an applied event.
    pub(crate) fn insert(&mut self, command_id: &str) {
        let bits = self.bits.get_or_insert_with(|| Box::new([0; WORDS]));
        for bit in probes(command_id) {
            bits[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Whether `command_id` may be in the live copy's events.
    pub(crate) fn recall(&self, command_id: &str) -> Recall {
        if !self.complete {
            return Recall::Maybe;
        }
        let Some(bits) = &self.bits else {
            return Recall::Absent;
        };
        if probes(command_id)
            .into_iter()
            .all(|bit| bits[bit / 64] & (1 << (bit % 64)) != 0)
        {
            Recall::Maybe
        } else {
            Recall::Absent
        }
    }
}

/// The filter bits of an id: double hashing from one 64-bit hash.
fn probes(command_id: &str) -> [usize; PROBES] {
    // SipHash with fixed keys: the same bits on every run (an id chosen to
    // collide only costs its sender a store read).
    let mut hasher = DefaultHasher::new();
    command_id.hash(&mut hasher);
    let hash = hasher.finish();
    let (h1, h2) = (hash as u32 as usize, ((hash >> 32) as usize) | 1);
    std::array::from_fn(|i| h1.wrapping_add(i.wrapping_mul(h2)) % FILTER_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_id_is_never_absent() {
        let mut ids = CommandIds::starting_at(0);
        assert_eq!(ids.recall("c-1"), Recall::Absent);
        for i in 0..10_000 {
            ids.insert(&format!("c-{i}"));
            assert_eq!(ids.recall(&format!("c-{i}")), Recall::Maybe);
        }
        for i in 0..10_000 {
            assert_eq!(ids.recall(&format!("c-{i}")), Recall::Maybe);
        }
    }

    #[test]
    fn few_ids_leave_new_ones_absent() {
        let mut ids = CommandIds::starting_at(0);
        for i in 0..200 {
            ids.insert(&format!("old-{i}"));
        }
        let maybe = (0..1_000)
            .filter(|i| ids.recall(&format!("new-{i}")) == Recall::Maybe)
            .count();
        assert!(maybe < 10, "{maybe} false positives in 1 000");
    }

    #[test]
    fn a_memory_from_a_snapshot_knows_nothing_for_sure() {
        let ids = CommandIds::starting_at(5);
        assert_eq!(ids.recall("c-1"), Recall::Maybe);
    }
}
