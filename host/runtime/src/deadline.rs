//! How long a guest call may run: its `call_deadline`.
//!
//! The engine's epoch advances every `EPOCH_TICK` of wall-clock time
//! (`engine.rs`), and each call gets an epoch deadline of `call_deadline`
//! from its start. When the deadline passes, wasmtime asks
//! [`CallClock::on_deadline`] what to do:
//!
//! - on a partition thread at the normal priority, the call is interrupted
//!   ([`super::GuestFailureKind::DeadlineExceeded`]): wall-clock time is
//!   what the call took from the tenant's and everyone's point of view;
//! - on a thread that gave way ([`super::busy`]: it runs at the lowest
//!   priority, behind every other thread that wants a core), wall-clock time also
//!   counts the time the thread waited for a core, which under load can be
//!   most of it. There the deadline is measured in the CPU time the call
//!   actually got: the call goes on, deadline by deadline, until it has
//!   used `call_deadline` of CPU. So giving way slows a busy tenant down
//!   but never fails its calls, and a guest that loops still stops after
//!   the same work.
//!
//! Reading a thread's CPU time is a system call (~0.7 µs here, a third of
//! a warm command), so it is read only on threads that gave way.

use std::time::Duration;

use wasmtime::UpdateDeadline;

use super::busy::this_thread_gave_way;
use super::engine::deadline_ticks;

/// The deadline of the call running in one instance.
#[derive(Debug, Default)]
pub(crate) struct CallClock {
    /// The call's `call_deadline`.
    deadline: Duration,
    /// The thread's CPU time when the call started, on a thread that gave
    /// way (`None`: the deadline is wall-clock time).
    cpu_at_start: Option<Duration>,
}

impl CallClock {
    /// Starts a call with `deadline`; returns the epoch ticks to set as the
    /// store's epoch deadline.
    pub(crate) fn start(&mut self, deadline: Duration) -> u64 {
        self.deadline = deadline;
        self.cpu_at_start = if this_thread_gave_way() {
            thread_cpu_time()
        } else {
            None
        };
        deadline_ticks(deadline)
    }

    /// What to do when the call's epoch deadline has passed (see the
    /// module): interrupt it, or let it run until it has used its deadline
    /// in CPU time.
    pub(crate) fn on_deadline(&self) -> UpdateDeadline {
        let used = self
            .cpu_at_start
            .zip(thread_cpu_time())
            .map(|(start, now)| now.saturating_sub(start));
        match used {
            Some(used) if used < self.deadline => {
                UpdateDeadline::Continue(deadline_ticks(self.deadline - used))
            }
            _ => UpdateDeadline::Interrupt,
        }
    }
}

/// The calling thread's CPU time so far (`None` if it cannot be read).
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec`, which we own, and
    // reads nothing of ours.
    #[allow(unsafe_code)]
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    (status == 0).then(|| Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_normal_priority_the_deadline_is_wall_clock_time() {
        let mut clock = CallClock::default();
        clock.start(Duration::from_secs(60));
        assert!(matches!(clock.on_deadline(), UpdateDeadline::Interrupt));
    }

    #[test]
    fn after_giving_way_a_call_runs_until_it_has_used_its_deadline_in_cpu_time() {
        let deadline = Duration::from_millis(30);
        let mut clock = CallClock {
            deadline,
            cpu_at_start: thread_cpu_time(),
        };
        // Waiting costs no CPU: the call may go on, for about what is left.
        std::thread::sleep(deadline * 2);
        match clock.on_deadline() {
            UpdateDeadline::Continue(ticks) => {
                assert!(ticks >= 1 && ticks <= deadline_ticks(deadline), "{ticks}")
            }
            _ => panic!("a call that only waited was interrupted"),
        }
        // Spinning for the deadline uses it up.
        let start = thread_cpu_time().unwrap();
        while thread_cpu_time().unwrap() - start < deadline {
            std::hint::spin_loop();
        }
        assert!(matches!(clock.on_deadline(), UpdateDeadline::Interrupt));
        clock.cpu_at_start = None;
        assert!(matches!(clock.on_deadline(), UpdateDeadline::Interrupt));
    }
}
