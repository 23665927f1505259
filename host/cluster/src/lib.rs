//! Cluster Coordination: which node serves which aggregates.
//!
//! Aggregates are grouped into a fixed number of shards by a stable hash of
//! (namespace, aggregate type, aggregate id); shards are what a cluster
//! places on nodes, moves, and hands off. The hash must never change: two
//! nodes (or two versions of Aether) must agree on every aggregate's shard.
//!
//! Everything else is consensus NATS already provides, in four KV buckets
//! (names from `namespace::layout::cluster_bucket`):
//!
//! ```text
//! <P>_CLUSTER_SETTINGS "settings" → ClusterSettings  fixed when the cluster is created
//! <P>_CLUSTER_MEMBERS  node id → Member          heartbeats, expire after the lease TTL
//! <P>_CLUSTER_LEADER   "leader" → node id        the lease: create to take, update to renew
//! <P>_CLUSTER_SHARDS   "map" → ShardMap          the leader's assignment, with its epoch
//!                      "ack.<node>" → epoch      the newest map a node has released for
//! ```
//!
//! - [`settings`]: the settings every node must share; buckets are
//!   created with them, never re-configured.
//! - [`membership`]: heartbeats and the live member list.
//! - `lease`: leader election; the lease revision is the fencing token.
//! - [`placement`]: rendezvous hashing of shards onto members.
//! - `coordinator`: the per-node loop, and the hand-off protocol.
//! - [`gate`]: the shards served here, the ownership deadline, and their
//!   in-flight work.
//! - [`routing`]: forwarding commands and reads to a shard's owner.
//! - `health`: supervision of the background tasks.
//!
//! # Ownership
//!
//! A node answers for a shard only while (1) the newest map it holds gives
//! it the shard and every other live member has acknowledged that map, and
//! (2) its ownership deadline has not passed: `owned_until`, on the
//! monotonic clock, renewed only by a confirmed heartbeat to
//! `beat_started_at + lease_ttl - heartbeat`. The servers expire a
//! membership entry `lease_ttl` after they stored it, which is after the
//! beat was sent, so a node stops answering at least one heartbeat before
//! any other node can see it gone and take its shards, whether it was cut
//! off from NATS, paused by the OS, or stalled in its own coordinator. The
//! deadline is checked when work starts and again before its answer
//! leaves; the only answer that leaves after the deadline is a command
//! that stored events, which the store's version check fenced.

mod coordinator;
pub mod gate;
mod health;
mod lease;
pub mod membership;
pub mod placement;
pub mod routing;
pub mod settings;
mod spill;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use futures_util::StreamExt;
use serde::Serialize;

use aether_core::namespace::layout::cluster_submit_subject;
pub use membership::Member;
pub use placement::ShardMap;
pub use routing::{Reply, Routed, ShardHost, StreamFilter};
pub use settings::ClusterSettings;

use aether_store::StreamId;

/// The default number of shards.
pub const DEFAULT_SHARDS: u32 = 256;

/// The shard an aggregate belongs to, out of `shards` (at least 1).
///
/// Stable across processes, platforms and releases: the first 8 bytes of
/// the blake3 hash of `namespace/aggregate-type/aggregate-id`, little
/// endian, modulo `shards`.
pub fn shard_of(stream: &StreamId, shards: u32) -> u32 {
    let key = format!(
        "{}/{}/{}",
        stream.namespace, stream.aggregate_type, stream.aggregate_id
    );
    let hash = blake3::hash(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(shards.max(1))) as u32
}

/// How a node takes part in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's id: unique in the cluster, stable across restarts
    /// (letters, digits, `-` and `_`).
    pub node_id: String,
    /// The NATS servers (the same cluster the event store uses).
    pub urls: Vec<String>,
    /// The first part of every NATS name the cluster uses.
    pub prefix: String,
    /// Replicas of the cluster's KV buckets (3 in production); a cluster
    /// setting ([`ClusterSettings`]).
    pub replicas: usize,
    /// Number of shards; a cluster setting.
    pub shards: u32,
    /// How often a node beats and the leader renews its lease; a cluster
    /// setting.
    pub heartbeat: Duration,
    /// How long a silent node stays a member, and a silent leader leader;
    /// a cluster setting.
    pub lease_ttl: Duration,
    /// How long a node waits for a shard's owner before answering 503.
    pub route_timeout: Duration,
    /// Where this node's HTTP API listens (announced to the others).
    pub api: String,
}

