//! How the host's threads ask Linux's scheduler for time.
//!
//! Linux's EEVDF scheduler (6.12 and later) lets each thread ask for its
//! own time slice (`sched_setattr(2)`; older kernels and other systems
//! ignore it). A thread that has just been given a core keeps it against
//! one that wakes until its slice is used up (0.75 ms per CPU doubling,
//! 1.4 ms on a 2-core machine), unless the waking thread asks for a
//! shorter slice. Two requests come from here:
//!
//! - [`answer_promptly`], for the threads every request passes through
//!   (the node's async workers, a namespace's partition threads, the
//!   store's writer): the shortest slice the kernel takes, so that one of
//!   them that wakes waits about [`PROMPT_SLICE`] for a core, not a whole
//!   default slice, behind whatever runs there (another request's work,
//!   another process). They take turns with each other as often.
//! - [`set_nice_and_slice`], for lowered threads (compiles, a namespace
//!   that gave way: `aether-runtime`'s `background.rs`), with a long slice.
//!
//! `AETHER_SHORT_SLICE=off` leaves the node's threads at the default slice
//! (to measure what it changes); lowered threads keep their long one.

use std::time::Duration;

/// The slice [`answer_promptly`] asks for: the shortest the kernel takes.
pub const PROMPT_SLICE: Duration = Duration::from_micros(100);

/// Asks for [`PROMPT_SLICE`] for the calling thread, keeping its nice
/// value, unless `AETHER_SHORT_SLICE=off`. For threads on the path of
/// every request; a thread lowered later takes the long slice instead.
/// Failure is harmless and ignored (the thread keeps the default slice).
pub fn answer_promptly() {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *OFF.get_or_init(|| std::env::var("AETHER_SHORT_SLICE").is_ok_and(|v| v == "off")) {
        return;
    }
    set_nice_and_slice(nice_of_this_thread(), PROMPT_SLICE);
}

/// The calling thread's id (`gettid(2)`), as Linux's per-thread calls
/// and `/proc/<pid>/task` name it.
#[cfg(target_os = "linux")]
pub fn this_thread_id() -> libc::pid_t {
    // SAFETY: `gettid` takes nothing and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::gettid()
    }
}

/// The calling thread's nice value (Linux's are per thread); 0 off Linux.
pub fn nice_of_this_thread() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `getpriority` takes plain integers and touches no memory
        // of ours; `PRIO_PROCESS` with a thread id reads only that thread's
        // nice value.
        #[allow(unsafe_code)]
        unsafe {
            libc::getpriority(libc::PRIO_PROCESS, this_thread_id() as libc::id_t)
        }
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Sets the calling thread's nice value and time slice in one call (the
/// slice only under the normal policies, which is where the host's
/// threads run). Raising the nice value needs no privilege, lowering it
/// does; a refused call changes nothing. Does nothing off Linux.
pub fn set_nice_and_slice(nice: i32, slice: Duration) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sched_getscheduler` takes a plain integer (0: this
        // thread). `sched_setattr` (pid 0: this thread) reads `attr`, which
        // lives across the call and whose `size` says how much of it the
        // kernel may read.
        #[allow(unsafe_code)]
        unsafe {
            let policy = libc::sched_getscheduler(0);
            if policy == libc::SCHED_OTHER || policy == libc::SCHED_BATCH {
                let attr = SchedAttr {
                    size: std::mem::size_of::<SchedAttr>() as u32,
                    policy: policy as u32,
                    nice,
                    runtime: slice.as_nanos() as u64,
                    ..SchedAttr::default()
                };
                libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, slice);
}

/// The time slice thread `tid` runs with (any process's; 0: the calling
/// thread), where the kernel lets threads set their own (Linux 6.12 and
/// later); `None` on older kernels, elsewhere, or if there is no such
/// thread.
pub fn slice_of_thread(tid: i32) -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut attr = SchedAttr::default();
        // SAFETY: `sched_getattr` writes at most `size` (its third
        // argument) bytes into `attr`, which is that large and lives across
        // the call.
        #[allow(unsafe_code)]
        let read = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                tid,
                &mut attr as *mut SchedAttr,
                std::mem::size_of::<SchedAttr>() as u32,
                0,
            )
        };
        // Before 6.12 the kernel reports no slice (0) for the normal policies.
        (read == 0 && attr.runtime > 0).then(|| Duration::from_nanos(attr.runtime))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tid;
        None
    }
}

/// `struct sched_attr` of `sched_setattr(2)`, its first version (48 bytes;
/// for the normal policies `runtime` is the thread's time slice in ns).
#[cfg(target_os = "linux")]
#[derive(Default)]
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_thread_takes_the_shortest_slice_and_keeps_its_nice_value() {
        std::thread::spawn(|| {
            let default = slice_of_thread(0);
            set_nice_and_slice(nice_of_this_thread() + 2, Duration::from_millis(5));
            let nice = nice_of_this_thread();
            answer_promptly();
            assert_eq!(nice_of_this_thread(), nice, "the nice value is kept");
            match default {
                // Linux 6.12 and later: the kernel reports slices.
                Some(_) => assert_eq!(slice_of_thread(0), Some(PROMPT_SLICE)),
                None => assert_eq!(slice_of_thread(0), None, "no slices on this kernel"),
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn another_threads_slice_is_read_by_its_id() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            set_nice_and_slice(nice_of_this_thread(), Duration::from_millis(7));
            sender.send(this_thread_id()).unwrap();
            wait.recv().unwrap();
        });
        let tid = receiver.recv().unwrap();
        if slice_of_thread(0).is_some() {
            assert_eq!(slice_of_thread(tid), Some(Duration::from_millis(7)));
        }
        done.send(()).unwrap();
        other.join().unwrap();
        assert_eq!(slice_of_thread(tid), None, "the thread is gone");
    }
}
