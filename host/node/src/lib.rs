//! The node: one long-running process (`aether serve`) that hosts several
//! tenants and serves them over an HTTP JSON API, on the embedded store in
//! its data directory or, with `--nats`, on the JetStream store.
//!
//! ```text
//! HTTP request ─▶ api (axum router: auth, body checks, error codes)
//!                  ├─ tenants: namespaces, token hashes, limits (node.json)
//!                  ├─ registry: components by digest, activation history (events)
//!                  ├─ runtime: deploy, execute, state (per-namespace lanes and limits)
//!                  ├─ store:   events (EmbeddedStore in the data directory, or JetStream)
//!                  ├─ bus:     every stored event, to live streams and NATS
//!                  └─ metrics: per-namespace counters and latency histograms
//! ```
//!
//! Data directory layout: `events.redb`, `events.journal` and `events.head` (the embedded event store),
//! `compiled/` (compile cache), `node.json` (tenants) and
//! `components/<namespace>/<digest>.wasm` (deployed components; which one
//! is active is recorded as events, see [`registry`]).
//!
//! **Invariant:** every request that touches a namespace is authorised for
//! that namespace before anything else reads or writes it ([`api`]).

pub mod access;
mod admission;
pub mod api;
mod cluster;
mod components;
mod connections;
mod kv_watch;
mod limits;
mod linger;
pub mod metrics;
mod peers;
pub mod registry;
mod serve;
pub mod service;
mod slots;
mod tenants;
mod upload_pacing;
pub mod verify;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

pub use access::{Principal, Token, TokenHash};
pub use connections::{BodyTooSlow, ConnectionLimits};
pub use limits::{EffectiveLimits, LimitOverrides};
pub use serve::serve;
pub use tenants::{TenantError, Tenants};

use aether_bus::LocalBus;
use aether_core::namespace::Namespace;
use aether_runtime::{Runtime, RuntimeConfig, SandboxLimits};
use aether_store::{EmbeddedStore, EventStore, JetStreamConfig, JetStreamStore};
use metrics::Metrics;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The data directory: events, tenants, components, compile cache.
    pub data_dir: PathBuf,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The admin token; `None` keeps the stored one, or generates one on a
    /// new node (printed once).
    pub admin_token: Option<String>,
    /// The runtime's configuration; its `limits` are every namespace's
    /// defaults.
    pub runtime: RuntimeConfig,
    /// Watch mode: deploy `<dir>/<namespace>/<aggregate-type>.wasm` files
    /// on start and whenever they change (see `watch.rs`); `None` is off.
    pub watch: Option<PathBuf>,
    /// Keep events in NATS JetStream instead of the embedded store in the
    /// data directory (which then holds only tenants, components and the
    /// compile cache). `None`: the embedded store.
    pub nats: Option<JetStreamConfig>,
    /// Take part in a cluster over NATS (needs `nats`): commands are
    /// routed to the node that owns the aggregate's shard. `None`: alone.
    pub cluster: Option<aether_cluster::ClusterConfig>,
    /// Timeouts and caps on the API's connections (`connections.rs`).
    pub connections: ConnectionLimits,
}

impl NodeConfig {
    /// A node on `data_dir`, listening on `listen`, with default limits
    /// and fuel metering on (so namespaces may be given fuel limits).
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        let data_dir = data_dir.into();
        Self {
            runtime: RuntimeConfig {
                compile_cache: Some(data_dir.join("compiled")),
                fuel_metering: true,
                ..RuntimeConfig::default()
            },
            data_dir,
            listen,
            admin_token: None,
            watch: None,
            nats: None,
            cluster: None,
            connections: ConnectionLimits::default(),
        }
    }
}

/// A running node's shared state; the API's handlers hold an `Arc<Node>`.
pub struct Node {
    data_dir: PathBuf,
    registry_lock: tokio::sync::Mutex<()>,
    runtime: Runtime,
    /// Every event the runtime stores is published here.
    bus: Arc<LocalBus>,
    tenants: Tenants,
    metrics: Metrics,
    live_streams: Arc<slots::NamespaceSlots>,
    uploads: Arc<slots::NamespaceSlots>,
    upload_pacing: upload_pacing::UploadPacing,
    defaults: SandboxLimits,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// With `--cluster`: this node's membership (set once, by `serve`).
    cluster: std::sync::OnceLock<Arc<aether_cluster::Cluster>>,
    /// With `--nats`: the tasks that follow the shared tenants and
    /// components buckets.
    tenant_tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// With `--nats`: component bytes and registry changes every node
    /// shares.
    shared_components: Option<components::SharedComponents>,
    /// The active components this node could not find when it started
    /// (`namespace/type (digest)`); it joins a cluster only once there are
    /// none (see `join_cluster`).
    missing_components: std::sync::Mutex<Vec<(Namespace, String)>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in self
            .tenant_tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            task.abort();
        }
    }
}

