//! Partitions: where guest code runs.
//!
//! A partition is one OS thread of one namespace's lane
//! ([`super::lanes`]) that owns, for each component digest it has seen, one
//! guest instance in its own wasmtime `Store`, and an LRU of the live
//! aggregates (guest resources) in those instances. One instance can hold
//! every aggregate the LRU admits: its store's handle cap is sized from the
//! same capacity ([`super::instance::HANDLE_HEADROOM`]). Aggregates are hashed
//! to a partition, so different aggregates run in parallel across cores
//! while each instance is only ever touched by its own thread. The async command path sends closures to the partition and
//! awaits their answer ([`PartitionHandle::call`]).
//!
//! Lifecycle of a live aggregate: *activating* (constructor, then its
//! events applied in batches), *live* once the activation is
//! [`Partition::complete`]d, *used* (handle, apply, view), and *passivated*
//! (its resource dropped) when the LRU is full, when a newer component is
//! active for its type, or when its command conflicted.
//!
//! **Invariant:** an aggregate is *pinned* while a command or read holds
//! its lock ([`PartitionHandle::pin`]): the LRU never evicts a pinned
//! aggregate (the partition holds more than its capacity for a while
//! instead), and passivating by predicate (a hand-off) waits until it is
//! unpinned. So the partition jobs of one command never lose their
//! aggregate between them. Only a dropped instance (a guest failure, new
//! limits) can still take a pinned aggregate away; the command then fails
//! with a retryable error, having stored nothing.
//!
//! **Invariant:** activation is all or nothing. An aggregate whose
//! activation did not complete (a store read failed, its caller was
//! cancelled) is never used: `handle`, `view` and `snapshot` answer
//! [`CallError::NotLive`] for it and [`Partition::live_version`] passivates
//! it, so its next use activates it again from the store.
//!
//! Priority: a partition thread that stays busy while other lanes run
//! lowers its own CPU priority, so lighter lanes' jobs run first when
//! threads compete, and rests for the CPU time it uses beyond its
//! namespace's share ([`super::busy`]).
//!
//! **Invariant:** the tenant's jobs run in the order they were sent; the
//! node's own work ([`PartitionHandle::call_for_node`]) runs ahead of the
//! tenant jobs queued before it (after at most a millisecond of them), and
//! during a rest. A stopping partition ends its rest.
//!
//! Failure: a trap, a deadline or a memory overrun poisons the whole
//! instance. It is dropped with every live aggregate in it; they re-activate
//! by replay on their next command. Nothing else in the partition is
//! affected.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use lru::LruCache;
use wasmtime::Engine;
use wasmtime::component::ResourceAny;

use super::CommandError;
use super::bindings::NewEvent;
use super::busy::{BusyWatch, LaneJobs, RunningThreads};
use super::command_ids::{CommandIds, Recall};
use super::component::{Digest, LoadedComponent};
use super::error::{GuestFailure, GuestFailureKind, Rejection};
use super::instance::{Executed, GuestInstance};
use super::jobs::{Job, Jobs, Reply};
use super::limits::SandboxLimits;
use aether_core::namespace::Namespace;
use aether_store::{ReplayBatch, StreamId};

/// The async side's handle to a partition thread.
#[derive(Clone)]
pub(crate) struct PartitionHandle {
    jobs: mpsc::Sender<Job>,
}

/// The partition thread has stopped (the runtime is shutting down).
#[derive(Debug)]
pub(crate) struct PartitionStopped;

