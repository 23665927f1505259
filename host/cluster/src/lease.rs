//! Leader election by a lease in a NATS KV bucket.
//!
//! The bucket keeps one key, `leader`, and expires entries after the
//! lease TTL (`max_age`). A node becomes leader by *creating* the key
//! (which succeeds only when it is absent or expired) and stays leader by
//! *updating* it with the revision it last wrote, every renew interval. An
//! update fails if anyone else wrote in between (or the entry expired and
//! was taken): the node has lost the lease and must stop acting as leader.
//!
//! **Invariant:** the revision at which a node took the lease is its
//! fencing token. Revisions only grow, so a later leader always has a
//! higher token, and what a leader publishes carries its token.

use async_nats::jetstream::kv;
use bytes::Bytes;

const KEY: &str = "leader";

/// This node's view of the lease.
pub(crate) struct Lease {
    bucket: kv::Store,
    node_id: String,
    /// The revision this node last wrote, while it holds the lease.
    held: Option<u64>,
    /// The revision at which this node took the lease (its fencing token).
    token: u64,
    /// The leader as last seen.
    leader: Option<String>,
    /// How many times the leader seen here changed.
    changes: u64,
}

impl Lease {
    pub(crate) fn new(bucket: kv::Store, node_id: &str) -> Self {
        Self {
            bucket,
            node_id: node_id.to_owned(),
            held: None,
            token: 0,
            leader: None,
            changes: 0,
        }
    }

    /// Renews the lease if held, else takes it if it is free; updates who
    /// the leader is.
    pub(crate) async fn tick(&mut self) {
        let me = Bytes::from(self.node_id.clone());
        if let Some(revision) = self.held {
            match self.bucket.update(KEY, me, revision).await {
                Ok(revision) => self.held = Some(revision),
                Err(error) => {
                    tracing::warn!(node = %self.node_id, %error, "lost the leader lease");
                    self.held = None;
                    self.see(None);
                }
            }
            return;
        }
        match self.bucket.entry(KEY).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                self.see(Some(String::from_utf8_lossy(&entry.value).into_owned()));
            }
            Ok(_) => match self.bucket.create(KEY, me).await {
                Ok(revision) => {
                    self.held = Some(revision);
                    self.token = revision;
                    tracing::info!(node = %self.node_id, token = revision, "elected leader");
                    self.see(Some(self.node_id.clone()));
                }
                // Someone else was quicker: seen on the next tick.
                Err(error) => tracing::debug!(%error, "the leader lease was taken"),
            },
            Err(error) => tracing::warn!(%error, "cannot read the leader lease"),
        }
    }

    fn see(&mut self, leader: Option<String>) {
        if leader != self.leader {
            self.changes += 1;
            tracing::info!(
                node = %self.node_id,
                leader = leader.as_deref().unwrap_or("none"),
                "leader changed"
            );
        }
        self.leader = leader;
    }

    /// This node's fencing token while it holds the lease.
    pub(crate) fn held_token(&self) -> Option<u64> {
        self.held.map(|_| self.token)
    }

    /// The leader as last seen.
    pub(crate) fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// How many times the leader seen here changed.
    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    /// Gives the lease up (on shutdown), so another node need not wait for
    /// it to expire.
    pub(crate) async fn resign(&mut self) {
        if let Some(revision) = self.held.take() {
            let _ = self
                .bucket
                .delete_expect_revision(KEY, Some(revision))
                .await;
        }
    }
}
