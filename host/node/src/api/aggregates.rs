//! Aggregates: deploy a component, send a command, read state and events.
//! Each handler reads the request, calls the node's service
//! (`crate::service`) and writes its typed answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, body, principal};
use crate::service::Verify;
use crate::{Node, Principal};
use aether_core::namespace::{AggregateType, Namespace};
use aether_service::{
    ActivationAnswer, AggregateRef, AggregateTypesAnswer, CommandAnswer, EventsPage, EventsQuery,
    HistoryAnswer, SendCommand,
};

/// `GET /v1/namespaces/{ns}/aggregates`.
pub(super) async fn types(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
) -> Result<Json<AggregateTypesAnswer>, ApiError> {
    let principal = principal(&node, &headers)?;
    let namespace = node.namespace_for(&principal, &body::path(ns)?)?;
    Ok(Json(node.aggregate_types(&principal, &namespace)?))
}

/// The query of a deploy: `?verify=all` or `?verify=<n>` replays the
/// type's existing streams (all, or a sample of n) through the new
/// component before activating it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployQuery {
    verify: Option<String>,
}

impl DeployQuery {
    fn verify(&self) -> Result<Verify, ApiError> {
        match self.verify.as_deref() {
            None => Ok(Verify::No),
            Some("all") => Ok(Verify::All),
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(Verify::Sample)
                .ok_or_else(|| {
                    ApiError::malformed("`verify` is `all` or a number of streams to sample")
                }),
        }
    }
}

