//! The operator's view of the cluster.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;

use super::{ApiError, admin};
use crate::Node;
use aether_service::ErrorCode;

/// `GET /v1/cluster`: this node's view: members, leader, epoch and the
/// shards per node; needs the admin token.
pub(super) async fn status(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    admin(&node, &headers)?;
    let cluster = node.cluster().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotClustered,
            "this node runs alone (start it with --cluster to join a cluster)",
        )
    })?;
    Ok(Json(cluster.status().to_json()))
}
