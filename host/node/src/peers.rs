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

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// A client, as connections are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The open connections of every client that has one.
///
/// Invariant: a client's count is the number of live [`PeerSlot`]s for
/// it, never more than `limit`; a client with none has no entry, so the
/// map holds only clients with an open connection.
pub(crate) struct Peers {
    limit: usize,
    open: Mutex<HashMap<Peer, usize>>,
}

impl Peers {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// One more connection from `address`, unless its client already has
    /// `limit` open: then the client, refused.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<PeerSlot, Peer> {
        let peer = Peer::of(address);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(peer).or_insert(0);
        if *count >= self.limit {
            return Err(peer);
        }
        *count += 1;
        Ok(PeerSlot {
            peers: self.clone(),
            peer,
        })
    }

    #[cfg(test)]
    fn open(&self, address: IpAddr) -> usize {
        let open = self.open.lock().unwrap();
        open.get(&Peer::of(address)).copied().unwrap_or(0)
    }
}

/// One open connection of a client: counted until dropped.
pub(crate) struct PeerSlot {
    peers: Arc<Peers>,
    peer: Peer,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_limit_and_no_more_and_others_are_not_counted_with_it() {
        let peers = Peers::new(2);
        let held = [
            peers.admit(ip("10.0.0.1")).unwrap(),
            peers.admit(ip("10.0.0.1")).unwrap(),
        ];
        let refused = peers
            .admit(ip("10.0.0.1"))
            .err()
            .expect("the third is refused");
        assert_eq!(refused.to_string(), "10.0.0.1");
        assert!(
            peers.admit(ip("10.0.0.2")).is_ok(),
            "another client is not capped"
        );
        drop(held);
        assert_eq!(peers.open(ip("10.0.0.1")), 0);
        assert!(
            peers.open.lock().unwrap().is_empty(),
            "no entry is left behind"
        );
        assert!(
            peers.admit(ip("10.0.0.1")).is_ok(),
            "a freed slot is given again"
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let peers = Peers::new(1);
        let _first = peers.admit(ip("2001:db8:1:2::1")).unwrap();
        let refused = peers.admit(ip("2001:db8:1:2:ffff::9")).err().unwrap();
        assert_eq!(refused.to_string(), "2001:db8:1:2::/64");
        assert!(peers.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = peers.admit(ip("192.0.2.7")).unwrap();
        assert!(
            peers.admit(ip("::ffff:192.0.2.7")).is_err(),
            "the same client"
        );
    }
}