impl Node {
    /// Opens the node's data directory: the event store, the tenants, and
    /// every recorded deployment and limit, so a restarted node serves what
    /// it served before. Returns the admin token if a new one was made.
    pub async fn open(config: &NodeConfig) -> Result<(Arc<Node>, Option<Token>)> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // With NATS, the JetStream store's streams are the bus across nodes
        // (nothing publishes the events a second time), and the store's
        // connection also carries the shared tenants and components.
        let (store, nats_client): (Arc<dyn EventStore>, _) = match &config.nats {
            None => (
                Arc::new(
                    EmbeddedStore::open(dir)
                        .with_context(|| format!("opening the event store in {}", dir.display()))?,
                ),
                None,
            ),
            Some(nats) => {
                let store = JetStreamStore::connect(nats.clone())
                    .await
                    .context("opening the JetStream event store")?;
                let client = store.client().clone();
                (Arc::new(store), Some(client))
            }
        };
        let bus = Arc::new(LocalBus::default());
        let runtime = Runtime::with_sink(store, config.runtime.clone(), bus.clone())?;
        let tenants = Tenants::open(dir)?;
        let new_admin = tenants.ensure_admin(config.admin_token.as_deref())?;
        if let (Some(nats), Some(client)) = (&config.nats, &nats_client) {
            let shared = tenants::Shared::open(client.clone(), &nats.prefix, nats.replicas)
                .await
                .context("opening the shared tenants")?;
            tenants.share(shared).await?;
        }
        let shared_components = match (&config.nats, &nats_client) {
            (Some(nats), Some(client)) => Some(
                components::SharedComponents::open(client.clone(), &nats.prefix, nats.replicas)
                    .await
                    .context("opening the shared components")?,
            ),
            _ => None,
        };
        let node = Arc::new(Node {
            data_dir: dir.clone(),
            registry_lock: tokio::sync::Mutex::new(()),
            runtime,
            bus,
            tenants,
            metrics: Metrics::default(),
            live_streams: Arc::default(),
            uploads: Arc::default(),
            upload_pacing: Default::default(),
            defaults: config.runtime.limits.clone(),
            shutdown: tokio::sync::watch::channel(false).0,
            cluster: std::sync::OnceLock::new(),
            tenant_tasks: std::sync::Mutex::new(Vec::new()),
            shared_components,
            missing_components: std::sync::Mutex::default(),
        });
        node.restore().await?;
        node.follow_tenants();
        node.follow_components();
        Ok((node, new_admin))
    }

    /// The in-process event bus every event this node stores is published on.
    pub fn bus(&self) -> &LocalBus {
        &self.bus
    }

    /// The runtime the node runs aggregates on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The node's tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// The cluster this node is part of, if any.
    pub fn cluster(&self) -> Option<&Arc<aether_cluster::Cluster>> {
        self.cluster.get()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The live event streams open on this node, per namespace.
    pub(crate) fn live_streams(&self) -> &Arc<slots::NamespaceSlots> {
        &self.live_streams
    }

    /// The component uploads in progress on this node, per namespace.
    pub(crate) fn uploads(&self) -> &Arc<slots::NamespaceSlots> {
        &self.uploads
    }

    /// How fast each namespace's uploads are read, together.
    pub(crate) fn upload_pacing(&self) -> &upload_pacing::UploadPacing {
        &self.upload_pacing
    }

    /// The limits `namespace` runs under with `overrides`.
    pub fn limits_with(&self, overrides: &LimitOverrides) -> SandboxLimits {
        overrides.apply(&self.defaults)
    }

    /// Tells long-lived responses (live event streams) to end: the node is
    /// shutting down.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether the node is shutting down.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that changes when the node begins shutting down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Applies a namespace's limit overrides to the runtime.
    pub async fn apply_limits(
        &self,
        namespace: &Namespace,
        overrides: &LimitOverrides,
    ) -> Result<(), aether_runtime::InvalidLimits> {
        self.runtime
            .set_namespace_limits(namespace, self.limits_with(overrides))
            .await
    }

    /// With shared tenants: follows the bucket, so a namespace created,
    /// given new limits or tokens on another node holds here too (within
    /// moments: the bucket's watch pushes each change). A lost watch is
    /// opened again; it replays every namespace's record, which changes
    /// nothing here that is already known.
    fn follow_tenants(self: &Arc<Self>) {
        let Some(shared) = self.tenants.shared().cloned() else {
            return;
        };
        let (changes, mut received) = tokio::sync::mpsc::channel(256);
        let watcher = tokio::spawn(async move {
            while let Err(error) = shared.follow(changes.clone()).await {
                tracing::warn!(error = %format!("{error:#}"), "following the shared tenants again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        let node = Arc::downgrade(self);
        let applier = tokio::spawn(async move {
            while let Some((namespace, record)) = received.recv().await {
                let Some(node) = node.upgrade() else { return };
                match node.tenants.apply(&namespace, record) {
                    tenants::Applied::Limits(overrides) => {
                        if let Err(error) = node.apply_limits(&namespace, &overrides).await {
                            tracing::warn!(%namespace, %error, "the shared limits cannot be applied here");
                        }
                        tracing::info!(%namespace, "namespace created or re-limited on another node");
                    }
                    tenants::Applied::Removed => {
                        tracing::warn!(%namespace, "namespace removed from the shared tenants");
                    }
                    tenants::Applied::Tokens | tenants::Applied::Nothing => {}
                }
            }
        });
        self.tenant_tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([watcher, applier]);
    }

    /// The shared component buckets, with `--nats`.
    pub(crate) fn shared_components(&self) -> Option<&components::SharedComponents> {
        self.shared_components.as_ref()
    }

    /// With shared components: follows the announcements of registry
    /// changes, so a deploy, activation or rollback through another node
    /// switches this node too (fetched and compiled first).
    fn follow_components(self: &Arc<Self>) {
        let Some(shared) = self.shared_components.clone() else {
            return;
        };
        let (announced, mut received) = tokio::sync::mpsc::channel(256);
        let watcher = tokio::spawn(async move {
            while let Err(error) = shared.follow(announced.clone()).await {
                tracing::warn!(error = %format!("{error:#}"), "following the active components again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        let node = Arc::downgrade(self);
        let follower = tokio::spawn(async move {
            while let Some((namespace, aggregate_type, digest)) = received.recv().await {
                let Some(node) = node.upgrade() else { return };
                let current = node
                    .runtime
                    .active_component(&namespace, &aggregate_type)
                    .map(|c| c.digest().to_hex());
                if current.as_deref() == Some(digest.as_str()) {
                    node.confirm_switch(&namespace, &aggregate_type, &digest)
                        .await;
                    continue;
                }
                // The registry event may not be readable yet the moment it
                // is announced: look again for a while (a newer
                // announcement is queued behind this one anyway).
                for _ in 0..40 {
                    if let Err(error) = node.follow_registry(&namespace).await {
                        tracing::warn!(%namespace, error = %format!("{error:#}"), "cannot switch to another node's component");
                    }
                    let now = node
                        .runtime
                        .active_component(&namespace, &aggregate_type)
                        .map(|c| c.digest().to_hex());
                    if now.as_deref() == Some(digest.as_str()) {
                        node.confirm_switch(&namespace, &aggregate_type, &digest)
                            .await;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        });
        self.tenant_tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([watcher, follower]);
    }

    /// Re-applies every namespace's limits and re-activates its active
    /// components.
    async fn restore(&self) -> Result<()> {
        let mut missing = Vec::new();
        for namespace in self.tenants.namespaces() {
            let overrides = self.tenants.limits(&namespace)?;
            if overrides != LimitOverrides::default() {
                self.apply_limits(&namespace, &overrides)
                    .await
                    .with_context(|| format!("the stored limits of namespace `{namespace}`"))?;
            }
            for what in self.restore_components(&namespace).await? {
                missing.push((namespace.clone(), what));
            }
        }
        *self
            .missing_components
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = missing;
        Ok(())
    }
}
