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
//! ([`super::background::lower_this_thread_by`]). Nice values only
//! matter when threads compete: a light lane's thread, the async workers and the store's
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
//! Priority alone does not keep a busy lane off the cores: it still takes
//! every cycle nobody wants at that instant, so the cores stay busy, and a
//! light tenant's thread that wakes can land behind it and wait for up to
//! a scheduler tick. So a thread that gave way also *rests*: after jobs that
//! used `c` of CPU time it waits `c × (100 − share) / share` before its
//! tenant's next job (its namespace's `cpu_share_percent`, 25 by default),
//! if other lanes' threads did jobs meanwhile (beside idle lanes it keeps
//! every cycle: a busy tenant is not slowed down for nobody). In
//! `tenant_abuse` (BENCHMARKS.md, 2026-12-06) that took the light
//! tenant's p99 under every attack at once from ~4× its p99 alone to ~3×.
//! Rests are measured in the thread's CPU time, not wall time, so the
//! waits behind other threads that giving way causes earn none.
//! [`BusyWatch::job_done`] says how long to rest; the partition thread
//! rests (`partition.rs`), and still runs the node's own work meanwhile
//! (a hand-off's passivations, new limits): only the busy tenant waits.
//!
//! While it runs a job, a thread that gave way also *steps aside* for
//! 100 µs every millisecond ([`super::step_aside`]): a thread that wakes
//! behind it, or behind normal work on the other core, then gets a core
//! within about a millisecond instead of at the next scheduler tick. In
//! `tenant_abuse` (BENCHMARKS.md, 2026-12-07) that took the light
//! tenant's p99 under B's views from 1.9–2.5× its p99 alone to 0.9–1.6×.
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::background::lower_this_thread_by;
use super::deadline::thread_cpu_time;
use super::pacing::rest_after;

/// The span over which a partition thread's busy share is measured.
pub(crate) const WINDOW: Duration = Duration::from_millis(500);

/// The share of a [`WINDOW`] spent in jobs from which a thread counts as
/// busy.
pub(crate) const BUSY_SHARE: f64 = 0.5;

/// The nice value a busy partition thread raises its own to: the lowest
/// priority (0 is normal).
pub(crate) const GIVE_WAY_NICE: i32 = 19;

/// The CPU time a thread that gave way uses before it rests: rests are
/// taken in stretches no shorter than this, not after every small job
/// (each rest is a wait, and reading the CPU time a system call).
pub(crate) const REST_AFTER_CPU: Duration = Duration::from_millis(1);

