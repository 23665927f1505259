//! Tokens: the bearer scheme in any case, revoking a namespace token, and
//! namespace creation that fails without leaving anything behind.

use aether_host::runtime::SandboxLimits;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, InProcess, assert_error};

fn get_with_authorization(path: &str, authorization: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap()
}

/// RFC 9110 makes the auth scheme case-insensitive: `bearer` and `BEARER`
/// are `Bearer`; another scheme is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let node = InProcess::start(SandboxLimits::default()).await;
    let token = node.create_namespace("bank", json!({})).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, body) = node
            .request(get_with_authorization(
                "/v1/namespaces/bank",
                &format!("{scheme} {token}"),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
    }
    let (status, body) = node
        .request(get_with_authorization(
            "/v1/namespaces/bank",
            &format!("Basic {token}"),
        ))
        .await;
    assert_error(status.as_u16(), &body, 401, "unauthorized");
}

/// A revoked token is refused from the next request on; the namespace's
/// other tokens keep working; only the admin revokes; an unknown id is a
/// 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_and_the_others_keep_working() {
    let node = InProcess::start(SandboxLimits::default()).await;
    let first = node.create_namespace("bank", json!({})).await;
    let (status, issued) = node
        .post_json("/v1/namespaces/bank/tokens", ADMIN, &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let (second, second_id) = (
        issued["token"].as_str().unwrap(),
        issued["token_id"].as_str().unwrap(),
    );
    let (status, listed) = node.get("/v1/namespaces/bank/tokens", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let ids: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert_eq!(ids[1], second_id);
    assert!(
        !listed.to_string().contains(second),
        "never the token itself"
    );

    let revoke = format!("/v1/namespaces/bank/tokens/{second_id}");
    let (status, body) = node
        .call("DELETE", &revoke, Some(&first), None, Body::empty())
        .await;
    assert_error(status.as_u16(), &body, 403, "forbidden");
    assert_eq!(
        node.get("/v1/namespaces/bank", second).await.0,
        StatusCode::OK
    );

    let (status, body) = node
        .call("DELETE", &revoke, Some(ADMIN), None, Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], json!(second_id));
    let (status, body) = node.get("/v1/namespaces/bank", second).await;
    assert_error(status.as_u16(), &body, 401, "unauthorized");
    assert_eq!(
        node.get("/v1/namespaces/bank", &first).await.0,
        StatusCode::OK
    );

    let (status, body) = node
        .call("DELETE", &revoke, Some(ADMIN), None, Body::empty())
        .await;
    assert_error(status.as_u16(), &body, 404, "unknown_token");
}

/// A namespace whose creation failed (its state file could not be
/// written) does not exist: it is not listed, and once the disk is back
/// the same request creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_namespace_creation_leaves_nothing_behind() {
    let node = InProcess::start(SandboxLimits::default()).await;
    // The state file is written through `node.tmp`; a directory in its
    // place makes every save fail (also for root, unlike permissions).
    let blocker = node.data_dir().join("node.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let create = json!({"name": "bank"});
    let (status, body) = node.post_json("/v1/namespaces", ADMIN, &create).await;
    assert_error(status.as_u16(), &body, 503, "store_unavailable");
    let (_, listed) = node.get("/v1/namespaces", ADMIN).await;
    assert_eq!(listed["namespaces"], json!([]), "{listed}");
    let (status, body) = node.get("/v1/namespaces/bank", ADMIN).await;
    assert_error(status.as_u16(), &body, 404, "unknown_namespace");

    std::fs::remove_dir(&blocker).unwrap();
    let (status, body) = node.post_json("/v1/namespaces", ADMIN, &create).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        node.get("/v1/namespaces/bank", token).await.0,
        StatusCode::OK
    );
}
