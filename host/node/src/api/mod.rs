//! The node's HTTP JSON API (documented for users in `docs/api.md`).
//!
//! | Method and path | Who | What |
//! |---|---|---|
//! | `GET /healthz` | anyone | the process is up |
//! | `GET /readyz` | anyone | the node serves (store readable, not shutting down) |
//! | `GET /metrics` | admin | Prometheus metrics |
//! | `POST /v1/namespaces` | admin | create a namespace and its first token |
//! | `GET /v1/namespaces` | admin | list namespaces |
//! | `GET /v1/namespaces/{ns}` | ns | the namespace, its limits and aggregate types |
//! | `PUT /v1/namespaces/{ns}/limits` | admin | replace the namespace's limit overrides |
//! | `POST /v1/namespaces/{ns}/tokens` | admin | issue another namespace token |
//! | `GET /v1/namespaces/{ns}/tokens` | admin | the ids of the namespace's tokens |
//! | `DELETE /v1/namespaces/{ns}/tokens/{id}` | admin | revoke a namespace token |
//! | `GET /v1/namespaces/{ns}/aggregates` | ns | aggregate types and component digests |
//! | `PUT /v1/namespaces/{ns}/aggregates/{type}/component` | ns | deploy a component (`application/wasm`) |
//! | `GET /v1/namespaces/{ns}/aggregates/{type}/components` | ns | the type's deployment history |
//! | `POST /v1/namespaces/{ns}/aggregates/{type}/activate` | ns | activate a component deployed before |
//! | `POST /v1/namespaces/{ns}/aggregates/{type}/rollback` | ns | activate the previous component |
//! | `POST /v1/namespaces/{ns}/aggregates/{type}/{id}/commands` | ns | send a command |
//! | `GET /v1/namespaces/{ns}/aggregates/{type}/{id}` | ns | state (`view`) and version |
//! | `GET /v1/namespaces/{ns}/aggregates/{type}/{id}/events` | ns | events from a version |
//! | `GET /v1/namespaces/{ns}/events/live` | ns | new events as server-sent events |
//! | `GET /v1/cluster` | admin | members, leader, epoch, shards per node (`--cluster`) |
//!
//! The handlers read the request (path, query, body: their sizes, content
//! types and timeouts are the transport's part), call the node's service
//! (`crate::service`) and write its typed answer or error.
//!
//! **Invariant:** every handler that takes a namespace calls `authorize`
//! (or the service does) before it reads or writes anything of it; a
//! tenant's token on another namespace gets 403 whether that namespace
//! exists or not.

mod aggregates;
mod body;
mod cluster;
pub mod error;
mod live;
mod namespaces;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post, put};

use super::{Node, Principal};
use aether_core::namespace::Namespace;
pub use error::ApiError;

/// The API's router over `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(ops::health))
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route(
            "/v1/namespaces",
            post(namespaces::create).get(namespaces::list),
        )
        .route("/v1/namespaces/{ns}", get(namespaces::show))
        .route("/v1/namespaces/{ns}/limits", put(namespaces::set_limits))
        .route(
            "/v1/namespaces/{ns}/tokens",
            post(namespaces::issue_token).get(namespaces::list_tokens),
        )
        .route(
            "/v1/namespaces/{ns}/tokens/{id}",
            delete(namespaces::revoke_token),
        )
        .route("/v1/namespaces/{ns}/aggregates", get(aggregates::types))
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/component",
            put(aggregates::deploy),
        )
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/components",
            get(aggregates::history),
        )
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/activate",
            post(aggregates::activate),
        )
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/rollback",
            post(aggregates::rollback),
        )
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/{id}/commands",
            post(aggregates::send),
        )
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/{id}",
            get(aggregates::state),
        )
        .route(
            "/v1/namespaces/{ns}/aggregates/{ty}/{id}/events",
            get(aggregates::events),
        )
        .route("/v1/namespaces/{ns}/events/live", get(live::tail))
        .route("/v1/cluster", get(cluster::status))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(node)
}

/// The principal behind the request's bearer token.
fn principal(node: &Node, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(ApiError::unauthorized)?;
    let token = header
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or_else(ApiError::unauthorized)?;
    Ok(node.authenticate(token)?)
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110, section 11.1: `bearer`, `BEARER` and
/// `Bearer` are one scheme); spaces around the token are ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Requires the admin token.
fn admin(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    match principal(node, headers)? {
        Principal::Admin => Ok(()),
        Principal::Tenant(_) => Err(ApiError::forbidden(
            "this needs the admin token; a namespace token cannot do it",
        )),
    }
}

/// Validates `namespace` and requires a token that may use it, then
/// requires the namespace to exist ([`Node::namespace_for`]).
fn authorize(node: &Node, headers: &HeaderMap, namespace: &str) -> Result<Namespace, ApiError> {
    let principal = principal(node, headers)?;
    Ok(node.namespace_for(&principal, namespace)?)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER  t0k ", " bEaReR t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        for value in ["Basic t0k", "Bearert0k", "Bearer ", "t0k", "Bearer"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
