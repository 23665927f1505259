//! Writing to the host's log.
//!
//! Inside a component each line goes to the host through the imported
//! `aether:aggregate/log` interface, which tags it with the namespace,
//! aggregate type and component digest, and cuts long lines. Natively (unit
//! tests, native benchmarks) lines go to standard error, where the test
//! harness captures them.

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Step-by-step detail, usually disabled.
    Trace,
    /// Detail useful when debugging the aggregate.
    Debug,
    /// Normal, noteworthy events.
    Info,
    /// Something unexpected that the aggregate handled.
    Warn,
    /// Something went wrong.
    Error,
}

/// Writes `message` to the host's log at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::aether::aggregate::log as host;
        let level = match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // The imported function exists natively but must not be called.
        eprintln!("[{level:?}] {message}");
    }
}

/// Writes `message` at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes `message` at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes `message` at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes `message` at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes `message` at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}
