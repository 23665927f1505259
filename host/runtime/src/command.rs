//! The command path of the runtime: a command decided on the live
//! aggregate (made live by `live.rs`), stored, and answered.

use aether_core::clock::now_ms;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use aether_core::namespace::{AggregateId, AggregateType, Namespace};
use aether_store::{
    AppendError, AppendRequest, AppendStep, EventMetadata, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, StoreError, StreamId, VersionConflict,
};

use super::command_ids::Recall;
use super::component::Digest;
use super::error::{CommandError, Rejection};
use super::jobs::Reply;
use super::limits::SandboxLimits;
use super::partition::{CallError, Carried, Partition, PartitionHandle, PartitionStopped};
use super::storage::StoredBytes;
use super::{LoadedComponent, Runtime};

/// The content type of JSON payloads, the default on the wire.
pub const JSON: &str = "application/json";

/// A command for one aggregate. Its serde form (used to forward it to
/// another node) leaves `data` out: the payload travels as raw bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The aggregate the command is for.
    pub stream: StreamId,
    /// The command's type, e.g. `Withdraw`.
    pub command_type: String,
    /// How `data` is encoded; [`JSON`] by default.
    pub content_type: String,
    /// The command's payload.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// If set, the command is carried out only if the aggregate is at this
    /// version; otherwise it fails with a conflict.
    pub expected_version: Option<u64>,
    /// Makes retries idempotent: a command id already stored for this
    /// aggregate is not stored again.
    pub command_id: Option<String>,
    /// Recorded in the events' metadata.
    pub correlation_id: Option<String>,
    /// Recorded in the events' metadata.
    pub causation_id: Option<String>,
}

