//! Health, readiness, metrics and the JSON answers for unknown routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, admin};
use crate::Node;
use aether_core::namespace::Namespace;
use aether_core::namespace::layout::SYSTEM_NAMESPACE;
use aether_service::ErrorCode;

/// `GET /healthz`: the process is up and answering.
pub(super) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the node can serve commands: not shutting down, its
/// cluster's background tasks (if any) sound, the event store accepts
/// writes, and it answers
/// (asked for the head of the node's own namespace, one cheap lookup;
/// heads are per namespace, and this route needs no token, so it names no
/// tenant's).
pub(super) async fn ready(
    State(node): State<Arc<Node>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if node.shutting_down() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "the node is shutting down",
        ));
    }
    if let Some(failure) = node.cluster().and_then(|c| c.failed()) {
        return Err(ApiError::new(ErrorCode::ClusterFailed, failure));
    }
    let system = Namespace::new(SYSTEM_NAMESPACE).expect("the system namespace is valid");
    let store = node.runtime().store();
    store.head_position(&system).await?;
    // Not ready while writes fail (a full disk); asking lets the store
    // recover once they can succeed again.
    store.check_writable().await?;
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
        node.bus().cut_off_subscribers()
    ));
    text.push_str("# HELP aether_running_lanes Namespaces whose partition threads are running (the others are idle).\n");
    text.push_str("# TYPE aether_running_lanes gauge\n");
    text.push_str(&format!(
        "aether_running_lanes {}\n",
        node.runtime().running_lanes()
    ));
    if let Some(bytes) = node.runtime().compile_cache_bytes() {
        text.push_str("# HELP aether_compile_cache_bytes Bytes the compile cache holds on disk (as of its last write; at most --compile-cache-mib).\n");
        text.push_str("# TYPE aether_compile_cache_bytes gauge\n");
        text.push_str(&format!("aether_compile_cache_bytes {bytes}\n"));
    }
    text.push_str("# HELP aether_live_streams Live event streams open on this node.\n");
    text.push_str("# TYPE aether_live_streams gauge\n");
    for (namespace, open) in node.live_streams().counts() {
        text.push_str(&format!(
            "aether_live_streams{{namespace=\"{namespace}\"}} {open}\n"
        ));
    }
    text.push_str("# HELP aether_component_uploads Component uploads in progress on this node.\n");
    text.push_str("# TYPE aether_component_uploads gauge\n");
    for (namespace, open) in node.uploads().counts() {
        text.push_str(&format!(
            "aether_component_uploads{{namespace=\"{namespace}\"}} {open}\n"
        ));
    }
    if let Some(cluster) = node.cluster() {
        text.push_str(&cluster_metrics(&cluster.status()));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// The cluster's gauges and counters, as this node sees them.
fn cluster_metrics(status: &aether_cluster::ClusterStatus) -> String {
    let rows = [
        (
            "aether_cluster_is_leader",
            "gauge",
            "1 while this node holds the leader lease.",
            u64::from(status.is_leader),
        ),
        (
            "aether_cluster_leader_changes_total",
            "counter",
            "Leader changes this node has seen.",
            status.leader_changes,
        ),
        (
            "aether_cluster_epoch",
            "gauge",
            "Epoch of the newest shard map this node has.",
            status.map.as_ref().map_or(0, |m| m.epoch),
        ),
        (
            "aether_cluster_members",
            "gauge",
            "Live members of the cluster.",
            status.members.len() as u64,
        ),
        (
            "aether_cluster_shards_served",
            "gauge",
            "Shards this node serves now.",
            status.serving as u64,
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in rows {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    text
}

/// Any path the API does not have.
pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see docs/api.md for the API's paths")
}

/// A known path with a method it does not take.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this path does not take that method: see docs/api.md",
    )
}
