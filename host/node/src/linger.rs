//! Lingering: reading the rest of a request body the API answered without
//! reading it all.
//!
//! The API answers some requests before their body is read: an upload
//! without a valid token, to an unknown namespace, declared over the size
//! limit, past the namespace's upload places. hyper would then close the
//! connection with the rest of the body unread, and the kernel answers the
//! bytes still arriving with a reset: a client that sends its whole body
//! before it reads the answer (Python's `http.client`, many HTTP libraries
//! without `Expect: 100-continue`) sees "broken pipe" or "connection reset"
//! instead of the error that names its problem. So a body dropped before
//! its end is read on in the background and discarded, within bounds: at
//! most [`LINGER_BYTES`] more bytes and [`LINGER_TIME`], and at most
//! [`MAX_LINGERING`] bodies node-wide at once (beyond, the connection
//! closes at once, as before). The body's own minimum rate
//! (`connections::TimedBody`) still applies. Read to its end, the body
//! leaves the connection free for the client's next request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

/// The most bytes read on from one body after the API dropped it: a large
/// component (the runtime's default limit is 64 MiB).
pub(crate) const LINGER_BYTES: u64 = 64 << 20;
/// The longest one body is read on after the API dropped it.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(5);
/// How many dropped bodies the node reads on at once.
pub(crate) const MAX_LINGERING: usize = 4;

/// The node-wide places for bodies being read on ([`MAX_LINGERING`]).
pub(crate) fn places() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_LINGERING))
}

/// A request body that, dropped before its end, is read to its end in the
/// background (see the module docs).
pub(crate) struct Lingering<B>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    inner: Option<B>,
    ended: bool,
    places: Arc<Semaphore>,
}

impl<B> Lingering<B>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    pub(crate) fn new(inner: B, places: Arc<Semaphore>) -> Self {
        Self {
            inner: Some(inner),
            ended: false,
            places,
        }
    }
}

impl<B> http_body::Body for Lingering<B>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), B::size_hint)
    }
}

impl<B> Drop for Lingering<B>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || body.is_end_stream() {
            return;
        }
        // No place, or no runtime (the node is stopping): close as before.
        let Ok(place) = self.places.clone().try_acquire_owned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _place = place;
            let _ = tokio::time::timeout(LINGER_TIME, discard(body)).await;
        });
    }
}

/// Reads `body` to its end, or until it fails or [`LINGER_BYTES`] were
/// read, keeping nothing.
async fn discard<B>(mut body: B)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.len() as u64;
            if read > LINGER_BYTES {
                return;
            }
        }
    }
}
