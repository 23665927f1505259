//! Admission: which slot a new connection gets and what it may ask for
//! there (`ConnectionLimits`' `max_connections_per_address`,
//! `max_connections` and `ops_reserve`; the table in `connections.rs`).
//!
//! In order: a client at its cap ([`Peers`]) gets one of [`REFUSALS`]
//! places, where every request is answered `429 too_many_connections`;
//! else an ordinary slot (every endpoint); else one of the reserve
//! (`/healthz`, `/readyz`, `/metrics`; anything else `503 overloaded`);
//! else the connection is closed at once. Each is counted in
//! [`ConnectionCounts`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, header};
use axum::response::IntoResponse;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::api::ApiError;
use super::connections::ConnectionLimits;
use super::metrics::ConnectionCounts;
use super::peers::{Peer, PeerSlot, Peers};
use aether_service::ErrorCode;

/// The endpoints a connection from the operations reserve may use.
const OPERATIONS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Connections of clients over their cap being answered `429` at once;
/// beyond these, such a connection is closed without an answer.
const REFUSALS: usize = 16;

/// Who gets a connection slot: the accept loop's places and counts.
pub(crate) struct Admission {
    ordinary: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    peers: Arc<Peers>,
    refusals: Arc<Semaphore>,
    counts: Arc<ConnectionCounts>,
    full_logged: Throttled,
    capped_logged: Throttled,
}

impl Admission {
    pub(crate) fn new(limits: &ConnectionLimits, counts: Arc<ConnectionCounts>) -> Self {
        Self {
            ordinary: Arc::new(Semaphore::new(limits.max_connections)),
            reserve: Arc::new(Semaphore::new(limits.ops_reserve)),
            peers: Arc::new(Peers::default()),
            refusals: Arc::new(Semaphore::new(REFUSALS)),
            counts,
            full_logged: Throttled::default(),
            capped_logged: Throttled::default(),
        }
    }

    /// The slot for a connection from `address`, or `None` to close it at
    /// once. In order: its client's cap (over it, a refusal place), then
    /// an ordinary slot, then the reserve.
    pub(crate) fn slot_for(&mut self, address: IpAddr, limits: &ConnectionLimits) -> Option<Slot> {
        let client = Peer::of(address);
        let peer = match self.peers.open(&client, limits.max_connections_per_address) {
            Ok(peer) => peer,
            Err(_) => {
                self.counts
                    .refused_client_cap
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = self.capped_logged.ready() {
                    tracing::warn!(
                        %client,
                        max_connections_per_address = limits.max_connections_per_address,
                        held_back,
                        "a client over its connection cap is refused"
                    );
                }
                let permit = self.refusals.clone().try_acquire_owned().ok()?;
                return Some(Slot::Refused(permit, client));
            }
        };
        let open = || Open::new(&self.counts);
        if let Ok(permit) = self.ordinary.clone().try_acquire_owned() {
            return Some(Slot::Ordinary(permit, peer, open()));
        }
        if let Ok(permit) = self.reserve.clone().try_acquire_owned() {
            return Some(Slot::Operations(permit, peer, open()));
        }
        self.counts.refused_full.fetch_add(1, Ordering::Relaxed);
        if let Some(held_back) = self.full_logged.ready() {
            tracing::warn!(
                max_connections = limits.max_connections,
                ops_reserve = limits.ops_reserve,
                held_back,
                "connection closed at once: every slot is taken"
            );
        }
        None
    }
}

/// What a connection holds while it is open.
pub(crate) enum Slot {
    /// One of `max_connections`, and one of its client's: every endpoint.
    Ordinary(
        #[allow(dead_code)] OwnedSemaphorePermit,
        #[allow(dead_code)] PeerSlot,
        #[allow(dead_code)] Open,
    ),
    /// One of the reserve, and one of its client's: operations endpoints
    /// only.
    Operations(
        #[allow(dead_code)] OwnedSemaphorePermit,
        #[allow(dead_code)] PeerSlot,
        #[allow(dead_code)] Open,
    ),
    /// One of the [`REFUSALS`], for a client over its cap: nothing served.
    Refused(#[allow(dead_code)] OwnedSemaphorePermit, Peer),
}

impl Slot {
    pub(crate) fn serving(&self) -> Serving {
        match self {
            Slot::Ordinary(..) => Serving::Everything,
            Slot::Operations(..) => Serving::Operations,
            Slot::Refused(_, client) => Serving::Nothing(*client),
        }
    }
}

/// One connection counted in [`ConnectionCounts::open`] until dropped.
pub(crate) struct Open(Arc<ConnectionCounts>);

impl Open {
    fn new(counts: &Arc<ConnectionCounts>) -> Self {
        counts.open.fetch_add(1, Ordering::Relaxed);
        Self(counts.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which requests a connection serves.
#[derive(Clone, Copy)]
pub(crate) enum Serving {
    Everything,
    /// `/healthz`, `/readyz` and `/metrics`; anything else `503 overloaded`.
    Operations,
    /// Nothing: `429 too_many_connections`, the client being over its cap.
    Nothing(Peer),
}

impl Serving {
    /// The answer to a request for `path` this connection does not serve
    /// (it closes the connection), or `None` to serve it.
    pub(crate) fn refusal(self, path: &str, limits: &ConnectionLimits) -> Option<Response<Body>> {
        let error = match self {
            Serving::Everything => return None,
            Serving::Operations if OPERATIONS.contains(&path) => return None,
            Serving::Operations => ApiError::new(
                ErrorCode::Overloaded,
                format!(
                    "the node has {} connections open, its limit: retry later \
                     (only /healthz, /readyz and /metrics are served on this connection)",
                    limits.max_connections
                ),
            ),
            Serving::Nothing(client) => ApiError::new(
                ErrorCode::TooManyConnections,
                format!(
                    "this client ({client}) already has {} connections open to the node, \
                     its limit (--max-connections-per-address): send requests on those \
                     (keep-alive), or retry once one is closed",
                    limits.max_connections_per_address
                ),
            ),
        };
        let mut refused = error.into_response();
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        Some(refused)
    }
}

/// A warning logged at most once a second, so that a flood of refused
/// connections does not become a flood of log lines.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttled {
    /// Whether to log now, and if so how many were held back since the
    /// last one logged.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}
