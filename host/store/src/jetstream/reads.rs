//! Reading an aggregate's events in batches (activation, command look-ups).
//!
//! A read first asks the stream leader for the aggregate's last message
//! (its sequence and version): that fixes what the read must return, the
//! stream as it was at that instant. It then fetches the messages with
//! batched direct gets (`$JS.API.DIRECT.GET.<stream>` with `seq`,
//! `next_by_subj` and `batch`, one request for up to [`BATCH`] messages,
//! each sent with its sequence and the sequence of the one before it in the
//! batch, and an end-of-batch marker), instead of one request per event.
//!
//! Every server of a replicated stream answers direct gets from its own
//! copy, which may lag the leader. A batch that ends before the leader's
//! last message is asked again (a follower catches up within moments), and
//! after [`LAGGING_RETRIES`] the rest is read from the leader one message at
//! a time, as it is when the stream has no direct get responders. So a read
//! never returns less than the leader had when it began.
//!
//! Where a read starts: right after the last event of the latest read of
//! the aggregate when that was an earlier version (a version's sequence
//! never changes: the streams deny deletes and purges), as when activation
//! reads its next batch, else at sequence 1; and when more than [`BATCH`]
//! versions would be passed from there before `from`, at the sequence a
//! binary search over the stream's sequences finds for `from` (versions
//! grow with sequences; leader reads, one per step). Every message read is
//! decoded and checked as before: a damaged message is
//! [`StoreError::Corrupt`], and so is a version that does not follow the
//! one before it; a damaged message before where the read starts is not
//! read.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream;
use async_nats::{Message, StatusCode};
use futures_util::StreamExt;

use super::{JetStreamStore, RecordedEvent, StoreError, StreamId, codec, unavailable};

/// The most messages one direct get asks for (the runtime replays in
/// batches of 1 024 by default).
pub(super) const BATCH: usize = 1_024;

/// How many streams [`Hints`] remembers before it starts over.
const MAX_HINTS: usize = 4_096;

/// How long a read waits for the next message of a batch.
const BATCH_WAIT: Duration = Duration::from_secs(10);

/// How many times a batch that ended before the leader's last message (a
/// lagging follower answered) is asked again before the rest is read from
/// the leader.
const LAGGING_RETRIES: u32 = 20;

/// The end-of-batch marker's status.
const END_OF_BATCH: u16 = 204;

const NUM_PENDING: &str = "Nats-Num-Pending";
const LAST_SEQUENCE: &str = "Nats-Last-Sequence";

/// The version and sequence of the last event the latest read of each
/// stream returned, so the next read of the stream (activation's next
/// batch) starts right after it. Bounded: forgotten all at once when full.
#[derive(Default)]
pub(super) struct Hints(Mutex<HashMap<StreamId, (u64, u64)>>);

impl Hints {
    /// A sequence at or before version `from` of `stream`, and the version
    /// just before that sequence (0 if unknown).
    fn start(&self, stream: &StreamId, from: u64) -> Option<(u64, u64)> {
        let hints = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match hints.get(stream) {
            Some(&(version, sequence)) if version < from => Some((sequence + 1, version)),
            _ => None,
        }
    }

    fn note(&self, stream: &StreamId, version: u64, sequence: u64) {
        let mut hints = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if hints.len() >= MAX_HINTS && !hints.contains_key(stream) {
            hints.clear();
        }
        hints.insert(stream.clone(), (version, sequence));
    }
}

/// A read in progress: what it has, and where it goes on.
struct Reading<'a> {
    stream: &'a StreamId,
    /// The JetStream stream's name, for errors.
    name: &'a str,
    from: u64,
    limit: usize,
    /// The sequence of the aggregate's last message when the read began
    /// (from the leader): the read ends there.
    last_sequence: u64,
    /// The sequence to read from next.
    next: u64,
    /// The version of the last message read (before `from`: how many are
    /// still to pass).
    seen: u64,
    out: Vec<RecordedEvent>,
}

