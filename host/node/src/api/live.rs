//! `GET /v1/namespaces/{ns}/events/live`: the namespace's events as
//! server-sent events, from now or from an earlier point, optionally durable.
//!
//! Query: `from` = `now` (default), `beginning`, `checkpoint` (needs
//! `name`) or a log position to start after; `name` makes the subscription
//! durable (its checkpoint advances as events are sent, so a reconnect with
//! `from=checkpoint` resumes after the last one sent); `event_types`
//! (comma-separated), `aggregate_type` and `aggregate_id` (a pattern, `*`
//! for any run of characters) filter. A `Last-Event-ID` header resumes
//! after that position.
//!
//! Each event is an SSE message `event: event`, `id: <log position>`, whose
//! data is the event's JSON ([`aether_service::EventJson`], as every
//! other answer shows events).
//! It is a [`aether_bus::catchup::CatchUp`] subscription: history first,
//! then live, no gap, never cut off for being slow. The stream ends when
//! the node shuts down.
//!
//! A namespace has at most `max_live_streams` streams open on a node
//! ([`crate::streams`]); one more is refused with
//! `429 too_many_streams` before it reads anything.

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
use crate::Node;
use crate::slots::Slot;
use aether_bus::catchup::{CatchUp, CatchUpError, StartFrom};
use aether_bus::{Filter, IdPattern};
use aether_core::namespace::AggregateType;
use aether_service::ErrorCode;

/// Which events of the namespace to stream, from where.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LiveQuery {
    from: Option<String>,
    name: Option<String>,
    event_types: Option<String>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
}

struct Tail {
    subscription: CatchUp,
    /// The stream's place in its namespace's count, held while it is open.
    _slot: Slot,
    shutdown: watch::Receiver<bool>,
    durable: bool,
    ended: bool,
}

impl From<CatchUpError> for ApiError {
    fn from(error: CatchUpError) -> Self {
        match error {
            CatchUpError::Store(store) => store.into(),
            CatchUpError::InvalidName(name) => name.into(),
            other => ApiError::malformed(other.to_string()),
        }
    }
}

fn start_from(query: &LiveQuery, headers: &HeaderMap) -> Result<StartFrom, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(match (query.from.as_deref(), resume) {
        (_, Some(position)) => {
            StartFrom::After(body::start_point("the `Last-Event-ID` header", position)?)
        }
        (None | Some("now"), _) => StartFrom::Now,
        (Some("beginning"), _) => StartFrom::Beginning,
        (Some("checkpoint"), _) => StartFrom::Checkpoint,
        (Some(position), _) => {
            let position = position.parse().map_err(|_| {
                ApiError::malformed("`from` is `now`, `beginning`, `checkpoint` or a log position")
            })?;
            StartFrom::After(body::start_point("`from`", position)?)
        }
    })
}

fn filter(query: &LiveQuery) -> Result<Filter, ApiError> {
    let event_types = query.event_types.as_ref().map(|types| {
        types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let aggregate_id = query
        .aggregate_id
        .as_deref()
        .map(IdPattern::new)
        .transpose()
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    Ok(Filter {
        event_types,
        aggregate_type: query
            .aggregate_type
            .clone()
            .map(AggregateType::new)
            .transpose()?,
        aggregate_id,
    })
}

/// Streams the namespace's events.
pub(super) async fn tail(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
    query: Result<Query<LiveQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    let query = body::query(query)?;
    let from = start_from(&query, &headers)?;
    let limit = node
        .runtime()
        .namespace_limits(&namespace)?
        .max_live_streams;
    let slot = node
        .live_streams()
        .open_within(&namespace, limit)
        .await
        .map_err(|full| {
            ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "namespace `{namespace}` already has {} live event streams open on this node (max_live_streams): close one, or retry later",
                    full.limit
                ),
            )
            .with("limit", serde_json::json!(full.limit))
        })?;
    let subscription = CatchUp::start(
        node.runtime().store().clone(),
        node.bus(),
        &namespace,
        filter(&query)?,
        query.name.as_deref(),
        from,
    )
    .await?;
    let tail = Tail {
        subscription,
        _slot: slot,
        shutdown: node.shutdown_signal(),
        durable: query.name.is_some(),
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
        // The previous event was handed to the connection: a durable
        // subscriber moves its checkpoint past it.
        if self.durable
            && let Err(error) = self.subscription.commit().await
        {
            tracing::warn!(%error, "cannot save a subscriber's checkpoint");
        }
        let next = tokio::select! {
            next = self.subscription.next() => next,
            _ = self.shutdown.wait_for(|stopping| *stopping) => return None,
        };
        match next {
            Ok(event) => Some(
                Event::default()
                    .event("event")
                    .id(event.position.to_string())
                    .data(event_json(&event)),
            ),
            Err(error) => {
                self.ended = true;
                Some(Event::default().event("error").data(error.to_string()))
            }
        }
    }
}

/// An event's JSON, as every answer shows it.
fn event_json(event: &aether_store::RecordedEvent) -> String {
    serde_json::to_string(&aether_service::EventJson::from(event)).expect("an event encodes")
}
