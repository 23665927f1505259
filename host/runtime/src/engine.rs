//! The node's one wasmtime engine and its epoch ticker.
//!
//! The engine is configured once for every tenant: the component model,
//! the pooling allocator (instance slots reserved up front, so instantiating
//! is cheap and bounded), epoch interruption (each call gets a wall-clock
//! deadline), and determinism (NaN canonicalisation, deterministic relaxed
//! SIMD), so the same events always replay to the same state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeConfig;

/// How often the epoch advances: the granularity of call deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Set to `1` to have the engine write a perf map of the guests' machine
/// code, for profiling guests with `perf` (see BENCHMARKS.md).
pub const PERF_MAP_ENV: &str = "AETHER_WASM_PERF_MAP";

/// Builds the engine for a runtime with the given limits.
pub(crate) fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(config.max_instances)
        .total_core_instances(config.max_instances * 8)
        .total_memories(config.max_instances * 2)
        .total_tables(config.max_instances * 4)
        .max_memory_size(config.memory_ceiling_bytes);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .consume_fuel(config.fuel_metering)
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true);
    if std::env::var_os(PERF_MAP_ENV).is_some_and(|v| v == "1") {
        // Names the guests' compiled functions in `perf report` (written
        // to /tmp/perf-<pid>.map when a component is compiled, not when it
        // is read from the compile cache).
        wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&wasm)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a background thread,
/// until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("aether-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The number of epoch ticks that covers `deadline` (at least one).
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}