/// `PUT /v1/namespaces/{ns}/aggregates/{type}/component`: deploys the
/// body (`application/wasm`) for the type; new commands use it at once.
/// With `verify`, it goes live only if the replays succeed; a client that
/// accepts `application/x-ndjson` gets progress lines while they run.
pub(super) async fn deploy(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<DeployQuery>, QueryRejection>,
    request: Body,
) -> Result<Response, ApiError> {
    let (principal, namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    let verify = body::query(query)?.verify()?;
    body::require_content_type(&headers, &["application/wasm", "application/octet-stream"])?;
    let limit = node.runtime().config().max_component_bytes;
    body::refuse_declared_over(&headers, limit)?;
    // The body is held whole (up to `limit`) while it compiles: at most
    // `max_concurrent_uploads` of them per namespace at once; one more
    // waits up to `slots::SLOT_WAIT` for a place (its body unread).
    let limits = node.runtime().namespace_limits(&namespace)?;
    let (uploads, rate) = (limits.max_concurrent_uploads, limits.upload_bytes_per_sec);
    let upload = node
        .uploads()
        .open_within(&namespace, uploads)
        .await
        .map_err(|full| ApiError::too_many_uploads(&namespace, full.limit))?;
    // Junk is refused from its first bytes, before the rest is read.
    let not_a_component = |start: &[u8]| -> Result<(), ApiError> {
        aether_runtime::check_preamble(start)
            .map_err(|load| aether_runtime::DeployError::Load(load).into())
    };
    let check_start = (aether_runtime::PREAMBLE_BYTES, not_a_component);
    let pace = |bytes| node.upload_pacing().read(&namespace, bytes, rate);
    let bytes = body::read_upload(&headers, request, limit, check_start, pace).await?;
    let wants_progress = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    // With progress: lines while the replays run, then one line with the
    // outcome (or the error).
    let lines = (verify != Verify::No && wants_progress)
        .then(tokio::sync::mpsc::unbounded_channel::<serde_json::Value>);
    let sender = lines.as_ref().map(|(sender, _)| sender.clone());
    let progress = move |done: usize, total: usize| {
        if let Some(sender) = &sender {
            let _ = sender.send(json!({"progress": {"done": done, "total": total}}));
        }
    };
    let deployed = async move {
        let answer = node
            .deploy_component(
                &principal,
                &namespace,
                &aggregate_type,
                bytes,
                verify,
                progress,
            )
            .await;
        drop(upload);
        answer
    };
    let Some((lines, receiver)) = lines else {
        return Ok(Json(deployed.await?).into_response());
    };
    tokio::spawn(async move {
        let last = match deployed.await {
            Ok(answer) => json!({ "result": answer }),
            Err(error) => json!({ "error": error.body(), "status": error.http_status() }),
        };
        let _ = lines.send(last);
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let line = receiver.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(format!("{line}\n")),
            receiver,
        ))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET …/aggregates/{type}/components`: the type's deployment history,
/// oldest first, and the active digest.
pub(super) async fn history(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let (principal, namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    Ok(Json(
        node.history(&principal, &namespace, &aggregate_type)
            .await?,
    ))
}

/// The body of `POST …/aggregates/{type}/activate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActivateComponent {
    digest: String,
}

/// `POST …/aggregates/{type}/activate`: activates a component deployed
/// earlier in the namespace.
pub(super) async fn activate(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
    request: Body,
) -> Result<Json<ActivationAnswer>, ApiError> {
    let (principal, namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    let request: ActivateComponent = body::json(&headers, request).await?;
    let answer = node
        .activate_component(&principal, &namespace, &aggregate_type, &request.digest)
        .await?;
    Ok(Json(answer))
}

/// `POST …/aggregates/{type}/rollback`: activates the component that was
/// active before the current one.
pub(super) async fn rollback(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ActivationAnswer>, ApiError> {
    let (principal, namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    Ok(Json(
        node.roll_back(&principal, &namespace, &aggregate_type)
            .await?,
    ))
}

/// The caller, and the (namespace, aggregate type) of a
/// `…/{ns}/aggregates/{type}/…` path once the caller is authorised for the
/// namespace.
fn aggregate_type(
    node: &Node,
    headers: &HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Principal, Namespace, AggregateType), ApiError> {
    let (ns, ty) = body::path(params)?;
    let principal = principal(node, headers)?;
    let namespace = node.namespace_for(&principal, &ns)?;
    Ok((principal, namespace, AggregateType::new(ty)?))
}

/// The aggregate a `…/{ns}/aggregates/{type}/{id}…` path names.
fn aggregate_ref(
    params: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<AggregateRef, ApiError> {
    let (namespace, aggregate_type, id) = body::path(params)?;
    Ok(AggregateRef {
        namespace,
        aggregate_type,
        id,
    })
}

/// `POST …/{type}/{id}/commands`: carries out a command (in a cluster, on
/// the node that owns the aggregate's shard).
pub(super) async fn send(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
    request: Body,
) -> Result<Json<CommandAnswer>, ApiError> {
    let started = Instant::now();
    let aggregate = aggregate_ref(params)?;
    let principal = principal(&node, &headers)?;
    let namespace = node.namespace_for(&principal, &aggregate.namespace)?;
    let command = match read_command(&node, &headers, &namespace, request).await {
        Ok(command) => command,
        Err(error) => {
            node.metrics()
                .command(&namespace, error.outcome(), None, started.elapsed());
            return Err(error);
        }
    };
    Ok(Json(node.send(&principal, &aggregate, command).await?))
}

/// Reads and parses a command's body, of at most the namespace's command
/// size limit (and its envelope).
async fn read_command(
    node: &Node,
    headers: &HeaderMap,
    namespace: &Namespace,
    request: Body,
) -> Result<SendCommand, ApiError> {
    let limits = node.runtime().namespace_limits(namespace)?;
    body::require_content_type(headers, &["application/json"])?;
    let limit = body::MAX_JSON_BODY.max(limits.max_command_bytes.saturating_add(64 << 10));
    body::parse(&body::read(request, limit).await?)
}

/// `GET …/{type}/{id}`: the aggregate's state (its component's view) and
/// version (in a cluster, from the node that owns its shard). The view's
/// JSON was written on the tenant's own lane and is sent as it is: a large
/// view costs the shared async workers a copy, not a parse and a
/// serialisation.
pub(super) async fn state(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let aggregate = aggregate_ref(params)?;
    let principal = principal(&node, &headers)?;
    let answer = node.state(&principal, &aggregate).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_json_bytes(),
    )
        .into_response())
}

/// `GET …/{type}/{id}/events?from=&limit=`: the aggregate's events.
pub(super) async fn events(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let aggregate = aggregate_ref(params)?;
    let principal = principal(&node, &headers)?;
    node.namespace_for(&principal, &aggregate.namespace)?;
    let query = body::query(query)?;
    Ok(Json(node.events(&principal, &aggregate, &query).await?))
}
