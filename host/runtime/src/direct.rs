//! One aggregate driven synchronously, on the caller's thread.
//!
//! [`DirectAggregate`] runs a component in an instance of its own, with the
//! same sandbox and limits as the runtime, but without a store, partitions
//! or locks: the caller hands it events and commands. It is for benchmarks
//! (the cost of the Wasm boundary alone), scenario runners and tools;
//! services use [`Runtime::execute`].
//!
//! Guest calls block, and WASI's synchronous bindings drive Tokio
//! themselves: call a `DirectAggregate` from a plain thread,
//! `tokio::task::spawn_blocking` or `tokio::task::block_in_place`, never
//! directly from an async task (a guest that prints would panic there).

use wasmtime::component::ResourceAny;

use aether_store::{NewEvent, RecordedEvent, StreamId};

use super::error::{GuestFailure, GuestFailureKind, Rejection};
use super::instance::GuestInstance;
use super::{LoadedComponent, Runtime};

/// An aggregate in an instance of its own. A guest failure makes it
/// unusable: create a new one.
pub struct DirectAggregate {
    instance: GuestInstance,
    resource: ResourceAny,
    stream: StreamId,
    version: u64,
}

impl DirectAggregate {
    /// Instantiates `component` with `runtime`'s engine and limits and
    /// creates the aggregate `stream` at version 0.
    pub fn new(
        runtime: &Runtime,
        component: &LoadedComponent,
        stream: StreamId,
    ) -> Result<Self, GuestFailure> {
        let label = format!("direct:{stream}").into();
        let mut instance = GuestInstance::new(
            &runtime.inner.engine,
            std::sync::Arc::new(runtime.inner.config.limits.clone()),
            1,
            runtime.inner.config.guest_output_limit,
            component,
            label,
        )?;
        let resource = instance.create(&stream)?;
        Ok(Self {
            instance,
            resource,
            stream,
            version: 0,
        })
    }

    /// The version of the last event applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies events that continue the current version, in one call.
    pub fn apply(&mut self, events: &[RecordedEvent]) -> Result<(), GuestFailure> {
        if let Some((i, e)) = events
            .iter()
            .enumerate()
            .find(|(i, e)| e.version != self.version + 1 + *i as u64)
        {
            return Err(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!(
                    "event {i} has version {}, expected {}",
                    e.version,
                    self.version + 1 + i as u64
                ),
            ));
        }
        match self.instance.apply(&self.stream, self.resource, events)? {
            Ok(()) => {
                self.version += events.len() as u64;
                Ok(())
            }
            Err((version, message)) => Err(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!("the component could not apply event version {version}: {message}"),
            )),
        }
    }

    /// Carries out a command: the component decides it and applies the
    /// events it decided, as versions after the current one stamped
    /// `timestamp_ms` (one call for a component of WIT 0.3, two for older
    /// ones). A component that cannot apply its own events fails.
    pub fn execute(
        &mut self,
        command_type: &str,
        content_type: &str,
        data: &[u8],
        timestamp_ms: u64,
    ) -> Result<Result<Vec<NewEvent>, Rejection>, GuestFailure> {
        let executed = self.instance.execute(
            &self.stream,
            self.resource,
            self.version,
            (command_type, content_type, data),
            timestamp_ms,
        )?;
        let executed = match executed {
            Ok(executed) => executed,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if let Some((version, message)) = executed.refused {
            return Err(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!("the component could not apply event version {version}: {message}"),
            ));
        }
        self.version += executed.events.len() as u64;
        Ok(Ok(executed
            .events
            .into_iter()
            .map(|e| NewEvent {
                event_type: e.event_type,
                content_type: e.content_type,
                data: e.data,
            })
            .collect()))
    }

    /// The component's JSON view of the state, as text.
    pub fn view(&mut self) -> Result<String, GuestFailure> {
        self.instance
            .view(&self.stream, self.resource, self.version)
    }

    /// The component's snapshot of the state.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, GuestFailure> {
        self.instance
            .snapshot(&self.stream, self.resource, self.version)
    }

    /// Restores a snapshot taken at `version`.
    pub fn restore(&mut self, version: u64, state: &[u8]) -> Result<(), GuestFailure> {
        match self
            .instance
            .restore(&self.stream, self.resource, version, state)?
        {
            Ok(()) => {
                self.version = version;
                Ok(())
            }
            Err(message) => Err(GuestFailure::new(
                GuestFailureKind::ApplyFailed,
                format!("snapshot refused: {message}"),
            )),
        }
    }
}
