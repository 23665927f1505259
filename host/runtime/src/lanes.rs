//! Lanes: each namespace's own partition threads, limits and quota.
//!
//! A namespace's guest code runs only on its lane's partitions. A tenant
//! whose component loops until its deadline, or bombs its memory,
//! therefore only ever occupies its own threads: other namespaces' commands
//! never queue behind it, and the operating system shares the cores between
//! the lanes' threads.
//!
//! Lifecycle of a lane: *created* (its limits and quota, no threads) when
//! the namespace is first named (limits set, a command or a read);
//! *running* from the first command or read that needs its partitions;
//! *idle-stopped* when no command or read has used it for
//! [`RuntimeConfig::lane_idle_timeout`] and none is pending: its partition
//! threads end and its instances (and the guests' memory) are dropped. The
//! next command starts it again; its live aggregates re-activate from the
//! store (snapshot, then replay), as after any passivation. Limits and the
//! pending-command count belong to the lane, not to its threads, so they
//! survive a stop.
//!
//! **Architecture invariant:** a partition (and so an instance, and so a
//! guest's memory) belongs to exactly one namespace.
//!
//! **Architecture invariant:** an idle namespace holds no threads: the
//! threads a node runs grow with the namespaces in use, not with the
//! namespaces that exist.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use wasmtime::Engine;

use super::CommandError;
use super::busy::{LaneJobs, RunningThreads};
use super::config::RuntimeConfig;
use super::limits::{InvalidLimits, SandboxLimits};
use super::partition::{PartitionHandle, PartitionSizing};
use super::storage::StoredBytes;
use aether_core::namespace::Namespace;
use aether_store::StreamId;

type LaneMap = RwLock<HashMap<Namespace, Arc<Lane>>>;

/// Every namespace's lane.
pub(crate) struct Lanes {
    engine: Engine,
    config: Arc<RuntimeConfig>,
    lanes: Arc<LaneMap>,
    threads: RunningThreads,
}

/// One namespace's partitions (while running) and the limits they run
/// under.
pub(crate) struct Lane {
    namespace: Namespace,
    engine: Engine,
    config: Arc<RuntimeConfig>,
    /// Every lane's running partition threads.
    threads: RunningThreads,
    limits: RwLock<Arc<SandboxLimits>>,
    pending: AtomicUsize,
    running: Mutex<Option<Running>>,
    stored: StoredBytes,
}

/// A running lane's threads and when it was last used.
struct Running {
    partitions: Vec<PartitionHandle>,
    last_used: Instant,
}

impl Running {
    fn partition(&self, stream: &StreamId) -> &PartitionHandle {
        let mut hasher = std::hash::DefaultHasher::new();
        stream.hash(&mut hasher);
        let index = hasher.finish() % self.partitions.len() as u64;
        &self.partitions[index as usize]
    }
}

