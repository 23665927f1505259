//! Aggregates: deploy a component, send a command, read state and events.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, authorize, body};
use crate::Node;
use crate::registry::Activation;
use aether_cluster::{Reply, Routed};
use aether_core::namespace::{AggregateId, AggregateType, Namespace};
use aether_runtime::{CommandRequest, JSON};
use aether_store::{RecordedEvent, StreamId};

/// Events a page of `GET …/events` holds at most.
const MAX_PAGE: usize = 10_000;

/// The longest command, correlation or causation id accepted.
const MAX_ID_BYTES: usize = 128;

/// The body of `POST …/commands`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendCommand {
    /// The command's type, e.g. `Deposit`.
    #[serde(rename = "type")]
    command_type: String,
    /// The command's JSON payload (default `null`).
    #[serde(default)]
    data: Value,
    /// Carry the command out only at this version (else 409).
    expected_version: Option<u64>,
    /// Makes retries idempotent.
    command_id: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
}

/// The query of `GET …/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// The first version to return (default 1).
    from: Option<u64>,
    /// At most this many events (default and maximum 10 000).
    limit: Option<usize>,
}

/// The aggregate types deployed in `namespace`, with their digests.
pub(super) fn deployed(node: &Node, namespace: &Namespace) -> Vec<Value> {
    node.runtime()
        .deployments()
        .into_iter()
        .filter(|(ns, _, _)| ns == namespace)
        .map(|(_, ty, digest)| json!({ "aggregate_type": ty, "digest": digest.to_hex() }))
        .collect()
}

/// `GET /v1/namespaces/{ns}/aggregates`.
pub(super) async fn types(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    Ok(Json(
        json!({ "aggregate_types": deployed(&node, &namespace) }),
    ))
}

/// The query of a deploy: `?verify=all` or `?verify=<n>` replays the
/// type's existing streams (all, or a sample of n) through the new
/// component before activating it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployQuery {
    verify: Option<String>,
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
    let (namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    let sample = match body::query(query)?.verify.as_deref() {
        None => None,
        Some("all") => Some(None),
        Some(n) => Some(Some(
            n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::malformed("`verify` is `all` or a number of streams to sample")
            })?,
        )),
    };
    body::require_content_type(&headers, &["application/wasm", "application/octet-stream"])?;
    let limit = node.runtime().config().max_component_bytes;
    body::refuse_declared_over(&headers, limit)?;
    // The body is held whole (up to `limit`) while it compiles: at most
    // `max_concurrent_uploads` of them per namespace at once.
    let uploads = node
        .runtime()
        .namespace_limits(&namespace)?
        .max_concurrent_uploads;
    let upload = node
        .uploads()
        .open(&namespace, uploads)
        .map_err(|full| ApiError::too_many_uploads(&namespace, full.limit))?;
    let bytes = body::read_upload(&headers, request, limit).await?;
    let Some(sample) = sample else {
        let activation = node.deploy(&namespace, &aggregate_type, bytes).await?;
        drop(upload);
        return Ok(Json(activation_json(&namespace, &activation)).into_response());
    };
    let wants_progress = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    if !wants_progress {
        let (activation, report) = node
            .deploy_verified(&namespace, &aggregate_type, bytes, sample, |_, _| {})
            .await?;
        drop(upload);
        let mut answer = activation_json(&namespace, &activation);
        answer["verification"] = json!(report);
        return Ok(Json(answer).into_response());
    }
    // Progress lines, then one line with the outcome (or the error).
    let (lines, receiver) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let progress = {
            let lines = lines.clone();
            move |done: usize, total: usize| {
                let _ = lines.send(json!({"progress": {"done": done, "total": total}}));
            }
        };
        let outcome = node
            .deploy_verified(&namespace, &aggregate_type, bytes, sample, progress)
            .await;
        let last = match outcome {
            Ok((activation, report)) => {
                let mut answer = activation_json(&namespace, &activation);
                answer["verification"] = json!(report);
                json!({ "result": answer })
            }
            Err(error) => {
                let error = ApiError::from(error);
                let mut body = json!(error.details);
                body["error"] = json!(error.code);
                body["message"] = json!(error.message);
                json!({ "error": body, "status": error.status.as_u16() })
            }
        };
        let _ = lines.send(last);
        drop(upload);
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

