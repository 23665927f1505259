//! The Aggregate Runtime: runs aggregate components and drives the command
//! path.
//!
//! ```text
//! execute(command)
//!   ├─ registry: which component serves (namespace, aggregate type)
//!   ├─ locks: wait for this aggregate's turn (strict order per aggregate)
//!   ├─ partition: one job for a live aggregate — command id ruled out by
//!   │             its memory? expected version? handle → new events
//!   │             (applied to the live copy ahead of the append) or a
//!   │             rejection (nothing stored)
//!   ├─ partition: not live → activate (constructor + batched replay; live
//!   │             only once the whole stream is applied), then the job
//!   ├─ store: command id not ruled out → its stored outcome, if any
//!   ├─ store: rejection / no change → confirm the live version is the stream's
//!   ├─ store: append(expected = live version), started by the partition
//!   │         job that decided, which the store answers with the outcome
//!   │         (else appended from here) — not stored → passivate;
//!   │         conflict → the command's stored outcome, or decide again,
//!   │         or return it
//!   ├─ bus: publish (never blocks)
//!   └─ reply with the stored events and the new version
//! ```
//!
//! Guest code runs on partition threads (`partition.rs`); the async side
//! never calls a guest itself. A guest failure drops the guest's instance
//! and fails only the command that caused it.
//!
//! **Architecture invariant:** every job but the one that decided sees a
//! live state equal to a replay of the stream: it is advanced only by
//! applying stored events in version order, or, in the deciding command's
//! own job, by the events it decided, applied as the store will record
//! them while the command holds the aggregate's turn and pin; unless the
//! append then stores them, the aggregate is passivated before the turn
//! ends (`command::Speculative`). When in doubt (a conflict, a store
//! error, a failed apply) the aggregate is passivated and rebuilt by replay.

mod background;
mod bindings;
mod busy;
mod cache;
mod command;
mod command_ids;
mod component;
mod config;
mod deadline;
mod direct;
mod engine;
mod error;
mod instance;
mod jobs;
mod lanes;
mod limits;
mod live;
mod locks;
mod pacing;
mod partition;
mod registry;
mod sandbox;
pub mod scenario;
mod snapshot;
#[cfg(target_os = "linux")]
mod step_aside;
#[cfg(not(target_os = "linux"))]
mod step_aside {
    //! Stepping aside uses Linux's per-thread timers: elsewhere, nothing.
    pub(crate) fn start() {}
    pub(crate) fn stop() {}
    pub(crate) fn join_compile_pool() {}
    pub(crate) fn leave_compile_pool() {}
    pub(crate) fn compiling() {}
}
mod storage;

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;

pub use aether_core::clock::{CLOCK_SKEW_ENV, now_ms};
pub use aether_core::event::{EventSink, NoSink};
pub use background::lower_this_thread_by;
pub use cache::CompiledFrom;
pub use command::{AggregateState, CommandOutcome, CommandRequest, JSON, stream_id};
pub use component::{
    Digest, HANDLER_EXPORT, LoadError, LoadedComponent, PREAMBLE_BYTES, STATE_SCHEMA_SECTION,
    check_preamble, with_custom_section,
};
pub use config::RuntimeConfig;
pub use direct::DirectAggregate;
pub use engine::PERF_MAP_ENV;
pub use error::{CommandError, DeployError, GuestFailure, GuestFailureKind, Rejection};
pub use limits::{
    EffectiveLimits, InvalidLimits, LimitInfo, LimitOverrides, LimitValue, SandboxLimits, limits,
};
pub use snapshot::SnapshotPolicy;

use aether_core::namespace::{AggregateType, Namespace};
use aether_store::{EventStore, StreamId};
use engine::EpochTicker;
use lanes::Lanes;
use locks::AggregateLocks;
use registry::Registry;
use sandbox::HostState;
use snapshot::SnapshotPolicies;

