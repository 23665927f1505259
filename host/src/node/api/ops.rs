//! Health, readiness, metrics and the JSON answers for unknown routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, admin};
use crate::namespace::Namespace;
use crate::namespace::layout::SYSTEM_NAMESPACE;
use crate::node::Node;

/// `GET /healthz`: the process is up and answering.
pub(super) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the node can serve commands: not shutting down, and the
/// event store answers (asked for the head of the node's own namespace,
/// one cheap lookup; heads are per namespace, and this route needs no
/// token, so it names no tenant's).
pub(super) async fn ready(
    State(node): State<Arc<Node>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if node.shutting_down() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the node is shutting down",
        ));
    }
    let system = Namespace::new(SYSTEM_NAMESPACE).expect("the system namespace is valid");
    node.runtime().store().head_position(&system).await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// `GET /metrics`: Prometheus text format; needs the admin token.
pub(super) async fn metrics(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&node, &headers)?;
    let mut text = node.metrics().render();
    text.push_str("# HELP aether_bus_subscribers_cut_off_total Live subscribers cut off for falling behind the bus.\n");
    text.push_str("# TYPE aether_bus_subscribers_cut_off_total counter\n");
    text.push_str(&format!(
        "aether_bus_subscribers_cut_off_total {}\n",
        node.runtime().bus().cut_off_subscribers()
    ));
    if let Some(nats) = node.nats_bus() {
        text.push_str("# HELP aether_nats_bus_cut_off_total NATS bus subscribers and forwarders that fell behind.\n");
        text.push_str("# TYPE aether_nats_bus_cut_off_total counter\n");
        text.push_str(&format!(
            "aether_nats_bus_cut_off_total {}\n",
            nats.cut_off_subscribers()
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Any path the API does not have.
pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see docs/api.md for the API's paths")
}

/// A known path with a method it does not take.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method: see docs/api.md",
    )
}
