//! The sandbox every guest call runs in: a deterministic, capability-free
//! WASI p2 context and the per-instance limits.
//!
//! Language runtimes (Rust's std, CPython, SpiderMonkey) import most of WASI
//! p2, so every WASI import links, but none grants anything:
//!
//! - filesystem: present, nothing preopened, so every open fails;
//! - sockets and name lookup: denied (TCP, UDP and lookup disabled, every
//!   address refused);
//! - environment, arguments, stdin: empty;
//! - stdout and stderr: captured with a size cap and forwarded to the host's
//!   log after each call ([`GuestOutput`]);
//! - clocks: frozen, set by the host before each call ([`CallContext`]) to
//!   the command's timestamp (or, during `apply`, the first event's);
//! - random: a blake3 output stream seeded from the stream id and version
//!   the call is about, so a replay sees the same bytes.
//!
//! **Architecture invariant:** a guest's only inputs are the arguments the
//! host passes and this context. That is what makes replay deterministic and
//! tenants unable to see each other or the host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::v1::aether::aggregate0_1_0::log as v1_log;
use super::bindings::v2::aether::aggregate0_2_0::log as v2_log;
use super::bindings::v3::aether::aggregate0_3_0::log as v3_log;
use super::bindings::v4::aether::aggregate0_4_0::log as v4_log;
use super::deadline::CallClock;

/// Everything a guest call sees: its WASI context, its resources, its limits.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: MemoryLimit,
    pub(crate) call: CallContext,
    pub(crate) output: GuestOutput,
    /// Who is calling, for the log lines the guest writes.
    pub(crate) label: Arc<str>,
    /// The running call's deadline.
    pub(crate) clock: CallClock,
}

impl HostState {
    /// A fresh state for one instance; `label` names it in logs
    /// (`namespace/aggregate-type@digest`).
    pub(crate) fn new(label: Arc<str>, memory_limit: usize, output_limit: usize) -> Self {
        let call = CallContext::default();
        let output = GuestOutput::new(output_limit);
        let mut builder = WasiCtx::builder();
        builder
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .wall_clock(FrozenWallClock(call.clone()))
            .monotonic_clock(FrozenMonotonicClock(call.clone()))
            .secure_random(SeededRandom(call.clone()))
            .insecure_random(SeededRandom(call.clone()))
            .insecure_random_seed(0)
            .max_random_size(1 << 20);
        Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limits: MemoryLimit {
                max_bytes: memory_limit,
                exceeded: false,
            },
            call,
            output,
            label,
            clock: CallClock::default(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// A guest's log line, at most 4 KiB, tagged with the guest's label.
    fn guest_log(&self, level: tracing::Level, message: &str) {
        let message = truncate(message, 4096);
        let guest = &*self.label;
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "aether::guest", guest, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "aether::guest", guest, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "aether::guest", guest, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "aether::guest", guest, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "aether::guest", guest, "{message}"),
        }
    }
}

/// `log` is the same function in every served version of the WIT.
macro_rules! guest_log_host {
    ($($log:ident),*) => {$(
        impl $log::Host for HostState {
            fn log(&mut self, level: $log::Level, message: String) {
                let level = match level {
                    $log::Level::Trace => tracing::Level::TRACE,
                    $log::Level::Debug => tracing::Level::DEBUG,
                    $log::Level::Info => tracing::Level::INFO,
                    $log::Level::Warn => tracing::Level::WARN,
                    $log::Level::Error => tracing::Level::ERROR,
                };
                self.guest_log(level, &message);
            }
        }
    )*};
}

guest_log_host!(v1_log, v2_log, v3_log, v4_log);

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The memory cap of one instance. Growing past it traps the call, and the
/// flag tells the runtime why the trap happened.
pub(crate) struct MemoryLimit {
    max_bytes: usize,
    pub(crate) exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the guest asked for {desired} bytes, the limit is {} bytes",
                self.max_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What the host fixes before each guest call: the time the guest's clocks
/// show and the seed of its random numbers. Shared with the WASI context.
#[derive(Clone, Default)]
pub(crate) struct CallContext(Arc<CallInner>);

#[derive(Default)]
struct CallInner {
    now_ns: AtomicU64,
    random: Mutex<Random>,
}

/// The guest's random numbers in one call: only its seed until the guest
/// asks for some (most calls never do), then the stream derived from it.
#[derive(Default)]
enum Random {
    /// Before the first call: zeros.
    #[default]
    Unset,
    Seed(Vec<u8>),
    Reader(blake3::OutputReader),
}

impl CallContext {
    /// Freezes the clocks at `timestamp_ms` and seeds random from `seed`
    /// (written into a buffer the calls reuse).
    pub(crate) fn set(&self, timestamp_ms: u64, seed: std::fmt::Arguments<'_>) {
        use std::io::Write;
        self.0
            .now_ns
            .store(timestamp_ms.saturating_mul(1_000_000), Ordering::Relaxed);
        let mut random = self.0.random.lock().unwrap_or_else(|e| e.into_inner());
        let mut buffer = match std::mem::take(&mut *random) {
            Random::Seed(mut buffer) => {
                buffer.clear();
                buffer
            }
            Random::Unset | Random::Reader(_) => Vec::new(),
        };
        // Writing into a Vec cannot fail.
        let _ = buffer.write_fmt(seed);
        *random = Random::Seed(buffer);
    }

    fn now_ns(&self) -> u64 {
        self.0.now_ns.load(Ordering::Relaxed)
    }

    fn fill(&self, buf: &mut [u8]) {
        let mut random = self.0.random.lock().unwrap_or_else(|e| e.into_inner());
        if let Random::Seed(seed) = &*random {
            let reader = blake3::Hasher::new_derive_key("aether guest random v1")
                .update(seed)
                .finalize_xof();
            *random = Random::Reader(reader);
        }
        match &mut *random {
            Random::Reader(reader) => reader.fill(buf),
            _ => buf.fill(0),
        }
    }
}

struct FrozenWallClock(CallContext);

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.now_ns())
    }
}

struct FrozenMonotonicClock(CallContext);

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0.now_ns()
    }
}

struct SeededRandom(CallContext);

impl rand_core::TryRng for SeededRandom {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

/// The guest's stdout and stderr: kept in memory up to a cap per call, then
/// drained into the host's log. Output past the cap is dropped and counted,
/// never an error: printing must not be a way to break a guest.
#[derive(Clone)]
pub(crate) struct GuestOutput(Arc<Mutex<OutputBuffer>>);

struct OutputBuffer {
    bytes: Vec<u8>,
    dropped: usize,
    limit: usize,
}

impl GuestOutput {
    fn new(limit: usize) -> Self {
        Self(Arc::new(Mutex::new(OutputBuffer {
            bytes: Vec::new(),
            dropped: 0,
            limit,
        })))
    }

    fn push(&self, data: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = out.limit.saturating_sub(out.bytes.len());
        let keep = room.min(data.len());
        out.bytes.extend_from_slice(&data[..keep]);
        out.dropped += data.len() - keep;
    }

    /// Writes what the guest printed during the last call to the log.
    pub(crate) fn flush_to_log(&self, guest: &str) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if out.bytes.is_empty() && out.dropped == 0 {
            return;
        }
        for line in String::from_utf8_lossy(&out.bytes).lines() {
            tracing::info!(target: "aether::guest", guest, "{line}");
        }
        if out.dropped > 0 {
            tracing::warn!(target: "aether::guest", guest, dropped = out.dropped, "guest output over the cap was dropped");
        }
        out.bytes.clear();
        out.dropped = 0;
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
