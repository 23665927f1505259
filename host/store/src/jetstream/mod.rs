//! The JetStream event store: events in NATS JetStream, replicated and
//! shared by every node.
//!
//! Layout (all names from [`aether_core::namespace::layout`]):
//! - one JetStream stream per namespace, `<PREFIX>_EVENTS_<namespace>`
//!   (e.g. `AETHER_EVENTS_bank`), capturing `<prefix>.events.<namespace>.>`;
//!   one message per event, on the aggregate's subject
//!   `<prefix>.events.<namespace>.<aggregate-type>.<aggregate-id>`; the
//!   payload is the event's data, everything else is in one header,
//!   `Aether-Event` (earlier versions wrote one header per field; both are
//!   read, see `codec/envelope.rs`). The stream sequence is the
//!   event's position in its namespace's log, so each namespace's log is
//!   gapless, as the store contract requires (see [`EventStore::read_log`]).
//! - a namespace's stream is created on the first append to the namespace
//!   (with the configured replicas; creating a stream that already exists
//!   with the same settings, also by another node at the same moment, is
//!   fine) and remembered; until then its log reads as empty. Reads never
//!   create streams.
//! - a server that still has the single stream `<PREFIX>_EVENTS` of
//!   earlier versions (one stream for every namespace) is refused on
//!   connect: its subjects overlap every namespace's stream, and its events
//!   are not converted.
//! - optimistic concurrency: the append reads the aggregate's last message
//!   (from the stream leader), checks the expected version, and publishes
//!   with `Nats-Expected-Last-Subject-Sequence` set to that message's
//!   sequence; a writer that got there first makes JetStream refuse it with
//!   error 10071 (or 10164), which becomes a [`VersionConflict`]. The host
//!   never retries an exact expected version.
//! - atomicity: the events of one command are one JetStream atomic batch
//!   (`Nats-Batch-Id`, `Nats-Batch-Sequence`, `Nats-Batch-Commit`; the
//!   stream allows atomic publish): all stored, or none.
//! - idempotency: `Nats-Msg-Id` is derived from (stream, command id), so a
//!   retry inside JetStream's duplicate window stores nothing; the command
//!   id is also in each event's headers, so a retry after the window is
//!   found by [`EventStore::command_events`], which every append with a
//!   command id asks first. It remembers the command ids of the events it
//!   has read, per stream, and reads only the events stored since
//!   (`commands.rs`), instead of the whole stream each time.
//! - reads of an aggregate's events: its last message from the stream
//!   leader (what the read must return; skipped when an earlier read
//!   showed the leader had all this read wants), then the messages in
//!   batched direct gets, up to 1 024 a request, from any server that has
//!   them all; activation's next batch is asked for as the previous read
//!   ends (see `reads.rs`). A long read (256 messages or more) takes them
//!   from an ephemeral pull consumer of its own instead, filtered on the
//!   aggregate's subject, kept between activation's batches, deleted when
//!   done (see `reads/cursor.rs`).
//! - reads of a namespace's log: the stream's last sequence from the
//!   leader, then batched direct gets by sequence over the whole stream.
//!   Positions are the stream's sequences, and they are gapless: the
//!   stream denies deletes and purges and has no limits, and a publish
//!   JetStream refuses (expected-sequence conflict, rejected batch,
//!   duplicate message id) takes no sequence. So every sequence up to the
//!   head holds an event of this namespace.
//! - snapshots: in the KV bucket `<PREFIX>_SNAPSHOTS`, keyed by a digest of
//!   (stream, snapshot key), replaced only by a newer version (compare and
//!   set on the revision).
//! - servers older than 2.12 are refused on connect.
//!
//! Production: run three servers and keep `replicas` at 3 (R3: every event
//! on a quorum of 2 before the append is acknowledged, so a server's loss
//! loses nothing; every namespace's stream is R3), and set `sync_interval:
//! always` in the servers' `jetstream` block so each acknowledged event is
//! fsync'd (the default syncs every 2 minutes, which with R1 can lose
//! acknowledged events on a power loss). Each namespace is a stream (a Raft
//! group when replicated), so size the servers' `max_streams`/limits and
//! memory for the number of namespaces plus one (`aether-system`).

mod codec;
mod commands;
mod follow;
mod reads;
mod streams;
mod tails;

