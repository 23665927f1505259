//! The operations every caller ends in, on this process's runtime or a
//! store, once the caller is authorised: the node's service (HTTP, NATS,
//! a shard owner) and the CLI's offline commands call these.

use crate::{CommandAnswer, EventJson, EventsPage, EventsQuery, ServiceError, StateAnswer};
use aether_runtime::{CommandRequest, Runtime};
use aether_store::{EventStore, StreamId};

/// Carries out `command` on `runtime`.
pub async fn execute(
    runtime: &Runtime,
    command: CommandRequest,
) -> Result<CommandAnswer, ServiceError> {
    let outcome = runtime.execute(command).await?;
    Ok(CommandAnswer::from(&outcome))
}

/// The aggregate's state (its component's view) and version.
pub async fn state(runtime: &Runtime, stream: &StreamId) -> Result<StateAnswer, ServiceError> {
    let (version, state) = runtime.state_json(stream).await?;
    Ok(StateAnswer {
        state,
        stream: stream.to_string(),
        version,
    })
}

/// A page of the aggregate's events, as `query` selects.
pub async fn events(
    store: &dyn EventStore,
    stream: &StreamId,
    query: &EventsQuery,
) -> Result<EventsPage, ServiceError> {
    let (from, limit) = query.checked()?;
    let events = store.read_stream(stream, from, limit).await?;
    let version = store.stream_version(stream).await?;
    let next_version = events.last().map_or(from, |e| e.version + 1);
    Ok(EventsPage {
        events: events.iter().map(EventJson::from).collect(),
        next_version,
        stream: stream.to_string(),
        version,
    })
}
