//! Shard placement: which live node owns each shard, and the published map.
//!
//! The leader assigns shards by rendezvous hashing (highest random weight,
//! a form of consistent hashing): shard `s` goes to the member whose
//! `hash(s, member)` is highest. Removing a member moves only the shards it
//! owned; adding one moves only the shards it now wins, about `1/N` of
//! them. Every node computes the same owner from the same member list, but
//! only the leader's published [`ShardMap`] counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The shard assignment the leader published.
///
/// **Invariant:** `epoch` only grows: a node takes a map only if it
/// [`supersedes`](ShardMap::supersedes) the one it holds (a later epoch, and
/// a fencing token `leader_token` no older), and a leader publishes only
/// while no map carries a newer token than its own lease's revision.
///
/// **Invariant:** a node serves the shards a map gives it only if the map
/// names its current incarnation: a node whose ownership lapsed starts a
/// new incarnation, so a map made before it came back (one that may be
/// superseded by a map made while it was gone) never gives it shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    /// Grows by one with every new assignment.
    pub epoch: u64,
    /// The leader that published it.
    pub leader: String,
    /// The leader's lease revision when it published.
    pub leader_token: u64,
    /// The members the assignment was made for, sorted.
    pub members: Vec<String>,
    /// The owner of every shard, by shard number.
    pub owners: Vec<String>,
    /// The incarnation of every member the map was made for (see
    /// [`super::Member::incarnation`]).
    #[serde(default)]
    pub incarnations: BTreeMap<String, u64>,
}

impl ShardMap {
    /// The map of `epoch` for `members` (any order), made by `leader`.
    pub fn new(
        epoch: u64,
        leader: &str,
        leader_token: u64,
        members: &[String],
        shards: u32,
    ) -> Self {
        let mut members = members.to_vec();
        members.sort();
        members.dedup();
        Self {
            epoch,
            leader: leader.to_owned(),
            leader_token,
            owners: assign(shards, &members),
            members,
            incarnations: BTreeMap::new(),
        }
    }

    /// The same map, made for these incarnations of its members.
    pub fn with_incarnations(mut self, incarnations: BTreeMap<String, u64>) -> Self {
        self.incarnations = incarnations;
        self
    }

    /// The shards this map gives to `node` in its `incarnation`: none if
    /// the map was made for another incarnation of it.
    pub fn shards_of_incarnation(&self, node: &str, incarnation: u64) -> Vec<u32> {
        if self.incarnations.get(node) != Some(&incarnation) {
            return Vec::new();
        }
        self.shards_of(node)
    }

    /// Whether this map replaces `current`: a later epoch from a leader
    /// whose fencing token is not older than the one `current` came from
    /// (a deposed leader's late write is refused).
    pub fn supersedes(&self, current: &ShardMap) -> bool {
        self.epoch > current.epoch && self.leader_token >= current.leader_token
    }

    /// The owner of `shard`, if the map has one.
    pub fn owner(&self, shard: u32) -> Option<&str> {
        self.owners.get(shard as usize).map(String::as_str)
    }

    /// The shards `node` owns.
    pub fn shards_of(&self, node: &str) -> Vec<u32> {
        (0..self.owners.len() as u32)
            .filter(|&s| self.owners[s as usize] == node)
            .collect()
    }

    /// How many shards each member owns.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> =
            self.members.iter().map(|m| (m.clone(), 0)).collect();
        for owner in &self.owners {
            *counts.entry(owner.clone()).or_default() += 1;
        }
        counts
    }
}

/// The owner of every shard among `members` (empty: no owners).
pub fn assign(shards: u32, members: &[String]) -> Vec<String> {
    if members.is_empty() {
        return Vec::new();
    }
    (0..shards)
        .map(|shard| {
            members
                .iter()
                .max_by_key(|member| (weight(shard, member), member.as_str()))
                .expect("members is not empty")
                .clone()
        })
        .collect()
}

