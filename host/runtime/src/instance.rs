//! One guest instance: a component instantiated in its own wasmtime
//! `Store`, with the sandbox's limits applied to every call into it.
//!
//! An instance holds many aggregates (guest resources), each one
//! component-model handle in its `Store`. wasmtime caps the live handles of
//! one `Store` (100 000 by default, a guard against guests that allocate
//! handles without end); the cap of an instance is set to the live
//! aggregates it may hold plus [`HANDLE_HEADROOM`], so a partition can keep
//! its namespace's share of `max_live_aggregates` live in one instance.
//!
//! Every call sets the
//! call context first (frozen clock, seeded random), the epoch deadline and
//! the fuel, and drains the guest's output to the log afterwards. A failed
//! call leaves the instance unusable: its owner must drop it (a trap may
//! leave guest memory inconsistent).

use std::sync::Arc;

use wasmtime::component::ResourceAny;
use wasmtime::{Engine, Store};

use super::bindings::{AggregateComponent, Command, Event, NewEvent};
use super::component::LoadedComponent;
use super::engine::deadline_ticks;
use super::error::{GuestFailure, GuestFailureKind, Rejection};
use super::limits::SandboxLimits;
use super::sandbox::HostState;
use aether_store::{RecordedEvent, StreamId};

/// Component-model handles an instance may hold besides one per live
/// aggregate: the borrow lent for each call, WASI's streams, and whatever the
/// guest keeps for itself. wasmtime's own default cap, so a guest keeps the
/// room it would have in any other host.
pub(crate) const HANDLE_HEADROOM: usize = 100_000;

/// A guest's answer to a command.
pub(crate) type Decision = Result<Vec<NewEvent>, Rejection>;

/// A guest's refusal to apply an event: (version, message).
pub(crate) type ApplyRefusal = (u64, String);

pub(crate) struct GuestInstance {
    store: Store<HostState>,
    exports: AggregateComponent,
    limits: Arc<SandboxLimits>,
    /// Whether the engine meters fuel (then every call must be given some).
    metered: bool,
}

