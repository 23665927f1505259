//! Following a namespace's log as it grows: the feed the bus and catch-up
//! subscriptions read when the events are in JetStream, so every event
//! crosses NATS once (there is no second publish for subscribers).
//!
//! A follower is an ordered consumer on the namespace's stream (ephemeral,
//! one replica, no acks; the client re-creates it at the next sequence
//! whenever it sees a gap or misses heartbeats), starting at the position
//! after the one asked for. It sees every event stored by any node, in
//! position order, from history into live without a switch.
//!
//! **Invariant:** a follower hands out position `next` and then
//! `next + 1`, never anything else: a message before `next` (a re-created
//! consumer's overlap) is passed over, one after it is an error (the log
//! is gapless, see [`crate::EventStore::read_log`], so a skipped sequence
//! means something is wrong, and the caller must not carry on as if it had
//! seen everything).
//!
//! A namespace that has no stream yet (no event stored) is looked for
//! again every [`NO_STREAM_POLL`] until its first event makes one. When
//! the consumer cannot be made or fails (the servers are unreachable), the
//! follower tries again, waiting longer each time up to [`MAX_BACKOFF`],
//! and keeps its place: a follower never ends by itself.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::StreamMessage};
use futures_util::StreamExt;

use super::{codec, create_consumer, streams::is_stream_not_found, unavailable};
use crate::{LogFollower, RecordedEvent, StoreError};
use aether_core::namespace::Namespace;
use aether_core::namespace::layout::store_stream_name;

/// How often a follower looks for the stream of a namespace without
/// events.
const NO_STREAM_POLL: Duration = Duration::from_millis(250);

/// The longest pause between attempts to re-create a failed consumer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows one namespace's stream; see the module docs.
pub(super) struct Follower {
    context: jetstream::Context,
    prefix: String,
    namespace: Namespace,
    /// The position handed out next.
    next: u64,
    /// The consumer's messages. (In a mutex only to make the follower
    /// `Sync`: it is reached through `&mut self` with `get_mut`, never
    /// locked.)
    messages: Option<Mutex<consumer::pull::Ordered>>,
    backoff: Duration,
}

impl Follower {
    pub(super) fn new(
        context: jetstream::Context,
        prefix: String,
        namespace: Namespace,
        after: u64,
    ) -> Follower {
        Follower {
            context,
            prefix,
            namespace,
            next: after.saturating_add(1),
            messages: None,
            backoff: NO_STREAM_POLL,
        }
    }

    /// An ordered consumer from `self.next`, or `None` while the namespace
    /// has no stream. (Takes what it needs by value: the follower itself
    /// is not `Sync`, so no reference to it may be held across an await.)
    fn open(
        &self,
    ) -> impl Future<Output = Result<Option<consumer::pull::Ordered>, StoreError>> + use<> {
        let name = store_stream_name(&self.prefix, &self.namespace);
        let (context, next) = (self.context.clone(), self.next);
        async move { Self::open_at(context, name, next).await }
    }

    async fn open_at(
        context: jetstream::Context,
        name: String,
        next: u64,
    ) -> Result<Option<consumer::pull::Ordered>, StoreError> {
        let stream = match context.get_stream(&name).await {
            Ok(stream) => stream,
            Err(e) if is_stream_not_found(&e) => return Ok(None),
            Err(e) => return Err(unavailable(format!("finding the stream {name}: {e}"))),
        };
        // Bounded (a creation placed on a dead server is never answered):
        // the follower tries again.
        let config = consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ..Default::default()
        };
        let consumer = create_consumer(&stream, config)
            .await
            .map_err(|e| unavailable(format!("following the stream {name}: {e}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable(format!("following the stream {name}: {e}")))?;
        Ok(Some(messages))
    }

    /// Waits before trying again, longer each time.
    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Turns a delivered message into the event at `self.next`, if it is
    /// that one (`None`: an earlier one, delivered again).
    fn event(&self, message: &jetstream::Message) -> Result<Option<RecordedEvent>, StoreError> {
        let info = message
            .info()
            .map_err(|e| unavailable(format!("a delivered message has no stream info: {e}")))?;
        let sequence = info.stream_sequence;
        if sequence < self.next {
            return Ok(None);
        }
        let message = StreamMessage {
            subject: message.subject.clone(),
            sequence,
            headers: message.headers.clone().unwrap_or_default(),
            payload: message.payload.clone(),
            time: info.published,
        };
        if sequence > self.next {
            return Err(StoreError::Corrupt {
                location: format!("{} sequence {sequence}", info.stream),
                message: format!("the log skipped from {} to {sequence}", self.next - 1),
            });
        }
        let event = codec::decode_any(&self.prefix, &message)?;
        if event.stream.namespace != self.namespace {
            return Err(StoreError::Corrupt {
                location: format!("{} sequence {sequence}", info.stream),
                message: format!("holds an event of {}", event.stream),
            });
        }
        Ok(Some(event))
    }
}

#[async_trait::async_trait]
impl LogFollower for Follower {
    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            let Some(messages) = self
                .messages
                .as_mut()
                .map(|m| m.get_mut().unwrap_or_else(PoisonError::into_inner))
            else {
                match self.open().await {
                    Ok(Some(messages)) => {
                        self.messages = Some(Mutex::new(messages));
                        self.backoff = NO_STREAM_POLL;
                    }
                    Ok(None) => tokio::time::sleep(NO_STREAM_POLL).await,
                    Err(error) => {
                        tracing::warn!(namespace = %self.namespace, %error, "cannot follow the namespace's log; trying again");
                        self.pause().await;
                    }
                }
                continue;
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    if let Some(event) = self.event(&message)? {
                        self.next += 1;
                        return Ok(event);
                    }
                }
                failed => {
                    let error = match failed {
                        Some(Err(error)) => error.to_string(),
                        _ => "the consumer ended".to_owned(),
                    };
                    tracing::warn!(namespace = %self.namespace, %error, "following the namespace's log failed; following it again");
                    self.messages = None;
                    self.pause().await;
                }
            }
        }
    }
}
