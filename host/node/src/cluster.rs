//! The node in a cluster: joins it once the API listens, and carries out
//! the commands and reads the cluster routes to it.

use std::sync::{Arc, Weak};

use anyhow::{Result, bail};

use super::Node;
use super::api::{self, ApiError};
use aether_cluster::{Cluster, ClusterConfig, Reply, Routed, ShardHost, StreamFilter};

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

fn stopped() -> Reply {
    Reply::error(503, "shutting_down", "the node is shutting down")
}

fn reply(result: Result<serde_json::Value, ApiError>) -> Reply {
    match result {
        Ok(body) => Reply { status: 200, body },
        Err(error) => Reply {
            status: error.status.as_u16(),
            body: error.body(),
        },
    }
}

#[async_trait::async_trait]
impl ShardHost for NodeShards {
    async fn run(&self, routed: Routed) -> Reply {
        let Some(node) = self.0.upgrade() else {
            return stopped();
        };
        match routed {
            Routed::Command(command) => reply(api::run_command(&node, command).await),
            Routed::State { stream } => reply(api::read_state(&node, &stream).await),
        }
    }

    fn admit(&self, token: Option<&str>, routed: &Routed) -> Result<(), Reply> {
        let Some(node) = self.0.upgrade() else {
            return Err(stopped());
        };
        let check = || -> Result<(), ApiError> {
            let principal = token
                .and_then(|t| node.tenants().authenticate(t.trim()))
                .ok_or_else(ApiError::unauthorized)?;
            api::may_use(&node, &principal, &routed.stream().namespace)
        };
        check().map_err(|error| reply(Err(error)))
    }

    async fn passivate(&self, matches: StreamFilter) {
        if let Some(node) = self.0.upgrade() {
            let count = node.runtime().passivate_where(matches).await;
            tracing::debug!(count, "passivated the aggregates of moving shards");
        }
    }
}