impl CommandRequest {
    /// A JSON command of `command_type` with `data` as its payload.
    pub fn json(stream: StreamId, command_type: impl Into<String>, data: &impl Serialize) -> Self {
        Self {
            stream,
            command_type: command_type.into(),
            content_type: JSON.to_string(),
            data: serde_json::to_vec(data).unwrap_or_else(|_| b"null".to_vec()),
            expected_version: None,
            command_id: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// Requires the aggregate to be at `version`.
    pub fn expecting(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Sets the command id for idempotent retries.
    pub fn with_command_id(mut self, id: impl Into<String>) -> Self {
        self.command_id = Some(id.into());
        self
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    /// The events it stored (none if the aggregate decided nothing changes).
    pub events: Vec<RecordedEvent>,
    /// The aggregate's version afterwards.
    pub version: u64,
    /// True if the command id had already been stored: `events` are the
    /// ones stored the first time (and `version` the version they reached),
    /// and nothing new was written.
    pub duplicate: bool,
}

/// An aggregate's derived state, as its component renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateState {
    /// The version the state was derived at (0: no events yet).
    pub version: u64,
    /// The component's JSON view of the state.
    pub view: serde_json::Value,
}

impl From<PartitionStopped> for CommandError {
    fn from(_: PartitionStopped) -> Self {
        CommandError::Stopped
    }
}

/// How many times one request decides again after its live copy turned
/// out to be behind the store (another writer appended): a command without
/// an expected version, a rejection or a state read is never answered from
/// a stale copy, and a stream that keeps moving faster than that gets a
/// retryable error (or, for a command, the conflict it keeps meeting).
pub(super) const REFRESH_LIMIT: usize = 3;

/// How many times one command or read activates its aggregate again after
/// losing it with its instance. The aggregate is pinned while its lock is
/// held, so only a dropped instance takes it away: another aggregate's
/// guest failed in the same instance (a tenant whose guests keep trapping
/// can do that many times over: with several of its aggregates trapping
/// at once, each one's next activation can be lost to the others again and
/// again), or the namespace got new limits. High, so that only a guest that
/// never gets to run its own command is refused (retryable); low enough
/// that nothing loops forever.
pub(super) const LOST_LIMIT: usize = 1_000;

/// The retryable answer when an aggregate kept losing its instance.
pub(super) fn instances_kept_failing(stream: &StreamId) -> CommandError {
    CommandError::Store(StoreError::Unavailable {
        backend: "runtime",
        message: format!(
            "{stream} lost its guest instance {LOST_LIMIT} times to other aggregates' failures \
             while this request ran; nothing was stored"
        ),
    })
}

/// What a decision made on a stale live copy comes to, the store being at
/// `stored`: with an expected version (which the live version matched, so
/// `stored` does not), a conflict that is true now; without, decide again.
fn stale(request: &CommandRequest, stored: u64) -> Result<Decided, CommandError> {
    match request.expected_version {
        Some(expected) => Err(VersionConflict {
            stream: request.stream.clone(),
            expected,
            actual: stored,
        }
        .into()),
        None => Ok(Decided::Refresh),
    }
}

/// What one decision by the live aggregate came to.
enum Decided {
    /// An answer to give as it is.
    Done(CommandOutcome),
    /// The live copy was stale: decide again from the store.
    Refresh,
    /// The live copy was lost with its instance (another aggregate's guest
    /// failed in the same instance, or the namespace got new limits):
    /// activate it again and decide again.
    Lost,
}

/// What one partition job made of a command ([`decide`]).
#[allow(clippy::large_enum_variant)] // See `Ready`.
enum Turn {
    /// Not live under the component (never activated, passivated, made by
    /// another component): activate it, then decide.
    Inactive,
    /// The live aggregate's memory cannot rule out that the command id is
    /// stored: ask the store before deciding.
    MaybeStored,
    /// The aggregate went as far as it could without the store.
    Ready(Ready),
}

/// A decision on the live aggregate at `version`, still to be stored or
/// confirmed against the store.
// Moved once per command: a started append's request is carried as it
// is, not boxed.
#[allow(clippy::large_enum_variant)]
enum Ready {
    /// The live version is not the expected one.
    Mismatch { version: u64 },
    /// The aggregate refused the command.
    Rejected { version: u64, rejection: Rejection },
    /// The command changes nothing.
    Unchanged { version: u64 },
    /// The aggregate decided events of `adding` bytes and has already
    /// applied them (`applied`: its new version, or why the live copy is
    /// lost); their append, fenced by `version`, was carried out by the
    /// store the job handed it to ([`AppendStep::Done`]) or is still to do
    /// ([`AppendStep::Deferred`]): they must be stored, or the live copy
    /// passivated.
    Decided {
        version: u64,
        adding: u64,
        applied: Result<u64, CallError>,
        appending: AppendStep,
    },
}

/// What a command's partition job needs to start the append itself
/// ([`EventStore::start_append`]: the embedded store's writer then has it
/// without waiting for an async worker to take the decision and send it
/// on, and answers the command's task with the decision and its outcome
/// at once: one wake-up of the task instead of two).
struct AppendStart {
    store: Arc<dyn EventStore>,
    /// The namespace's stored event bytes as last counted, and its quota.
    stored: u64,
    limit: u64,
    digest_hex: String,
}

/// One command's partition job, the whole warm path in one round trip:
/// finds the aggregate live under `digest`, asks its memory of command ids
/// (unless the store was just asked), checks the expected version, and has
/// the guest carry the command out: decide it and apply what it decided
/// ahead of the append (see [`Runtime::execute`] for why that is safe),
/// then checks the decision's size and the namespace's stored-bytes quota
/// (a decision refused is never stored, so the aggregate that applied it
/// is passivated). The append is left to [`answer`].
fn decide(
    p: &mut Partition,
    request: &CommandRequest,
    (digest, limits): (&Digest, &SandboxLimits),
    start: &AppendStart,
    ask_memory: bool,
) -> Result<Turn, CommandError> {
    let stream = &request.stream;
    let Some(live) = p.live_version(stream, digest) else {
        return Ok(Turn::Inactive);
    };
    if ask_memory
        && let Some(command_id) = &request.command_id
        && p.recall_command(stream, command_id) == Recall::Maybe
    {
        return Ok(Turn::MaybeStored);
    }
    let version = live.version;
    if request.expected_version.is_some_and(|e| e != version) {
        return Ok(Turn::Ready(Ready::Mismatch { version }));
    }
    // Timestamps never go backwards within a stream, whatever the clock of
    // the node that wrote the previous event said.
    let timestamp_ms = now_ms().max(live.last_timestamp_ms);
    let command = (
        request.command_type.as_str(),
        request.content_type.as_str(),
        &request.data[..],
    );
    let command_id = request.command_id.as_deref();
    let carried = match p.execute(stream, command, timestamp_ms, command_id) {
        Ok(Ok(carried)) => carried,
        Ok(Err(rejection)) => return Ok(Turn::Ready(Ready::Rejected { version, rejection })),
        // Pinned, so only a dropped instance takes it away.
        Err(CallError::NotLive) => return Ok(Turn::Inactive),
        Err(CallError::Guest(failure)) => return Err(failure.into()),
    };
    let Carried { events, applied } = carried;
    if events.is_empty() {
        return Ok(Turn::Ready(Ready::Unchanged { version }));
    }
    let adding = events.iter().map(|e| e.data.len() as u64).sum();
    let checked = limits
        .check_decision(events.iter().map(|e| (e.event_type.as_str(), e.data.len())))
        .and_then(|()| StoredBytes::check(&stream.namespace, start.stored, adding, start.limit));
    if let Err(error) = checked {
        // Applied, and never to be stored: rebuilt from the store next time.
        p.passivate(stream);
        return Err(error);
    }
    let appending = AppendStep::Deferred(AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Exact(version),
        events: events
            .into_iter()
            .map(|e| NewEvent {
                event_type: e.event_type,
                content_type: e.content_type,
                data: e.data,
            })
            .collect(),
        metadata: EventMetadata {
            command_id: request.command_id.clone(),
            correlation_id: request.correlation_id.clone(),
            causation_id: request.causation_id.clone(),
            component_digest: Some(start.digest_hex.clone()),
        },
        timestamp_ms,
    });
    Ok(Turn::Ready(Ready::Decided {
        version,
        adding,
        applied,
        appending,
    }))
}

/// Answers a command's partition job with its [`decide`]: a decision is
/// first handed to the store ([`EventStore::start_append`]), which answers
/// with its outcome from the thread that carried it out (the embedded
/// store's writer), or at once if it did not start it; anything else is
/// answered at once.
fn answer(
    store: &dyn EventStore,
    turn: Result<Turn, CommandError>,
    reply: Reply<Result<Turn, CommandError>>,
) {
    let Ok(Turn::Ready(Ready::Decided {
        version,
        adding,
        applied,
        appending: AppendStep::Deferred(request),
    })) = turn
    else {
        return reply.send(turn);
    };
    store.start_append(
        request,
        Box::new(move |appending| {
            reply.send(Ok(Turn::Ready(Ready::Decided {
                version,
                adding,
                applied,
                appending,
            })))
        }),
    );
}

/// A live copy that has (or may have) applied a decision not yet stored:
/// dropped armed, it passivates the aggregate (queued on its partition
/// before the command's turn ends, so the next job of the stream rebuilds
/// it from the store). Disarmed once the store holds the decision, or once
/// the deciding job's answer is in (its caller then acts on it).
struct Speculative<'a> {
    partition: &'a PartitionHandle,
    stream: Option<&'a StreamId>,
}

impl Speculative<'_> {
    /// The live copy is the store's (it holds what the copy applied, or
    /// the caller hears what became of it): keep the live copy.
    fn keep(mut self) {
        self.stream = None;
    }
}