thread_local! {
    /// Whether the calling thread gave way (see the module).
    static GAVE_WAY: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread gave way: it runs at the lowest priority,
/// and its guest calls' deadlines are measured in CPU time.
pub(crate) fn this_thread_gave_way() -> bool {
    GAVE_WAY.with(Cell::get)
}

/// While the returned guard lives (a job), the calling thread steps aside
/// for a moment every millisecond if it gave way ([`super::step_aside`]).
pub(crate) fn step_aside_if_gave_way() -> SteppingAside {
    let gave_way = this_thread_gave_way();
    if gave_way {
        super::step_aside::start();
    }
    SteppingAside(gave_way)
}

/// See [`step_aside_if_gave_way`].
pub(crate) struct SteppingAside(bool);

impl Drop for SteppingAside {
    fn drop(&mut self) {
        if self.0 {
            super::step_aside::stop();
        }
    }
}

/// Lowers the calling thread to [`GIVE_WAY_NICE`], for good.
fn give_way() {
    lower_this_thread_by(GIVE_WAY_NICE);
    GAVE_WAY.with(|gave_way| gave_way.set(true));
}

/// The partition threads running in a runtime, across every lane, and
/// the jobs they have done.
#[derive(Clone, Default)]
pub(crate) struct RunningThreads(Arc<Counts>);

#[derive(Default)]
struct Counts {
    threads: AtomicUsize,
    jobs: AtomicU64,
}

impl RunningThreads {
    /// Counts the calling thread as running until the guard is dropped.
    pub(crate) fn enter(&self) -> Running {
        self.0.threads.fetch_add(1, Ordering::Relaxed);
        Running(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.threads.load(Ordering::Relaxed)
    }
}

/// A partition thread's place in [`RunningThreads`].
pub(crate) struct Running(Arc<Counts>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.threads.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The jobs one lane's partition threads have done (shared by them).
pub(crate) type LaneJobs = Arc<AtomicU64>;

/// One partition thread's record of how busy it has been, kept and used on
/// that thread (whether it gave way is the thread's own, [`GAVE_WAY`]).
pub(crate) struct BusyWatch {
    window_start: Instant,
    busy: Duration,
    running: RunningThreads,
    /// The threads of this thread's own lane.
    own_lane: usize,
    /// The jobs of this thread's own lane.
    lane_jobs: LaneJobs,
    /// Once the thread gave way: its CPU time when the use it has not
    /// rested for began, and whether other lanes' threads did jobs since.
    unrested_since: Option<Duration>,
    others_worked: bool,
    /// Other lanes' jobs as last counted.
    others_seen: u64,
}

impl BusyWatch {
    /// A watch for a thread of a lane of `own_lane` threads whose jobs
    /// are counted in `lane_jobs`, among the runtime's `running` ones.
    pub(crate) fn new(running: RunningThreads, own_lane: usize, lane_jobs: LaneJobs) -> Self {
        Self {
            window_start: Instant::now(),
            busy: Duration::ZERO,
            running,
            own_lane,
            lane_jobs,
            unrested_since: None,
            others_worked: false,
            others_seen: 0,
        }
    }

    /// Records a job that ran from `started` until now, and lowers the
    /// calling thread's priority once it is busy. Returns how long the
    /// thread must rest before its next job (zero for none): once lowered,
    /// for what it used beyond `share_percent` of a core (see the module).
    #[must_use = "the thread must rest for what it returns"]
    pub(crate) fn job_done(&mut self, started: Instant, share_percent: usize) -> Duration {
        self.lane_jobs.fetch_add(1, Ordering::Relaxed);
        self.running.0.jobs.fetch_add(1, Ordering::Relaxed);
        if this_thread_gave_way() {
            return self.rest_owed(share_percent);
        }
        let now = Instant::now();
        self.busy += now.saturating_duration_since(started.max(self.window_start));
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return Duration::ZERO;
        }
        let others_run = self.running.count() > self.own_lane;
        if others_run && self.busy.as_secs_f64() >= BUSY_SHARE * elapsed.as_secs_f64() {
            tracing::debug!(
                "a partition thread was busy for most of {elapsed:?}: lowering its priority"
            );
            give_way();
            self.unrested_since = thread_cpu_time();
        }
        self.window_start = now;
        self.busy = Duration::ZERO;
        Duration::ZERO
    }

    /// On a thread that gave way: once it has used [`REST_AFTER_CPU`] or
    /// more since its last rest, the rest it owes for that use beyond
    /// `share_percent` of it if other lanes' threads did jobs meanwhile
    /// (otherwise it was alone, and keeps every cycle, as before it gave
    /// way: a busy tenant beside idle ones is not slowed down).
    fn rest_owed(&mut self, share_percent: usize) -> Duration {
        let Some(now) = thread_cpu_time() else {
            return Duration::ZERO;
        };
        // Others' jobs: every job of the runtime less this lane's. A
        // sibling partition's job counted in between the two reads can
        // look like another lane's; it costs at most one rest.
        let others = self
            .running
            .0
            .jobs
            .load(Ordering::Relaxed)
            .wrapping_sub(self.lane_jobs.load(Ordering::Relaxed));
        self.others_worked |= others != self.others_seen;
        self.others_seen = others;
        let since = *self.unrested_since.get_or_insert(now);
        if now.saturating_sub(since) < REST_AFTER_CPU {
            return Duration::ZERO;
        }
        let owed = if share_percent < 100 && self.others_worked {
            rest_after(now - since, share_percent)
        } else {
            Duration::ZERO
        };
        self.unrested_since = Some(now);
        self.others_worked = false;
        owed
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
    use aether_core::thread::nice_of_this_thread;

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
            assert_eq!(watch.job_done(started, 100), Duration::ZERO);
        }
    }

    #[test]
    fn short_jobs_keep_the_normal_priority() {
        let before = nice_of_this_thread();
        let (running, _this, _other) = with_another_lane();
        let mut watch = BusyWatch::new(running, 1, LaneJobs::default());
        let end = Instant::now() + WINDOW * 2;
        while Instant::now() < end {
            let started = Instant::now();
            assert_eq!(watch.job_done(started, 100), Duration::ZERO);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!watch.lowered());
        assert_eq!(nice_of_this_thread(), before);
        #[cfg(target_os = "linux")]
        assert_eq!(
            job_stepping_aside(),
            0,
            "a thread that did not give way never steps aside"
        );
    }

    /// Spins for 30 ms as one job under [`step_aside_if_gave_way`], then
    /// 10 ms after it; returns how often the thread stepped aside in the
    /// job, and checks it did not after.
    #[cfg(target_os = "linux")]
    fn job_stepping_aside() -> u64 {
        use crate::step_aside::tests::spin_for;
        let aside = step_aside_if_gave_way();
        let during = spin_for(Duration::from_millis(30));
        drop(aside);
        let after = spin_for(Duration::from_millis(10));
        assert!(after <= 1, "stepped aside {after} times after the job");
        during
    }

    #[test]
    fn a_lane_busy_alone_keeps_the_normal_priority() {
        let before = nice_of_this_thread();
        let running = RunningThreads::default();
        let _this = running.enter();
        let mut watch = BusyWatch::new(running.clone(), 1, LaneJobs::default());
        stay_busy(&mut watch);
        assert!(!watch.lowered());
        assert_eq!(nice_of_this_thread(), before);
    }

    #[test]
    fn a_thread_busy_for_a_window_beside_another_lane_lowers_its_priority_once() {
        let before = nice_of_this_thread();
        let (running, _this, _other) = with_another_lane();
        let mut watch = BusyWatch::new(running, 1, LaneJobs::default());
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
            let steps = job_stepping_aside();
            assert!(steps >= 10, "stepped aside {steps} times in a 30 ms job");
        }
    }

    /// Spins for `cpu` of this thread's CPU time, as one job; returns the
    /// job's start and the CPU time it used.
    fn spin_job(cpu: Duration) -> (Instant, Duration) {
        let (started, start) = (Instant::now(), thread_cpu_time().unwrap());
        while thread_cpu_time().unwrap() - start < cpu {
            std::hint::spin_loop();
        }
        (started, thread_cpu_time().unwrap() - start)
    }

    /// A watch whose thread has given way beside another lane's thread
    /// (held by the returned guards).
    #[cfg(target_os = "linux")]
    fn gave_way_beside_another_lane() -> (RunningThreads, (Running, Running), BusyWatch) {
        let (running, this, other) = with_another_lane();
        let mut watch = BusyWatch::new(running.clone(), 1, LaneJobs::default());
        stay_busy(&mut watch);
        assert!(watch.lowered());
        (running, (this, other), watch)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_that_gave_way_rests_for_what_it_used_beyond_its_share() {
        let (running, _threads, mut watch) = gave_way_beside_another_lane();

        let (started, used) = spin_job(Duration::from_millis(20));
        job_elsewhere(&running);
        let rest = watch.job_done(started, 25);
        assert!(
            rest >= used * 3,
            "at a share of 25 %, {used:?} of CPU earns a rest of at least {:?}; owed {rest:?}",
            used * 3
        );
        // The next job's use is counted from here: a short one owes none.
        let (started, _) = spin_job(Duration::from_micros(100));
        job_elsewhere(&running);
        assert_eq!(watch.job_done(started, 25), Duration::ZERO);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_that_gave_way_does_not_rest_beside_idle_lanes_or_at_a_share_of_100() {
        let (running, _threads, mut watch) = gave_way_beside_another_lane();

        // 100 ms of CPU would earn 300 ms of rest at 25 %.
        let (started, _) = spin_job(Duration::from_millis(100));
        job_elsewhere(&running);
        assert_eq!(watch.job_done(started, 100), Duration::ZERO, "share 100");

        // The other lane's thread is there, but did nothing meanwhile.
        let (started, _) = spin_job(Duration::from_millis(100));
        assert_eq!(
            watch.job_done(started, 25),
            Duration::ZERO,
            "no other lane worked"
        );
    }

    /// Counts a job of another lane.
    fn job_elsewhere(running: &RunningThreads) {
        running.0.jobs.fetch_add(1, Ordering::Relaxed);
    }
}