impl GuestInstance {
    /// Instantiates `component` in a fresh store under `limits`, with room
    /// for `live_aggregates` aggregates at once; `label` names it in logs.
    pub(crate) fn new(
        engine: &Engine,
        limits: Arc<SandboxLimits>,
        live_aggregates: usize,
        output_limit: usize,
        component: &LoadedComponent,
        label: Arc<str>,
    ) -> Result<Self, GuestFailure> {
        let state = HostState::new(label, limits.memory_bytes, output_limit);
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_max_component_handles(live_aggregates.saturating_add(HANDLE_HEADROOM));
        store.set_epoch_deadline(deadline_ticks(limits.call_deadline));
        let metered = engine.get_consume_fuel();
        if metered {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| GuestFailure::new(GuestFailureKind::Instantiate, format!("{e:#}")))?;
        }
        match component.pre.instantiate(&mut store) {
            Ok(exports) => Ok(Self {
                store,
                exports,
                limits,
                metered,
            }),
            Err(e) => Err(GuestFailure::classify(
                e,
                store.data().limits.exceeded,
                GuestFailureKind::Instantiate,
            )),
        }
    }

    /// Creates the aggregate `stream` in its initial state (version 0).
    pub(crate) fn create(&mut self, stream: &StreamId) -> Result<ResourceAny, GuestFailure> {
        let id = stream.aggregate_id.as_str();
        self.call(stream, 0, 0, |exports, store| {
            exports
                .aether_aggregate_handler()
                .aggregate()
                .call_constructor(store, id)
        })
    }

    /// Applies `events` (already checked to continue the aggregate's
    /// version) in one call. The clock reads the first event's timestamp.
    pub(crate) fn apply(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        events: &[RecordedEvent],
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let batch: Vec<Event<'_>> = events
            .iter()
            .map(|e| Event {
                version: e.version,
                event_type: &e.event_type,
                content_type: &e.content_type,
                data: &e.data,
                timestamp_ms: e.timestamp_ms,
            })
            .collect();
        self.apply_batch(stream, resource, &batch)
    }

    /// Applies the events the aggregate just decided at `version`, as the
    /// store will record them: versions from `version + 1`, all stamped
    /// `timestamp_ms`.
    pub(crate) fn apply_decided(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        events: &[NewEvent],
        timestamp_ms: u64,
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let batch: Vec<Event<'_>> = (version + 1..)
            .zip(events)
            .map(|(version, e)| Event {
                version,
                event_type: &e.event_type,
                content_type: &e.content_type,
                data: &e.data,
                timestamp_ms,
            })
            .collect();
        self.apply_batch(stream, resource, &batch)
    }

    /// Applies a batch in one call; the clock reads its first timestamp.
    fn apply_batch(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        batch: &[Event<'_>],
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let Some(first) = batch.first() else {
            return Ok(Ok(()));
        };
        let applied = self.call(
            stream,
            first.timestamp_ms,
            first.version,
            |exports, store| {
                exports
                    .aether_aggregate_handler()
                    .aggregate()
                    .call_apply(store, resource, batch)
            },
        )?;
        Ok(applied.map_err(|e| (e.version, e.message)))
    }

    /// Decides a command against the aggregate at `version`: the clock reads
    /// `timestamp_ms`, random is seeded from the stream and `version + 1`.
    pub(crate) fn handle(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        command: (&str, &str, &[u8]),
        timestamp_ms: u64,
    ) -> Result<Decision, GuestFailure> {
        let (command_type, content_type, data) = command;
        let command = Command {
            command_type,
            content_type,
            data,
        };
        let decision = self.call(stream, timestamp_ms, version + 1, |exports, store| {
            exports
                .aether_aggregate_handler()
                .aggregate()
                .call_handle(store, resource, command)
        })?;
        Ok(decision.map_err(|r| Rejection {
            code: r.code,
            message: r.message,
        }))
    }

    /// The guest's JSON view of the aggregate.
    pub(crate) fn view(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
    ) -> Result<String, GuestFailure> {
        self.call(stream, 0, version, |exports, store| {
            exports
                .aether_aggregate_handler()
                .aggregate()
                .call_view(store, resource)
        })
    }

    /// The guest's snapshot of the aggregate.
    pub(crate) fn snapshot(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
    ) -> Result<Vec<u8>, GuestFailure> {
        self.call(stream, 0, version, |exports, store| {
            exports
                .aether_aggregate_handler()
                .aggregate()
                .call_snapshot(store, resource)
        })
    }

    /// Replaces the aggregate's state with a snapshot taken at `version`.
    pub(crate) fn restore(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        state: &[u8],
    ) -> Result<Result<(), String>, GuestFailure> {
        self.call(stream, 0, version, |exports, store| {
            exports
                .aether_aggregate_handler()
                .aggregate()
                .call_restore(store, resource, state)
        })
    }

    /// Drops an aggregate's resource (runs the guest's destructor).
    pub(crate) fn drop_resource(&mut self, resource: ResourceAny) -> Result<(), GuestFailure> {
        self.store
            .set_epoch_deadline(deadline_ticks(self.limits.call_deadline));
        self.refuel();
        resource.resource_drop(&mut self.store).map_err(|e| {
            GuestFailure::classify(e, self.store.data().limits.exceeded, GuestFailureKind::Trap)
        })
    }

    /// Gives the next call its fuel: the namespace's `fuel_per_call`, or
    /// all there is when the namespace is not metered.
    fn refuel(&mut self) {
        if self.metered {
            let fuel = self.limits.fuel_per_call.unwrap_or(u64::MAX);
            // Cannot fail: the engine meters fuel.
            let _ = self.store.set_fuel(fuel);
        }
    }

    /// Runs one guest call inside the sandbox's limits.
    fn call<R>(
        &mut self,
        stream: &StreamId,
        timestamp_ms: u64,
        version: u64,
        call: impl FnOnce(&AggregateComponent, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, GuestFailure> {
        self.store
            .data()
            .call
            .set(timestamp_ms, format_args!("{stream}@{version}"));
        self.store
            .set_epoch_deadline(deadline_ticks(self.limits.call_deadline));
        self.refuel();
        let result = call(&self.exports, &mut self.store);
        let state = self.store.data();
        state.output.flush_to_log(&state.label);
        result.map_err(|error| {
            GuestFailure::classify(error, state.limits.exceeded, GuestFailureKind::Trap)
        })
    }
}
