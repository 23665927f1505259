//! Connection hygiene: the node's own accept loop, so that no client, slow
//! or idle or many, can starve the node or keep it from stopping.
//!
//! Each connection is served by hyper's HTTP/1.1 server under the API's
//! router, within [`ConnectionLimits`]:
//!
//! | Limit | Enforced where | Exceeding it |
//! |---|---|---|
//! | `header_read_timeout` | hyper, from when the node waits for a request's head (on a kept-alive connection: from the end of the previous response) | the connection is closed |
//! | `body_read_timeout`, `min_body_bytes_per_sec` | [`TimedBody`] around every request body | the read fails: `408 request_timeout`, and the connection is closed |
//! | a body the API answered without reading to its end | [`Lingering`] around every request body | its rest is read and discarded in the background, within bounds (`linger.rs`), so the client reads the answer instead of a reset |
//! | `keep_alive_timeout` | the connection's task: no request in flight and no byte read or written for that long | the connection is closed (gracefully: between requests) |
//! | `max_connections_per_address` | the accept loop (`admission.rs`), per client (`peers.rs`: an IPv4 address or an IPv6 /64), reserve included | the client's next connections are answered `429 too_many_connections` (at most 16 at once; beyond, closed at once) |
//! | `max_connections` | the accept loop (`admission.rs`) | the next connections go to the operations reserve |
//! | `ops_reserve` | the accept loop (`admission.rs`) | beyond it, a connection is closed at once |
//! | `shutdown_grace` | [`serve`], after the stop signal | connections still open are dropped |
//!
//! A connection over `max_connections` still gets a slot from a small
//! reserve, where only `/healthz`, `/readyz` and `/metrics` are served
//! (anything else: `503 overloaded`), so an orchestrator's probes and the
//! operator's metrics answer while clients hold every ordinary slot. The
//! per-client cap keeps one client, anonymous or not, from holding all of
//! them: others still get ordinary slots until many clients together fill
//! the node (a flood from many addresses is for a proxy in front of it).
//!
//! Shutdown: the listener closes, every connection is told to finish
//! (hyper's graceful shutdown: idle ones close now, ones with a request in
//! flight after its response), and after `shutdown_grace` whatever is
//! still open is dropped, so a SIGTERM'd node exits in bounded time
//! whatever its clients do.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::admission::{Admission, Serving, Slot};
use super::linger::{self, Lingering};
use super::metrics::ConnectionCounts;

/// How the node treats connections (flags of `aether serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to receive a request's head (request line and headers), counted
    /// from when the node starts waiting for it. Default: 10 s.
    pub header_read_timeout: Duration,
    /// Time a request body gets before it must keep arriving at
    /// `min_body_bytes_per_sec`: the body must be complete by
    /// `body_read_timeout + received / min_body_bytes_per_sec` after the
    /// request's head. Default: 10 s.
    pub body_read_timeout: Duration,
    /// The slowest a request body may arrive, past `body_read_timeout`.
    /// Default: 16 KiB/s.
    pub min_body_bytes_per_sec: u64,
    /// How long a connection with no request in flight may stay open
    /// without a byte read or written. Default: 5 s.
    pub keep_alive_timeout: Duration,
    /// Connections served at once. Default: 1 024.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address, an IPv6 /64) may have open
    /// at once, reserve included; more are answered `429
    /// too_many_connections`. Default: 256, a quarter of `max_connections`.
    pub max_connections_per_address: usize,
    /// Further connections kept for `/healthz`, `/readyz` and `/metrics`
    /// once `max_connections` are open. Default: 16.
    pub ops_reserve: usize,
    /// How long shutdown waits for connections to finish before dropping
    /// them. Default: 20 s.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            min_body_bytes_per_sec: 16 << 10,
            keep_alive_timeout: Duration::from_secs(5),
            max_connections: 1_024,
            max_connections_per_address: 256,
            ops_reserve: 16,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl ConnectionLimits {
    /// Refuses limits that would refuse every client.
    pub fn check(&self) -> anyhow::Result<()> {
        let zero = [
            ("header read timeout", self.header_read_timeout.is_zero()),
            ("body read timeout", self.body_read_timeout.is_zero()),
            ("minimum body rate", self.min_body_bytes_per_sec == 0),
            ("keep-alive timeout", self.keep_alive_timeout.is_zero()),
            ("connection cap", self.max_connections == 0),
            (
                "per-address connection cap",
                self.max_connections_per_address == 0,
            ),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            anyhow::bail!("the {name} must be greater than zero");
        }
        Ok(())
    }
}