impl Reading<'_> {
    fn done(&self) -> bool {
        self.out.len() >= self.limit || self.next > self.last_sequence
    }

    /// How many messages the next batch asks for: the events still wanted
    /// and those still to pass before `from`.
    fn batch(&self) -> usize {
        let left = self.limit - self.out.len();
        let before = usize::try_from(self.from.saturating_sub(self.seen + 1)).unwrap_or(BATCH);
        left.saturating_add(before).clamp(1, BATCH)
    }

    /// Takes the next message of the aggregate's subject.
    fn push(&mut self, message: &StreamMessage) -> Result<(), StoreError> {
        if message.sequence < self.next {
            return Ok(());
        }
        self.next = message.sequence + 1;
        if message.sequence > self.last_sequence || self.out.len() >= self.limit {
            return Ok(());
        }
        let event = codec::decode(self.stream, message)?;
        self.seen = event.version;
        if event.version >= self.from {
            let expected = self.from + self.out.len() as u64;
            if event.version != expected {
                return Err(StoreError::Corrupt {
                    location: format!("{} sequence {}", self.name, message.sequence),
                    message: format!(
                        "{} jumps to version {} where {expected} was expected",
                        self.stream, event.version
                    ),
                });
            }
            self.out.push(event);
        }
        Ok(())
    }
}

/// How a direct get batch ended.
enum Batch {
    /// The read has what it needs.
    Done,
    /// More to ask for.
    More,
    /// The server that answered has nothing past what it sent, short of the
    /// leader's last message: it lags.
    Short,
    /// No server answers direct gets for the stream.
    Unanswered,
}

