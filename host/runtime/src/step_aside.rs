//! Lowered threads step aside for a moment, often, while they work.
//!
//! A lowered thread (a compile, a busy lane: `background.rs`, `busy.rs`)
//! runs at a low priority, yet a thread at the normal priority that wakes
//! on its core may still wait behind it: Linux's EEVDF scheduler preempts
//! on a wake-up only for a thread it counts as *eligible* (one that has not
//! had more than its share), and otherwise looks again at the next
//! scheduler tick (4 ms at `HZ=250`); and a woken thread queued behind
//! normal work on one core is pulled to the other, which runs only a
//! lowered thread, when that core goes idle or at a balancing tick. So
//! while it works, a lowered thread sleeps for [`REST`] after every
//! [`PERIOD`] of wall time: a per-thread `CLOCK_MONOTONIC` timer (a
//! high-resolution one, not checked on ticks only, as timers on a thread's
//! CPU time are) sends it a signal whose handler sleeps. Its core then runs
//! what waits there, or pulls it from the other core, within about a
//! period instead of a tick. The lowered work runs ~10 % slower for it.
//!
//! Who steps aside: a compile's own thread and wasmtime's compile pool
//! while any compile runs ([`compiling`]); a partition thread that gave way,
//! during each job ([`start`] / [`stop`], `partition.rs`). Nothing else in
//! the node receives the signal.
//!
//! `AETHER_STEP_ASIDE=off` turns it off, `AETHER_STEP_ASIDE=<period µs>,<rest
//! µs>` changes the two (to measure, BENCHMARKS.md); read once per process.
//!
//! The signal is the fourth real-time one (`SIGRTMIN + 3`), installed with
//! `SA_RESTART`, so system calls of an interrupted thread restart; the
//! waits it may interrupt (futexes) are ones that already allow spurious
//! wake-ups. Linux only; elsewhere every function here does nothing.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use aether_core::thread::this_thread_id;

/// How often a working lowered thread steps aside, in wall time.
pub(crate) const PERIOD: Duration = Duration::from_millis(1);

/// How long it steps aside each time.
pub(crate) const REST: Duration = Duration::from_micros(100);

/// The environment variable that turns stepping aside off (`off`) or
/// changes its period and rest (`<period µs>,<rest µs>`).
pub(crate) const STEP_ASIDE_ENV: &str = "AETHER_STEP_ASIDE";

/// The period and rest, or `None` when stepping aside is off.
fn setting() -> Option<(Duration, Duration)> {
    static SETTING: OnceLock<Option<(Duration, Duration)>> = OnceLock::new();
    *SETTING.get_or_init(|| {
        let Ok(value) = std::env::var(STEP_ASIDE_ENV) else {
            return Some((PERIOD, REST));
        };
        let parsed = parse(&value);
        if parsed.is_none() && value.trim() != "off" {
            tracing::warn!(
                "{STEP_ASIDE_ENV}={value:?} is neither `off` nor `<period µs>,<rest µs>` \
                 (both above zero): lowered threads do not step aside"
            );
        }
        parsed
    })
}

/// `<period µs>,<rest µs>`, both above zero.
fn parse(value: &str) -> Option<(Duration, Duration)> {
    let (period, rest) = value.split_once(',')?;
    let period = Duration::from_micros(period.trim().parse().ok()?);
    let rest = Duration::from_micros(rest.trim().parse().ok()?);
    (!period.is_zero() && !rest.is_zero()).then_some((period, rest))
}

/// The rest, in ns, for the signal handler.
static REST_NS: AtomicU64 = AtomicU64::new(0);

fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

