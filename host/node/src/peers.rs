//! Connections counted per client address, so that one client, however
//! many connections it opens, cannot take every slot of
//! `max_connections` and lock the other clients out
//! (`ConnectionLimits::max_connections_per_address`).
//!
//! A client is its IPv4 address, or the /64 prefix of its IPv6 address (a
//! subscriber's usual allocation, so a client cannot dodge the cap by
//! changing its interface identifier); an IPv4-mapped IPv6 address counts
//! as the IPv4 address. Clients behind one proxy or NAT share an address,
//! and the hosts of one IPv6 subnet a /64: there the cap belongs on the
//! proxy, and the node's is raised to `max_connections`.

use std::net::{IpAddr, Ipv6Addr};

use super::slots::{Slot, Slots};

/// A client, as connections are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Peer(IpAddr);

impl Peer {
    pub(crate) fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The open connections of every client that has one (the invariant is
/// `slots.rs`'s: never more than the limit, no entry for a client with
/// none).
pub(crate) type Peers = Slots<Peer>;

/// One open connection of a client: counted until dropped.
pub(crate) type PeerSlot = Slot<Peer>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// One more connection from `address`, or the client refused.
    fn admit(peers: &Arc<Peers>, address: &str, limit: usize) -> Result<PeerSlot, Peer> {
        let client = Peer::of(ip(address));
        peers.open(&client, limit).map_err(|_| client)
    }

    #[test]
    fn a_client_gets_its_limit_and_no_more_and_others_are_not_counted_with_it() {
        let peers = Arc::new(Peers::default());
        let held = [
            admit(&peers, "10.0.0.1", 2).unwrap(),
            admit(&peers, "10.0.0.1", 2).unwrap(),
        ];
        let refused = admit(&peers, "10.0.0.1", 2).expect_err("the third is refused");
        assert_eq!(refused.to_string(), "10.0.0.1");
        assert!(
            admit(&peers, "10.0.0.2", 2).is_ok(),
            "another client is not capped"
        );
        drop(held);
        assert!(peers.counts().is_empty(), "no entry is left behind");
        assert!(
            admit(&peers, "10.0.0.1", 2).is_ok(),
            "a freed slot is given again"
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let peers = Arc::new(Peers::default());
        let _first = admit(&peers, "2001:db8:1:2::1", 1).unwrap();
        let refused = admit(&peers, "2001:db8:1:2:ffff::9", 1).unwrap_err();
        assert_eq!(refused.to_string(), "2001:db8:1:2::/64");
        assert!(admit(&peers, "2001:db8:1:3::1", 1).is_ok(), "another /64");
        let _v4 = admit(&peers, "192.0.2.7", 1).unwrap();
        assert!(
            admit(&peers, "::ffff:192.0.2.7", 1).is_err(),
            "the same client"
        );
    }
}
