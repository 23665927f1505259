//! The coordinator: one task per node that beats, runs for leader,
//! publishes the shard map when leader, and moves this node's shards to
//! match the newest map.
//!
//! Hand-off of a shard from A to B at epoch E:
//!
//! 1. A sees map E: closes the shard's gate (new requests get "not
//!    serving" and are retried by their sender), stops its subscription,
//!    waits for the commands in flight to finish (a snapshot the policy
//!    asks for is written by the command that made it due, so it is done
//!    too), passivates the shard's live aggregates, then acknowledges E
//!    (`ack.<A>` = E). A keeps beating while it waits (up to the route
//!    timeout), so however long its commands take, it stays a member.
//! 2. B sees map E and waits until every live member of E has acknowledged
//!    E (or has died: its heartbeat expired). Then it passivates whatever
//!    it cached of the shard, opens the gate and subscribes.
//!
//! **Invariant:** B serves a shard of epoch E only after every other live
//! node has released everything it does not own at E, so no two live nodes
//! serve one shard. A node believed dead may still be running, cut off
//! from NATS or paused: its ownership deadline (renewed only here, by a
//! confirmed heartbeat, see [`super::gate`]) passed before the servers
//! expired its membership, so it answers nothing; a write it had already
//! begun is fenced by the store's version check.
//!
//! A map whose shard count differs from this node's is refused (logged),
//! never applied: the settings check at join makes it impossible in a
//! cluster whose nodes all run this version.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;

use super::lease::Lease;
use super::membership::{Member, Membership};
use super::placement::ShardMap;
use super::routing::{Router, ShardServer};
use super::{ClusterConfig, ClusterStatus, shard_of};

const MAP_KEY: &str = "map";

/// How often the map and the hand-off barrier are checked.
const TICK: Duration = Duration::from_millis(100);

fn ack_key(node: &str) -> String {
    format!("ack.{node}")
}

pub(crate) struct Coordinator {
    pub(crate) config: ClusterConfig,
    pub(crate) membership: Membership,
    pub(crate) lease: Lease,
    pub(crate) shards: kv::Store,
    pub(crate) router: Arc<Router>,
    pub(crate) status: Arc<Mutex<ClusterStatus>>,
    pub(crate) map: Option<ShardMap>,
    pub(crate) map_revision: u64,
    /// The epoch of the map last read from the bucket (maybe refused).
    pub(crate) bucket_epoch: u64,
    pub(crate) live: BTreeMap<String, Member>,
    pub(crate) servers: HashMap<u32, ShardServer>,
    pub(crate) acked: u64,
    /// When the next heartbeat is due.
    pub(crate) next_beat: Instant,
}

