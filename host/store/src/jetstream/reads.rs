//! Reading an aggregate's events (activation, command look-ups) and a
//! namespace's log in batches.
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
//! A read needs not ask the leader when an earlier read found the leader
//! already had the last version this one wants (`from + limit - 1`): it
//! gets a full batch, the same events whatever the leader has now (a
//! version's message never changes). Activation's batches but the last
//! are such reads. And when a read ends with a full batch of `limit` (at
//! most [`BATCH`]) and the leader had more, the direct get for the next
//! batch (`limit` more from the next sequence) is sent at once, so the
//! server fills it while the runtime replays this one; the next read
//! takes its answers if it asks for exactly that batch (the same checks
//! as any batch: a short one is asked again), else drops it. At most one
//! such batch per stream, for at most [`MAX_PREFETCHES`] streams.
//!
//! A read of an aggregate that wants at least [`cursor::LONG_READ`]
//! messages takes them from an ephemeral pull consumer instead of direct
//! gets (which make the server re-encode every message's headers), with
//! the same bounds and checks, kept between activation's batches; see
//! [`cursor`].
//!
//! A namespace's log is read the same way: its head (the stream's last
//! sequence) from the leader, then batched direct gets by sequence over
//! the whole stream (every sequence is an event of the namespace, see
//! [`crate::EventStore::read_log`]), each checked: in position order
//! with no gap (a gap is [`StoreError::Corrupt`]), of the namespace.
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
use async_nats::{Message, StatusCode, Subscriber};
use futures_util::StreamExt;

mod cursor;

pub(super) use cursor::Cursors;

use super::streams::last_sequence;
use super::{JetStreamStore, RecordedEvent, StoreError, StreamId, codec, unavailable};
use crate::ReplayBatch;
use aether_core::namespace::Namespace;
use aether_core::namespace::layout::store_namespace_subjects;

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

/// What the latest read of each stream learnt, so the next read of the
/// stream (activation's next batch) starts right after it and, when it is
/// known to get a full batch, skips the leader. Bounded: forgotten all at
/// once when full.
#[derive(Default)]
pub(super) struct Hints(Mutex<HashMap<StreamId, Hint>>);

#[derive(Clone, Copy)]
struct Hint {
    /// The version and sequence of the last event the read returned.
    read: (u64, u64),
    /// The version and sequence of the aggregate's last event on the
    /// leader, as the read found it (a lower bound of what it has now:
    /// the streams deny deletes and purges).
    last: (u64, u64),
}

impl Hints {
    /// A sequence at or before version `from` of `stream`, and the version
    /// just before that sequence (0 if unknown).
    fn start(&self, stream: &StreamId, from: u64) -> Option<(u64, u64)> {
        let hints = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match hints.get(stream) {
            Some(&Hint {
                read: (version, sequence),
                ..
            }) if version < from => Some((sequence + 1, version)),
            _ => None,
        }
    }

    /// The version and sequence of a last event of `stream` the leader
    /// had (it may have more now).
    fn last(&self, stream: &StreamId) -> Option<(u64, u64)> {
        let hints = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        hints.get(stream).map(|hint| hint.last)
    }

    fn note(&self, stream: &StreamId, read: (u64, u64), last: (u64, u64)) {
        let mut hints = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if hints.len() >= MAX_HINTS && !hints.contains_key(stream) {
            hints.clear();
        }
        let last = match hints.get(stream) {
            Some(known) if known.last.0 > last.0 => known.last,
            _ => last,
        };
        hints.insert(stream.clone(), Hint { read, last });
    }
}

/// A batched direct get sent before the read that wants it (activation's
/// next batch, asked for as the previous read ends, so the server fills
/// it while the runtime replays the previous one), at most one per
/// stream. Bounded like [`Hints`].
#[derive(Default)]
pub(super) struct Prefetches(Mutex<HashMap<StreamId, Prefetch>>);

struct Prefetch {
    /// The sequence and batch size it asked for.
    next: u64,
    batch: usize,
    replies: Subscriber,
}

/// How many streams [`Prefetches`] holds a batch for at once.
const MAX_PREFETCHES: usize = 64;

impl Prefetches {
    fn take(&self, stream: &StreamId) -> Option<Prefetch> {
        let mut prefetches = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        prefetches.remove(stream)
    }

