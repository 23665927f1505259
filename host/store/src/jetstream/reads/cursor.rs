//! Long reads of an aggregate through a consumer instead of direct gets.
//!
//! A direct get makes the server re-encode every message's stored headers
//! to add its own (`Nats-Sequence`, `Nats-Subject`, …); a consumer's
//! delivery carries the stored headers as they are, with the message's
//! sequence in its reply subject. So a read that wants at least
//! [`LONG_READ`] messages (an activation's batch of a long aggregate) reads
//! them through an ephemeral pull consumer of its own: filtered on the
//! aggregate's subject, delivering from the read's first sequence, no
//! acknowledgements, in memory, one replica, deleted by the server after
//! [`INACTIVE`] without a pull.
//!
//! Every message delivered is checked: the consumer numbers its deliveries
//! and each must follow the one before it (a lost message is an error, not
//! a gap), and it must be on the aggregate's subject; then it goes through
//! the read's checks as a direct get's would (versions in order with no
//! gap, a damaged message is [`StoreError::Corrupt`]). The read still ends
//! only at `limit` or at the aggregate's last message as the leader had it
//! when the read began (or an earlier read knew it had), never because the
//! consumer has nothing more: a consumer that has not caught up (one on a
//! follower) is waited for, at most [`BATCH_WAIT`] per message, after
//! which the read fails as [`StoreError::Unavailable`]. A consumer that
//! cannot be created (within a second: `create_consumer`) or otherwise
//! fails (a lost delivery, an error status) hands the rest of the read to
//! the direct gets.
//!
//! A read that ends with a full batch while the aggregate has more keeps
//! its consumer as a cursor (at most [`MAX_CURSORS`] streams, each for at
//! most [`IDLE`]) and asks it at once for the next batch, so the server
//! sends it while the runtime replays this one; the next read takes the
//! cursor if it starts exactly where the cursor is (the sequence after the
//! last message it delivered). A cursor never says where the stream ends:
//! each read still bounds itself as above, and its messages are the
//! stream's own, which never change. Any other end of a read deletes its
//! consumer (in the background), as does a cursor dropped or forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, stream};
use async_nats::{StatusCode, Subscriber};
use futures_util::StreamExt;

use super::{BATCH_WAIT, Collect, Gather, Reading};
use crate::StreamId;
use crate::jetstream::{JetStreamStore, StoreError, create_consumer, unavailable};

/// The fewest messages a read wants (events, and those it passes before
/// `from`) for it to open a consumer.
pub(super) const LONG_READ: usize = 256;

/// How many streams keep a cursor at once.
const MAX_CURSORS: usize = 16;

/// How long a cursor is kept without a read taking it.
const IDLE: Duration = Duration::from_secs(5);

/// After how long without a pull the server deletes a read's consumer
/// (when the store could not delete it itself).
const INACTIVE: Duration = Duration::from_secs(30);

/// A read's consumer, where it is, and the pull it was last asked.
pub(in crate::jetstream) struct Cursor {
    events: stream::Stream,
    context: jetstream::Context,
    /// The consumer's name (its API subject names it).
    consumer: String,
    /// The JetStream stream's name.
    name: String,
    /// The sequence after the last message it delivered.
    next: u64,
    /// How many messages it delivered (each is numbered).
    delivered: u64,
    pull: Option<Pull>,
}

/// A pull request: where its messages come, and how many it still owes.
struct Pull {
    replies: Subscriber,
    owed: usize,
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let events = self.events.clone();
        let consumer = std::mem::take(&mut self.consumer);
        runtime.spawn(async move {
            if let Err(e) = events.delete_consumer(&consumer).await {
                tracing::debug!("deleting the read consumer {consumer}: {e}");
            }
        });
    }
}

/// The cursors kept between reads (see the module docs).
#[derive(Default, Clone)]
pub(in crate::jetstream) struct Cursors(Arc<Mutex<Shelf>>);

#[derive(Default)]
struct Shelf {
    /// Each cursor with the number it was put away under.
    cursors: HashMap<StreamId, (u64, Cursor)>,
    puts: u64,
}

impl Cursors {
    /// The cursor of `stream` if it is at sequence `next`.
    fn take(&self, stream: &StreamId, next: u64) -> Option<Cursor> {
        let mut shelf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match shelf.cursors.get(stream) {
            Some((_, cursor)) if cursor.next == next => {
                shelf.cursors.remove(stream).map(|(_, cursor)| cursor)
            }
            _ => None,
        }
    }

    /// Keeps `cursor` for the next read of `stream`, for at most [`IDLE`].
    fn put(&self, stream: &StreamId, cursor: Cursor) {
        let put = {
            let mut shelf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if shelf.cursors.len() >= MAX_CURSORS && !shelf.cursors.contains_key(stream) {
                shelf.cursors.clear();
            }
            shelf.puts += 1;
            let put = shelf.puts;
            shelf.cursors.insert(stream.clone(), (put, cursor));
            put
        };
        let cursors = self.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            let mut shelf = cursors.0.lock().unwrap_or_else(PoisonError::into_inner);
            if shelf.cursors.get(&stream).is_some_and(|(p, _)| *p == put) {
                shelf.cursors.remove(&stream);
            }
        });
    }
}

