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
//! The component exports `aether:aggregate/handler` at 0.4.x or at the
//! frozen 0.3.x, 0.2.x or 0.1.x ([`Exports`]). They differ in how a
//! command is carried out (0.4's and 0.3's one `execute` call decides and
//! applies, 0.4's handing the events back as a batch and 0.3's as records;
//! older versions `handle`, then `apply` with the decided events: see
//! [`GuestInstance::execute`]) and in how `apply` receives a batch (one
//! `event-batch` buffer, or a 0.1 `list<event>`: see
//! [`GuestInstance::apply_batch`]); nothing else looks at the version.
//!
//! Every call sets the
//! call context first (frozen clock, seeded random), the epoch deadline and
//! the fuel, and drains the guest's output to the log afterwards. A failed
//! call leaves the instance unusable: its owner must drop it (a trap may
//! leave guest memory inconsistent).

use std::sync::Arc;

use wasmtime::component::ResourceAny;
use wasmtime::{Engine, Store};

use super::bindings::v4::exports::aether::aggregate0_4_0::handler::Decision;
use super::bindings::{NewEvent, v1, v2, v3, v4};
use super::component::{ComponentPre, LoadedComponent};
use super::error::{GuestFailure, GuestFailureKind, Rejection};
use super::limits::SandboxLimits;
use super::sandbox::HostState;
use aether_store::{BatchEvent, EventBatch, RecordedEvent, StreamId};

/// Component-model handles an instance may hold besides one per live
/// aggregate: the borrow lent for each call, WASI's streams, and whatever the
/// guest keeps for itself. wasmtime's own default cap, so a guest keeps the
/// room it would have in any other host.
pub(crate) const HANDLE_HEADROOM: usize = 100_000;

/// The batch buffer an instance keeps between batches; one that a larger
/// batch grew past this is freed afterwards.
const BATCH_BUFFER_KEPT: usize = 1 << 20;

/// A guest's refusal to apply an event: (version, message).
pub(crate) type ApplyRefusal = (u64, String);

/// A command the guest carried out: the events it decided, all applied to
/// its state unless `refused` names the first it could not apply (those
/// before it stay applied).
pub(crate) struct Executed {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) refused: Option<ApplyRefusal>,
}

/// A guest's answer to a command: carried out, or rejected (state untouched).
pub(crate) type Execution = Result<Executed, Rejection>;

/// The instance's exports, through the bindings of the version it targets.
enum Exports {
    V1(v1::AggregateComponent),
    V2(v2::AggregateComponent),
    V3(v3::AggregateComponent),
    V4(v4::AggregateComponent),
}

/// Runs `$call` with `$aggregate` bound to the exported `aggregate`
/// resource's functions of whichever version `$exports` is; for the calls
/// whose Rust types are the same in every version.
macro_rules! on_aggregate {
    ($exports:expr, |$aggregate:ident| $call:expr) => {
        match $exports {
            Exports::V1(exports) => {
                let $aggregate = exports.aether_aggregate0_1_0_handler().aggregate();
                $call
            }
            Exports::V2(exports) => {
                let $aggregate = exports.aether_aggregate0_2_0_handler().aggregate();
                $call
            }
            Exports::V3(exports) => {
                let $aggregate = exports.aether_aggregate0_3_0_handler().aggregate();
                $call
            }
            Exports::V4(exports) => {
                let $aggregate = exports.aether_aggregate0_4_0_handler().aggregate();
                $call
            }
        }
    };
}

/// An older version's `new-event` as the current one (the same fields).
macro_rules! new_event {
    ($e:expr) => {
        NewEvent {
            event_type: $e.event_type,
            content_type: $e.content_type,
            data: $e.data,
        }
    };
}

/// Any version's `rejection` as the runtime's (the same fields).
macro_rules! rejection {
    ($r:expr) => {
        Rejection {
            code: $r.code,
            message: $r.message,
        }
    };
}