use crate::request::AppendRequestExt;
pub use streams::retrying;
use streams::{
    PROBE_TIMEOUT, ROUTING_DEADLINE, is_stream_not_found, last_sequence, refuse_legacy_stream,
    wait_for_leader,
};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use super::{
    AppendError, AppendOutcome, AppendRequest, EventStore, ExpectedVersion, RecordedEvent,
    ReplayBatch, Snapshot, StoreError, StreamId, VersionConflict,
};
use aether_core::namespace::Namespace;
use aether_core::namespace::layout::{store_snapshot_bucket, store_subject, stream_key};

const BACKEND: &str = "jetstream";

/// The oldest server version this store works with (atomic batches).
const MIN_SERVER: (u64, u64) = (2, 12);

/// How long the store waits for the servers to create a consumer (a long
/// read's, a follower's) before it gives up on that one. Creation takes
/// milliseconds, but the servers place a one-replica consumer on a random
/// replica of its stream, and a server that died without saying so (a
/// SIGKILL, a lost machine) stays a candidate until the cluster marks it
/// offline, which takes minutes: meanwhile about one creation in three is
/// never answered (measured with one of three servers killed). A read then
/// carries on with direct gets, a follower tries again.
pub(crate) const CONSUMER_CREATION: Duration = Duration::from_secs(1);

/// Creates a consumer of `stream`, giving up after [`CONSUMER_CREATION`].
pub(crate) async fn create_consumer<C>(
    stream: &stream::Stream,
    config: C,
) -> Result<jetstream::consumer::Consumer<C>, String>
where
    C: jetstream::consumer::IntoConsumerConfig + jetstream::consumer::FromConsumer,
{
    match tokio::time::timeout(CONSUMER_CREATION, stream.create_consumer(config)).await {
        Ok(created) => created.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no consumer within {CONSUMER_CREATION:?}")),
    }
}

/// How to reach JetStream and lay the store out.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// The servers, e.g. `nats://127.0.0.1:4222`.
    pub urls: Vec<String>,
    /// Replicas of every namespace's event stream and of the snapshot
    /// bucket (3 in production).
    pub replicas: usize,
    /// The first token of every subject, and (upper-cased) of the stream
    /// and bucket names: several stores can share a server. Default
    /// `aether`.
    pub prefix: String,
}

impl JetStreamConfig {
    /// A store on `urls` with `replicas` and the default prefix.
    pub fn new(urls: Vec<String>, replicas: usize) -> Self {
        Self {
            urls,
            replicas,
            prefix: "aether".into(),
        }
    }
}

/// The JetStream event store; see the module docs.
pub struct JetStreamStore {
    context: jetstream::Context,
    client: async_nats::Client,
    /// The streams of the namespaces known to have one (created by this
    /// store or found by a read); a stream is never deleted, so an entry
    /// never goes stale. Locked only for a lookup or an insert.
    streams: Mutex<HashMap<Namespace, stream::Stream>>,
    /// `context` with a short timeout, for asking whether a stream exists
    /// (see [`JetStreamStore::settled`]).
    probe: jetstream::Context,
    snapshots: kv::Store,
    prefix: String,
    replicas: usize,
    /// Where recent reads of each stream ended (see `reads.rs`).
    hints: reads::Hints,
    /// The command ids of streams' events read so far (see `commands.rs`).
    commands: commands::CommandIndex,
    /// The last messages of streams seen so far (see `tails.rs`).
    tails: tails::Tails,
    /// Batches asked for before the reads that want them (see `reads.rs`).
    prefetches: reads::Prefetches,
    /// Consumers kept between the batches of long reads (see `reads.rs`).
    cursors: reads::Cursors,
}

fn unavailable(message: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        message: message.to_string(),
    }
}

