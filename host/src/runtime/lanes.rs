//! Lanes: each namespace's own partition threads, limits and quota.
//!
//! A namespace's guest code runs only on its lane's partitions, started on
//! the namespace's first command. A tenant whose component loops until its
//! deadline, or bombs its memory, therefore only ever occupies its own
//! threads: other namespaces' commands never queue behind it, and the
//! operating system shares the cores between the lanes' threads.
//!
//! **Architecture invariant:** a partition (and so an instance, and so a
//! guest's memory) belongs to exactly one namespace.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use wasmtime::Engine;

use super::CommandError;
use super::config::RuntimeConfig;
use super::limits::{InvalidLimits, SandboxLimits};
use super::partition::{PartitionHandle, PartitionSizing};
use crate::namespace::Namespace;
use crate::store::StreamId;

/// Every namespace's lane, started on first use.
pub(crate) struct Lanes {
    engine: Engine,
    config: Arc<RuntimeConfig>,
    lanes: RwLock<HashMap<Namespace, Arc<Lane>>>,
}

/// One namespace's partitions and the limits they run under.
pub(crate) struct Lane {
    namespace: Namespace,
    partitions: Vec<PartitionHandle>,
    limits: RwLock<Arc<SandboxLimits>>,
    pending: AtomicUsize,
}

/// A command's place in its namespace's quota, given back on drop.
pub(crate) struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lanes {
    pub(crate) fn new(engine: Engine, config: Arc<RuntimeConfig>) -> Self {
        Self {
            engine,
            config,
            lanes: RwLock::default(),
        }
    }

    /// The namespace's lane, starting it (with the default limits) if this
    /// is its first use.
    pub(crate) fn lane(&self, namespace: &Namespace) -> Result<Arc<Lane>, CommandError> {
        if let Some(lane) = self.read().get(namespace) {
            return Ok(lane.clone());
        }
        let mut lanes = self.lanes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(lane) = lanes.get(namespace) {
            return Ok(lane.clone());
        }
        let lane = self
            .start(namespace, Arc::new(self.config.limits.clone()))
            .map_err(|error| {
                tracing::error!(%namespace, %error, "cannot start the namespace's partitions");
                CommandError::Stopped
            })?;
        lanes.insert(namespace.clone(), lane.clone());
        Ok(lane)
    }

    /// Puts `namespace` under `limits` from now on. Its live aggregates are
    /// passivated and come back under the new limits on their next use.
    pub(crate) async fn set_limits(
        &self,
        namespace: &Namespace,
        limits: SandboxLimits,
    ) -> Result<(), InvalidLimits> {
        limits.check(self.config.memory_ceiling_bytes, self.config.fuel_metering)?;
        let limits = Arc::new(limits);
        let lane = self.lane(namespace).ok();
        let Some(lane) = lane else { return Ok(()) };
        *lane.limits.write().unwrap_or_else(|e| e.into_inner()) = limits.clone();
        for partition in &lane.partitions {
            let limits = limits.clone();
            // A stopped partition has nothing left to limit.
            let _ = partition.call(move |p| p.set_limits(limits)).await;
        }
        tracing::info!(%namespace, ?limits, "namespace limits set");
        Ok(())
    }

    /// Every started lane.
    pub(crate) fn all(&self) -> Vec<Arc<Lane>> {
        self.read().values().cloned().collect()
    }

    fn start(
        &self,
        namespace: &Namespace,
        limits: Arc<SandboxLimits>,
    ) -> std::io::Result<Arc<Lane>> {
        let count = self.config.partitions.max(1);
        let sizing = PartitionSizing {
            limits: limits.clone(),
            partitions: count,
            output_limit: self.config.guest_output_limit,
        };
        let partitions = (0..count)
            .map(|i| PartitionHandle::spawn(namespace, i, self.engine.clone(), sizing.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Arc::new(Lane {
            namespace: namespace.clone(),
            partitions,
            limits: RwLock::new(limits),
            pending: AtomicUsize::new(0),
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Namespace, Arc<Lane>>> {
        self.lanes.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Lane {
    /// The partition `stream` runs on.
    pub(crate) fn partition(&self, stream: &StreamId) -> &PartitionHandle {
        let mut hasher = std::hash::DefaultHasher::new();
        stream.hash(&mut hasher);
        &self.partitions[(hasher.finish() % self.partitions.len() as u64) as usize]
    }

    /// Every partition of the lane.
    pub(crate) fn partitions(&self) -> &[PartitionHandle] {
        &self.partitions
    }

    /// The limits the namespace runs under now.
    pub(crate) fn limits(&self) -> Arc<SandboxLimits> {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
}
