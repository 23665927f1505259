//! Work that no tenant is waiting on right now runs at a lower CPU
//! priority than commands: compiling a component (seconds of CPU for a
//! large one, and any tenant may deploy) must not slow other tenants'
//! commands, which run on their lanes' threads and the node's async
//! workers at the normal priority.
//!
//! A compile runs on a thread of its own ([`run_niced`]) whose nice value
//! is raised by [`NICE`], and wasmtime's parallel compilation runs on the
//! global rayon pool, whose threads are given the same nice value when the
//! pool starts ([`lower_compile_pool_priority`]). Raising a thread's nice
//! value needs no privilege; the thread ends with the work, so nothing else
//! ever runs at that priority.

/// How far compile threads' nice value is raised above the node's (0 is
/// normal, 19 the lowest).
pub(crate) const NICE: i32 = 10;

/// Lowers the calling thread's CPU priority by [`NICE`].
fn lower_this_threads_priority() {
    lower_this_thread_by(NICE);
}

/// Raises the calling thread's nice value by `steps` (at most to 19), so a
/// node started under `nice` keeps its threads' order. Linux nice values
/// are per thread; raising one needs no privilege, lowering it again does,
/// so callers treat it as one-way. Failure is harmless and ignored: the
/// thread then keeps its priority.
pub(crate) fn lower_this_thread_by(steps: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid`, `getpriority` and `setpriority` take plain
        // integers and touch no memory of ours; `PRIO_PROCESS` with a
        // thread id reads and changes only this thread's nice value.
        #[allow(unsafe_code)]
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + steps).min(19));
        }
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
        .start_handler(|_| lower_this_threads_priority())
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