impl PartitionHandle {
    /// Starts partition `index` of `namespace`'s lane on its own thread.
    pub(crate) fn spawn(
        namespace: &Namespace,
        index: usize,
        engine: Engine,
        sizing: PartitionSizing,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("aether-{namespace}-{index}"))
            .spawn(move || {
                let _running = sizing.running.enter();
                aether_core::thread::answer_promptly();
                let mut busy = BusyWatch::new(
                    sizing.running.clone(),
                    sizing.partitions,
                    sizing.lane_jobs.clone(),
                );
                let mut partition = Partition::new(engine, sizing);
                let mut jobs = Jobs::new(queue, index);
                while let Some(job) = jobs.next_tenant_job(&mut partition) {
                    let started = Instant::now();
                    let aside = super::busy::step_aside_if_gave_way();
                    job.run_on(&mut partition, index);
                    drop(aside);
                    let share = partition.sizing.limits.cpu_share_percent;
                    let rest = busy.job_done(started, share);
                    if !rest.is_zero() {
                        jobs.rest(rest, &mut partition);
                    }
                }
            })?;
        Ok(Self { jobs })
    }

    /// Pins `stream` in the partition until the returned guard is dropped
    /// (see the module's invariant). The caller holds the aggregate's lock;
    /// the pin is queued before any of its calls, and the unpin after them.
    pub(crate) fn pin(&self, stream: &StreamId) -> Pin {
        let s = stream.clone();
        // A stopped partition has nothing to pin; the calls will say so.
        let _ = self
            .jobs
            .send(Job::tenant(move |p: &mut Partition| p.pin(s)));
        Pin {
            jobs: self.jobs.clone(),
            stream: Some(stream.clone()),
        }
    }

    /// Queues `f` on the partition thread without waiting for it: it runs
    /// before every job queued after it (a partition runs its jobs in
    /// order), so the caller's next call sees what it did.
    pub(crate) fn send(&self, f: impl FnOnce(&mut Partition) + Send + 'static) {
        // A stopped partition has nothing left to change.
        let _ = self.jobs.send(Job::tenant(f));
    }

    /// Runs `f` on the partition thread, for the tenant, and returns its
    /// result.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Partition) -> R + Send + 'static,
    ) -> Result<R, PartitionStopped> {
        self.run(f, false).await
    }

    /// [`PartitionHandle::call`] for the node's own work, which runs ahead
    /// of the tenant jobs queued before it, and on a resting thread too
    /// (see [`Job`]). The caller makes sure it may.
    pub(crate) async fn call_for_node<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Partition) -> R + Send + 'static,
    ) -> Result<R, PartitionStopped> {
        self.run(f, true).await
    }

    /// [`PartitionHandle::call`], or [`PartitionHandle::call_for_node`]
    /// if `node_work`.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Partition) -> R + Send + 'static,
        node_work: bool,
    ) -> Result<R, PartitionStopped> {
        self.replying(move |p, reply| reply.send(f(p)), node_work)
            .await
    }

    /// [`PartitionHandle::run`] for a job that answers through `reply`,
    /// now or later from another thread (a command's job hands it on with
    /// the append it starts). A reply dropped unsent reads as a stopped
    /// partition.
    pub(crate) async fn replying<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Partition, Reply<R>) + Send + 'static,
        node_work: bool,
    ) -> Result<R, PartitionStopped> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let run = Box::new(move |partition: &mut Partition| f(partition, Reply(reply)));
        let job = Job { run, node_work };
        self.jobs.send(job).map_err(|_| PartitionStopped)?;
        answer.await.map_err(|_| PartitionStopped)
    }
}

/// Keeps an aggregate pinned in its partition; dropping it unpins.
pub(crate) struct Pin {
    jobs: mpsc::Sender<Job>,
    stream: Option<StreamId>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = self
                .jobs
                .send(Job::tenant(move |p: &mut Partition| p.unpin(&stream)));
        }
    }
}

/// Which instance an aggregate lives in.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct InstanceKey {
    namespace: Namespace,
    digest: Digest,
}

struct LiveAggregate {
    instance: InstanceKey,
    resource: ResourceAny,
    version: u64,
    /// False until the activation has applied the whole stream.
    complete: bool,
    /// The timestamp of the event at `version` (0 while unknown): the next
    /// event of the stream is never stamped earlier.
    last_timestamp_ms: u64,
    /// The command ids of the events applied to it.
    command_ids: CommandIds,
}

/// A live aggregate's position: its version and the timestamp of its last
/// event (0 when it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LivePosition {
    pub(crate) version: u64,
    pub(crate) last_timestamp_ms: u64,
}

/// Why a call on a live aggregate did not happen or did not finish.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The aggregate is not live (never activated, passivated, or its
    /// instance was dropped): activate it and try again.
    NotLive,
    /// The guest failed; its instance has been dropped.
    Guest(GuestFailure),
}

impl From<GuestFailure> for CallError {
    fn from(failure: GuestFailure) -> Self {
        CallError::Guest(failure)
    }
}

/// A parsed view, or why there is none to return.
pub(crate) type ViewResult = Result<serde_json::Value, CommandError>;

/// A snapshot to start an activation from: (version, state bytes).
pub(crate) type StartingPoint = Option<Snapshotted>;

/// A command the live aggregate carried out (see [`Partition::execute`]):
/// the events it decided, applied ahead of the store, and its new version,
/// or why the live copy is lost (it could not apply one of them; it is
/// passivated, and the events are still to be stored).
pub(crate) struct Carried {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) applied: Result<u64, CallError>,
}