impl JetStreamStore {
    /// Connects, checks the server version, refuses a server that has the
    /// single event stream of earlier versions, and creates the snapshot
    /// bucket if it does not exist (an existing one is never re-configured). Namespace streams are created by the
    /// first append to each namespace.
    pub async fn connect(config: JetStreamConfig) -> Result<JetStreamStore, StoreError> {
        let addresses: Vec<async_nats::ServerAddr> = config
            .urls
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| unavailable(format!("invalid server address: {e}")))?;
        let client = async_nats::connect(addresses).await.map_err(|e| {
            unavailable(format!("cannot connect to {}: {e}", config.urls.join(", ")))
        })?;
        check_version(&client.server_info().version)?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(Duration::from_secs(10));
        refuse_legacy_stream(&context, &config.prefix).await?;
        let bucket = store_snapshot_bucket(&config.prefix);
        let bucket_config = kv::Config {
            bucket: bucket.clone(),
            num_replicas: config.replicas,
            history: 1,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        // Opened as it is when it exists: a store with other settings (a
        // node started with fewer replicas) must not re-configure it for
        // every other node sharing it.
        let snapshots = retrying(
            &format!("opening or creating the bucket {bucket}"),
            || async {
                match context.get_stream(format!("KV_{bucket}")).await {
                    Ok(_) => context
                        .get_key_value(&bucket)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) if is_stream_not_found(&e) => context
                        .create_key_value(bucket_config.clone())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        let bucket_stream = retrying(&format!("finding the bucket {bucket}"), || {
            context.get_stream(format!("KV_{bucket}"))
        })
        .await?;
        wait_for_leader(&bucket_stream, config.replicas).await?;
        // A replicated bucket answers reads (direct gets) only once its
        // replicas listen for them, a moment after it has a leader: a
        // snapshot read before that met "no responders" (seen once in a
        // 3-server contract test). Wait for one read to be answered.
        retrying(&format!("reading the bucket {bucket}"), || {
            snapshots.get("ready-probe")
        })
        .await?;
        let mut probe = context.clone();
        probe.set_timeout(PROBE_TIMEOUT);
        Ok(JetStreamStore {
            context,
            client,
            streams: Mutex::default(),
            probe,
            snapshots,
            prefix: config.prefix,
            replicas: config.replicas,
            hints: reads::Hints::default(),
            commands: commands::CommandIndex::default(),
            tails: tails::Tails::default(),
            prefetches: reads::Prefetches::default(),
            cursors: reads::Cursors::default(),
        })
    }

    /// The store's NATS connection, for a node's other uses of the same
    /// servers (one connection instead of one per use).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    fn subject(&self, stream: &StreamId) -> String {
        store_subject(&self.prefix, stream)
    }

    /// The aggregate's last event: (its sequence, its version), from the
    /// leader of `events`, its namespace's stream.
    async fn last_of(
        &self,
        events: &stream::Stream,
        stream: &StreamId,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        match events
            .get_last_raw_message_by_subject(&self.subject(stream))
            .await
        {
            Ok(message) => {
                let version = codec::version(&message)?;
                self.tails.note(stream, message.sequence, version);
                Ok(Some((message.sequence, version)))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(format!(
                "reading the last event of {stream}: {e}"
            ))),
        }
    }

    /// The aggregate's version once it is past `current`. JetStream checks
    /// the expected sequence against messages still being replicated,
    /// which a read only sees once they are applied: a refused append
    /// waits briefly for the winner to become visible.
    async fn version_after(
        &self,
        events: &stream::Stream,
        stream: &StreamId,
        current: u64,
    ) -> Result<u64, StoreError> {
        let mut actual = current;
        for _ in 0..200 {
            actual = self.last_of(events, stream).await?.map_or(0, |(_, v)| v);
            if actual > current {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(actual)
    }

    async fn publish_batch(
        &self,
        request: &AppendRequest,
        last: Option<(u64, u64)>,
        current: u64,
    ) -> Result<(u64, Vec<RecordedEvent>), AppendError> {
        let subject = self.subject(&request.stream);
        let recorded = request.clone().record(current, 0);
        let message_id = request
            .metadata
            .command_id
            .as_deref()
            .map(|command| codec::message_id(&stream_key(&request.stream), command));
        let batch = uuid::Uuid::now_v7().simple().to_string();
        let count = recorded.len();
        for (i, event) in recorded.iter().enumerate() {
            let mut headers = codec::headers(event);
            if i == 0 {
                headers.insert(
                    async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                    last.map_or(0, |(sequence, _)| sequence)
                        .to_string()
                        .as_str(),
                );
            }
            let payload = Bytes::from(event.data.clone());
            if count == 1 {
                if let Some(id) = &message_id {
                    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                }
                let sequence = self
                    .publish_one(&request.stream, &subject, headers, payload, current)
                    .await?;
                return Ok((sequence, recorded));
            }
            headers.insert(async_nats::header::NATS_BATCH_ID, batch.as_str());
            headers.insert(
                async_nats::header::NATS_BATCH_SEQUENCE,
                (i + 1).to_string().as_str(),
            );
            if i + 1 < count {
                self.client
                    .publish_with_headers(subject.clone(), headers, payload)
                    .await
                    .map_err(|e| unavailable(format!("publishing to {subject}: {e}")))?;
                continue;
            }
            headers.insert(
                async_nats::header::NATS_BATCH_COMMIT,
                async_nats::header::NATS_BATCH_COMMIT_FINAL,
            );
            if let Some(id) = &message_id {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            }
            let reply = self
                .client
                .request_with_headers(subject.clone(), headers, payload)
                .await
                .map_err(|e| match e.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        codec::not_routed(format!("committing a batch to {subject}: {e}"))
                    }
                    _ => unavailable(format!("committing a batch to {subject}: {e}")).into(),
                })?;
            let sequence = codec::batch_ack(&reply.payload, &request.stream, current)?;
            return Ok((sequence, recorded));
        }
        Err(AppendError::Invalid(
            "an append needs at least one event".into(),
        ))
    }

    async fn publish_one(
        &self,
        stream: &StreamId,
        subject: &str,
        headers: async_nats::HeaderMap,
        payload: Bytes,
        current: u64,
    ) -> Result<u64, AppendError> {
        let sent = self
            .context
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await
            .map_err(|e| unavailable(format!("publishing to {subject}: {e}")))?;
        match sent.await {
            Ok(ack) if ack.duplicate => Err(AppendError::Invalid(codec::DUPLICATE.into())),
            Ok(ack) => Ok(ack.sequence),
            Err(e) if codec::is_conflict(&e) => Err(VersionConflict {
                stream: stream.clone(),
                expected: current,
                actual: current + 1,
            }
            .into()),
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                Err(codec::not_routed(format!("publishing to {subject}: {e}")))
            }
            Err(e) => Err(unavailable(format!("publishing to {subject}: {e}")).into()),
        }
    }
}