impl Drop for Speculative<'_> {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take().cloned() {
            self.partition.send(move |p| p.passivate(&stream));
        }
    }
}

impl Runtime {
    /// Carries out one command: see the module docs of [`crate`].
    ///
    /// **Invariant:** every definite answer is true of the stream at some
    /// instant during the call. Events stored by this call are fenced by
    /// the append's expected version. A rejection and a command that
    /// changes nothing are only answered once the store confirms the live
    /// version is the stream's version; otherwise the aggregate is rebuilt
    /// and decides again, or, for a command with an expected version, gets
    /// the conflict with the store's version (read after the live one, so
    /// true then, however fast the stream moves). A conflict is
    /// never answered for a command whose command id is stored: its first
    /// outcome is. A command without an expected version that meets a
    /// conflict on append decides again (at most `REFRESH_LIMIT` times).
    ///
    /// **The lean path:** a command for a live aggregate costs one
    /// partition round trip (`decide`), whose job also hands the append to
    /// the store where it can (the embedded store's writer then has it
    /// without waiting for an async worker to take the decision and send
    /// it on, and answers with the decision and its outcome together: the
    /// command's task wakes once).
    /// Two things make that safe:
    ///
    /// - *The command id from memory.* The live aggregate remembers the
    ///   command ids of its events (`command_ids`); the store is
    ///   read for the id only when that memory cannot rule it out (the id
    ///   is there, a false positive, or the aggregate was restored from a
    ///   snapshot). An id the memory rules out is in none of the live
    ///   copy's events, so it is not stored whenever the store is at the
    ///   live version, and every answer that relies on it is given at such
    ///   an instant: an append succeeds only at the live version (its
    ///   fence), a rejection or no-op only once the store's version is
    ///   confirmed to be the live one. A stale live copy (another node
    ///   appended, perhaps the same command) meets a conflict instead,
    ///   and a conflict is answered only after the store is asked for the
    ///   id; a store that finds the id on append answers duplicate.
    /// - *Applying before the append.* The job applies the decided events
    ///   to the live copy as the store will record them (the versions after
    ///   the fenced one, the command's timestamp and id), so nothing is left
    ///   to do on the partition once they are stored. Until then the
    ///   aggregate is pinned and in this command's turn, so no other job
    ///   sees the ahead-of-the-store copy; if they are not stored (a failed
    ///   check or append, a duplicate, a cancelled caller), `Speculative`
    ///   passivates it before the turn ends.
    pub async fn execute(&self, request: CommandRequest) -> Result<CommandOutcome, CommandError> {
        if request.command_type.is_empty() {
            return Err(CommandError::Malformed("the command type is empty".into()));
        }
        // Shared with the partition jobs without copying the payload.
        let request = Arc::new(request);
        let stream = &request.stream;
        let lane = self.inner.lanes.lane(&stream.namespace);
        let limits = lane.limits();
        limits.check_command(request.data.len())?;
        let _admitted = lane.admit(&limits)?;
        let component = self.component_for(&stream.namespace, &stream.aggregate_type)?;
        let partition = lane.partition(stream)?;
        let _turn = self.inner.locks.lock(stream).await;
        // Dropped before the turn: no eviction between this command's jobs.
        let _pin = partition.pin(stream);

        let (mut refreshed, mut lost) = (0, 0);
        loop {
            let decided = self
                .decide_and_append(&request, &partition, &component, (&limits, lane.stored()))
                .await;
            match decided {
                Ok(Decided::Done(outcome)) => return Ok(outcome),
                Ok(Decided::Lost) if lost < LOST_LIMIT => lost += 1,
                Ok(Decided::Lost) => return Err(instances_kept_failing(stream)),
                Ok(Decided::Refresh) if refreshed < REFRESH_LIMIT => refreshed += 1,
                Ok(Decided::Refresh) => {
                    return Err(CommandError::Store(StoreError::Unavailable {
                        backend: "runtime",
                        message: format!(
                            "{stream} kept changing while the command was decided ({REFRESH_LIMIT} refreshes)"
                        ),
                    }));
                }
                Err(CommandError::Conflict(conflict)) => {
                    if let Some(outcome) = self.stored_outcome(&request).await? {
                        // Stored meanwhile by another attempt of the same
                        // command (a cluster resend): that is its outcome.
                        return Ok(outcome);
                    }
                    if request.expected_version.is_some() || refreshed >= REFRESH_LIMIT {
                        return Err(CommandError::Conflict(conflict));
                    }
                    // No expected version: the conflict is the live copy's,
                    // not the caller's. Decide again on the newer state.
                    refreshed += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The outcome stored for the request's command id, if any.
    async fn stored_outcome(
        &self,
        request: &CommandRequest,
    ) -> Result<Option<CommandOutcome>, CommandError> {
        let Some(command_id) = &request.command_id else {
            return Ok(None);
        };
        let Some(events) = self
            .inner
            .store
            .command_events(&request.stream, command_id)
            .await?
        else {
            return Ok(None);
        };
        let version = events.last().map_or(0, |e| e.version);
        Ok(Some(CommandOutcome {
            events,
            version,
            duplicate: true,
        }))
    }

    /// One decision: activate if needed, ask the store for the command id
    /// if the aggregate's memory cannot rule it out, and either append what
    /// was decided or confirm the live version before answering from it.
    async fn decide_and_append(
        &self,
        request: &Arc<CommandRequest>,
        partition: &PartitionHandle,
        component: &Arc<LoadedComponent>,
        (limits, stored): (&Arc<SandboxLimits>, &StoredBytes),
    ) -> Result<Decided, CommandError> {
        let stream = &request.stream;
        let start = Arc::new(AppendStart {
            store: self.inner.store.clone(),
            stored: stored
                .current(&*self.inner.store, &stream.namespace)
                .await?,
            limit: limits.max_stored_event_bytes,
            digest_hex: component.digest_hex().to_owned(),
        });
        let (mut activated, mut ask_memory) = (false, true);
        let ready = loop {
            let (req, digest, lim) = (request.clone(), component.digest().clone(), limits.clone());
            let start = start.clone();
            let job = move |p: &mut Partition, reply| {
                let turn = decide(p, &req, (&digest, &lim), &start, ask_memory);
                answer(&*start.store, turn, reply);
            };
            // A caller that goes away while the job may apply a decision
            // (queued, deciding, or appending what it decided) never hears
            // whether the store took it: passivate, before the turn ends.
            let cancelled = Speculative {
                partition,
                stream: Some(stream),
            };
            let turn = partition.replying(job, false).await;
            cancelled.keep();
            let turn = turn??;
            match turn {
                Turn::Ready(ready) => break ready,
                // Pinned, so only a dropped instance takes it away.
                Turn::Inactive if activated => return Ok(Decided::Lost),
                Turn::Inactive => {
                    if self
                        .activate_live(partition, stream, component)
                        .await?
                        .is_none()
                    {
                        return Ok(Decided::Lost);
                    }
                    activated = true;
                }
                Turn::MaybeStored => {
                    if let Some(outcome) = self.stored_outcome(request).await? {
                        // A retry of a command already carried out: its
                        // first outcome, without asking the aggregate again.
                        return Ok(Decided::Done(outcome));
                    }
                    ask_memory = false;
                }
            }
        };
        let (version, adding, applied, appending) = match ready {
            Ready::Mismatch { version } => {
                let expected = request.expected_version.unwrap_or(version);
                // The conflict is true if the store's version, read now, is
                // not the expected one either (however often the stream
                // moves); only a live copy behind a store at the expected
                // version decides again.
                let stored = self.stored_version(partition, stream, version).await?;
                if stored == expected {
                    return Ok(Decided::Refresh);
                }
                return Err(VersionConflict {
                    stream: stream.clone(),
                    expected,
                    actual: stored,
                }
                .into());
            }
            Ready::Rejected { version, rejection } => {
                let stored = self.stored_version(partition, stream, version).await?;
                if stored != version {
                    return stale(request, stored);
                }
                return Err(CommandError::Rejected(rejection));
            }
            Ready::Unchanged { version } => {
                let stored = self.stored_version(partition, stream, version).await?;
                if stored != version {
                    return stale(request, stored);
                }
                return Ok(Decided::Done(CommandOutcome {
                    events: Vec::new(),
                    version,
                    duplicate: false,
                }));
            }
            Ready::Decided {
                version,
                adding,
                applied,
                appending,
            } => (version, adding, applied, appending),
        };
        // From here until the store holds the events, the live copy is
        // ahead of the store: every way out but a stored append passivates it.
        let speculative = Speculative {
            partition,
            stream: Some(stream),
        };
        let appended = match appending {
            AppendStep::Done(outcome) => outcome,
            AppendStep::Deferred(append) => self.inner.store.append(append).await,
        };
        let outcome = match appended {
            Ok(outcome) => outcome,
            // The live copy applied what was not stored: `speculative`
            // passivates it, and the next decision rebuilds it.
            Err(AppendError::Conflict(conflict)) => return Err(CommandError::Conflict(conflict)),
            Err(AppendError::Invalid(message)) => return Err(CommandError::Malformed(message)),
            Err(AppendError::Store(store)) => return Err(CommandError::Store(store)),
        };
        let stored_version = outcome.events.last().map_or(version, |e| e.version);
        if outcome.duplicate {
            // Stored by an earlier attempt: the live copy applied this
            // attempt's decision instead, so `speculative` passivates it and
            // the next command rebuilds it from the store.
            return Ok(Decided::Done(CommandOutcome {
                events: outcome.events,
                version: stored_version,
                duplicate: true,
            }));
        }
        let version = match applied {
            Ok(new_version) => {
                debug_assert_eq!(new_version, stored_version);
                speculative.keep();
                self.snapshot_if_due(partition, stream, component, version, new_version)
                    .await;
                new_version
            }
            Err(error) => {
                // The events are stored; only the live copy is lost. The
                // next command replays them.
                tracing::warn!(%stream, ?error, "applying the decided events failed; the aggregate will be replayed");
                stored_version
            }
        };
        stored.add(adding);
        self.inner.sink.publish(&outcome.events);
        Ok(Decided::Done(CommandOutcome {
            events: outcome.events,
            version,
            duplicate: false,
        }))
    }
}

/// Builds a stream id from unvalidated names, for callers at the edge.
pub fn stream_id(
    namespace: &str,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<StreamId, CommandError> {
    Ok(StreamId::new(
        Namespace::new(namespace)?,
        AggregateType::new(aggregate_type)?,
        AggregateId::new(aggregate_id)?,
    ))
}