/// Serves `router` on `listener` within `limits` until `stop` completes,
/// then shuts the connections down within `limits.shutdown_grace`; counts
/// its connections in `counts`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    (limits, counts): (ConnectionLimits, Arc<ConnectionCounts>),
    stop: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let mut admission = Admission::new(&limits, counts);
    let (closing, closing_seen) = watch::channel(false);
    let lingering = linger::places();
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => {
                let (stream, address) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, say: wait, do not spin.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = admission.slot_for(address.ip(), &limits) else {
                    continue;
                };
                connections.spawn(connection(
                    stream,
                    slot,
                    router.clone(),
                    limits.clone(),
                    lingering.clone(),
                    closing_seen.clone(),
                ));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    closing.send_replace(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace_ms = limits.shutdown_grace.as_millis() as u64,
            "shutdown grace period over: dropping the connections still open"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection until the client or the node ends it.
async fn connection(
    stream: TcpStream,
    slot: Slot,
    router: Router,
    limits: Arc<ConnectionLimits>,
    lingering: Arc<Semaphore>,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = request_service(
        router,
        (limits.clone(), lingering),
        activity.clone(),
        slot.serving(),
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let served = http.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(served);
    let mut idle_check = tokio::time::interval(
        (limits.keep_alive_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
    );
    let mut finishing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            _ = closing.wait_for(|closing| *closing), if !finishing => {
                finishing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = idle_check.tick(), if !finishing => {
                if activity.idle_for() >= limits.keep_alive_timeout {
                    finishing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(slot);
}

/// The router, with every request body timed ([`TimedBody`]) and read to
/// its end if the API drops it early ([`Lingering`], on `lingering`'s
/// places), and every response counted as in flight until its body is
/// done; only the requests `serving` serves.
fn request_service(
    router: Router,
    (limits, lingering): (Arc<ConnectionLimits>, Arc<Semaphore>),
    activity: Arc<Activity>,
    serving: Serving,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send {
    tower::service_fn(move |request: Request<Incoming>| {
        let (router, limits, activity) = (router.clone(), limits.clone(), activity.clone());
        let lingering = lingering.clone();
        async move {
            let in_flight = InFlight::begin(activity);
            if let Some(refused) = serving.refusal(request.uri().path(), &limits) {
                return Ok(refused);
            }
            let request = request
                .map(|body| Body::new(Lingering::new(TimedBody::new(body, &limits), lingering)));
            let response = router.oneshot(request).await?;
            Ok(response.map(|body| Body::new(Counted { body, in_flight })))
        }
    })
}

/// When a connection last moved a byte, and how many of its requests are
/// in flight.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long the connection has been idle: zero while a request is in
    /// flight.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// A request counted in flight from its head until its response's body is
/// done (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight.
struct Counted {
    body: Body,
    #[allow(dead_code)] // held for its `Drop`
    in_flight: InFlight,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that arrived too slowly: the error `TimedBody` ends
/// with, which the API answers with `408 request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived too slowly: {received} bytes after {elapsed_ms} ms \
     (the node waits {grace_ms} ms, then needs at least {rate} bytes/s)"
)]
pub struct BodyTooSlow {
    received: u64,
    elapsed_ms: u64,
    grace_ms: u64,
    rate: u64,
}

/// A request body with a deadline: complete within `body_read_timeout`
/// plus one second per `min_body_bytes_per_sec` bytes received.
struct TimedBody {
    inner: Incoming,
    started: Instant,
    received: u64,
    grace: Duration,
    rate: u64,
    deadline: Pin<Box<Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, limits: &ConnectionLimits) -> Self {
        let started = Instant::now();
        Self {
            inner,
            started,
            received: 0,
            grace: limits.body_read_timeout,
            rate: limits.min_body_bytes_per_sec.max(1),
            deadline: Box::pin(tokio::time::sleep_until(started + limits.body_read_timeout)),
        }
    }

    fn deadline(&self) -> Instant {
        self.started + body_time(self.grace, self.rate, self.received)
    }
}

/// The time a body that has sent `received` bytes gets in all: `grace`,
/// plus a second per `rate` bytes.
fn body_time(grace: Duration, rate: u64, received: u64) -> Duration {
    grace + Duration::from_secs_f64(received as f64 / rate.max(1) as f64)
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    let deadline = self.deadline();
                    self.deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                    received: self.received,
                    elapsed_ms: self.started.elapsed().as_millis() as u64,
                    grace_ms: self.grace.as_millis() as u64,
                    rate: self.rate,
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream that records when it last moved a byte.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_check_and_zeros_are_named() {
        ConnectionLimits::default().check().unwrap();
        let zero = ConnectionLimits {
            keep_alive_timeout: Duration::ZERO,
            ..ConnectionLimits::default()
        };
        assert_eq!(
            zero.check().unwrap_err().to_string(),
            "the keep-alive timeout must be greater than zero"
        );
        let zero = ConnectionLimits {
            max_connections_per_address: 0,
            ..ConnectionLimits::default()
        };
        assert_eq!(
            zero.check().unwrap_err().to_string(),
            "the per-address connection cap must be greater than zero"
        );
    }

    #[test]
    fn a_body_earns_time_by_arriving() {
        let grace = Duration::from_secs(2);
        assert_eq!(body_time(grace, 1_000, 0), grace);
        assert_eq!(body_time(grace, 1_000, 3_000), Duration::from_secs(5));
        assert_eq!(
            body_time(grace, 0, 10),
            Duration::from_secs(12),
            "a zero rate is one byte/s"
        );
    }
}