/// A live aggregate's snapshot, as taken: the guest's state at
/// `version`, and the command-id filter to save next to it (if complete).
pub(crate) struct TakenSnapshot {
    pub(crate) state: Vec<u8>,
    pub(crate) version: u64,
    pub(crate) command_ids: Option<Vec<u8>>,
}

/// A snapshot to activate from: the state at `version`, and the command-id
/// filter saved with it (if it was, at the same version).
pub(crate) struct Snapshotted {
    pub(crate) version: u64,
    pub(crate) state: Vec<u8>,
    pub(crate) command_ids: Option<CommandIds>,
}

/// What a partition is sized by: its namespace's limits, how many
/// partitions share them, and the guest output cap.
#[derive(Clone)]
pub(crate) struct PartitionSizing {
    pub(crate) limits: Arc<SandboxLimits>,
    pub(crate) partitions: usize,
    pub(crate) output_limit: usize,
    /// Every lane's running partition threads (see [`super::busy`]).
    pub(crate) running: RunningThreads,
    /// The jobs done by this lane's partition threads.
    pub(crate) lane_jobs: LaneJobs,
}

impl PartitionSizing {
    fn live_capacity(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.limits.live_aggregates_per_partition(self.partitions))
            .unwrap_or(NonZeroUsize::MIN)
    }
}

/// The state of one partition thread.
pub(crate) struct Partition {
    engine: Engine,
    sizing: PartitionSizing,
    instances: HashMap<InstanceKey, GuestInstance>,
    /// Live aggregates, most recently used first. Unbounded: `capacity`
    /// is kept by [`Partition::make_room`], which never evicts a pinned one.
    live: LruCache<StreamId, LiveAggregate>,
    capacity: usize,
    /// How many holders pin each aggregate (normally one: its lock's).
    pins: HashMap<StreamId, usize>,
    /// Pinned aggregates to passivate once they are unpinned.
    passivate_on_unpin: HashSet<StreamId>,
}

impl Partition {
    fn new(engine: Engine, sizing: PartitionSizing) -> Self {
        let capacity = sizing.live_capacity().get();
        Self {
            engine,
            sizing,
            instances: HashMap::new(),
            live: LruCache::unbounded(),
            capacity,
            pins: HashMap::new(),
            passivate_on_unpin: HashSet::new(),
        }
    }

    /// Puts the partition under new limits: every live aggregate is
    /// passivated and every instance dropped, so all of them come back
    /// under the new limits (by replay) on their next use.
    pub(crate) fn set_limits(&mut self, limits: Arc<SandboxLimits>) {
        while let Some((_, aggregate)) = self.live.pop_lru() {
            self.drop_resource(aggregate);
        }
        self.instances.clear();
        self.sizing.limits = limits;
        self.capacity = self.sizing.live_capacity().get();
    }

    fn pin(&mut self, stream: StreamId) {
        *self.pins.entry(stream).or_default() += 1;
    }

    fn unpin(&mut self, stream: &StreamId) {
        let Some(count) = self.pins.get_mut(stream) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.pins.remove(stream);
        if self.passivate_on_unpin.remove(stream) {
            self.passivate(stream);
        }
        self.make_room(0);
    }

    fn is_pinned(&self, stream: &StreamId) -> bool {
        self.pins.contains_key(stream)
    }

    /// Evicts least recently used aggregates that are not pinned until
    /// `extra` more fit within the capacity (or only pinned ones are left).
    fn make_room(&mut self, extra: usize) {
        while self.live.len() + extra > self.capacity {
            let Some(victim) = self
                .live
                .iter()
                .rev()
                .map(|(stream, _)| stream)
                .find(|stream| !self.pins.contains_key(*stream))
                .cloned()
            else {
                return;
            };
            self.passivate(&victim);
        }
    }

    /// The position of `stream` if it is live under `component`. A live
    /// aggregate made by another component (a newer component was
    /// deployed), or whose activation never completed, is passivated
    /// first, so the caller activates it again.
    pub(crate) fn live_version(
        &mut self,
        stream: &StreamId,
        component: &Digest,
    ) -> Option<LivePosition> {
        let live = self.live.get(stream)?;
        if live.complete && &live.instance.digest == component {
            return Some(LivePosition {
                version: live.version,
                last_timestamp_ms: live.last_timestamp_ms,
            });
        }
        self.passivate(stream);
        None
    }