    fn put(&self, stream: &StreamId, prefetch: Prefetch) {
        let mut prefetches = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if prefetches.len() >= MAX_PREFETCHES && !prefetches.contains_key(stream) {
            prefetches.clear();
        }
        prefetches.insert(stream.clone(), prefetch);
    }
}

/// What a read of an aggregate's events fills: the events themselves
/// ([`JetStreamStore::read_stream`](crate::EventStore::read_stream)), or
/// a replay batch of them, written straight from the messages
/// ([`JetStreamStore::read_replay_batch`](crate::EventStore::read_replay_batch)).
/// Both decode every message with the same checks ([`codec`]).
pub(super) trait Collect: Default {
    /// A message decoded, before it is taken.
    type Decoded<'m>;
    /// The event in `message` (of `stream`) and its version, checked.
    fn decode<'m>(
        stream: &StreamId,
        message: &'m StreamMessage,
    ) -> Result<(u64, Self::Decoded<'m>), StoreError>;
    /// Takes the next event.
    fn take(&mut self, event: Self::Decoded<'_>);
    /// How many events it holds.
    fn count(&self) -> usize;
    /// Room for `events` events.
    fn reserve(&mut self, events: usize);
}

impl Collect for Vec<RecordedEvent> {
    type Decoded<'m> = RecordedEvent;

    fn decode(
        stream: &StreamId,
        message: &StreamMessage,
    ) -> Result<(u64, RecordedEvent), StoreError> {
        let event = codec::decode(stream, message)?;
        Ok((event.version, event))
    }

    fn take(&mut self, event: RecordedEvent) {
        self.push(event);
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn reserve(&mut self, events: usize) {
        Vec::reserve(self, events);
    }
}

impl Collect for ReplayBatch {
    type Decoded<'m> = codec::ReplayEvent<'m>;

    fn decode<'m>(
        _: &StreamId,
        message: &'m StreamMessage,
    ) -> Result<(u64, Self::Decoded<'m>), StoreError> {
        let event = codec::ReplayEvent::decode(message)?;
        Ok((event.version(), event))
    }

    fn take(&mut self, event: Self::Decoded<'_>) {
        let (event, command) = event.event();
        self.push(event, command);
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn reserve(&mut self, _: usize) {}
}

/// A read in progress: what it has, and where it goes on.
struct Reading<'a, O> {
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
    /// The version and sequence of the last event taken.
    last_read: Option<(u64, u64)>,
    out: O,
}

/// What batched direct gets (or, failing them, the leader's reads) fill:
/// an aggregate's events ([`Reading`]) or a namespace's log
/// ([`LogReading`]).
trait Gather {
    /// The sequence to read from next.
    fn next(&self) -> u64;
    /// Whether the read has all it needs.
    fn done(&self) -> bool;
    /// How many messages the next batch asks for (1 to [`BATCH`]).
    fn batch(&self) -> usize;
    /// Takes the next message (in sequence order; one already taken, or
    /// past what the read needs, is passed over).
    fn push(&mut self, message: &StreamMessage) -> Result<(), StoreError>;
}

impl<O: Collect> Gather for Reading<'_, O> {
    fn next(&self) -> u64 {
        self.next
    }

    fn done(&self) -> bool {
        self.out.count() >= self.limit || self.next > self.last_sequence
    }

    /// The events still wanted and those still to pass before `from`.
    fn batch(&self) -> usize {
        let left = self.limit - self.out.count();
        let before = usize::try_from(self.from.saturating_sub(self.seen + 1)).unwrap_or(BATCH);
        left.saturating_add(before).clamp(1, BATCH)
    }

    /// Takes the next message of the aggregate's subject.
    fn push(&mut self, message: &StreamMessage) -> Result<(), StoreError> {
        if message.sequence < self.next {
            return Ok(());
        }
        self.next = message.sequence + 1;
        if message.sequence > self.last_sequence || self.out.count() >= self.limit {
            return Ok(());
        }
        let (version, event) = O::decode(self.stream, message)?;
        self.seen = version;
        if version >= self.from {
            let expected = self.from + self.out.count() as u64;
            if version != expected {
                return Err(StoreError::Corrupt {
                    location: format!("{} sequence {}", self.name, message.sequence),
                    message: format!(
                        "{} jumps to version {version} where {expected} was expected",
                        self.stream
                    ),
                });
            }
            self.out.take(event);
            self.last_read = Some((version, message.sequence));
        }
        Ok(())
    }
}