thread_local! {
    /// How often the calling thread stepped aside (for tests; a constant
    /// thread-local without a destructor, safe to touch in the handler).
    static STEPS: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn on_signal(_: libc::c_int) {
    STEPS.with(|steps| steps.set(steps.get() + 1));
    let ns = REST_NS.load(Ordering::Relaxed);
    let rest = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `__errno_location` returns this thread's `errno`, valid for
    // the thread's life; `nanosleep` is async-signal-safe and reads
    // `rest`, which lives across the call (an interrupted sleep is simply
    // shorter). The interrupted code's `errno` is put back, as a handler
    // must.
    #[allow(unsafe_code)]
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        libc::nanosleep(&rest, std::ptr::null_mut());
        *errno = saved;
    }
}

fn install_handler(rest: Duration) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        REST_NS.store(rest.as_nanos() as u64, Ordering::Relaxed);
        // SAFETY: a zeroed `sigaction` is a valid empty one; the handler
        // is an `extern "C" fn(c_int)` that only calls `nanosleep`.
        #[allow(unsafe_code)]
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal(), &action, std::ptr::null_mut());
        }
    });
}

/// A timer that signals one thread.
struct Timer(libc::timer_t);

// SAFETY: a timer id is a plain handle; `timer_settime` and `timer_delete`
// may be called on it from any thread of the process.
#[allow(unsafe_code)]
unsafe impl Send for Timer {}

impl Timer {
    /// A timer that signals the calling thread, not yet armed.
    fn for_this_thread() -> Option<Timer> {
        // SAFETY: `sigevent` is zeroed then filled; `timer_create` writes
        // the new id into `id`.
        #[allow(unsafe_code)]
        unsafe {
            let mut event: libc::sigevent = std::mem::zeroed();
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_signo = signal();
            event.sigev_notify_thread_id = this_thread_id();
            let mut id: libc::timer_t = std::ptr::null_mut();
            (libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut id) == 0)
                .then_some(Timer(id))
        }
    }

    /// Fires every `period` from now on, or never (`period` zero).
    fn set(&self, period: Duration) {
        let spec = libc::timespec {
            tv_sec: period.as_secs() as libc::time_t,
            tv_nsec: period.subsec_nanos() as libc::c_long,
        };
        let value = libc::itimerspec {
            it_interval: spec,
            it_value: spec,
        };
        // SAFETY: `self.0` is a live timer; `value` lives across the call.
        #[allow(unsafe_code)]
        unsafe {
            libc::timer_settime(self.0, 0, &value, std::ptr::null_mut());
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a live timer, deleted once.
        #[allow(unsafe_code)]
        unsafe {
            libc::timer_delete(self.0);
        }
    }
}

thread_local! {
    /// The calling thread's timer, made on first use and deleted when the
    /// thread ends.
    static THIS_THREAD: RefCell<Option<Timer>> = const { RefCell::new(None) };
}

/// Starts stepping aside on the calling thread (unless it is off).
pub(crate) fn start() {
    if let Some((period, rest)) = setting() {
        arm_this_thread(period, rest);
    }
}

/// Stops stepping aside on the calling thread (if it started).
pub(crate) fn stop() {
    THIS_THREAD.with(|timer| {
        if let Some(timer) = timer.borrow().as_ref() {
            timer.set(Duration::ZERO);
        }
    });
}

/// Steps the calling thread aside for `rest` every `period`. The first
/// `rest` given in the process is the one used.
fn arm_this_thread(period: Duration, rest: Duration) {
    install_handler(rest);
    THIS_THREAD.with(|timer| {
        let mut timer = timer.borrow_mut();
        if timer.is_none() {
            *timer = Timer::for_this_thread();
        }
        if let Some(timer) = timer.as_ref() {
            timer.set(period);
        }
    });
}