/// Runs aggregate components against an event store. Cheap to clone; all
/// clones share the same engine, partitions and registry.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    compile_cache: Option<cache::CompileCache>,
    pacing: pacing::CompilePacing,
    config: Arc<RuntimeConfig>,
    store: Arc<dyn EventStore>,
    registry: Registry,
    lanes: Lanes,
    locks: AggregateLocks,
    sink: Arc<dyn EventSink>,
    snapshot_policies: SnapshotPolicies,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Starts a runtime on `store`: builds the engine and starts the epoch
    /// ticker. Each namespace's partition threads start on its first command
    /// or read, and stop when it has been idle for
    /// [`RuntimeConfig::lane_idle_timeout`].
    pub fn new(store: Arc<dyn EventStore>, config: RuntimeConfig) -> anyhow::Result<Self> {
        Self::with_sink(store, config, Arc::new(NoSink))
    }

    /// [`Runtime::new`], publishing every stored event to `sink` (the
    /// node's event bus).
    pub fn with_sink(
        store: Arc<dyn EventStore>,
        config: RuntimeConfig,
        sink: Arc<dyn EventSink>,
    ) -> anyhow::Result<Self> {
        config
            .limits
            .check(config.memory_ceiling_bytes, config.fuel_metering)
            .map_err(|e| anyhow::anyhow!("the default sandbox limits: {e}"))?;
        let config = Arc::new(config);
        background::lower_compile_pool_priority();
        let engine = engine::build_engine(&config)
            .map_err(|e| anyhow::anyhow!("building the wasm engine: {e:#}"))?;
        let linker = component::sandbox_linker(&engine)
            .map_err(|e| anyhow::anyhow!("linking the sandbox: {e:#}"))?;
        let lanes = Lanes::new(engine.clone(), config.clone())?;
        let ticker = EpochTicker::start(&engine)?;
        let compile_cache = config
            .compile_cache
            .as_deref()
            .map(|dir| cache::CompileCache::new(dir, &engine, config.compile_cache_max_bytes));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                compile_cache,
                pacing: pacing::CompilePacing::default(),
                config,
                store,
                registry: Registry::default(),
                lanes,
                locks: AggregateLocks::default(),
                sink,
                snapshot_policies: SnapshotPolicies::default(),
                _ticker: ticker,
            }),
        })
    }

    /// The event store the runtime writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// Where every stored event is published.
    pub fn sink(&self) -> &Arc<dyn EventSink> {
        &self.inner.sink
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Compiles and checks `bytes` as an aggregate component without
    /// deploying it. Compiling takes a while for large components; it runs
    /// on a thread of its own at a lower CPU priority than commands
    /// (`background.rs`).
    pub async fn load_component(
        &self,
        bytes: Vec<u8>,
    ) -> Result<Arc<LoadedComponent>, DeployError> {
        self.load_shared_component(Arc::new(bytes)).await
    }

    /// [`Runtime::load_component`] for bytes the caller keeps too (a node
    /// stores them once they are accepted): nothing is copied. Hashing and
    /// compiling both happen off the async workers.
    pub async fn load_shared_component(
        &self,
        bytes: Arc<Vec<u8>>,
    ) -> Result<Arc<LoadedComponent>, DeployError> {
        self.check_component_size(&bytes)?;
        self.compile(bytes, None).await
    }

    /// [`Runtime::load_shared_component`] for a deploy to `namespace`: it
    /// waits for the namespace's turn, so that its compiles take at most
    /// its `compile_share_percent` of the time (`pacing.rs`).
    pub async fn load_component_for(
        &self,
        namespace: &Namespace,
        bytes: Arc<Vec<u8>>,
    ) -> Result<Arc<LoadedComponent>, DeployError> {
        self.check_component_size(&bytes)?;
        let share = self
            .inner
            .lanes
            .lane(namespace)
            .limits()
            .compile_share_percent;
        let turn = self.inner.pacing.turn(namespace, share).await;
        self.compile(bytes, Some(turn)).await
    }

    fn check_component_size(&self, bytes: &[u8]) -> Result<(), DeployError> {
        let limit = self.inner.config.max_component_bytes;
        if bytes.len() > limit {
            return Err(DeployError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Hashes and compiles `bytes` (already checked against the size
    /// limit) on a lowered thread of its own, which ends `turn` (if any)
    /// when it is done, whether or not anyone still waits for the result.
    async fn compile(
        &self,
        bytes: Arc<Vec<u8>>,
        turn: Option<pacing::Turn>,
    ) -> Result<Arc<LoadedComponent>, DeployError> {
        let inner = self.inner.clone();
        let loaded = background::run_niced("aether-compile", move || {
            let _aside = step_aside::compiling();
            let digest = Digest::of(&bytes);
            let loaded = match inner.registry.compiled(&digest) {
                Some(loaded) => Ok(loaded),
                None => component::load(
                    &inner.engine,
                    &inner.linker,
                    (&bytes, digest),
                    inner.compile_cache.as_ref(),
                ),
            };
            if let Some(turn) = turn {
                turn.end();
            }
            loaded
        })
        .await
        .map_err(|e| LoadError::Invalid(format!("compilation stopped: {e}")))??;
        Ok(loaded)
    }

    /// Deploys a component for `aggregate_type` in `namespace`: new commands
    /// use it from now on. Returns its digest.
    pub async fn deploy(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        bytes: Vec<u8>,
    ) -> Result<Digest, DeployError> {
        let loaded = self.load_component_for(namespace, Arc::new(bytes)).await?;
        let digest = loaded.digest().clone();
        self.inner
            .registry
            .activate(namespace.clone(), aggregate_type.clone(), loaded);
        tracing::info!(%namespace, %aggregate_type, digest = %digest.short(), "component deployed");
        Ok(digest)
    }

    /// Makes `component` (already loaded with [`Runtime::load_component`])
    /// the one that serves `aggregate_type` in `namespace`: new commands use
    /// it at once; commands already running finish on the one they started
    /// with; live aggregates re-activate under it on their next command
    /// (from a snapshot with the same snapshot key, else by replay).
    pub fn activate(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        component: Arc<LoadedComponent>,
    ) {
        let digest = component.digest().short();
        self.inner
            .registry
            .activate(namespace.clone(), aggregate_type.clone(), component);
        tracing::info!(%namespace, %aggregate_type, %digest, "component activated");
    }

    /// The component serving `aggregate_type` in `namespace`, if any.
    pub fn active_component(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Option<Arc<LoadedComponent>> {
        self.inner.registry.active(namespace, aggregate_type)
    }

    /// Every deployed (namespace, aggregate type) with its active digest.
    pub fn deployments(&self) -> Vec<(Namespace, AggregateType, Digest)> {
        self.inner.registry.list()
    }

    /// Puts `namespace` under `limits` instead of the defaults
    /// ([`RuntimeConfig::limits`]). Its live aggregates are passivated and
    /// come back under the new limits on their next use.
    pub async fn set_namespace_limits(
        &self,
        namespace: &Namespace,
        limits: SandboxLimits,
    ) -> Result<(), InvalidLimits> {
        self.inner.lanes.set_limits(namespace, limits).await
    }

    /// The limits `namespace` runs under.
    pub fn namespace_limits(&self, namespace: &Namespace) -> Result<SandboxLimits, CommandError> {
        Ok((*self.inner.lanes.lane(namespace).limits()).clone())
    }

    /// Passivates every live aggregate `matches` selects, in all
    /// namespaces; returns how many. The caller makes sure no command of
    /// those aggregates is in flight (a cluster node drains a shard first),
    /// so this runs as the node's own work: on every partition at once,
    /// ahead of a busy tenant's queued jobs and during its rest
    /// (`partition.rs`).
    pub async fn passivate_where(
        &self,
        matches: Arc<dyn for<'a> Fn(&'a StreamId) -> bool + Send + Sync + 'static>,
    ) -> usize {
        self.on_every_partition(true, move |p| p.passivate_where(&*matches))
            .await
    }

    /// How many aggregates are live across all namespaces, counted on each
    /// partition after the jobs queued before the question: a caller whose
    /// commands have answered sees their aggregates unpinned (a command's
    /// unpin is queued as it answers), so past the LRU capacity only what
    /// is still in use. Not the node's own work, so it waits behind a busy
    /// tenant's backlog.
    pub async fn live_aggregates(&self) -> usize {
        self.on_every_partition(false, |p| p.live_count()).await
    }

    /// Runs `count` on every running partition of every namespace at once
    /// (as the node's own work if `node_work`, see `partition.rs`); the sum
    /// of what they answered (a stopped partition: 0).
    async fn on_every_partition(
        &self,
        node_work: bool,
        count: impl Fn(&mut partition::Partition) -> usize + Clone + Send + 'static,
    ) -> usize {
        let partitions = self
            .inner
            .lanes
            .all()
            .iter()
            .flat_map(|lane| lane.running_partitions())
            .collect::<Vec<_>>();
        let counts = partitions.iter().map(|partition| {
            let count = count.clone();
            async move { partition.run(count, node_work).await.unwrap_or(0) }
        });
        futures_util::future::join_all(counts)
            .await
            .into_iter()
            .sum()
    }

    /// Bytes the compile cache holds on disk as of its last write or the
    /// runtime's start (`None`: no compile cache).
    pub fn compile_cache_bytes(&self) -> Option<u64> {
        self.inner
            .compile_cache
            .as_ref()
            .map(cache::CompileCache::held_bytes)
    }

    /// How many namespaces have their partition threads running (the
    /// others are idle: see [`RuntimeConfig::lane_idle_timeout`]).
    pub fn running_lanes(&self) -> usize {
        self.inner
            .lanes
            .all()
            .iter()
            .filter(|lane| lane.is_running())
            .count()
    }
}