/// A read of a namespace's log in progress: every sequence of the
/// namespace's stream is the event at that position (see
/// [`crate::EventStore::read_log`]).
struct LogReading<'a> {
    prefix: &'a str,
    namespace: &'a Namespace,
    /// The JetStream stream's name, for errors.
    name: &'a str,
    limit: usize,
    /// The stream's last sequence when the read began (from the leader):
    /// the read ends there.
    head: u64,
    /// The position to read next.
    next: u64,
    out: Vec<RecordedEvent>,
}

impl Gather for LogReading<'_> {
    fn next(&self) -> u64 {
        self.next
    }

    fn done(&self) -> bool {
        self.out.len() >= self.limit || self.next > self.head
    }

    fn batch(&self) -> usize {
        let left = self.limit - self.out.len();
        let to_head = usize::try_from(self.head.saturating_sub(self.next) + 1).unwrap_or(BATCH);
        left.min(to_head).clamp(1, BATCH)
    }

    /// Takes the message at the next position; one further on means the
    /// log has a gap, which it never has unless it is damaged.
    fn push(&mut self, message: &StreamMessage) -> Result<(), StoreError> {
        if message.sequence < self.next || self.done() {
            return Ok(());
        }
        if message.sequence > self.next {
            return Err(StoreError::Corrupt {
                location: format!("{} sequence {}", self.name, message.sequence),
                message: format!(
                    "the log skipped from position {} to {}",
                    self.next - 1,
                    message.sequence
                ),
            });
        }
        let event = codec::decode_any(self.prefix, message)?;
        if event.stream.namespace != *self.namespace {
            return Err(StoreError::Corrupt {
                location: format!("{} sequence {}", self.name, message.sequence),
                message: format!("holds an event of {}", event.stream),
            });
        }
        self.next = message.sequence + 1;
        self.out.push(event);
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
    pub(super) async fn events_of<O: Collect>(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<O, StoreError> {
        let from = from_version.max(1);
        if limit == 0 {
            return Ok(O::default());
        }
        let Some(events) = self.find_stream(&stream.namespace).await? else {
            return Ok(O::default());
        };
        let subject = self.subject(stream);
        // A read known to get `limit` events (the leader had version
        // `from + limit - 1` when an earlier read began) need not ask the
        // leader: the events it returns are those, whatever it has now.
        let full = self.hints.last(stream).filter(|&(version, _)| {
            u64::try_from(limit)
                .ok()
                .and_then(|limit| from.checked_add(limit - 1))
                .is_some_and(|end| end <= version)
        });
        let (last_sequence, last_version) = match full {
            Some((version, sequence)) => (sequence, Some(version)),
            None => match events.get_last_raw_message_by_subject(&subject).await {
                // A last message without a version (damaged) is reported
                // when the read reaches it, in order, as any other damaged
                // message.
                Ok(last) => (last.sequence, codec::version(&last).ok()),
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                    return Ok(O::default());
                }
                Err(e) => {
                    return Err(unavailable(format!(
                        "reading the last event of {stream}: {e}"
                    )));
                }
            },
        };
        if last_version.is_some_and(|version| version < from) {
            return Ok(O::default());
        }
        let name = events.cached_info().config.name.clone();
        let (next, seen) = match last_version {
            Some(_) => {
                self.start_of(&events, stream, &subject, from, last_sequence)
                    .await?
            }
            None => (1, 0),
        };
        let wanted = last_version.map_or(BATCH, |version| {
            usize::try_from(version - from + 1).map_or(limit, |n| n.min(limit))
        });
        let mut out = O::default();
        out.reserve(wanted);
        let mut reading = Reading {
            stream,
            name: &name,
            from,
            limit,
            last_sequence,
            next,
            seen,
            last_read: None,
            out,
        };
        let by_consumer = self
            .read_by_consumer(&events, &name, &subject, &mut reading)
            .await?;
        let prefetched = self.prefetches.take(stream);
        if !by_consumer {
            self.gather(&events, &name, &subject, &mut reading, prefetched)
                .await?;
        }
        let Some(read) = reading.last_read else {
            return Ok(reading.out);
        };
        let leader = last_version.map_or(read, |version| (version, last_sequence));
        self.hints.note(stream, read, leader);
        // A full batch with more after it: activation will ask for the
        // next one right after replaying this one, so ask for it now.
        if !by_consumer && reading.out.count() == limit && limit <= BATCH && leader.0 > read.0 {
            let next = read.1 + 1;
            if let Ok(replies) = self.request_batch(&name, &subject, next, limit).await {
                self.prefetches.put(
                    stream,
                    Prefetch {
                        next,
                        batch: limit,
                        replies,
                    },
                );
            }
        }
        Ok(reading.out)
    }

    /// The events of `namespace`'s log from position `from`, at most
    /// `limit`, as the stream leader had them when the read began: the
    /// stream's last sequence from the leader, then batched direct gets
    /// over the whole stream (every sequence is an event of the
    /// namespace), as [`JetStreamStore::events_of`] reads an aggregate's.
    pub(super) async fn log_of(
        &self,
        namespace: &Namespace,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from.max(1);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(events) = self.find_stream(namespace).await? else {
            return Ok(Vec::new());
        };
        let head = last_sequence(&events).await?;
        if from > head {
            return Ok(Vec::new());
        }
        let name = events.cached_info().config.name.clone();
        let filter = store_namespace_subjects(&self.prefix, namespace);
        let wanted = usize::try_from(head - from + 1).map_or(limit, |n| n.min(limit));
        let mut reading = LogReading {
            prefix: &self.prefix,
            namespace,
            name: &name,
            limit,
            head,
            next: from,
            out: Vec::with_capacity(wanted),
        };
        self.gather(&events, &name, &filter, &mut reading, None)
            .await?;
        Ok(reading.out)
    }

    /// Fills `reading` from the messages of `events` (named `name`) on
    /// `subject` (a filter) with batched direct gets; a batch that a
    /// lagging server answered short is asked again, and after
    /// [`LAGGING_RETRIES`] (or when no server answers direct gets) the rest
    /// comes from the leader one message at a time.
    async fn gather(
        &self,
        events: &stream::Stream,
        name: &str,
        subject: &str,
        reading: &mut impl Gather,
        mut prefetched: Option<Prefetch>,
    ) -> Result<(), StoreError> {
        let mut short = 0;
        while !reading.done() {
            let before = reading.next();
            let replies = match prefetched.take() {
                Some(p) if p.next == before && p.batch == reading.batch() => Some(p.replies),
                _ => None,
            };
            match self.direct_batch(name, subject, reading, replies).await? {
                Batch::Done => {}
                Batch::More if reading.next() > before => {}
                // An answer that moved the read on by nothing is as good
                // as a short one.
                Batch::More | Batch::Short if short < LAGGING_RETRIES => {
                    short += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Batch::More | Batch::Short | Batch::Unanswered => {
                    return Self::leader_reads(events, subject, reading).await;
                }
            }
        }
        Ok(())
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

    /// Asks for a batch of up to `batch` messages of the stream `name` on
    /// `subject` from sequence `next`; the answers come to the subscriber.
    async fn request_batch(
        &self,
        name: &str,
        subject: &str,
        next: u64,
        batch: usize,
    ) -> Result<Subscriber, StoreError> {
        let failed = |e: &dyn std::fmt::Display| unavailable(format!("reading {subject}: {e}"));
        let inbox = self.client.new_inbox();
        let replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| failed(&e))?;
        let request = serde_json::json!({
            "seq": next,
            "next_by_subj": subject,
            "batch": batch,
        });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{name}"),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(replies)
    }

    /// One batched direct get of the messages of the stream `name` on
    /// `subject` from `reading.next()`, into `reading`: the answers to
    /// `replies` (a request sent earlier for the same sequence and batch
    /// size), else to a request sent now.
    async fn direct_batch(
        &self,
        name: &str,
        subject: &str,
        reading: &mut impl Gather,
        replies: Option<Subscriber>,
    ) -> Result<Batch, StoreError> {
        let failed = |e: &dyn std::fmt::Display| unavailable(format!("reading {subject}: {e}"));
        let mut replies = match replies {
            Some(replies) => replies,
            None => {
                self.request_batch(name, subject, reading.next(), reading.batch())
                    .await?
            }
        };
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
        reading: &mut impl Gather,
    ) -> Result<(), StoreError> {
        while !reading.done() {
            let Some(message) = Self::next_on(events, subject, reading.next()).await? else {
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
