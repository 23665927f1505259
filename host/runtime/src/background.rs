//! Work that no tenant is waiting on right now runs at a lower CPU
//! priority than commands: compiling a component (seconds of CPU for a
//! large one, and any tenant may deploy) must not slow other tenants'
//! commands, which run on their lanes' threads and the node's async
//! workers at the normal priority.
//!
//! A compile runs on a thread of its own ([`run_niced`]) whose nice value
//! is raised to [`NICE`], and wasmtime's parallel compilation runs on the
//! global rayon pool, whose threads are given the same nice value when the
//! pool starts ([`lower_compile_pool_priority`]). Raising a thread's nice
//! value needs no privilege; the thread ends with the work, so nothing else
//! ever runs at that priority.

/// The nice value of compile threads (0 is normal, 19 the lowest).
pub(crate) const NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`NICE`] (Linux: nice
/// values are per thread). Failure is harmless and ignored: the work then
/// runs at the normal priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` and `setpriority` take plain integers and touch
        // no memory of ours; `setpriority(PRIO_PROCESS, tid, …)` changes
        // only this thread's nice value.
        #[allow(unsafe_code)]
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
        }
    }
}

/// Builds the global rayon pool (where wasmtime compiles functions in
/// parallel) with threads at [`NICE`]. Does nothing if the pool already
/// exists (another runtime in this process built it, or a library did).
pub(crate) fn lower_compile_pool_priority() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|n| format!("aether-compile-{n}"))
        .start_handler(|_| lower_this_threads_priority())
        .build_global();
}

/// Runs `work` on a new thread at [`NICE`] and awaits its result.
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