    /// Ends the activation of `stream`: from now on it is live. `timestamp`
    /// fills in its last event's timestamp if the replay did not see it
    /// (activated from a snapshot). `None` if it is no longer there (the LRU
    /// evicted it meanwhile): activate again.
    pub(crate) fn complete(
        &mut self,
        stream: &StreamId,
        timestamp: Option<u64>,
    ) -> Option<LivePosition> {
        let live = self.live.get_mut(stream)?;
        live.complete = true;
        if let Some(timestamp) = timestamp {
            live.last_timestamp_ms = live.last_timestamp_ms.max(timestamp);
        }
        Some(LivePosition {
            version: live.version,
            last_timestamp_ms: live.last_timestamp_ms,
        })
    }

    /// Creates the aggregate's resource under `component`, instantiating
    /// the component first if this partition has no instance of it for the
    /// namespace, and restores `snapshot` into it if given. Returns the
    /// version the aggregate is at: the snapshot's, or 0. A snapshot the
    /// guest refuses is skipped (logged): the caller then replays in full.
    pub(crate) fn activate(
        &mut self,
        stream: &StreamId,
        component: &Arc<LoadedComponent>,
        snapshot: StartingPoint,
    ) -> Result<u64, GuestFailure> {
        self.passivate(stream);
        let key = InstanceKey {
            namespace: stream.namespace.clone(),
            digest: component.digest().clone(),
        };
        if !self.instances.contains_key(&key) {
            let label: Arc<str> = format!("{}@{}", key.namespace, key.digest.short()).into();
            let instance = GuestInstance::new(
                &self.engine,
                self.sizing.limits.clone(),
                self.sizing.live_capacity().get(),
                self.sizing.output_limit,
                component,
                label,
            )?;
            self.instances.insert(key.clone(), instance);
        }
        let resource = self.with_instance(&key, |instance| instance.create(stream))?;
        let mut version = 0;
        let mut resource = resource;
        let mut command_ids = CommandIds::starting_at(0);
        if let Some(Snapshotted {
            version: at,
            state,
            command_ids: saved,
        }) = snapshot
        {
            let restored = self.with_instance(&key, |instance| {
                instance.restore(stream, resource, at, &state)
            })?;
            match restored {
                Ok(()) => {
                    version = at;
                    command_ids = saved.unwrap_or_else(|| CommandIds::starting_at(at));
                }
                Err(message) => {
                    tracing::warn!(%stream, at, "snapshot refused by the component ({message}); replaying in full");
                    self.with_instance(&key, |instance| instance.drop_resource(resource))?;
                    resource = self.with_instance(&key, |instance| instance.create(stream))?;
                }
            }
        }
        self.make_room(1);
        self.live.put(
            stream.clone(),
            LiveAggregate {
                instance: key,
                resource,
                version,
                complete: false,
                last_timestamp_ms: 0,
                command_ids,
            },
        );
        Ok(version)
    }

