//! Wall-clock and on-CPU time of the calling thread.
//!
//! The benchmark machines are shared: another process can take the core a
//! measurement runs on, which stretches wall-clock time without any work
//! being done. For work that runs entirely on the calling thread (replay and
//! commands on a `DirectAggregate`), the thread's on-CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, which counts up to the moment it is read)
//! measures the work alone; wall-clock time is reported next to it.
//! (`/proc/thread-self/schedstat`, used before, advances only at the
//! scheduler's ticks, 4 ms here: a 16 ms fold read as 16 or 20 ms.)

use std::time::Instant;

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
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec`, which we own, and
    // reads nothing of ours.
    #[allow(unsafe_code)]
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    anyhow::ensure!(
        status == 0,
        "reading the thread's CPU clock: {}",
        std::io::Error::last_os_error()
    );
    Ok(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}
