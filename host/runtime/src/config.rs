//! The runtime's limits and sizes, with defaults that suit one node.

use super::{SandboxLimits, SnapshotPolicy};
use std::path::PathBuf;
use std::time::Duration;

/// Limits and sizes of a [`super::Runtime`]. Every field has a default
/// ([`RuntimeConfig::default`]); change what you need.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Partition threads per namespace that run its guest code; the
    /// namespace's aggregates are spread over them by hash. It is also the
    /// most cores one namespace's guest code can keep busy, so a tenant
    /// whose component loops or bombs memory can never take every core.
    /// Default: half the CPUs, at least 1 (one-tenant nodes may raise it to
    /// the number of CPUs).
    pub partitions: usize,
    /// The sandbox limits of every namespace that has none of its own
    /// ([`super::Runtime::set_namespace_limits`]). Default:
    /// [`SandboxLimits::default`].
    pub limits: SandboxLimits,
    /// The most memory any namespace's limit may allow one instance, in
    /// bytes: what the engine's instance pool is sized for. Default: 1 GiB.
    pub memory_ceiling_bytes: usize,
    /// Whether guest calls are metered in fuel, so that namespaces can have
    /// a `fuel_per_call` limit. Costs some speed. Default: off.
    pub fuel_metering: bool,
    /// Guest instances the engine's pool holds at once. Default: 1 000.
    pub max_instances: u32,
    /// Events read from the store and applied per guest call when an
    /// aggregate is activated. Default: 1 024.
    pub replay_batch: usize,
    /// When aggregates are snapshotted, unless overridden per aggregate type
    /// ([`super::Runtime::set_snapshot_policy`]). Default: every 1 000 events.
    pub snapshots: SnapshotPolicy,
    /// Largest component accepted by a deploy, in bytes. Default: 64 MiB.
    pub max_component_bytes: usize,
    /// Where compiled components are cached across restarts (`None`: no
    /// cache, every start compiles). Default: none; `aether` nodes use
    /// `<data dir>/compiled`.
    pub compile_cache: Option<PathBuf>,
    /// The most bytes the compile cache keeps on disk, for every tenant
    /// together; the entries used longest ago are removed first (a removed
    /// entry costs a compile the next time that version is loaded). 0 keeps
    /// nothing. Default: 1 GiB.
    pub compile_cache_max_bytes: u64,
    /// What a guest may print (stdout and stderr) per call before the rest
    /// is dropped. Default: 64 KiB.
    pub guest_output_limit: usize,
    /// How long a namespace's partition threads run without a command or
    /// read before they stop (dropping its instances); the next command
    /// starts them again. Default: 60 s.
    pub lane_idle_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            partitions: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            limits: SandboxLimits::default(),
            memory_ceiling_bytes: 1 << 30,
            fuel_metering: false,
            max_instances: 1_000,
            replay_batch: 1_024,
            snapshots: SnapshotPolicy::Every(1_000),
            max_component_bytes: 64 << 20,
            compile_cache: None,
            compile_cache_max_bytes: 1 << 30,
            guest_output_limit: 64 << 10,
            lane_idle_timeout: Duration::from_secs(60),
        }
    }
}