pub(crate) struct GuestInstance {
    store: Store<HostState>,
    exports: Exports,
    limits: Arc<SandboxLimits>,
    /// Whether the engine meters fuel (then every call must be given some).
    metered: bool,
    /// Reused for every `apply` of 0.2.x and later.
    batch: EventBatch,
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
        store.epoch_deadline_callback(|store| Ok(store.data().clock.on_deadline()));
        let ticks = store.data_mut().clock.start(limits.call_deadline);
        store.set_epoch_deadline(ticks);
        let metered = engine.get_consume_fuel();
        if metered {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| GuestFailure::new(GuestFailureKind::Instantiate, format!("{e:#}")))?;
        }
        let instantiated = match &component.pre {
            ComponentPre::V1(pre) => pre.instantiate(&mut store).map(Exports::V1),
            ComponentPre::V2(pre) => pre.instantiate(&mut store).map(Exports::V2),
            ComponentPre::V3(pre) => pre.instantiate(&mut store).map(Exports::V3),
            ComponentPre::V4(pre) => pre.instantiate(&mut store).map(Exports::V4),
        };
        match instantiated {
            Ok(exports) => Ok(Self {
                store,
                exports,
                limits,
                metered,
                batch: EventBatch::default(),
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
            on_aggregate!(exports, |aggregate| aggregate.call_constructor(store, id))
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
        let batch = events.iter().map(|e| BatchEvent {
            version: e.version,
            timestamp_ms: e.timestamp_ms,
            event_type: &e.event_type,
            content_type: &e.content_type,
            data: &e.data,
        });
        self.apply_events(stream, resource, batch)
    }

    /// Applies the events the aggregate just decided at `version`, as the
    /// store will record them: versions from `version + 1`, all stamped
    /// `timestamp_ms` (for components older than 0.3, whose `handle` does
    /// not apply).
    fn apply_decided(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        events: &[NewEvent],
        timestamp_ms: u64,
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let batch = (version + 1..).zip(events).map(|(version, e)| BatchEvent {
            version,
            timestamp_ms,
            event_type: &e.event_type,
            content_type: &e.content_type,
            data: &e.data,
        });
        self.apply_events(stream, resource, batch)
    }

    /// Writes `events` into the instance's reusable batch and applies it.
    fn apply_events<'e>(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        events: impl Iterator<Item = BatchEvent<'e>>,
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        for event in events {
            batch.push(event);
        }
        let applied = self.apply_batch(stream, resource, &batch);
        batch.shrink(BATCH_BUFFER_KEPT);
        self.batch = batch;
        applied
    }

    /// Applies a batch (already checked to continue the aggregate's
    /// version) in one call, in the form the component's version takes:
    /// the buffer itself for 0.2.x (one copy, into guest memory), its
    /// events read back out as a `list<event>` for 0.1.x. The clock reads
    /// the first event's timestamp and version.
    pub(crate) fn apply_batch(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        batch: &EventBatch,
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let Some((version, timestamp_ms)) = batch.first() else {
            return Ok(Ok(()));
        };
        let clock = (timestamp_ms, version);
        if let Exports::V1(_) = self.exports {
            let events: Vec<v1::aether::aggregate0_1_0::types::Event<'_>> = batch
                .events()
                .map(|e| v1::aether::aggregate0_1_0::types::Event {
                    version: e.version,
                    event_type: e.event_type,
                    content_type: e.content_type,
                    data: e.data,
                    timestamp_ms: e.timestamp_ms,
                })
                .collect();
            return self.apply_list(stream, resource, clock, &events);
        }
        self.apply_buffer(stream, resource, clock, batch)
    }

    /// Applies an `event-batch` (0.2.x and later) in one call; the clock reads
    /// `clock` (the first event's timestamp and version).
    fn apply_buffer(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        (timestamp_ms, version): (u64, u64),
        batch: &EventBatch,
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        self.call(stream, timestamp_ms, version, |exports, store| {
            Ok(match exports {
                Exports::V4(exports) => exports
                    .aether_aggregate0_4_0_handler()
                    .aggregate()
                    .call_apply(store, resource, batch.as_bytes())?
                    .map_err(|e| (e.version, e.message)),
                Exports::V3(exports) => exports
                    .aether_aggregate0_3_0_handler()
                    .aggregate()
                    .call_apply(store, resource, batch.as_bytes())?
                    .map_err(|e| (e.version, e.message)),
                Exports::V2(exports) => exports
                    .aether_aggregate0_2_0_handler()
                    .aggregate()
                    .call_apply(store, resource, batch.as_bytes())?
                    .map_err(|e| (e.version, e.message)),
                Exports::V1(_) => unreachable!("an event-batch for a 0.1 component"),
            })
        })
    }

    /// Applies a 0.1.x `list<event>` in one call.
    fn apply_list(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        (timestamp_ms, version): (u64, u64),
        batch: &[v1::aether::aggregate0_1_0::types::Event<'_>],
    ) -> Result<Result<(), ApplyRefusal>, GuestFailure> {
        let applied = self.call(stream, timestamp_ms, version, |exports, store| {
            let Exports::V1(exports) = exports else {
                unreachable!("a list<event> for a component of 0.2 or later")
            };
            exports
                .aether_aggregate0_1_0_handler()
                .aggregate()
                .call_apply(store, resource, batch)
        })?;
        Ok(applied.map_err(|e| (e.version, e.message)))
    }

    /// Carries out a command on the aggregate at `version`: the guest
    /// decides it and applies what it decided as the store will record it
    /// (versions from `version + 1`, all stamped `timestamp_ms`). The clock
    /// reads `timestamp_ms`, random is seeded from the stream and
    /// `version + 1`.
    ///
    /// One call for a 0.4.x or 0.3.x component (`execute`); two for older
    /// ones (`handle`, then `apply` with the decided events, under the same
    /// clock and seed), with the same outcome.
    pub(crate) fn execute(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        command: (&str, &str, &[u8]),
        timestamp_ms: u64,
    ) -> Result<Execution, GuestFailure> {
        match self.exports {
            Exports::V4(_) => {
                return self.execute_batch(stream, resource, version, command, timestamp_ms);
            }
            Exports::V3(_) => {
                return self.execute_once(stream, resource, version, command, timestamp_ms);
            }
            Exports::V2(_) | Exports::V1(_) => {}
        }
        let events = match self.handle(stream, resource, version, command, timestamp_ms)? {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let refused = if events.is_empty() {
            None
        } else {
            self.apply_decided(stream, resource, version, &events, timestamp_ms)?
                .err()
        };
        Ok(Ok(Executed { events, refused }))
    }

    /// 0.4.x: decides and applies in one `execute` call, which hands the
    /// decided events back as a batch stamped as they will be stored. The
    /// batch comes from the guest, so it is checked whole
    /// ([`aether_core::batch::read_decided`]): one that breaks the layout,
    /// the versions or the timestamps fails the call like a trap (the
    /// caller drops the instance, nothing is stored).
    fn execute_batch(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        (command_type, content_type, data): (&str, &str, &[u8]),
        timestamp_ms: u64,
    ) -> Result<Execution, GuestFailure> {
        let first = version + 1;
        let decision = self.call(stream, timestamp_ms, first, |exports, store| {
            let Exports::V4(exports) = exports else {
                unreachable!("a batch from `execute` of a component older than 0.4")
            };
            exports
                .aether_aggregate0_4_0_handler()
                .aggregate()
                .call_execute(
                    store,
                    resource,
                    command_type,
                    content_type,
                    data,
                    first,
                    timestamp_ms,
                )
        })?;
        let (batch, refused) = match decision {
            Decision::Events(batch) => (batch, None),
            Decision::Rejected(rejection) => return Ok(Err(rejection!(rejection))),
            Decision::Unapplied(unapplied) => (
                unapplied.events,
                Some((unapplied.error.version, unapplied.error.message)),
            ),
        };
        let events = aether_core::batch::read_decided(&batch, first, timestamp_ms)
            .map_err(|e| {
                GuestFailure::new(
                    GuestFailureKind::Trap,
                    format!("`execute` gave events that are not a valid batch: {e}"),
                )
            })?
            .into_iter()
            .map(|e| NewEvent {
                event_type: e.event_type.to_owned(),
                content_type: e.content_type.to_owned(),
                data: e.data.to_vec(),
            })
            .collect();
        Ok(Ok(Executed { events, refused }))
    }

    /// 0.3.x: decides and applies in one `execute` call.
    fn execute_once(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        (command_type, content_type, data): (&str, &str, &[u8]),
        timestamp_ms: u64,
    ) -> Result<Execution, GuestFailure> {
        let first = version + 1;
        // Owned: see `bindings::v3`.
        let command = v3::aether::aggregate0_3_0::types::Command {
            command_type: command_type.to_owned(),
            content_type: content_type.to_owned(),
            data: data.to_vec(),
        };
        self.call(stream, timestamp_ms, first, |exports, store| {
            let Exports::V3(exports) = exports else {
                unreachable!("`execute` on a component older than 0.3")
            };
            let decision = exports
                .aether_aggregate0_3_0_handler()
                .aggregate()
                .call_execute(store, resource, &command, first, timestamp_ms)?;
            Ok(decision
                .map(|d| Executed {
                    events: d.events,
                    refused: d.apply_error.map(|e| (e.version, e.message)),
                })
                .map_err(|r| rejection!(r)))
        })
    }

    /// 0.2.x and 0.1.x: `handle` decides, without applying.
    fn handle(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
        (command_type, content_type, data): (&str, &str, &[u8]),
        timestamp_ms: u64,
    ) -> Result<Result<Vec<NewEvent>, Rejection>, GuestFailure> {
        self.call(stream, timestamp_ms, version + 1, |exports, store| {
            Ok(match exports {
                Exports::V2(exports) => {
                    let command = v2::aether::aggregate0_2_0::types::Command {
                        command_type,
                        content_type,
                        data,
                    };
                    exports
                        .aether_aggregate0_2_0_handler()
                        .aggregate()
                        .call_handle(store, resource, command)?
                        .map(|events| events.into_iter().map(|e| new_event!(e)).collect())
                        .map_err(|r| rejection!(r))
                }
                Exports::V1(exports) => {
                    let command = v1::aether::aggregate0_1_0::types::Command {
                        command_type,
                        content_type,
                        data,
                    };
                    exports
                        .aether_aggregate0_1_0_handler()
                        .aggregate()
                        .call_handle(store, resource, command)?
                        .map(|events| events.into_iter().map(|e| new_event!(e)).collect())
                        .map_err(|r| rejection!(r))
                }
                Exports::V4(_) | Exports::V3(_) => {
                    unreachable!("a 0.3 or later component decides with `execute`")
                }
            })
        })
    }

    /// The guest's JSON view of the aggregate.
    pub(crate) fn view(
        &mut self,
        stream: &StreamId,
        resource: ResourceAny,
        version: u64,
    ) -> Result<String, GuestFailure> {
        self.call(stream, 0, version, |exports, store| {
            on_aggregate!(exports, |aggregate| aggregate.call_view(store, resource))
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
            on_aggregate!(exports, |aggregate| aggregate
                .call_snapshot(store, resource))
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
            on_aggregate!(exports, |aggregate| aggregate
                .call_restore(store, resource, state))
        })
    }

    /// Drops an aggregate's resource (runs the guest's destructor).
    pub(crate) fn drop_resource(&mut self, resource: ResourceAny) -> Result<(), GuestFailure> {
        self.start_clock();
        self.refuel();
        resource.resource_drop(&mut self.store).map_err(|e| {
            GuestFailure::classify(e, self.store.data().limits.exceeded, GuestFailureKind::Trap)
        })
    }

    /// Starts the next call's deadline (`deadline.rs`).
    fn start_clock(&mut self) {
        let ticks = self.store.data_mut().clock.start(self.limits.call_deadline);
        self.store.set_epoch_deadline(ticks);
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
        call: impl FnOnce(&Exports, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, GuestFailure> {
        self.store
            .data()
            .call
            .set(timestamp_ms, format_args!("{stream}@{version}"));
        self.start_clock();
        self.refuel();
        let result = call(&self.exports, &mut self.store);
        let state = self.store.data();
        state.output.flush_to_log(&state.label);
        result.map_err(|error| {
            GuestFailure::classify(error, state.limits.exceeded, GuestFailureKind::Trap)
        })
    }
}