/// A command's place in its namespace's quota, given back on drop.
pub(crate) struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lanes {
    /// The lanes of a runtime, with a thread that stops idle lanes (it ends
    /// when the lanes are dropped).
    pub(crate) fn new(engine: Engine, config: Arc<RuntimeConfig>) -> std::io::Result<Self> {
        let lanes = Arc::new(LaneMap::default());
        let idle = config.lane_idle_timeout;
        let weak = Arc::downgrade(&lanes);
        std::thread::Builder::new()
            .name("aether-lane-reaper".into())
            .spawn(move || stop_idle_lanes(weak, idle))?;
        Ok(Self {
            engine,
            config,
            lanes,
            threads: RunningThreads::default(),
        })
    }

    /// The namespace's lane, creating it (with the default limits and no
    /// threads) if this is its first use.
    pub(crate) fn lane(&self, namespace: &Namespace) -> Arc<Lane> {
        if let Some(lane) = self.read().get(namespace) {
            return lane.clone();
        }
        let mut lanes = self.lanes.write().unwrap_or_else(|e| e.into_inner());
        lanes
            .entry(namespace.clone())
            .or_insert_with(|| {
                Arc::new(Lane {
                    namespace: namespace.clone(),
                    engine: self.engine.clone(),
                    config: self.config.clone(),
                    threads: self.threads.clone(),
                    limits: RwLock::new(Arc::new(self.config.limits.clone())),
                    pending: AtomicUsize::new(0),
                    running: Mutex::new(None),
                    stored: StoredBytes::default(),
                })
            })
            .clone()
    }

    /// Puts `namespace` under `limits` from now on, without starting its
    /// threads. Its live aggregates, if it is running, are passivated and
    /// come back under the new limits on their next use.
    pub(crate) async fn set_limits(
        &self,
        namespace: &Namespace,
        limits: SandboxLimits,
    ) -> Result<(), InvalidLimits> {
        limits.check(self.config.memory_ceiling_bytes, self.config.fuel_metering)?;
        let limits = Arc::new(limits);
        let lane = self.lane(namespace);
        *lane.limits.write().unwrap_or_else(|e| e.into_inner()) = limits.clone();
        for partition in lane.running_partitions() {
            let limits = limits.clone();
            // A stopped partition has nothing left to limit. The node's own
            // work: it takes effect at once, even on a resting thread, for
            // the tenant jobs that thread holds back too.
            let _ = partition.call_for_node(move |p| p.set_limits(limits)).await;
        }
        tracing::info!(%namespace, ?limits, "namespace limits set");
        Ok(())
    }

    /// Every lane, running or not.
    pub(crate) fn all(&self) -> Vec<Arc<Lane>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Namespace, Arc<Lane>>> {
        self.lanes.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every so often (a quarter of `idle`, between 10 ms and 5 s), stops the
/// lanes idle for `idle`; returns once the lanes are gone.
fn stop_idle_lanes(lanes: Weak<LaneMap>, idle: Duration) {
    let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    loop {
        std::thread::sleep(tick);
        let Some(lanes) = lanes.upgrade() else { return };
        let all: Vec<Arc<Lane>> = lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        drop(lanes);
        for lane in all {
            lane.stop_if_idle(idle);
        }
    }
}

impl Lane {
    /// The partition `stream` runs on, starting the lane's threads if they
    /// are not running; counts as a use of the lane.
    pub(crate) fn partition(&self, stream: &StreamId) -> Result<PartitionHandle, CommandError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_none() {
            let partitions = self.start().map_err(|error| {
                let namespace = &self.namespace;
                tracing::error!(%namespace, %error, "cannot start the namespace's partitions");
                CommandError::Stopped
            })?;
            *running = Some(Running {
                partitions,
                last_used: Instant::now(),
            });
        }
        let Some(running) = running.as_mut() else {
            return Err(CommandError::Stopped);
        };
        running.last_used = Instant::now();
        Ok(running.partition(stream).clone())
    }

    /// The partition `stream` runs on if the lane is running, without
    /// starting it or counting as a use (a stopped lane has nothing live).
    pub(crate) fn running_partition(&self, stream: &StreamId) -> Option<PartitionHandle> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.as_ref().map(|r| r.partition(stream).clone())
    }

    /// The lane's partitions if it is running (none if it is stopped: a
    /// stopped lane has no live aggregates).
    pub(crate) fn running_partitions(&self) -> Vec<PartitionHandle> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|running| running.partitions.clone())
            .unwrap_or_default()
    }

    /// Whether the lane's partition threads are running.
    pub(crate) fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The limits the namespace runs under now.
    pub(crate) fn limits(&self) -> Arc<SandboxLimits> {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The namespace's stored event bytes, as last counted.
    pub(crate) fn stored(&self) -> &StoredBytes {
        &self.stored
    }

    /// Takes a place in the namespace's command quota, or refuses the
    /// command if `max_pending_commands` are already in.
    pub(crate) fn admit(&self, limits: &SandboxLimits) -> Result<Admitted<'_>, CommandError> {
        let before = self.pending.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(&self.pending);
        if before >= limits.max_pending_commands {
            return Err(CommandError::QuotaExceeded {
                namespace: self.namespace.clone(),
                quota: format!(
                    "{} commands are already pending (max_pending_commands)",
                    limits.max_pending_commands
                ),
            });
        }
        Ok(admitted)
    }

    /// Stops the lane's threads if it has been unused for `idle` and no
    /// command is pending. Dropping the handles ends each partition thread
    /// once the jobs already sent to it (by a read still holding a handle)
    /// are done; its instances go with it.
    fn stop_if_idle(&self, idle: Duration) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let idle_now = running
            .as_ref()
            .is_some_and(|r| r.last_used.elapsed() >= idle);
        if idle_now && self.pending.load(Ordering::Acquire) == 0 {
            *running = None;
            let namespace = &self.namespace;
            tracing::debug!(%namespace, "idle lane stopped");
        }
    }

    fn start(&self) -> std::io::Result<Vec<PartitionHandle>> {
        let count = self.config.partitions.max(1);
        let sizing = PartitionSizing {
            limits: self.limits(),
            partitions: count,
            output_limit: self.config.guest_output_limit,
            running: self.threads.clone(),
            lane_jobs: LaneJobs::default(),
        };
        (0..count)
            .map(|i| {
                PartitionHandle::spawn(&self.namespace, i, self.engine.clone(), sizing.clone())
            })
            .collect()
    }
}
