//! The runtime's limits and sizes, with defaults that suit one node.

use std::path::PathBuf;
use std::time::Duration;

use super::SnapshotPolicy;

/// Limits and sizes of a [`super::Runtime`]. Every field has a default
/// ([`RuntimeConfig::default`]); change what you need.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Partition threads that run guest code; aggregates are spread over
    /// them by hash. Default: the number of CPUs.
    pub partitions: usize,
    /// Memory cap of one guest instance, in bytes. Growing past it traps the
    /// call. Default: 256 MiB.
    pub memory_limit_bytes: usize,
    /// Wall-clock deadline of one guest call (a command's `handle`, a batch
    /// of `apply`). Default: 1 s.
    pub call_deadline: Duration,
    /// Fuel (roughly, Wasm instructions) per guest call, for deterministic
    /// metering. `None` (the default) leaves metering off, which is faster.
    pub fuel_per_call: Option<u64>,
    /// Live aggregates kept in memory across all partitions; the least
    /// recently used are passivated beyond it. Default: 200 000.
    pub max_live_aggregates: usize,
    /// Guest instances the engine's pool holds at once. Default: 1 000.
    pub max_instances: u32,
    /// Events read from the store and applied per guest call when an
    /// aggregate is activated. Default: 1 024.
    pub replay_batch: usize,
    /// When aggregates are snapshotted, unless overridden per aggregate type
    /// ([`super::Runtime::set_snapshot_policy`]). Default: every 1 000 events.
    pub snapshots: SnapshotPolicy,
    /// Largest command payload accepted, in bytes. Default: 1 MiB.
    pub max_command_bytes: usize,
    /// Largest component accepted by a deploy, in bytes. Default: 64 MiB.
    pub max_component_bytes: usize,
    /// Where compiled components are cached across restarts (`None`: no
    /// cache, every start compiles). Default: none; `aether` nodes use
    /// `<data dir>/compiled`.
    pub compile_cache: Option<PathBuf>,
    /// What a guest may print (stdout and stderr) per call before the rest
    /// is dropped. Default: 64 KiB.
    pub guest_output_limit: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            memory_limit_bytes: 256 << 20,
            call_deadline: Duration::from_secs(1),
            fuel_per_call: None,
            max_live_aggregates: 200_000,
            max_instances: 1_000,
            replay_batch: 1_024,
            snapshots: SnapshotPolicy::Every(1_000),
            max_command_bytes: 1 << 20,
            max_component_bytes: 64 << 20,
            compile_cache: None,
            guest_output_limit: 64 << 10,
        }
    }
}

impl RuntimeConfig {
    pub(crate) fn live_aggregates_per_partition(&self) -> usize {
        self.max_live_aggregates
            .div_ceil(self.partitions.max(1))
            .max(1)
    }
}
