//! Membership: nodes announce themselves by heartbeats in a NATS KV bucket.
//!
//! Each node puts its [`Member`] record under its node id every heartbeat
//! interval; the bucket expires entries after the member TTL (`max_age`),
//! so a node that stops beating drops out of the list by itself, judged by
//! the NATS servers' clocks, not the nodes'.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

/// What a node announces about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id (`--node-id`).
    pub node_id: String,
    /// Where its HTTP API listens.
    pub api: String,
    /// When it started (ms since the Unix epoch).
    pub started_ms: u64,
    /// Which run of this node: grows each time its ownership lapsed and it
    /// came back (starts at `started_ms`). A shard map names the
    /// incarnation it was made for; a node takes shards only from a map
    /// made for its current one.
    #[serde(default)]
    pub incarnation: u64,
}

/// The heartbeat bucket.
pub(crate) struct Membership {
    bucket: kv::Store,
    me: Member,
}

impl Membership {
    pub(crate) fn new(bucket: kv::Store, me: Member) -> Self {
        Self { bucket, me }
    }

    /// This node's current incarnation.
    pub(crate) fn incarnation(&self) -> u64 {
        self.me.incarnation
    }

    /// Starts a new incarnation (this node's ownership lapsed: the others
    /// may have taken its shards under a map it has not seen).
    pub(crate) fn reincarnate(&mut self) -> u64 {
        self.me.incarnation += 1;
        self.me.incarnation
    }

    /// Announces this node once more.
    pub(crate) async fn beat(&self) -> anyhow::Result<()> {
        let record = serde_json::to_vec(&self.me)?;
        self.bucket.put(&self.me.node_id, record.into()).await?;
        Ok(())
    }

    /// The members whose heartbeat has not expired, by node id. Lists the
    /// keys from the bucket's stream info (no consumer: creating one can
    /// stall for seconds while a server of the cluster is down).
    pub(crate) async fn live(&self) -> anyhow::Result<BTreeMap<String, Member>> {
        let prefix = self.bucket.prefix.clone();
        let subjects: Vec<(String, usize)> = self
            .bucket
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await?
            .try_collect()
            .await?;
        let mut members = BTreeMap::new();
        for (subject, _) in subjects {
            let Some(key) = subject.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(entry) = self.bucket.entry(key).await?
                && entry.operation == kv::Operation::Put
                && let Ok(member) = serde_json::from_slice::<Member>(&entry.value)
            {
                members.insert(key.to_owned(), member);
            }
        }
        Ok(members)
    }

    /// Leaves the list at once (on shutdown) instead of expiring.
    pub(crate) async fn leave(&self) {
        let _ = self.bucket.purge(&self.me.node_id).await;
    }
}
