//! Work that no tenant is waiting on right now runs at a lower CPU
//! priority than commands: compiling a component (seconds of CPU for a
//! large one, and any tenant may deploy) must not slow other tenants'
//! commands, which run on their lanes' threads and the node's async
//! workers at the normal priority.
//!
//! A compile runs on a thread of its own ([`run_niced`]) whose nice value
//! is raised by [`NICE`], and wasmtime's parallel compilation runs on the
//! global rayon pool, whose threads are given the same nice value when the
//! pool starts ([`lower_compile_pool_priority`]). Both also take a long
//! time slice, so that a thread at the normal priority that wakes does not
//! wait for one to finish its slice ([`lower_this_thread_by`]). Raising a
//! thread's nice value needs no privilege; the thread ends with the work,
//! so nothing else ever runs at that priority. While any compile runs, its
//! thread and the pool's threads also step aside for a moment every
//! millisecond (`step_aside.rs`).

/// How far compile threads' nice value is raised above the node's (0 is
/// normal, 19 the lowest).
pub(crate) const NICE: i32 = 10;

/// Lowers the calling thread's CPU priority by [`NICE`].
fn lower_this_threads_priority() {
    lower_this_thread_by(NICE);
}

/// The time slice a lowered thread asks the scheduler for: longer than
/// any default one (0.75 ms per CPU doubling, 3 ms at most; 1.4 ms on this
/// project's 2-core machine), so that a thread at the normal priority that
/// wakes takes the core at once (see [`lower_this_thread_by`]). Lowered
/// threads competing with each other (two busy tenants, a busy tenant and
/// a compile) take turns in stretches of up to this long: a busy tenant's
/// commands wait longer, which giving way already accepts.
pub(crate) const LOWERED_SLICE: std::time::Duration = std::time::Duration::from_millis(10);

/// Raises the calling thread's nice value by `steps` (at most to 19), so a
/// node started under `nice` keeps its threads' order, and gives it a long
/// time slice (`LOWERED_SLICE`). Used for compile threads, busy lanes
/// (`busy.rs`) and the bench's attackers.
///
/// Why the slice: on Linux's EEVDF scheduler a thread that has just been
/// given a core keeps it for up to its slice against a thread that wakes,
/// whatever their nice values, unless the waking one has a shorter slice
/// (Linux 6.12 and later let a thread set its own, `sched_setattr`). A
/// lowered thread that stops and starts (a compile, a busy tenant's calls)
/// would otherwise hold a core for up to a slice, again and again, while a
/// light tenant's threads wait. Beside two such threads (2 ms bursts, nice
/// 19) on this project's 2-core machine, a two-thread round trip's p99 was
/// 2.5–2.7 ms with the default slice and 0.06–0.6 ms with a long one
/// (`cargo run --release -p aether-runtime --example wake_latency`,
/// BENCHMARKS.md). Older kernels ignore the slice. The threads requests
/// pass through ask for the shortest slice (`aether_core::thread`).
///
/// Linux nice values are per thread; raising one needs no privilege,
/// lowering it again does, so callers treat it as one-way. Failure is
/// harmless and ignored: the thread then keeps its priority or its slice.
/// `steps` of 0 or less changes nothing.
pub fn lower_this_thread_by(steps: i32) {
    #[cfg(target_os = "linux")]
    if steps > 0 {
        let nice = (aether_core::thread::nice_of_this_thread() + steps).min(19);
        // `set_nice_and_slice` sets the nice value too; this is for where it
        // fails or is left out (another policy).
        // SAFETY: `setpriority` takes plain integers and touches no memory
        // of ours; `PRIO_PROCESS` with a thread id changes only this
        // thread's nice value.
        #[allow(unsafe_code)]
        unsafe {
            let tid = aether_core::thread::this_thread_id() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
        aether_core::thread::set_nice_and_slice(nice, LOWERED_SLICE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = steps;
}

/// Builds the global rayon pool (where wasmtime compiles functions in
/// parallel) with threads [`NICE`] steps below the node's priority. Does nothing if the pool already
/// exists (another runtime in this process built it, or a library did).
pub(crate) fn lower_compile_pool_priority() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|n| format!("aether-compile-{n}"))
        .start_handler(|_| {
            lower_this_threads_priority();
            super::step_aside::join_compile_pool();
        })
        .exit_handler(|_| super::step_aside::leave_compile_pool())
        .build_global();
}

/// Runs `work` on a new thread [`NICE`] steps below the node's priority
/// and awaits its result.
pub(crate) async fn run_niced<T, F>(name: &str, work: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = sender.send(work());
        })?;
    receiver
        .await
        .map_err(|_| std::io::Error::other("the compile thread panicked"))
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod tests {
    use std::time::Duration;

    use aether_core::thread::nice_of_this_thread;

    use super::*;

    /// The calling thread's time slice, where the kernel lets a thread set
    /// its own (Linux 6.12 and later); `None` on older kernels.
    pub(crate) fn slice_of_this_thread() -> Option<Duration> {
        aether_core::thread::slice_of_thread(0)
    }

    #[test]
    fn a_lowered_thread_runs_niced_with_a_long_slice() {
        std::thread::spawn(|| {
            let (nice, slice) = (nice_of_this_thread(), slice_of_this_thread());
            lower_this_thread_by(0);
            assert_eq!(nice_of_this_thread(), nice, "0 steps change nothing");
            assert_eq!(slice_of_this_thread(), slice, "0 steps change nothing");
            lower_this_thread_by(3);
            assert_eq!(nice_of_this_thread(), (nice + 3).min(19));
            if slice.is_some() {
                assert_eq!(slice_of_this_thread(), Some(LOWERED_SLICE));
            }
        })
        .join()
        .unwrap();
    }
}