impl Coordinator {
    /// Runs until `stop` says so, then leaves the cluster.
    pub(crate) async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if Instant::now() >= self.next_beat {
                self.beat().await;
            }
            let _ = tokio::time::timeout(self.config.heartbeat, self.follow_map()).await;
            self.reconcile().await;
            self.publish_status();
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => break,
            }
        }
        self.leave().await;
    }

    /// Heartbeat, lease, member list, and (as leader) the shard map. Each
    /// step is bounded by one heartbeat interval, so a slow server (one of
    /// the cluster just died, say) cannot hold up the next heartbeat.
    async fn beat(&mut self) {
        let came_back = self.router.gate.lapsed();
        if came_back {
            self.come_back().await;
        }
        self.send_beat(came_back).await;
    }

    /// A heartbeat due while a hand-off step waits ([`Self::beating_while`]).
    /// If ownership has lapsed already, nothing is sent: coming back (every
    /// shard released, a new incarnation) waits until the step is over.
    async fn beat_while_releasing(&mut self) {
        if self.router.gate.lapsed() {
            self.next_beat = Instant::now() + self.config.heartbeat;
            return;
        }
        self.send_beat(false).await;
    }

    /// The beat itself; `came_back`: this node has just released every
    /// shard and starts a new incarnation, so its ownership is renewed
    /// rather than extended.
    async fn send_beat(&mut self, came_back: bool) {
        let limit = self.config.heartbeat;
        // Measured before the beat is sent: the servers start the entry's
        // TTL later, when they store it.
        let started = Instant::now();
        let until = started + self.config.lease_ttl - self.config.heartbeat;
        match bounded(limit, self.membership.beat()).await {
            Ok(()) if came_back => self.router.gate.renew(until),
            Ok(()) => {
                if !self.router.gate.extend(until) {
                    // Confirmed after the deadline: the entry may have
                    // expired before it was stored. The next beat comes
                    // back as a new incarnation.
                    tracing::warn!("a heartbeat was confirmed only after ownership lapsed");
                }
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed"),
        }
        if tokio::time::timeout(limit, self.lease.tick())
            .await
            .is_err()
        {
            tracing::warn!("the leader lease did not answer in time");
        }
        match bounded(limit, self.membership.live()).await {
            Ok(live) => self.live = live,
            Err(error) => tracing::warn!(%error, "cannot read the member list"),
        }
        if let Some(token) = self.lease.held_token()
            && tokio::time::timeout(limit, self.publish_map(token))
                .await
                .is_err()
        {
            tracing::warn!("publishing the shard map did not finish in time");
        }
        self.next_beat = Instant::now() + self.config.heartbeat;
    }

    /// Before a heartbeat that may renew a lapsed ownership (this node was
    /// paused, cut off from NATS, or has just started): the others may
    /// have taken its shards under a map it has not read yet. So it first
    /// releases whatever it still holds open, and starts a new incarnation:
    /// it serves again only from a map made after it came back, once every
    /// other member has released for that map.
    async fn come_back(&mut self) {
        let serving = self.router.gate.serving();
        if !serving.is_empty() {
            self.release(&serving).await;
            tracing::warn!(
                shards = serving.len(),
                "ownership lapsed: released every shard before beating again"
            );
        }
        let incarnation = self.membership.reincarnate();
        tracing::info!(incarnation, "beating as a new incarnation");
    }

    /// Whether this node's ownership deadline has passed: the others
    /// consider it dead (or soon will), so it serves nothing (the gate
    /// already refuses every pass; this releases the shards too).
    fn isolated(&self) -> bool {
        self.router.gate.lapsed()
    }

    /// Holds `map` as the newest, here and in the router.
    fn adopt(&mut self, map: ShardMap) {
        self.router.learn(&map);
        self.map = Some(map);
    }

    /// As leader: a new map when the live members differ from the map's.
    async fn publish_map(&mut self, token: u64) {
        let members: Vec<String> = self.live.keys().cloned().collect();
        if members.is_empty() || !members.contains(&self.config.node_id) {
            return;
        }
        // The newest map, read back from the bucket (another leader may
        // have written one since this node last looked).
        self.follow_map().await;
        if self.map.as_ref().is_some_and(|m| m.leader_token > token) {
            // A newer leader has published: this node's lease is stale.
            return;
        }
        let incarnations: BTreeMap<String, u64> = self
            .live
            .iter()
            .map(|(id, member)| (id.clone(), member.incarnation))
            .collect();
        if self
            .map
            .as_ref()
            .is_some_and(|m| m.members == members && m.incarnations == incarnations)
        {
            return;
        }
        let epoch = self
            .map
            .as_ref()
            .map_or(0, |m| m.epoch)
            .max(self.bucket_epoch)
            + 1;
        let map = ShardMap::new(
            epoch,
            &self.config.node_id,
            token,
            &members,
            self.config.shards,
        )
        .with_incarnations(incarnations);
        let bytes = serde_json::to_vec(&map).expect("a map encodes");
        let written = if self.map_revision == 0 {
            self.shards
                .create(MAP_KEY, bytes.into())
                .await
                .map_err(|e| e.to_string())
        } else {
            let revision = self.map_revision;
            let update = self.shards.update(MAP_KEY, bytes.into(), revision);
            update.await.map_err(|e| e.to_string())
        };
        match written {
            Ok(revision) => {
                tracing::info!(epoch, ?members, "published the shard map");
                self.map_revision = revision;
                self.bucket_epoch = epoch;
                self.adopt(map);
            }
            // Another leader wrote first: read it on the next tick.
            Err(error) => tracing::warn!(%error, "cannot publish the shard map"),
        }
    }

    /// Reads the newest map; takes it if it supersedes the one held.
    async fn follow_map(&mut self) {
        let entry = match self.shards.entry(MAP_KEY).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry,
            Ok(_) => return,
            Err(error) => {
                tracing::debug!(%error, "cannot read the shard map");
                return;
            }
        };
        let Ok(map) = serde_json::from_slice::<ShardMap>(&entry.value) else {
            tracing::warn!("the shard map in the bucket is unreadable");
            return;
        };
        if map.owners.len() != self.config.shards as usize {
            tracing::error!(
                epoch = map.epoch,
                shards = map.owners.len(),
                ours = self.config.shards,
                "refused a shard map for another number of shards"
            );
            return;
        }
        match &self.map {
            Some(current) if !map.supersedes(current) => {
                if map.epoch > current.epoch {
                    tracing::warn!(
                        epoch = map.epoch,
                        leader = %map.leader,
                        token = map.leader_token,
                        "ignored a shard map from a leader with a stale fencing token"
                    );
                }
            }
            _ => {
                tracing::info!(epoch = map.epoch, leader = %map.leader, "new shard map");
                self.adopt(map);
            }
        }
        // What the next map must replace (compare-and-set), accepted or not.
        self.map_revision = entry.revision;
        self.bucket_epoch = entry_epoch(&entry);
    }

    /// Moves this node's served shards towards what the map gives it.
    async fn reconcile(&mut self) {
        let Some(map) = self.map.clone() else { return };
        let wanted: BTreeSet<u32> = if self.isolated() {
            BTreeSet::new()
        } else {
            map.shards_of_incarnation(&self.config.node_id, self.membership.incarnation())
                .into_iter()
                .collect()
        };
        let serving: BTreeSet<u32> = self.router.gate.serving().into_iter().collect();
        let lost: Vec<u32> = serving.difference(&wanted).copied().collect();
        if !lost.is_empty() {
            self.release(&lost).await;
            tracing::info!(epoch = map.epoch, shards = lost.len(), "released shards");
        }
        if map.epoch > self.acked && !self.isolated() {
            let bytes = map.epoch.to_string().into_bytes();
            let ack = self.shards.put(ack_key(&self.config.node_id), bytes.into());
            match bounded(self.config.heartbeat, async { Ok(ack.await?) }).await {
                Ok(_) => self.acked = map.epoch,
                Err(error) => tracing::warn!(%error, "cannot acknowledge the shard map"),
            }
        }
        let gained: Vec<u32> = wanted.difference(&serving).copied().collect();
        if !gained.is_empty() && self.released_by_others(&map).await {
            self.take(&gained).await;
            tracing::info!(epoch = map.epoch, shards = gained.len(), "took shards");
        }
    }

    /// Whether every other live member of `map` has acknowledged its epoch.
    async fn released_by_others(&self, map: &ShardMap) -> bool {
        for member in &map.members {
            if *member == self.config.node_id || !self.live.contains_key(member) {
                continue;
            }
            let entry = self.shards.entry(ack_key(member));
            let acked = match bounded(self.config.heartbeat, async { Ok(entry.await?) }).await {
                Ok(Some(entry)) => String::from_utf8_lossy(&entry.value).parse().unwrap_or(0),
                Ok(None) => 0,
                Err(_) => return false,
            };
            if acked < map.epoch {
                return false;
            }
        }
        true
    }

    /// Closes `shards` and returns once nothing of them runs here any more
    /// (their subscriptions answered, the commands in flight finished, the
    /// live aggregates passivated), beating meanwhile.
    async fn release(&mut self, shards: &[u32]) {
        self.router.gate.close(shards);
        let stopping: Vec<ShardServer> = shards
            .iter()
            .filter_map(|s| self.servers.remove(s))
            .collect();
        let (router, shards, count) = (self.router.clone(), shards.to_vec(), self.config.shards);
        self.beating_while(async move {
            futures_util::future::join_all(stopping.into_iter().map(ShardServer::stop)).await;
            router.gate.drained(&shards).await;
            passivate(&router, &shards, count).await;
        })
        .await;
    }

    /// Awaits `step` of a hand-off while still beating on schedule. Such a
    /// step can outlast the ownership window: the commands in flight may
    /// be finishing against a store that is slow just then (a NATS server
    /// has died, say). A node that stopped beating meanwhile would lose its
    /// membership, come back as a new incarnation and move every shard
    /// again, each member in turn. Beating on keeps this node the owner of
    /// what it is still releasing; no other node takes those shards before
    /// this one has acknowledged the map (the barrier in the module doc),
    /// so two nodes still never serve one shard.
    ///
    /// For at most the route timeout, though: a command still in flight
    /// after that has no sender waiting for its answer (each has been told
    /// the outcome is unknown). Then this node stops beating, its ownership
    /// lapses, and the others take the shards once its membership expires,
    /// as for a node that died (a write it still makes is fenced by the
    /// store's version check).
    async fn beating_while<T>(&mut self, step: impl std::future::Future<Output = T>) -> T {
        let mut step = std::pin::pin!(step);
        let beat_until = Instant::now() + self.config.route_timeout;
        loop {
            let due = tokio::time::Instant::from_std(self.next_beat);
            tokio::select! {
                done = &mut step => return done,
                _ = tokio::time::sleep_until(due) => {
                    if Instant::now() < beat_until {
                        self.beat_while_releasing().await;
                    } else {
                        tracing::warn!("a hand-off outlasted the route timeout: no longer beating until it ends");
                        break;
                    }
                }
            }
        }
        step.await
    }

    async fn take(&mut self, shards: &[u32]) {
        self.passivate(shards).await;
        self.router.gate.open(shards);
        let router = &self.router;
        let subscribed = futures_util::future::join_all(
            shards
                .iter()
                .map(|&s| async move { (s, router.serve(s).await) }),
        )
        .await;
        for (shard, server) in subscribed {
            match server {
                Ok(server) => {
                    self.servers.insert(shard, server);
                }
                Err(error) => {
                    // Not reachable over NATS: closed here, so it is taken
                    // again on the next tick.
                    tracing::warn!(shard, %error, "cannot subscribe to the shard");
                    self.router.gate.close(&[shard]);
                }
            }
        }
    }

    async fn passivate(&self, shards: &[u32]) {
        passivate(&self.router, shards, self.config.shards).await;
    }

    fn publish_status(&self) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.leader = self.lease.leader().map(str::to_owned);
        status.is_leader = self.lease.held_token().is_some();
        status.leader_changes = self.lease.changes();
        status.members = self.live.values().cloned().collect();
        status.map = self.map.clone();
        status.serving = self.router.gate.serving().len();
        status.isolated = self.isolated();
    }

    /// Shutdown: release every shard, leave the member list and resign.
    async fn leave(&mut self) {
        let all = self.router.gate.serving();
        self.release(&all).await;
        self.membership.leave().await;
        self.lease.resign().await;
        self.publish_status();
        tracing::info!(node = %self.config.node_id, "left the cluster");
    }
}

/// Passivates the live aggregates of `shards` (of `count`) on this node.
async fn passivate(router: &Router, shards: &[u32], count: u32) {
    let set: BTreeSet<u32> = shards.iter().copied().collect();
    router
        .host
        .passivate(Arc::new(move |stream| {
            set.contains(&shard_of(stream, count))
        }))
        .await;
}

/// `work`, or an error once `limit` has passed.
async fn bounded<T>(
    limit: Duration,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {limit:?}"))?
}

fn entry_epoch(entry: &kv::Entry) -> u64 {
    serde_json::from_slice::<ShardMap>(&entry.value).map_or(0, |m| m.epoch)
}