/// The rendezvous weight of `member` for `shard`: stable across processes
/// and releases (it decides where every shard lives).
fn weight(shard: u32, member: &str) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&shard.to_le_bytes());
    hasher.update(member.as_bytes());
    let hash = hasher.finalize();
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// How many shards have a different owner in `after` than in `before`.
pub fn moved(before: &[String], after: &[String]) -> usize {
    before.iter().zip(after).filter(|(a, b)| a != b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn every_shard_has_a_live_owner_and_the_spread_is_even() {
        let members = nodes(4);
        let owners = assign(256, &members);
        assert_eq!(owners.len(), 256);
        let map = ShardMap::new(1, "node-1", 1, &members, 256);
        for (node, count) in map.counts() {
            // 64 each on average; rendezvous hashing stays within ±40%.
            assert!((38..=90).contains(&count), "{node} owns {count}");
        }
        assert!(owners.iter().all(|o| members.contains(o)));
    }

    #[test]
    fn the_assignment_does_not_depend_on_member_order() {
        let mut members = nodes(5);
        let first = assign(256, &members);
        members.reverse();
        assert_eq!(first, assign(256, &members));
    }

    #[test]
    fn adding_a_node_moves_about_one_in_n_and_only_to_it() {
        for n in 2..=8 {
            let before = assign(256, &nodes(n));
            let after = assign(256, &nodes(n + 1));
            let newcomer = format!("node-{}", n + 1);
            let moved_shards = moved(&before, &after);
            // Exactly the shards the newcomer wins move, each to it.
            for (old, new) in before.iter().zip(&after) {
                assert!(old == new || *new == newcomer, "{old} → {new}");
            }
            let ideal = 256.0 / (n + 1) as f64;
            assert!(
                (moved_shards as f64) <= ideal * 1.5 && (moved_shards as f64) >= ideal * 0.5,
                "{n}→{}: moved {moved_shards}, ideal {ideal:.0}",
                n + 1
            );
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_shards() {
        for n in 3..=8 {
            let members = nodes(n);
            let before = assign(256, &members);
            let gone = "node-2";
            let rest: Vec<String> = members.iter().filter(|m| *m != gone).cloned().collect();
            let after = assign(256, &rest);
            let owned = before.iter().filter(|o| *o == gone).count();
            assert_eq!(moved(&before, &after), owned, "only node-2's shards move");
            let ideal = 256.0 / n as f64;
            assert!((owned as f64) <= ideal * 1.5, "{n}: node-2 owned {owned}");
        }
    }

    #[test]
    fn a_map_from_a_deposed_leader_is_refused() {
        let members = nodes(3);
        let current = ShardMap::new(5, "node-2", 40, &members, 16);
        assert!(ShardMap::new(6, "node-2", 40, &members, 16).supersedes(&current));
        assert!(ShardMap::new(6, "node-3", 57, &members, 16).supersedes(&current));
        // Newer epoch, older token: written by a leader that lost its lease.
        assert!(!ShardMap::new(6, "node-1", 12, &members, 16).supersedes(&current));
        assert!(!ShardMap::new(5, "node-3", 57, &members, 16).supersedes(&current));
    }

    #[test]
    fn a_map_gives_shards_only_to_the_incarnation_it_was_made_for() {
        let members = nodes(2);
        let incarnations = BTreeMap::from([("node-1".to_owned(), 7), ("node-2".to_owned(), 3)]);
        let map = ShardMap::new(4, "node-1", 1, &members, 16).with_incarnations(incarnations);
        let owned = map.shards_of("node-1");
        assert!(!owned.is_empty());
        assert_eq!(map.shards_of_incarnation("node-1", 7), owned);
        assert!(
            map.shards_of_incarnation("node-1", 8).is_empty(),
            "node-1 lapsed and came back after the map was made"
        );
        let old = ShardMap::new(4, "node-1", 1, &members, 16);
        assert!(old.shards_of_incarnation("node-1", 7).is_empty());
    }

    #[test]
    fn no_members_no_owners() {
        assert!(assign(256, &[]).is_empty());
        assert_eq!(ShardMap::new(1, "x", 1, &[], 256).owner(3), None);
    }

    #[test]
    fn weights_are_pinned() {
        // Changing the weight function would move every shard of every
        // running cluster on upgrade.
        let mut hasher = blake3::Hasher::new();
        hasher.update(&7u32.to_le_bytes());
        hasher.update(b"node-a");
        let expected = u64::from_le_bytes(hasher.finalize().as_bytes()[..8].try_into().unwrap());
        assert_eq!(weight(7, "node-a"), expected);
    }
}