impl JetStreamStore {
    /// Every event of `stream` from version `from_version`, at most
    /// `limit`, as the stream leader had them when the read began.
    pub(super) async fn events_of(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from_version.max(1);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(events) = self.find_stream(&stream.namespace).await? else {
            return Ok(Vec::new());
        };
        let subject = self.subject(stream);
        let last = match events.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(unavailable(format!(
                    "reading the last event of {stream}: {e}"
                )));
            }
        };
        // A last message without a version (damaged) is reported when the
        // read reaches it, in order, as any other damaged message.
        let last_version = codec::version(&last).ok();
        if last_version.is_some_and(|version| version < from) {
            return Ok(Vec::new());
        }
        let name = events.cached_info().config.name.clone();
        let (next, seen) = match last_version {
            Some(_) => {
                self.start_of(&events, stream, &subject, from, last.sequence)
                    .await?
            }
            None => (1, 0),
        };
        let wanted = last_version.map_or(BATCH, |version| {
            usize::try_from(version - from + 1).map_or(limit, |n| n.min(limit))
        });
        let mut reading = Reading {
            stream,
            name: &name,
            from,
            limit,
            last_sequence: last.sequence,
            next,
            seen,
            out: Vec::with_capacity(wanted),
        };
        let mut short = 0;
        while !reading.done() {
            let before = reading.next;
            match self.direct_batch(&subject, &mut reading).await? {
                Batch::Done => {}
                Batch::More if reading.next > before => {}
                // An answer that moved the read on by nothing is as good
                // as a short one.
                Batch::More | Batch::Short if short < LAGGING_RETRIES => {
                    short += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Batch::More | Batch::Short | Batch::Unanswered => {
                    Self::leader_reads(&events, &subject, &mut reading).await?;
                    break;
                }
            }
        }
        if let Some(last) = reading.out.last() {
            self.hints.note(stream, last.version, last.position);
        }
        Ok(reading.out)
    }

    /// Where a read of `stream` from version `from` starts: (a sequence at
    /// or before that version's, the version before that sequence if
    /// known, else 0). See the module docs.
    async fn start_of(
        &self,
        events: &stream::Stream,
        stream: &StreamId,
        subject: &str,
        from: u64,
        last_sequence: u64,
    ) -> Result<(u64, u64), StoreError> {
        let (mut low, mut seen) = self.hints.start(stream, from).unwrap_or((1, 0));
        if from - 1 - seen <= BATCH as u64 {
            return Ok((low, seen));
        }
        // The first message at or after `low` has a version below `from`
        // only if it comes before `high`; the first at or after `high` has
        // `from` or later (at first: the aggregate's last message).
        let mut high = last_sequence;
        while low < high {
            let middle = low + (high - low) / 2;
            let Some(message) = Self::next_on(events, subject, middle).await? else {
                return Err(unavailable(format!(
                    "reading {subject}: nothing at or after sequence {middle}, before its last \
                     message at {last_sequence}"
                )));
            };
            let version = codec::version(&message)?;
            if version >= from {
                high = middle;
            } else {
                low = message.sequence + 1;
                seen = version;
            }
        }
        Ok((low, seen))
    }

    /// One batched direct get of the aggregate's messages from
    /// `reading.next`, into `reading`.
    async fn direct_batch(
        &self,
        subject: &str,
        reading: &mut Reading<'_>,
    ) -> Result<Batch, StoreError> {
        let failed = |e: &dyn std::fmt::Display| unavailable(format!("reading {subject}: {e}"));
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| failed(&e))?;
        let request = serde_json::json!({
            "seq": reading.next,
            "next_by_subj": subject,
            "batch": reading.batch(),
        });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", reading.name),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(|e| failed(&e))?;
        // Each message names the sequence of the one sent before it in the
        // batch (0 for the first): a message lost on the way shows.
        let mut previous = 0;
        loop {
            let message: Message = match tokio::time::timeout(BATCH_WAIT, replies.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => return Err(failed(&"the connection closed during a batch")),
                Err(_) => {
                    return Err(failed(&format!(
                        "no answer to a batched direct get within {BATCH_WAIT:?}"
                    )));
                }
            };
            let number = |name: &str| -> Option<u64> {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.as_str().parse().ok())
            };
            let status = message.status;
            match status {
                None => {
                    if number(LAST_SEQUENCE) != Some(previous) {
                        return Err(failed(&format!(
                            "a message after sequence {previous} of a batched direct get was \
                             lost on the way"
                        )));
                    }
                    let message = StreamMessage::try_from(message).map_err(|e| failed(&e))?;
                    previous = message.sequence;
                    reading.push(&message)?;
                    if reading.done() {
                        return Ok(Batch::Done);
                    }
                }
                Some(status) if status.as_u16() == END_OF_BATCH => {
                    if number(LAST_SEQUENCE) != Some(previous) {
                        return Err(failed(&format!(
                            "a message after sequence {previous} of a batched direct get was \
                             lost on the way"
                        )));
                    }
                    return Ok(match number(NUM_PENDING) {
                        _ if reading.done() => Batch::Done,
                        Some(0) => Batch::Short,
                        _ => Batch::More,
                    });
                }
                Some(StatusCode::NOT_FOUND) => {
                    return Ok(if reading.done() {
                        Batch::Done
                    } else {
                        Batch::Short
                    });
                }
                Some(StatusCode::NO_RESPONDERS) => return Ok(Batch::Unanswered),
                Some(status) => {
                    return Err(failed(&format!(
                        "a batched direct get was answered {status} {}",
                        message.description.as_deref().unwrap_or_default()
                    )));
                }
            }
        }
    }

    /// The rest of `reading` from the stream leader, one message at a time.
    async fn leader_reads(
        events: &stream::Stream,
        subject: &str,
        reading: &mut Reading<'_>,
    ) -> Result<(), StoreError> {
        while !reading.done() {
            let Some(message) = Self::next_on(events, subject, reading.next).await? else {
                break;
            };
            reading.push(&message)?;
        }
        Ok(())
    }

    /// The message of `events` at or after `sequence` on `subject` (`None`:
    /// past the end), from the stream leader.
    async fn next_on(
        events: &stream::Stream,
        subject: &str,
        sequence: u64,
    ) -> Result<Option<StreamMessage>, StoreError> {
        let found = events
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(subject.to_owned())
            .send()
            .await;
        match found {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(format!("reading {subject}: {e}"))),
        }
    }
}
