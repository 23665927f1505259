//! Cluster Coordination: which node serves which aggregates.
//!
//! Aggregates are grouped into a fixed number of shards by a stable hash of
//! (namespace, aggregate type, aggregate id); shards are what a cluster
//! places on nodes, moves, and hands off. The hash must never change: two
//! nodes (or two versions of Aether) must agree on every aggregate's shard.
//! Membership, leader election and placement over NATS build on this.

use crate::store::StreamId;

/// The default number of shards.
pub const DEFAULT_SHARDS: u32 = 256;

/// The shard an aggregate belongs to, out of `shards` (at least 1).
///
/// Stable across processes, platforms and releases: the first 8 bytes of
/// the blake3 hash of `namespace/aggregate-type/aggregate-id`, little
/// endian, modulo `shards`.
pub fn shard_of(stream: &StreamId, shards: u32) -> u32 {
    let key = format!(
        "{}/{}/{}",
        stream.namespace, stream.aggregate_type, stream.aggregate_id
    );
    let hash = blake3::hash(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::{AggregateId, AggregateType, Namespace};

    fn stream(ns: &str, id: &str) -> StreamId {
        StreamId::new(
            Namespace::new(ns).unwrap(),
            AggregateType::new("account").unwrap(),
            AggregateId::new(id).unwrap(),
        )
    }

    #[test]
    fn shard_is_stable() {
        // Pinned: changing the hash would move every aggregate.
        let s = stream("bank", "acc-1");
        let expected = {
            let h = blake3::hash(b"bank/account/acc-1");
            u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 256
        };
        assert_eq!(u64::from(shard_of(&s, 256)), expected);
        assert_eq!(shard_of(&s, 256), shard_of(&s.clone(), 256));
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = vec![0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&stream("ns", &format!("id-{i}")), 16) as usize] += 1;
        }
        // Each of 16 shards should get about 1 000; allow ±20%.
        assert!(
            counts.iter().all(|&c| (800..=1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn namespace_is_part_of_the_key() {
        let differ = (0..64).any(|i| {
            let id = format!("id-{i}");
            shard_of(&stream("a", &id), 256) != shard_of(&stream("b", &id), 256)
        });
        assert!(differ);
    }
}
