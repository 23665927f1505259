//! The node in a cluster: joins it once the API listens, and carries out
//! the commands and reads the cluster routes to it.

use std::sync::{Arc, Weak};

use anyhow::{Result, bail};

use super::Node;
use aether_cluster::{Cluster, ClusterConfig, Reply, Routed, ShardHost, StreamFilter};
use aether_core::namespace::Namespace;
use aether_service::{Answered, ServiceError};

impl Node {
    /// Joins the cluster `config` describes; from then on commands and
    /// state reads go to the owner of their aggregate's shard.
    ///
    /// **Invariant:** a node takes no shards it cannot serve: while an
    /// active component of some namespace is neither here nor in the
    /// shared bucket, it does not join, and looks again every
    /// `MISSING_RETRY` (another node that has the component puts it in
    /// the bucket when it starts; deploying it again through any node does
    /// too).
    pub async fn join_cluster(self: &Arc<Self>, config: ClusterConfig) -> Result<()> {
        self.wait_for_missing_components().await;
        let host = Arc::new(NodeShards(Arc::downgrade(self)));
        let cluster = Cluster::join(config, host).await?;
        if self.cluster.set(cluster).is_err() {
            bail!("the node is already in a cluster");
        }
        Ok(())
    }
}

/// How often a node that lacks an active component looks for it again
/// before it joins.
const MISSING_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

impl Node {
    /// Returns once every namespace's active components are here (see
    /// [`Node::join_cluster`]), logging what is missing while it waits.
    async fn wait_for_missing_components(&self) {
        loop {
            let missing = std::mem::take(
                &mut *self
                    .missing_components
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            if missing.is_empty() {
                return;
            }
            tracing::error!(
                missing = %missing.iter().map(|(_, what)| what.as_str()).collect::<Vec<_>>().join(", "),
                "not joining the cluster yet: this node cannot serve these types, whose active components are neither in its directory nor in the shared bucket; deploy them again through any node (or start a node that has them)"
            );
            tokio::time::sleep(MISSING_RETRY).await;
            let mut still = Vec::new();
            for (namespace, what) in missing {
                if still
                    .iter()
                    .any(|(ns, _): &(Namespace, String)| *ns == namespace)
                {
                    still.push((namespace, what));
                    continue;
                }
                // Fetches and switches to whatever the registry makes
                // active now (it may have changed since).
                if let Err(error) = self.follow_registry(&namespace).await {
                    tracing::debug!(%namespace, error = %format!("{error:#}"), "still missing");
                    still.push((namespace, what));
                }
            }
            *self
                .missing_components
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = still;
        }
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