fn activation_json(namespace: &Namespace, activation: &Activation) -> Value {
    json!({
        "namespace": namespace,
        "aggregate_type": activation.aggregate_type,
        "digest": activation.digest,
        "previous": activation.previous,
        "action": activation.action,
        "state_schema": activation.state_schema,
        "size": activation.size,
        "at_ms": activation.at_ms,
    })
}

/// `GET …/aggregates/{type}/components`: the type's deployment history,
/// oldest first, and the active digest.
pub(super) async fn history(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    let history = node.component_history(&namespace, &aggregate_type).await?;
    let active = node
        .runtime()
        .active_component(&namespace, &aggregate_type)
        .map(|c| c.digest().to_hex());
    Ok(Json(json!({
        "aggregate_type": aggregate_type,
        "active": active,
        "history": history.iter().map(|a| activation_json(&namespace, a)).collect::<Vec<_>>(),
    })))
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
) -> Result<Json<Value>, ApiError> {
    let (namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    let request: ActivateComponent = body::json(&headers, request).await?;
    let activation = node
        .activate(&namespace, &aggregate_type, &request.digest)
        .await?;
    Ok(Json(activation_json(&namespace, &activation)))
}

/// `POST …/aggregates/{type}/rollback`: activates the component that was
/// active before the current one.
pub(super) async fn rollback(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (namespace, aggregate_type) = aggregate_type(&node, &headers, params)?;
    let activation = node.rollback(&namespace, &aggregate_type).await?;
    Ok(Json(activation_json(&namespace, &activation)))
}

/// The (namespace, aggregate type) of a `…/{ns}/aggregates/{type}/…`
/// path, once the token is authorised for the namespace.
fn aggregate_type(
    node: &Node,
    headers: &HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Namespace, AggregateType), ApiError> {
    let (ns, ty) = body::path(params)?;
    let namespace = authorize(node, headers, &ns)?;
    Ok((namespace, AggregateType::new(ty)?))
}

/// The aggregate of a `…/{ns}/aggregates/{type}/{id}…` path, once the
/// token is authorised for the namespace.
fn aggregate(
    node: &Node,
    headers: &HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<StreamId, ApiError> {
    let (ns, ty, id) = body::path(params)?;
    let namespace = authorize(node, headers, &ns)?;
    stream(namespace, ty, id)
}

fn stream(namespace: Namespace, ty: String, id: String) -> Result<StreamId, ApiError> {
    Ok(StreamId::new(
        namespace,
        AggregateType::new(ty)?,
        AggregateId::new(id)?,
    ))
}

fn check_id(field: &str, id: &Option<String>) -> Result<(), ApiError> {
    let Some(id) = id else { return Ok(()) };
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(ApiError::malformed(format!(
            "`{field}` must be 1 to {MAX_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// `POST …/{type}/{id}/commands`: carries out a command (in a cluster, on
/// the node that owns the aggregate's shard).
pub(super) async fn send(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
    request: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (ns, ty, id) = body::path(params)?;
    let namespace = authorize(&node, &headers, &ns)?;
    let command = match read_command(&node, &headers, namespace.clone(), ty, id, request).await {
        Ok(command) => command,
        Err(error) => {
            node.metrics()
                .command(&namespace, error.outcome(), None, started.elapsed());
            return Err(error);
        }
    };
    Ok(match node.cluster() {
        Some(cluster) => routed(cluster.route(Routed::Command(command)).await),
        None => Json(run_command(&node, command).await?).into_response(),
    })
}

/// A routed request's answer, as the owner gave it.
fn routed(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Json(reply.body)).into_response()
}

/// Reads and checks a command's body.
async fn read_command(
    node: &Node,
    headers: &HeaderMap,
    namespace: Namespace,
    ty: String,
    id: String,
    request: Body,
) -> Result<CommandRequest, ApiError> {
    let limits = node.runtime().namespace_limits(&namespace)?;
    body::require_content_type(headers, &["application/json"])?;
    let limit = body::MAX_JSON_BODY.max(limits.max_command_bytes.saturating_add(64 << 10));
    let command: SendCommand = body::parse(&body::read(request, limit).await?)?;
    let stream = stream(namespace, ty, id)?;
    check_id("command_id", &command.command_id)?;
    check_id("correlation_id", &command.correlation_id)?;
    check_id("causation_id", &command.causation_id)?;
    let data = serde_json::to_vec(&command.data)
        .map_err(|e| ApiError::malformed(format!("the command data cannot be encoded: {e}")))?;
    Ok(CommandRequest {
        stream,
        command_type: command.command_type,
        content_type: JSON.to_owned(),
        data,
        expected_version: command.expected_version,
        command_id: command.command_id,
        correlation_id: command.correlation_id,
        causation_id: command.causation_id,
    })
}

/// Carries out a command on this node and counts it in the metrics.
pub(crate) async fn run_command(node: &Node, command: CommandRequest) -> Result<Value, ApiError> {
    let started = Instant::now();
    let namespace = command.stream.namespace.clone();
    let result = node
        .runtime()
        .execute(command)
        .await
        .map_err(ApiError::from)
        .map(|outcome| {
            json!({
                "version": outcome.version,
                "duplicate": outcome.duplicate,
                "events": outcome.events.iter().map(RecordedEvent::to_json).collect::<Vec<_>>(),
            })
        });
    let (outcome, failure) = match &result {
        Ok(value) if value["duplicate"] == json!(true) => ("duplicate", None),
        Ok(_) => ("ok", None),
        Err(error) => {
            let outcome = error.outcome();
            (outcome, (outcome == "guest_failure").then_some(error.code))
        }
    };
    node.metrics()
        .command(&namespace, outcome, failure, started.elapsed());
    result
}

/// `GET …/{type}/{id}`: the aggregate's state (its component's view) and
/// version (in a cluster, from the node that owns its shard).
pub(super) async fn state(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let stream = aggregate(&node, &headers, params)?;
    Ok(match node.cluster() {
        Some(cluster) => routed(cluster.route(Routed::State { stream }).await),
        None => state_answer(&node, &stream).await?,
    })
}

/// The aggregate's state from this node's runtime, as the bytes
/// `Json(read_state(…))` would send (keys in order, compact), with the view
/// written on the tenant's own lane: a large view costs the shared async
/// workers a copy, not a parse and a serialisation.
async fn state_answer(node: &Node, stream: &StreamId) -> Result<Response, ApiError> {
    let (version, view) = node.runtime().state_json(stream).await?;
    let name = serde_json::to_vec(&stream.to_string())
        .map_err(|e| ApiError::malformed(format!("the stream name cannot be written: {e}")))?;
    let mut body = Vec::with_capacity(view.len() + name.len() + 48);
    body.extend_from_slice(b"{\"state\":");
    body.extend_from_slice(&view);
    body.extend_from_slice(b",\"stream\":");
    body.extend_from_slice(&name);
    body.extend_from_slice(format!(",\"version\":{version}}}").as_bytes());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The aggregate's state, from this node's runtime.
pub(crate) async fn read_state(node: &Node, stream: &StreamId) -> Result<Value, ApiError> {
    let state = node.runtime().state(stream).await?;
    Ok(json!({
        "stream": stream.to_string(),
        "version": state.version,
        "state": state.view,
    }))
}

/// `GET …/{type}/{id}/events?from=&limit=`: the aggregate's events.
pub(super) async fn events(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let stream = aggregate(&node, &headers, params)?;
    let query = body::query(query)?;
    let from = body::start_point("`from`", query.from.unwrap_or(1))?.max(1);
    let limit = query.limit.unwrap_or(MAX_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::malformed(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    let store = node.runtime().store();
    let events = store.read_stream(&stream, from, limit).await?;
    let version = store.stream_version(&stream).await?;
    let next = events.last().map_or(from, |e| e.version + 1);
    Ok(Json(json!({
        "stream": stream.to_string(),
        "version": version,
        "next_version": next,
        "events": events.iter().map(RecordedEvent::to_json).collect::<Vec<_>>(),
    })))
}
