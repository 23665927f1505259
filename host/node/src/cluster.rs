//! The node in a cluster: joins it once the API listens, and carries out
//! the commands and reads the cluster routes to it.

use std::sync::{Arc, Weak};

use anyhow::{Result, bail};

use super::Node;
use aether_cluster::{Cluster, ClusterConfig, Reply, Routed, ShardHost, StreamFilter};
use aether_service::{Answered, ServiceError};

impl Node {
    /// Joins the cluster `config` describes; from then on commands and
    /// state reads go to the owner of their aggregate's shard.
    pub async fn join_cluster(self: &Arc<Self>, config: ClusterConfig) -> Result<()> {
        let host = Arc::new(NodeShards(Arc::downgrade(self)));
        let cluster = Cluster::join(config, host).await?;
        if self.cluster.set(cluster).is_err() {
            bail!("the node is already in a cluster");
        }
        Ok(())
    }
}

/// What the cluster runs on this node. Holds the node weakly: the node
/// owns the cluster.
struct NodeShards(Weak<Node>);

fn stopped() -> ServiceError {
    ServiceError::shutting_down("the node is shutting down")
}

#[async_trait::async_trait]
impl ShardHost for NodeShards {
    async fn run(&self, routed: Routed) -> Reply {
        let Some(node) = self.0.upgrade() else {
            return Err(stopped());
        };
        match routed {
            Routed::Command(command) => node.run_command(command).await.map(Answered::Command),
            Routed::State { stream } => node.read_state(&stream).await.map(Answered::State),
        }
    }

    fn admit(&self, token: Option<&str>, routed: &Routed) -> Result<(), ServiceError> {
        let node = self.0.upgrade().ok_or_else(stopped)?;
        let token = token.ok_or_else(ServiceError::unauthorized)?;
        let principal = node.authenticate(token.trim())?;
        node.may_use(&principal, &routed.stream().namespace)
    }

    async fn passivate(&self, matches: StreamFilter) {
        if let Some(node) = self.0.upgrade() {
            let count = node.runtime().passivate_where(matches).await;
            tracing::debug!(count, "passivated the aggregates of moving shards");
        }
    }
}