    /// Applies a batch of stored events, read for this activation, and
    /// returns the new version.
    ///
    /// **Invariant:** the batch continues the live version without a gap
    /// (its versions are `version + 1`, `version + 2`, …): a batch that
    /// does not, whatever the store that read it, is refused before the
    /// guest sees it, and the aggregate is passivated. So is an aggregate
    /// whose guest refuses an event; the error names that event's version.
    pub(crate) fn apply(
        &mut self,
        stream: &StreamId,
        batch: &ReplayBatch,
    ) -> Result<u64, CallError> {
        let (key, resource, version) = self.live_entry(stream)?;
        let events = batch.events();
        let Some(((first, _), (last, last_timestamp))) = events.first().zip(events.last()) else {
            return Ok(version);
        };
        if !events.continues(version) {
            self.passivate(stream);
            return Err(CallError::Guest(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!(
                    "events for {stream} do not continue version {version} (got {first}..{last}): the aggregate was passivated"
                ),
            )));
        }
        let applied = self.with_instance(&key, |instance| {
            instance.apply_batch(stream, resource, events)
        })?;
        if let Err((failed, message)) = applied {
            self.passivate(stream);
            return Err(CallError::Guest(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!(
                    "the component could not apply event version {failed} of {stream}: {message}"
                ),
            )));
        }
        if let Some(live) = self.live.get_mut(stream) {
            live.version = last;
            live.last_timestamp_ms = live.last_timestamp_ms.max(last_timestamp);
            for command_id in batch.command_ids() {
                live.command_ids.insert(command_id);
            }
        }
        Ok(last)
    }

    /// Carries out a command (type, content type, data) on the live
    /// aggregate: the guest decides it and applies what it decided before
    /// it is stored, as the store will record it: versions after the live
    /// one, all stamped `timestamp_ms`, carrying `command_id`
    /// ([`GuestInstance::execute`]). The caller appends the events fenced
    /// by the old version and passivates the aggregate unless the append
    /// stores them (see `Runtime::execute`); until then the aggregate is
    /// pinned and in its command's turn, so nothing else sees it.
    pub(crate) fn execute(
        &mut self,
        stream: &StreamId,
        command: (&str, &str, &[u8]),
        timestamp_ms: u64,
        command_id: Option<&str>,
    ) -> Result<Result<Carried, Rejection>, CallError> {
        let (key, resource, version) = self.complete_entry(stream)?;
        let executed = self.with_instance(&key, |instance| {
            instance.execute(stream, resource, version, command, timestamp_ms)
        })?;
        let Executed { events, refused } = match executed {
            Ok(executed) => executed,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if let Some((failed, message)) = refused {
            self.passivate(stream);
            let applied = Err(CallError::Guest(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!(
                    "the component could not apply event version {failed} of {stream}: {message}"
                ),
            )));
            return Ok(Ok(Carried { events, applied }));
        }
        let new_version = version + events.len() as u64;
        if !events.is_empty()
            && let Some(live) = self.live.get_mut(stream)
        {
            live.version = new_version;
            live.last_timestamp_ms = live.last_timestamp_ms.max(timestamp_ms);
            if let Some(command_id) = command_id {
                live.command_ids.insert(command_id);
            }
        }
        Ok(Ok(Carried {
            events,
            applied: Ok(new_version),
        }))
    }

    /// Whether `command_id` may be stored in the live aggregate's stream
    /// (see [`super::command_ids`]); `Maybe` if it is not live.
    pub(crate) fn recall_command(&mut self, stream: &StreamId, command_id: &str) -> Recall {
        match self.live.peek(stream) {
            Some(live) if live.complete => live.command_ids.recall(command_id),
            _ => Recall::Maybe,
        }
    }

    /// The guest's JSON view of the aggregate, parsed, and its version; or
    /// why the view cannot be returned (larger than the namespace's
    /// `max_view_bytes`, or not JSON).
    ///
    /// **Invariant:** a view is measured and parsed here, on the
    /// namespace's own partition thread, never on the node's shared async
    /// workers: a tenant's large views cost only its own lane's time, and
    /// no view larger than its namespace's limit leaves the partition.
    pub(crate) fn view(&mut self, stream: &StreamId) -> Result<(ViewResult, u64), CallError> {
        let (key, resource, version) = self.complete_entry(stream)?;
        let view = self.with_instance(&key, |instance| instance.view(stream, resource, version))?;
        let parsed = self.sizing.limits.check_view(view.len()).and_then(|()| {
            serde_json::from_str(&view).map_err(|e| {
                CommandError::Guest(GuestFailure::new(
                    GuestFailureKind::Trap,
                    format!("the component's view is not JSON: {e}"),
                ))
            })
        });
        Ok((parsed, version))
    }

    /// [`Partition::view`] written out again as compact JSON, here on the
    /// namespace's own thread, so that the node's shared async workers
    /// only copy the bytes into the answer.
    pub(crate) fn view_json(
        &mut self,
        stream: &StreamId,
    ) -> Result<(Result<Vec<u8>, CommandError>, u64), CallError> {
        let (view, version) = self.view(stream)?;
        let json = view.and_then(|view| {
            serde_json::to_vec(&view).map_err(|e| {
                CommandError::Guest(GuestFailure::new(
                    GuestFailureKind::Trap,
                    format!("the component's view cannot be written as JSON: {e}"),
                ))
            })
        });
        Ok((json, version))
    }

    /// The guest's snapshot of the aggregate, and its version.
    /// The live aggregate's state as the guest saves it, its version, and
    /// its command-id filter as saved next to it (if complete).
    pub(crate) fn snapshot(&mut self, stream: &StreamId) -> Result<TakenSnapshot, CallError> {
        let (key, resource, version) = self.complete_entry(stream)?;
        let state = self.with_instance(&key, |instance| {
            instance.snapshot(stream, resource, version)
        })?;
        let command_ids = self
            .live
            .peek(stream)
            .and_then(|live| live.command_ids.to_bytes());
        Ok(TakenSnapshot {
            state,
            version,
            command_ids,
        })
    }

    /// Drops the live aggregate, if any: its next use re-activates it.
    pub(crate) fn passivate(&mut self, stream: &StreamId) {
        if let Some(aggregate) = self.live.pop(stream) {
            self.drop_resource(aggregate);
        }
    }

    /// Drops every live aggregate `matches` selects; returns how many. A
    /// pinned one is dropped when it is unpinned (its command finishes
    /// first).
    pub(crate) fn passivate_where(&mut self, matches: &dyn Fn(&StreamId) -> bool) -> usize {
        let streams: Vec<StreamId> = self
            .live
            .iter()
            .map(|(stream, _)| stream)
            .filter(|stream| matches(stream))
            .cloned()
            .collect();
        for stream in &streams {
            if self.is_pinned(stream) {
                self.passivate_on_unpin.insert(stream.clone());
            } else {
                self.passivate(stream);
            }
        }
        streams.len()
    }

    /// How many aggregates are live in this partition.
    pub(crate) fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The aggregate being activated or live (apply takes both).
    fn live_entry(
        &mut self,
        stream: &StreamId,
    ) -> Result<(InstanceKey, ResourceAny, u64), CallError> {
        let live = self.live.get(stream).ok_or(CallError::NotLive)?;
        Ok((live.instance.clone(), live.resource, live.version))
    }

    /// The aggregate if its activation completed: only a whole stream is
    /// ever asked to decide or to render its state.
    fn complete_entry(
        &mut self,
        stream: &StreamId,
    ) -> Result<(InstanceKey, ResourceAny, u64), CallError> {
        match self.live.get(stream) {
            Some(live) if live.complete => Ok((live.instance.clone(), live.resource, live.version)),
            _ => Err(CallError::NotLive),
        }
    }

    fn drop_resource(&mut self, aggregate: LiveAggregate) {
        let dropped = self.with_instance(&aggregate.instance, |instance| {
            instance.drop_resource(aggregate.resource)
        });
        if let Err(failure) = dropped {
            tracing::warn!(%failure, "dropping a live aggregate failed; its instance was dropped");
        }
    }

    /// Runs `f` on an instance; if the guest fails, drops the instance with
    /// every live aggregate in it.
    fn with_instance<R>(
        &mut self,
        key: &InstanceKey,
        f: impl FnOnce(&mut GuestInstance) -> Result<R, GuestFailure>,
    ) -> Result<R, GuestFailure> {
        let Some(instance) = self.instances.get_mut(key) else {
            return Err(GuestFailure::new(
                GuestFailureKind::Trap,
                "the instance is gone".into(),
            ));
        };
        let result = f(instance);
        if let Err(failure) = &result {
            tracing::warn!(namespace = %key.namespace, digest = %key.digest.short(), kind = ?failure.kind,
                "guest failed: {}; dropping its instance", failure.message);
            self.drop_instance(key);
        }
        result
    }

    /// Drops an instance and forgets every live aggregate in it.
    fn drop_instance(&mut self, key: &InstanceKey) {
        self.instances.remove(key);
        let orphans: Vec<StreamId> = self
            .live
            .iter()
            .filter(|(_, live)| &live.instance == key)
            .map(|(stream, _)| stream.clone())
            .collect();
        for stream in orphans {
            self.live.pop(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn spawn_partition() -> PartitionHandle {
        let sizing = PartitionSizing {
            limits: Arc::new(SandboxLimits::default()),
            partitions: 1,
            output_limit: 1 << 20,
            running: RunningThreads::default(),
            lane_jobs: LaneJobs::default(),
        };
        let namespace = Namespace::new("jobs").unwrap();
        PartitionHandle::spawn(&namespace, 0, Engine::default(), sizing).unwrap()
    }

    /// A tenant's backlog (a busy tenant's queued calls, up to its deadline
    /// each) does not hold up the node's own work, and keeps its order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_work_runs_ahead_of_a_tenant_backlog_which_keeps_its_order() {
        let partition = spawn_partition();
        let done = Arc::new(Mutex::new(Vec::new()));
        for n in 0..5 {
            let done = done.clone();
            partition.send(move |_| {
                std::thread::sleep(Duration::from_millis(100));
                done.lock().unwrap().push(n);
            });
        }
        let live = partition.call_for_node(|p| p.live_count()).await.unwrap();
        assert_eq!(live, 0);
        let before_node_work = done.lock().unwrap().len();
        assert!(
            before_node_work <= 1,
            "the node's work waited for {before_node_work} of the tenant's five jobs"
        );
        // A tenant call waits for the whole backlog, run in order.
        partition.call(|_| ()).await.unwrap();
        assert_eq!(*done.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
