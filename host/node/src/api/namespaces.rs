//! Namespaces: create, list, show, limits, tokens.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, admin, authorize, body};
use crate::{EffectiveLimits, LimitOverrides, Node};
use aether_core::namespace::Namespace;
use aether_service::ErrorCode;

/// The body of `POST /v1/namespaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateNamespace {
    name: String,
    #[serde(default)]
    limits: LimitOverrides,
}

fn effective(node: &Node, overrides: &LimitOverrides) -> Value {
    json!(EffectiveLimits::from(&node.limits_with(overrides)))
}

/// `POST /v1/namespaces` (admin): creates a namespace; answers 201 with its
/// first token, shown only this once.
pub(super) async fn create(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&node, &headers)?;
    let request: CreateNamespace = body::json(&headers, request).await?;
    let namespace = Namespace::new(request.name)?;
    if namespace == crate::registry::SYSTEM_NAMESPACE {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("namespace `{namespace}` is reserved for the node itself: choose another name"),
        ));
    }
    // Check the limits before anything is stored.
    node.limits_with(&request.limits).check(
        node.runtime().config().memory_ceiling_bytes,
        node.runtime().config().fuel_metering,
    )?;
    let token = node
        .tenants()
        .create(&namespace, request.limits.clone(), aether_runtime::now_ms())
        .await?;
    node.apply_limits(&namespace, &request.limits).await?;
    tracing::info!(%namespace, "namespace created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "namespace": namespace,
            "token": token.as_str(),
            "token_id": token.hash().id(),
            "limits": effective(&node, &request.limits),
        })),
    ))
}

/// `GET /v1/namespaces` (admin).
pub(super) async fn list(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    admin(&node, &headers)?;
    Ok(Json(json!({ "namespaces": node.tenants().namespaces() })))
}

/// `GET /v1/namespaces/{ns}`: the namespace's limits, what it uses of its
/// storage quotas, and its aggregate types.
pub(super) async fn show(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    let overrides = node.tenants().limits(&namespace)?;
    let usage = json!({
        "stored_event_bytes": node.runtime().store().stored_bytes(&namespace).await?,
        "stored_component_bytes": node.stored_component_bytes(&namespace).await?,
    });
    Ok(Json(json!({
        "namespace": namespace,
        "limits": effective(&node, &overrides),
        "overrides": overrides,
        "usage": usage,
        "aggregate_types": node.deployed(&namespace).aggregate_types,
    })))
}

/// `PUT /v1/namespaces/{ns}/limits` (admin): replaces the namespace's
/// overrides; fields left out take the node's defaults.
pub(super) async fn set_limits(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    admin(&node, &headers)?;
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    let overrides: LimitOverrides = body::json(&headers, request).await?;
    node.apply_limits(&namespace, &overrides).await?;
    node.tenants()
        .set_limits(&namespace, overrides.clone())
        .await?;
    Ok(Json(json!({
        "namespace": namespace,
        "limits": effective(&node, &overrides),
        "overrides": overrides,
    })))
}

/// `POST /v1/namespaces/{ns}/tokens` (admin): another token for the
/// namespace, shown only this once, and its id (to revoke it by).
pub(super) async fn issue_token(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&node, &headers)?;
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    let token = node.tenants().issue_token(&namespace).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "namespace": namespace,
            "token": token.as_str(),
            "token_id": token.hash().id(),
        })),
    ))
}

/// `GET /v1/namespaces/{ns}/tokens` (admin): the ids of the namespace's
/// tokens (never the tokens: the node does not have them).
pub(super) async fn list_tokens(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ns: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    admin(&node, &headers)?;
    let namespace = authorize(&node, &headers, &body::path(ns)?)?;
    let ids = node.tenants().token_ids(&namespace)?;
    Ok(Json(json!({
        "namespace": namespace,
        "tokens": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
    })))
}

/// `DELETE /v1/namespaces/{ns}/tokens/{id}` (admin): revokes the token with
/// this id; it is refused from the next request on.
pub(super) async fn revoke_token(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    admin(&node, &headers)?;
    let (ns, id) = body::path(params)?;
    let namespace = authorize(&node, &headers, &ns)?;
    node.tenants().revoke_token(&namespace, &id).await?;
    tracing::info!(%namespace, token_id = %id, "token revoked");
    Ok(Json(json!({ "namespace": namespace, "revoked": id })))
}
