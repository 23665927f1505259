//! The cluster's settings: fixed when the cluster is created, the same for
//! every node.
//!
//! The shard count, the replicas of the cluster's KV buckets, the lease
//! TTL and the heartbeat interval are the cluster's, not a node's: a node
//! with another shard count would route aggregates to the wrong shards,
//! and a node that re-configured the buckets would change replication or
//! expiry for everyone. So the first node stores them in
//! `<P>_CLUSTER_SETTINGS` (created, never updated, under the key
//! `settings`, written with `create`: of two racing creators one wins and
//! the other reads the winner's value), and every node that joins compares
//! its own and refuses to start if any differs.
//!
//! **Invariant:** a joining node never re-configures an existing bucket:
//! buckets are opened as they are and only created (with the cluster's
//! settings) when missing.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};

use super::ClusterConfig;
use aether_core::namespace::layout::cluster_bucket;

const KEY: &str = "settings";

/// What every node of a cluster must agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Number of shards (`--shards`).
    pub shards: u32,
    /// Replicas of the cluster's KV buckets (`--nats-replicas`).
    pub replicas: usize,
    /// Membership and leader lease TTL in ms (`--lease-ttl-ms`).
    pub lease_ttl_ms: u64,
    /// Heartbeat interval in ms (`--heartbeat-ms`).
    pub heartbeat_ms: u64,
}

impl ClusterSettings {
    /// The settings `config` asks for.
    pub fn of(config: &ClusterConfig) -> Self {
        Self {
            shards: config.shards,
            replicas: config.replicas,
            lease_ttl_ms: config.lease_ttl.as_millis() as u64,
            heartbeat_ms: config.heartbeat.as_millis() as u64,
        }
    }

    /// Every setting where `node` differs from the cluster's (`self`),
    /// as "`--flag`: the cluster has X, this node Y".
    pub fn disagreements(&self, node: &ClusterSettings) -> Vec<String> {
        let mut differ = Vec::new();
        let mut compare = |flag: &str, cluster: String, mine: String| {
            if cluster != mine {
                differ.push(format!(
                    "{flag}: the cluster has {cluster}, this node {mine}"
                ));
            }
        };
        compare("--shards", self.shards.to_string(), node.shards.to_string());
        compare(
            "--nats-replicas",
            self.replicas.to_string(),
            node.replicas.to_string(),
        );
        compare(
            "--lease-ttl-ms",
            self.lease_ttl_ms.to_string(),
            node.lease_ttl_ms.to_string(),
        );
        compare(
            "--heartbeat-ms",
            self.heartbeat_ms.to_string(),
            node.heartbeat_ms.to_string(),
        );
        differ
    }

    /// Refuses `node` unless it agrees with the cluster on everything.
    pub fn admit(&self, node: &ClusterSettings) -> Result<()> {
        let differ = self.disagreements(node);
        if !differ.is_empty() {
            bail!(
                "this node's cluster settings differ from the cluster's ({}); start it with the cluster's settings",
                differ.join("; ")
            );
        }
        Ok(())
    }
}

/// The cluster's settings: stored from `config` if this node creates the
/// cluster, else read; an error if `config` disagrees with them.
pub(crate) async fn agree(
    context: &jetstream::Context,
    config: &ClusterConfig,
) -> Result<ClusterSettings> {
    let mine = ClusterSettings::of(config);
    let bucket = open_or_create(context, config, "SETTINGS", Duration::ZERO).await?;
    let bytes = serde_json::to_vec(&mine)?;
    let what = format!("storing the cluster settings in {}", bucket.name);
    let created = aether_store::retrying(&what, || async {
        match bucket.create(KEY, bytes.clone().into()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await?;
    if created {
        tracing::info!(?mine, "created the cluster's settings");
        return Ok(mine);
    }
    let what = format!("reading the cluster settings from {}", bucket.name);
    let stored = aether_store::retrying(&what, || bucket.get(KEY)).await?;
    let cluster: ClusterSettings = stored
        .as_deref()
        .map(serde_json::from_slice)
        .transpose()
        .with_context(|| format!("the cluster settings in {} are unreadable", bucket.name))?
        .with_context(|| format!("the cluster settings in {} were deleted", bucket.name))?;
    cluster.admit(&mine)?;
    Ok(cluster)
}

/// The bucket `<P>_CLUSTER_<what>` as it is, or created with the
/// cluster's replicas and `max_age` if missing (a racing creator's bucket
/// is opened). Never re-configured.
pub(crate) async fn open_or_create(
    context: &jetstream::Context,
    config: &ClusterConfig,
    what: &str,
    max_age: Duration,
) -> Result<kv::Store> {
    let name = cluster_bucket(&config.prefix, what);
    let bucket = kv::Config {
        bucket: name.clone(),
        history: 1,
        max_age,
        num_replicas: config.replicas,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let setup = format!("opening or creating the bucket {name}");
    Ok(aether_store::retrying(&setup, || async {
        if exists(context, &format!("KV_{name}")).await? {
            return Ok::<_, anyhow::Error>(context.get_key_value(&name).await?);
        }
        // If another node created it meanwhile with other settings, this
        // fails, and the next round opens it.
        Ok(context.create_key_value(bucket.clone()).await?)
    })
    .await?)
}

/// Whether the JetStream stream `stream` (a bucket's, e.g. `KV_<bucket>`)
/// exists.
pub(crate) async fn exists(context: &jetstream::Context, stream: &str) -> Result<bool> {
    use async_nats::jetstream::{ErrorCode, context::GetStreamErrorKind};
    match context.get_stream(stream).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_disagreeing_setting_is_named_with_both_values() {
        let cluster = ClusterSettings {
            shards: 256,
            replicas: 3,
            lease_ttl_ms: 5000,
            heartbeat_ms: 1000,
        };
        assert!(cluster.admit(&cluster.clone()).is_ok());
        let node = ClusterSettings {
            shards: 128,
            replicas: 1,
            lease_ttl_ms: 60_000,
            heartbeat_ms: 1000,
        };
        let error = cluster.admit(&node).unwrap_err().to_string();
        assert!(
            error.contains("--shards: the cluster has 256, this node 128"),
            "{error}"
        );
        assert!(error.contains("--nats-replicas: the cluster has 3, this node 1"));
        assert!(error.contains("--lease-ttl-ms: the cluster has 5000, this node 60000"));
        assert!(!error.contains("--heartbeat-ms"), "{error}");
    }
}
