//! `GET /v1/namespaces/{ns}/events/live`: the namespace's new events as
//! server-sent events, optionally filtered by aggregate type and id.
//!
//! Each event is an SSE message `event: event` whose data is the event's
//! JSON ([`crate::store::RecordedEvent::to_json`]). A subscriber that falls
//! too far behind gets one `event: lagged` message and the stream ends
//! (read the missed events from the aggregate's events, then tail again);
//! the stream also ends when the node shuts down. Durable catch-up
//! subscriptions are a later step (the global log's positions are there
//! for it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::watch;

use super::{ApiError, authorize, body};
use crate::bus::{BusError, Subscriber};
use crate::namespace::{AggregateId, AggregateType};
use crate::node::Node;

/// Which events of the namespace to stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LiveQuery {
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
}

struct Filter {
    aggregate_type: Option<AggregateType>,
    aggregate_id: Option<AggregateId>,
}

struct Tail {
    subscriber: Subscriber,
    shutdown: watch::Receiver<bool>,
    filter: Filter,
    ended: bool,
}

/// Streams the namespace's new events.
pub(super) async fn tail(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
    query: Result<Query<LiveQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    let query = body::query(query)?;
    let filter = Filter {
        aggregate_type: query.aggregate_type.map(AggregateType::new).transpose()?,
        aggregate_id: query.aggregate_id.map(AggregateId::new).transpose()?,
    };
    let tail = Tail {
        subscriber: node.runtime().bus().subscribe(namespace),
        shutdown: node.shutdown_signal(),
        filter,
        ended: node.shutting_down(),
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(event), tail))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

impl Tail {
    /// The next message to send, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            let received = tokio::select! {
                received = self.subscriber.recv() => received,
                _ = self.shutdown.wait_for(|stopping| *stopping) => return None,
            };
            match received {
                Ok(event) => {
                    let wanted = self
                        .filter
                        .aggregate_type
                        .as_ref()
                        .is_none_or(|t| *t == event.stream.aggregate_type)
                        && self
                            .filter
                            .aggregate_id
                            .as_ref()
                            .is_none_or(|i| *i == event.stream.aggregate_id);
                    if wanted {
                        return Some(
                            Event::default()
                                .event("event")
                                .data(event.to_json().to_string()),
                        );
                    }
                }
                Err(BusError::Lagged(missed)) => {
                    self.ended = true;
                    let message = format!(
                        "this subscriber fell behind and missed {missed} events: read them from the aggregates' events, then tail again"
                    );
                    return Some(Event::default().event("lagged").data(message));
                }
                Err(_) => return None,
            }
        }
    }
}
