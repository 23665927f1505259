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
//! event of the stream up to the live version: the live copy was activated
//! from version 0, or from a snapshot saved together with the filter of
//! the same version ([`CommandIds::to_bytes`], kept in the store as the
//! stream's snapshot under [`SNAPSHOT_KEY`]); an aggregate restored from a
//! snapshot without its filter answers *maybe* for every id (the store is
//! asked). What
//! *absent* proves is about the live copy's events only: it is true of the
//! stream whenever the store is at the live version, which the command
//! path checks before any answer that relies on it (see
//! `Runtime::execute`).

/// The snapshot key the filter is saved under, next to the state
/// snapshot of the same version.
pub(crate) const SNAPSHOT_KEY: &str = "command-ids";

/// The first byte of a saved filter: this layout (8 192 bits, 4 probes,
/// FNV-1a double hashing). A saved filter with another tag is not used.
const FORMAT: u8 = 1;

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

    /// The filter as saved with a snapshot, if it is complete (else there
    /// is nothing worth saving): [`FORMAT`], then the bits (little-endian
    /// words), or nothing more if no id was seen.
    pub(crate) fn to_bytes(&self) -> Option<Vec<u8>> {
        if !self.complete {
            return None;
        }
        let mut out = vec![FORMAT];
        if let Some(bits) = &self.bits {
            out.extend(bits.iter().flat_map(|word| word.to_le_bytes()));
        }
        Some(out)
    }

    /// A complete filter saved by [`CommandIds::to_bytes`]; `None` for
    /// bytes of another layout (the caller then starts an incomplete one).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [FORMAT] => Some(Self {
                bits: None,
                complete: true,
            }),
            [FORMAT, words @ ..] if words.len() == WORDS * 8 => {
                let mut bits = Box::new([0; WORDS]);
                for (word, chunk) in bits.iter_mut().zip(words.chunks_exact(8)) {
                    *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                }
                Some(Self {
                    bits: Some(bits),
                    complete: true,
                })
            }
            _ => None,
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
///
/// The hash is FNV-1a, written out here: a saved filter is read by later
/// builds, so its bits must not depend on the standard library's hasher,
/// whose algorithm may change between releases. (An id chosen to collide
/// only costs its sender a store read.)
fn probes(command_id: &str) -> [usize; PROBES] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in command_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
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
    fn a_saved_filter_reads_back_as_it_was() {
        let mut ids = CommandIds::starting_at(0);
        let empty = CommandIds::from_bytes(&ids.to_bytes().unwrap()).unwrap();
        assert_eq!(empty.recall("c-1"), Recall::Absent);
        for i in 0..300 {
            ids.insert(&format!("c-{i}"));
        }
        let bytes = ids.to_bytes().unwrap();
        assert_eq!(bytes.len(), 1 + FILTER_BITS / 8);
        let read = CommandIds::from_bytes(&bytes).unwrap();
        for i in 0..1_000 {
            let id = format!("{}-{i}", if i < 300 { "c" } else { "n" });
            assert_eq!(read.recall(&id), ids.recall(&id), "{id}");
        }
        assert!((0..300).all(|i| read.recall(&format!("c-{i}")) == Recall::Maybe));
        assert_eq!(CommandIds::starting_at(3).to_bytes(), None, "incomplete");
        assert!(CommandIds::from_bytes(&[2]).is_none(), "another layout");
        assert!(CommandIds::from_bytes(&bytes[..100]).is_none(), "cut short");
    }

    /// The bits of an id never change between builds (a saved filter is
    /// read by later ones): these are FNV-1a's, as another implementation
    /// of FNV-1a computed them.
    #[test]
    fn the_probes_are_stable() {
        assert_eq!(probes("c-1"), [2772, 5357, 7942, 2335]);
    }

    #[test]
    fn a_memory_from_a_snapshot_knows_nothing_for_sure() {
        let ids = CommandIds::starting_at(5);
        assert_eq!(ids.recall("c-1"), Recall::Maybe);
    }
}