impl ClusterConfig {
    /// Defaults: 256 shards, a 1 s heartbeat, a 5 s lease, a 10 s route
    /// timeout, one replica.
    pub fn new(node_id: impl Into<String>, urls: Vec<String>) -> Self {
        Self {
            node_id: node_id.into(),
            urls,
            prefix: "aether".into(),
            replicas: 1,
            shards: DEFAULT_SHARDS,
            heartbeat: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(5),
            route_timeout: Duration::from_secs(10),
            api: String::new(),
        }
    }

    /// Refuses settings that cannot work, naming the problem.
    pub fn check(&self) -> Result<()> {
        let id = &self.node_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("invalid node id `{id}`: use 1 to 64 letters, digits, `-` or `_`");
        }
        if self.shards == 0 || self.shards > 65_536 {
            bail!("the number of shards must be between 1 and 65536");
        }
        if self.heartbeat.is_zero() || self.lease_ttl < self.heartbeat * 3 {
            bail!(
                "the lease TTL ({:?}) must be at least three heartbeats ({:?}): a node must be able to miss one",
                self.lease_ttl,
                self.heartbeat
            );
        }
        Ok(())
    }
}

/// What a node knows about the cluster (`GET /v1/cluster`, `aether
/// cluster status`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: String,
    /// The leader as this node last saw it.
    pub leader: Option<String>,
    /// Whether this node holds the lease.
    pub is_leader: bool,
    /// How many times the leader seen by this node changed.
    pub leader_changes: u64,
    /// The live members.
    pub members: Vec<Member>,
    /// The newest shard map this node has.
    #[serde(skip)]
    pub map: Option<ShardMap>,
    /// How many shards this node serves now.
    pub serving: usize,
    /// Whether this node's ownership deadline has passed (it serves
    /// nothing).
    pub isolated: bool,
    /// Why this node stopped for good (a background task panicked).
    pub failed: Option<String>,
}

impl ClusterStatus {
    /// The status as JSON, with the epoch, shards per node and the owner
    /// of every shard.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("the status encodes");
        value["epoch"] = self.map.as_ref().map_or(0, |m| m.epoch).into();
        value["shards"] = self
            .map
            .as_ref()
            .map(|m| m.owners.len())
            .unwrap_or(0)
            .into();
        value["owners"] =
            serde_json::to_value(self.map.as_ref().map(|m| &m.owners)).expect("owners encode");
        value["shards_per_node"] =
            serde_json::to_value(self.map.as_ref().map(ShardMap::counts).unwrap_or_default())
                .expect("counts encode");
        value
    }
}

/// A node's membership in a cluster: the coordinator task, the router,
/// and the NATS entry point for commands.
pub struct Cluster {
    config: ClusterConfig,
    router: Arc<routing::Router>,
    status: Arc<Mutex<ClusterStatus>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    health: Arc<health::Health>,
}

