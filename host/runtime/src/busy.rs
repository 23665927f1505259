//! A partition thread that stays busy gives way to the lanes that are not.
//!
//! Each namespace's guest code runs on its own lane's threads
//! ([`super::lanes`]), and the OS shares the cores between all of them. A
//! tenant that keeps its lane busy (a guest that loops to its deadline on
//! every call, huge views, a flood of commands) would otherwise compete on
//! equal terms with a tenant whose commands take microseconds, and the
//! light tenant's latency would grow with every core the busy one keeps.
//!
//! So a partition thread watches the share of wall time it spends running
//! jobs. Once it has been busy for at least [`BUSY_SHARE`] of a
//! [`WINDOW`] while another lane's threads run too, it *gives way*: it
//! raises its nice value to the lowest, [`GIVE_WAY_NICE`], and takes a long
//! time slice, so that a thread at the normal priority that wakes takes the
//! core at once instead of waiting for the busy lane's slice to end
//! ([`super::background::lower_this_thread_by`]). It still gets
//! every cycle nobody else wants (nice values only matter when threads
//! compete), but a light lane's thread, the async workers and the store's
//! writer, all at the normal priority, run first when they wake. A lane
//! that is busy alone keeps its priority: the threads it would yield to
//! are then mostly its own work (its callers, its commits), and yielding
//! to them halved one tenant's throughput in `commands_memory_many`.
//!
//! Measured on this project's 2-core machine (BENCHMARKS.md, 2026-12-04),
//! one CPU-bound thread beside a light tenant's commands added to that
//! tenant's p99 ~1.3 ms at nice 5, ~3 ms at `SCHED_IDLE` (why is not
//! established) and ~0.4 ms at nice 19, hence nice 19.
//!
//! A thread that gave way may wait for a core for most of a call, so its
//! calls' deadlines count the CPU time they get instead of wall-clock time
//! (`deadline.rs`, which asks [`this_thread_gave_way`]): giving way slows a
//! busy tenant down, never fails its calls.
//!
//! **Invariant:** giving way is one-way for the thread's life (raising a
//! nice value needs no privilege, lowering it again does). The thread ends
//! when its lane has been idle for
//! [`super::RuntimeConfig::lane_idle_timeout`]; the lane's next use starts
//! new threads at the normal priority.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::background::lower_this_thread_by;

/// The span over which a partition thread's busy share is measured.
pub(crate) const WINDOW: Duration = Duration::from_millis(500);

/// The share of a [`WINDOW`] spent in jobs from which a thread counts as
/// busy.
pub(crate) const BUSY_SHARE: f64 = 0.5;

/// The nice value a busy partition thread raises its own to: the lowest
/// priority (0 is normal).
pub(crate) const GIVE_WAY_NICE: i32 = 19;

thread_local! {
    /// Whether the calling thread gave way (see the module).
    static GAVE_WAY: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread gave way: it runs at the lowest priority,
/// and its guest calls' deadlines are measured in CPU time.
pub(crate) fn this_thread_gave_way() -> bool {
    GAVE_WAY.with(Cell::get)
}

/// Lowers the calling thread to [`GIVE_WAY_NICE`], for good.
fn give_way() {
    lower_this_thread_by(GIVE_WAY_NICE);
    GAVE_WAY.with(|gave_way| gave_way.set(true));
}

/// The partition threads running in a runtime, across every lane.
#[derive(Clone, Default)]
pub(crate) struct RunningThreads(Arc<AtomicUsize>);

impl RunningThreads {
    /// Counts the calling thread as running until the guard is dropped.
    pub(crate) fn enter(&self) -> Running {
        self.0.fetch_add(1, Ordering::Relaxed);
        Running(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A partition thread's place in [`RunningThreads`].
pub(crate) struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One partition thread's record of how busy it has been, kept and used on
/// that thread (whether it gave way is the thread's own, [`GAVE_WAY`]).
pub(crate) struct BusyWatch {
    window_start: Instant,
    busy: Duration,
    running: RunningThreads,
    /// The threads of this thread's own lane.
    own_lane: usize,
}

impl BusyWatch {
    /// A watch for a thread of a lane of `own_lane` threads, among the
    /// runtime's `running` ones.
    pub(crate) fn new(running: RunningThreads, own_lane: usize) -> Self {
        Self {
            window_start: Instant::now(),
            busy: Duration::ZERO,
            running,
            own_lane,
        }
    }

    /// Records a job that ran from `started` until now, and lowers the
    /// calling thread's priority once it is busy (see the module).
    pub(crate) fn job_done(&mut self, started: Instant) {
        if this_thread_gave_way() {
            return;
        }
        let now = Instant::now();
        self.busy += now.saturating_duration_since(started.max(self.window_start));
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let others_run = self.running.count() > self.own_lane;
        if others_run && self.busy.as_secs_f64() >= BUSY_SHARE * elapsed.as_secs_f64() {
            tracing::debug!(
                "a partition thread was busy for most of {elapsed:?}: lowering its priority"
            );
            give_way();
        }
        self.window_start = now;
        self.busy = Duration::ZERO;
    }

    /// Whether this thread has lowered its priority.
    #[cfg(test)]
    pub(crate) fn lowered(&self) -> bool {
        this_thread_gave_way()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::background::tests::nice_of_this_thread;

    /// A runtime where another lane's thread runs besides this one.
    fn with_another_lane() -> (RunningThreads, Running, Running) {
        let running = RunningThreads::default();
        let (this, other) = (running.enter(), running.enter());
        (running, this, other)
    }

    /// Runs jobs that keep the thread busy for a little over a window.
    fn stay_busy(watch: &mut BusyWatch) {
        let end = Instant::now() + WINDOW + Duration::from_millis(50);
        while Instant::now() < end {
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            watch.job_done(started);
        }
    }

    #[test]
    fn short_jobs_keep_the_normal_priority() {
        let before = nice_of_this_thread();
        let (running, _this, _other) = with_another_lane();
        let mut watch = BusyWatch::new(running, 1);
        let end = Instant::now() + WINDOW * 2;
        while Instant::now() < end {
            let started = Instant::now();
            watch.job_done(started);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!watch.lowered());
        assert_eq!(nice_of_this_thread(), before);
    }

    #[test]
    fn a_lane_busy_alone_keeps_the_normal_priority() {
        let before = nice_of_this_thread();
        let running = RunningThreads::default();
        let _this = running.enter();
        let mut watch = BusyWatch::new(running.clone(), 1);
        stay_busy(&mut watch);
        assert!(!watch.lowered());
        assert_eq!(nice_of_this_thread(), before);
    }

    #[test]
    fn a_thread_busy_for_a_window_beside_another_lane_lowers_its_priority_once() {
        let before = nice_of_this_thread();
        let (running, _this, _other) = with_another_lane();
        let mut watch = BusyWatch::new(running, 1);
        stay_busy(&mut watch);
        assert!(watch.lowered());
        assert!(this_thread_gave_way());
        #[cfg(target_os = "linux")]
        {
            use crate::background::{LOWERED_SLICE, tests::slice_of_this_thread};
            assert_eq!(nice_of_this_thread(), GIVE_WAY_NICE.max(before));
            if let Some(slice) = slice_of_this_thread() {
                assert_eq!(
                    slice, LOWERED_SLICE,
                    "a thread that gave way takes a long slice"
                );
            }
        }
    }

    /// The calling thread's nice value (0 where there are none).
    #[cfg(not(target_os = "linux"))]
    fn nice_of_this_thread() -> i32 {
        0
    }
}