/// The compile pool's threads (by thread id) and their timers, and how
/// many compiles run now.
struct Pool {
    threads: Vec<(libc::pid_t, Timer)>,
    compiles: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    threads: Vec::new(),
    compiles: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // Nothing panics while holding it; a poisoned pool is still whole.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers the calling thread (a compile pool thread, as it starts) to
/// step aside while any compile runs.
pub(crate) fn join_compile_pool() {
    let Some((period, rest)) = setting() else {
        return;
    };
    install_handler(rest);
    if let Some(timer) = Timer::for_this_thread() {
        let mut pool = pool();
        if pool.compiles > 0 {
            timer.set(period);
        }
        pool.threads.push((this_thread_id(), timer));
    }
}

/// Removes the calling thread (a compile pool thread, as it ends) from
/// the pool, deleting its timer.
pub(crate) fn leave_compile_pool() {
    let thread = this_thread_id();
    pool().threads.retain(|(member, _)| *member != thread);
}

/// While the returned guard lives, the calling thread and the compile
/// pool's threads step aside.
pub(crate) fn compiling() -> Compiling {
    if let Some((period, _)) = setting() {
        start();
        let mut pool = pool();
        pool.compiles += 1;
        if pool.compiles == 1 {
            pool.threads.iter().for_each(|(_, timer)| timer.set(period));
        }
    }
    Compiling(())
}

/// See [`compiling`].
pub(crate) struct Compiling(());

impl Drop for Compiling {
    fn drop(&mut self) {
        if setting().is_some() {
            stop();
            let mut pool = pool();
            pool.compiles -= 1;
            if pool.compiles == 0 {
                pool.threads
                    .iter()
                    .for_each(|(_, timer)| timer.set(Duration::ZERO));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;

    /// Spins for `wall` and returns how often the thread stepped aside.
    pub(crate) fn spin_for(wall: Duration) -> u64 {
        let (before, started) = (STEPS.with(Cell::get), Instant::now());
        while started.elapsed() < wall {
            std::hint::spin_loop();
        }
        STEPS.with(Cell::get) - before
    }

    #[test]
    fn a_working_thread_steps_aside_every_period_until_stopped() {
        let cpu = crate::deadline::thread_cpu_time;
        let (cpu_before, started) = (cpu(), Instant::now());
        arm_this_thread(PERIOD, REST);
        let steps = spin_for(Duration::from_millis(60));
        stop();
        let (wall, used) = (started.elapsed(), cpu().zip(cpu_before).map(|(a, b)| a - b));
        // ~60 expected; fewer only if the thread waited for a core a lot.
        assert!(steps >= 20, "stepped aside {steps} times in 60 ms");
        if let Some(used) = used {
            assert!(
                used + REST * (steps as u32) / 2 <= wall,
                "used {used:?} of CPU in {wall:?} while stepping aside {steps} times"
            );
        }
        let after = spin_for(Duration::from_millis(20));
        assert!(after <= 1, "stepped aside {after} times after it stopped");
    }

    // No other test in this crate's unit tests compiles, so nothing else
    // arms the pool while this one measures it idle.
    #[test]
    fn compile_pool_threads_step_aside_while_a_compile_runs() {
        assert!(
            setting().is_some(),
            "run the tests without {STEP_ASIDE_ENV}: stepping aside is off"
        );
        let (to_pool, pool_hears) = mpsc::channel::<()>();
        let (pool_says, from_pool) = mpsc::channel::<u64>();
        let pool_thread = std::thread::spawn(move || {
            join_compile_pool();
            while pool_hears.recv().is_ok() {
                pool_says.send(spin_for(Duration::from_millis(40))).unwrap();
            }
            leave_compile_pool();
        });
        let spin = || {
            to_pool.send(()).unwrap();
            from_pool.recv().unwrap()
        };
        let idle = spin();
        let compiling = compiling();
        let during = spin();
        drop(compiling);
        let after = spin();
        drop(to_pool);
        pool_thread.join().unwrap();
        assert!(idle <= 1, "stepped aside {idle} times with no compile");
        assert!(
            during >= 12,
            "stepped aside {during} times in 40 ms of a compile"
        );
        assert!(after <= 1, "stepped aside {after} times after the compile");
    }
}