impl Cluster {
    /// Joins the cluster: agrees on the cluster's settings (refusing, with
    /// every disagreeing setting named, if this node's differ), opens the
    /// buckets (created if missing), starts beating, running for leader and
    /// following the shard map. Commands are routed through `host`.
    pub async fn join(config: ClusterConfig, host: Arc<dyn ShardHost>) -> Result<Arc<Cluster>> {
        config.check()?;
        let addresses = config
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .context("an invalid NATS server address")?;
        let client = async_nats::connect(addresses)
            .await
            .with_context(|| format!("connecting to NATS at {}", config.urls.join(", ")))?;
        let context = jetstream::new(client.clone());
        settings::agree(&context, &config).await?;
        let open = |what, max_age| settings::open_or_create(&context, &config, what, max_age);
        let members = open("MEMBERS", config.lease_ttl).await?;
        let leader = open("LEADER", config.lease_ttl).await?;
        let shards = open("SHARDS", Duration::ZERO).await?;
        let spill = spill::Spill::open(&client, &context, &config).await?;
        let gate = gate::ShardGate::new(config.shards);
        let health = health::Health::new(gate.clone());
        let router = Arc::new(routing::Router {
            node_id: config.node_id.clone(),
            client: client.clone(),
            prefix: config.prefix.clone(),
            shards: config.shards,
            gate,
            host,
            timeout: config.route_timeout,
            attempt_timeout: config.lease_ttl,
            map: Mutex::new(None),
            health: health.clone(),
            spill,
        });
        let status = Arc::new(Mutex::new(ClusterStatus {
            node_id: config.node_id.clone(),
            ..ClusterStatus::default()
        }));
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let me = Member {
            node_id: config.node_id.clone(),
            api: config.api.clone(),
            started_ms,
            incarnation: started_ms,
        };
        let coordinator = coordinator::Coordinator {
            membership: membership::Membership::new(members, me),
            lease: lease::Lease::new(leader, &config.node_id),
            shards,
            router: router.clone(),
            status: status.clone(),
            map: None,
            map_revision: 0,
            bucket_epoch: 0,
            live: Default::default(),
            servers: Default::default(),
            acked: 0,
            next_beat: std::time::Instant::now(),
            config: config.clone(),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let submit = client
            .queue_subscribe(
                cluster_submit_subject(&config.prefix),
                "aether-nodes".into(),
            )
            .await
            .context("subscribing to the cluster's submit subject")?;
        let tasks = vec![
            health.spawn("the coordinator", coordinator.run(stopped)),
            health.spawn(
                "the submit server",
                serve_submissions(submit, router.clone()),
            ),
        ];
        tracing::info!(node = %config.node_id, shards = config.shards, "joined the cluster");
        Ok(Arc::new(Cluster {
            config,
            router,
            status,
            stop,
            tasks: Mutex::new(tasks),
            health,
        }))
    }

    /// Why this node stopped serving for good (a background task
    /// panicked), if it did.
    pub fn failed(&self) -> Option<String> {
        self.health.failure()
    }

    /// Returns once a background task has failed, with why.
    pub async fn failure(&self) -> String {
        self.health.failed().await
    }

    /// Has `routed` carried out by its shard's owner (maybe this node).
    pub async fn route(&self, routed: Routed) -> Reply {
        self.router.route(routed).await
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> ClusterStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        status.failed = self.failed();
        status
    }

    /// The cluster settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Hands every shard off (finishing what is in flight), leaves the
    /// member list and gives up the lease.
    pub async fn leave(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut tasks = tasks.into_iter();
        if let Some(coordinator) = tasks.next() {
            let _ = coordinator.await;
        }
        for task in tasks {
            task.abort();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            task.abort();
        }
    }
}

/// Commands sent by NATS clients to the submit subject: routed like
/// commands from HTTP; the reply is the status and body the HTTP API would
/// answer (`aether_service::Envelope`, `{"status": …, "body": …}`), spilled
/// like an owner's answer when too large for one message.
async fn serve_submissions(mut submit: async_nats::Subscriber, router: Arc<routing::Router>) {
    while let Some(message) = submit.next().await {
        let router = router.clone();
        tokio::spawn(async move {
            let Some(reply_to) = message.reply.clone() else {
                return;
            };
            let reply = router.submitted(&message).await;
            let envelope = aether_service::Envelope::from(&reply);
            let bytes = serde_json::to_vec(&envelope).expect("a reply encodes");
            router.send_answer(reply_to, bytes.into()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_core::namespace::{AggregateId, AggregateType, Namespace};

    fn stream(ns: &str, id: &str) -> StreamId {
        StreamId::new(
            Namespace::new(ns).unwrap(),
            AggregateType::new("account").unwrap(),
            AggregateId::new(id).unwrap(),
        )
    }

    #[test]
    fn shard_is_stable() {
        // Pinned: changing the hash would move every aggregate.
        let s = stream("bank", "acc-1");
        let expected = {
            let h = blake3::hash(b"bank/account/acc-1");
            u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 256
        };
        assert_eq!(u64::from(shard_of(&s, 256)), expected);
        assert_eq!(shard_of(&s, 256), shard_of(&s.clone(), 256));
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = vec![0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&stream("ns", &format!("id-{i}")), 16) as usize] += 1;
        }
        // Each of 16 shards should get about 1 000; allow ±20%.
        assert!(
            counts.iter().all(|&c| (800..=1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn namespace_is_part_of_the_key() {
        let differ = (0..64).any(|i| {
            let id = format!("id-{i}");
            shard_of(&stream("a", &id), 256) != shard_of(&stream("b", &id), 256)
        });
        assert!(differ);
    }
}