impl Cursor {
    /// Asks the consumer for its next `batch` messages.
    async fn request(&mut self, client: &async_nats::Client, batch: usize) -> Result<(), String> {
        self.pull = None;
        let inbox = client.new_inbox();
        let replies = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| e.to_string())?;
        let request = serde_json::json!({
            "batch": batch,
            "expires": u64::try_from(BATCH_WAIT.as_nanos()).unwrap_or(u64::MAX),
        });
        client
            .publish_with_reply(
                format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", self.name, self.consumer),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.pull = Some(Pull {
            replies,
            owed: batch,
        });
        Ok(())
    }

    /// Fills `reading` with the consumer's messages on `subject`. An inner
    /// error is the consumer's (the read may go on with direct gets); an
    /// outer one is the read's: a message it refuses (damaged, or a
    /// version out of order), or no message for [`BATCH_WAIT`].
    async fn fill<O: Collect>(
        &mut self,
        client: &async_nats::Client,
        subject: &str,
        reading: &mut Reading<'_, O>,
    ) -> Result<Result<(), String>, StoreError> {
        while !reading.done() {
            let pull = match &mut self.pull {
                Some(pull) if pull.owed > 0 => pull,
                _ => {
                    if let Err(e) = self.request(client, reading.batch()).await {
                        return Ok(Err(e));
                    }
                    let Some(pull) = &mut self.pull else {
                        return Ok(Err("no pull".into()));
                    };
                    pull
                }
            };
            // No message for that long: the server is gone or too far
            // behind, and direct gets would wait as long.
            let message = match tokio::time::timeout(BATCH_WAIT, pull.replies.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    return Err(unavailable(format!(
                        "reading {subject}: the connection closed during a pull"
                    )));
                }
                Err(_) => {
                    return Err(unavailable(format!(
                        "reading {subject}: no message from its consumer within {BATCH_WAIT:?}"
                    )));
                }
            };
            if let Some(status) = message.status {
                if status == StatusCode::IDLE_HEARTBEAT {
                    continue;
                }
                return Ok(Err(format!(
                    "a pull was answered {status} {}",
                    message.description.as_deref().unwrap_or_default()
                )));
            }
            pull.owed -= 1;
            let message = jetstream::Message {
                message,
                context: self.context.clone(),
            };
            let (sequence, numbered, time) = match message.info() {
                Ok(info) => (info.stream_sequence, info.consumer_sequence, info.published),
                Err(e) => return Ok(Err(format!("a delivery without its sequence: {e}"))),
            };
            if numbered != self.delivered + 1 {
                return Ok(Err(format!(
                    "delivery {numbered} came after delivery {}: messages were lost",
                    self.delivered
                )));
            }
            let message = message.message;
            if message.subject.as_str() != subject || sequence < self.next {
                return Ok(Err(format!(
                    "delivered sequence {sequence} of {} after sequence {}",
                    message.subject,
                    self.next - 1
                )));
            }
            self.delivered = numbered;
            self.next = sequence + 1;
            reading.push(&StreamMessage {
                subject: message.subject,
                sequence,
                headers: message.headers.unwrap_or_default(),
                payload: message.payload,
                time,
            })?;
        }
        Ok(Ok(()))
    }
}

impl JetStreamStore {
    /// Fills `reading` (of the aggregate on `subject` in `events`, named
    /// `name`) through a consumer: the cursor kept at where it starts,
    /// else a new consumer if the read is long. Whether it read all the
    /// read needs (else the caller reads the rest with direct gets, from
    /// where this one stopped).
    pub(super) async fn read_by_consumer<O: Collect>(
        &self,
        events: &stream::Stream,
        name: &str,
        subject: &str,
        reading: &mut Reading<'_, O>,
    ) -> Result<bool, StoreError> {
        let mut cursor = match self.cursors.take(reading.stream, reading.next) {
            Some(cursor) => cursor,
            None if reading.batch() >= LONG_READ => {
                match self.open_cursor(events, name, subject, reading.next).await {
                    Ok(cursor) => cursor,
                    Err(e) => {
                        tracing::debug!("reading {subject} with direct gets: {e}");
                        return Ok(false);
                    }
                }
            }
            None => return Ok(false),
        };
        if let Err(e) = cursor.fill(&self.client, subject, reading).await? {
            tracing::debug!(
                "reading {subject} from sequence {} with direct gets: {e}",
                reading.next
            );
            return Ok(false);
        }
        self.keep(cursor, reading).await;
        Ok(true)
    }

    /// Keeps `cursor` for the next read if `reading` ended with a full
    /// batch and the aggregate has more (as far as the read knows), asking
    /// it for that batch now if it owes none; else drops it (deleting its
    /// consumer).
    async fn keep<O: Collect>(&self, mut cursor: Cursor, reading: &Reading<'_, O>) {
        let more = reading.out.count() == reading.limit && reading.next <= reading.last_sequence;
        let full_next = reading.limit.min(super::BATCH);
        if !more || full_next < LONG_READ {
            return;
        }
        let idle = cursor.pull.as_ref().is_none_or(|pull| pull.owed == 0);
        if idle && cursor.request(&self.client, full_next).await.is_err() {
            return;
        }
        self.cursors.put(reading.stream, cursor);
    }

    /// A new consumer of `events` (named `name`) on `subject`, delivering
    /// from sequence `next`.
    async fn open_cursor(
        &self,
        events: &stream::Stream,
        name: &str,
        subject: &str,
        next: u64,
    ) -> Result<Cursor, String> {
        let consumer = format!("aether-read-{}", uuid::Uuid::now_v7().simple());
        let config = pull::Config {
            name: Some(consumer.clone()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ack_policy: AckPolicy::None,
            filter_subject: subject.to_owned(),
            inactive_threshold: INACTIVE,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        };
        create_consumer(events, config).await?;
        Ok(Cursor {
            events: events.clone(),
            context: self.context.clone(),
            consumer,
            name: name.to_owned(),
            next,
            delivered: 0,
            pull: None,
        })
    }
}