/// Refuses servers older than [`MIN_SERVER`].
fn check_version(version: &str) -> Result<(), StoreError> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < MIN_SERVER {
        return Err(unavailable(format!(
            "nats-server {version} is too old: the JetStream store needs {}.{} or newer (atomic batch publish)",
            MIN_SERVER.0, MIN_SERVER.1
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for JetStreamStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.check()?;
        let events = self.stream_for_append(&request.stream.namespace).await?;
        // Expecting the version this store last saw: publish at once (see
        // `tails.rs`); else ask the leader where the aggregate is.
        let remembered = match request.expected {
            ExpectedVersion::Exact(version) if version > 0 => {
                self.tails.at(&request.stream, version)
            }
            _ => None,
        };
        let mut last = match remembered {
            Some(last) => Some(last),
            None => self.last_of(&events, &request.stream).await?,
        };
        if let Some(command) = &request.metadata.command_id
            && let Some(events) = self
                .recorded_by(&request.stream, command, last.map_or(0, |(_, v)| v))
                .await?
        {
            return Ok(AppendOutcome {
                events,
                duplicate: true,
            });
        }
        let routed_by = tokio::time::Instant::now() + ROUTING_DEADLINE;
        loop {
            let current = last.map_or(0, |(_, version)| version);
            request.expected.check(&request.stream, current)?;
            match self.publish_batch(&request, last, current).await {
                Ok((last_sequence, mut recorded)) => {
                    // An atomic batch is stored contiguously: the events'
                    // positions (= their sequences in the namespace's
                    // stream) end at the commit's sequence.
                    let first = last_sequence + 1 - recorded.len() as u64;
                    for (event, position) in recorded.iter_mut().zip(first..) {
                        event.position = position;
                    }
                    if let Some(event) = recorded.last() {
                        self.tails
                            .note(&request.stream, last_sequence, event.version);
                    }
                    return Ok(AppendOutcome {
                        events: recorded,
                        duplicate: false,
                    });
                }
                Err(AppendError::Conflict(_)) if request.expected == ExpectedVersion::Any => {
                    last = self.last_of(&events, &request.stream).await?;
                    continue;
                }
                Err(AppendError::Conflict(_)) => {
                    // The command may have been stored since the look-up
                    // above (by another node): then that is its outcome,
                    // whatever the expected version.
                    if let Some(command) = &request.metadata.command_id {
                        let now = self.last_of(&events, &request.stream).await?;
                        if let Some(events) = self
                            .recorded_by(&request.stream, command, now.map_or(0, |(_, v)| v))
                            .await?
                        {
                            return Ok(AppendOutcome {
                                events,
                                duplicate: true,
                            });
                        }
                    }
                    let actual = self
                        .version_after(&events, &request.stream, current)
                        .await?;
                    return Err(VersionConflict {
                        stream: request.stream.clone(),
                        expected: current,
                        actual,
                    }
                    .into());
                }
                Err(AppendError::Invalid(message)) if message == codec::DUPLICATE => {}
                // Nothing was stored: publish again (checking the version
                // again) once the servers route the new stream's subjects.
                Err(error)
                    if codec::is_not_routed(&error) && tokio::time::Instant::now() < routed_by =>
                {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    last = self.last_of(&events, &request.stream).await?;
                    continue;
                }
                Err(other) => return Err(other),
            }
            let count = request.events.len();
            let original = match &request.metadata.command_id {
                Some(command) => self.command_events(&request.stream, command).await?,
                None => None,
            };
            let original = match original {
                Some(original) => original,
                None => self.events_of(&request.stream, current + 1, count).await?,
            };
            let duplicate = original.first().is_some_and(|e| e.version <= current);
            return Ok(AppendOutcome {
                events: original,
                duplicate,
            });
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.events_of(stream, from_version, limit).await
    }

    /// Written straight from the messages, as `read_stream` reads them,
    /// with the same checks and errors, and no [`RecordedEvent`] in
    /// between.
    async fn read_replay_batch(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<ReplayBatch, StoreError> {
        self.events_of(stream, from_version, limit).await
    }

    /// One: an activation's next batch comes from the read's cursor, which
    /// asks for it as soon as this batch is read (see `reads/cursor.rs`).
    fn replay_read_ahead(&self) -> usize {
        1
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let Some(events) = self.find_stream(&stream.namespace).await? else {
            return Ok(0);
        };
        Ok(self
            .last_of(&events, stream)
            .await?
            .map_or(0, |(_, version)| version))
    }

    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let Some(events) = self.find_stream(&stream.namespace).await? else {
            return Ok(None);
        };
        let current = self.last_of(&events, stream).await?.map_or(0, |(_, v)| v);
        self.recorded_by(stream, command_id, current).await
    }

    async fn read_log(
        &self,
        namespace: &Namespace,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.log_of(namespace, from_position, limit).await
    }

    async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        match self.find_stream(namespace).await? {
            Some(events) => last_sequence(&events).await,
            None => Ok(0),
        }
    }

    async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        match self.find_stream(namespace).await? {
            Some(events) => streams::stored_bytes(&events).await,
            None => Ok(0),
        }
    }

    async fn follow_log(
        &self,
        namespace: &Namespace,
        after: u64,
    ) -> Result<Option<Box<dyn super::LogFollower>>, StoreError> {
        Ok(Some(Box::new(follow::Follower::new(
            self.context.clone(),
            self.prefix.clone(),
            namespace.clone(),
            after,
        ))))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let key = codec::snapshot_key(&snapshot.stream, &snapshot.snapshot_key);
        let value = codec::encode_snapshot(&snapshot);
        loop {
            let existing = self
                .snapshots
                .entry(key.clone())
                .await
                .map_err(|e| unavailable(format!("reading a snapshot: {e}")))?;
            let written = match existing {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    if codec::snapshot_version(&entry.value) > snapshot.version {
                        return Ok(());
                    }
                    self.snapshots
                        .update(&key, value.clone(), entry.revision)
                        .await
                        .is_ok()
                }
                _ => self.snapshots.create(&key, value.clone()).await.is_ok(),
            };
            if written {
                return Ok(());
            }
            // Another writer changed it in between: look again.
            let _ = self.client.flush().await;
        }
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_key: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let key = codec::snapshot_key(stream, snapshot_key);
        let value = self
            .snapshots
            .get(key)
            .await
            .map_err(|e| unavailable(format!("reading a snapshot: {e}")))?;
        value
            .map(|v| codec::decode_snapshot(stream, snapshot_key, &v))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn old_servers_are_refused_by_name() {
        assert!(super::check_version("2.14.6").is_ok());
        assert!(super::check_version("v2.12.0").is_ok());
        assert!(super::check_version("3.0.0").is_ok());
        let old = super::check_version("2.11.9").unwrap_err().to_string();
        assert!(old.contains("nats-server 2.11.9 is too old"), "{old}");
    }
}
