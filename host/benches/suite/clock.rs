//! Wall-clock and on-CPU time of the calling thread.
//!
//! The benchmark machines are shared: another process can take the core a
//! measurement runs on, which stretches wall-clock time without any work
//! being done. For work that runs entirely on the calling thread (replay and
//! commands on a `DirectAggregate`), the thread's on-CPU time, from
//! `/proc/thread-self/schedstat` (nanoseconds), measures the work alone;
//! wall-clock time is reported next to it.

use std::time::Instant;

use anyhow::Context;

/// A running measurement.
pub(crate) struct Stopwatch {
    wall: Instant,
    on_cpu_ns: u64,
}

/// What a [`Stopwatch`] measured, in seconds.
pub(crate) struct Elapsed {
    pub(crate) wall: f64,
    pub(crate) on_cpu: f64,
}

impl Stopwatch {
    pub(crate) fn start() -> anyhow::Result<Self> {
        let on_cpu_ns = on_cpu_ns()?;
        Ok(Self {
            wall: Instant::now(),
            on_cpu_ns,
        })
    }

    pub(crate) fn stop(self) -> anyhow::Result<Elapsed> {
        let wall = self.wall.elapsed().as_secs_f64();
        let on_cpu = on_cpu_ns()?.saturating_sub(self.on_cpu_ns) as f64 / 1e9;
        Ok(Elapsed { wall, on_cpu })
    }
}

/// The calling thread's time on a CPU so far, in ns.
fn on_cpu_ns() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("reading /proc/thread-self/schedstat (needs Linux with schedstats)")?;
    let first = text.split_whitespace().next().unwrap_or_default();
    first
        .parse()
        .with_context(|| format!("reading the on-CPU time {first:?}"))
}
