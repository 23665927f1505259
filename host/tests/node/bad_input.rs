//! Bad input everywhere: each request gets a clear JSON error with a
//! stable code, the node keeps serving, and nothing stored changes.

use aether_host::runtime::SandboxLimits;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, InProcess, assert_error};

const COMMANDS: &str = "/v1/namespaces/bank/aggregates/bank-account/acc-1/commands";

/// Everything stored that a request could change.
async fn stored(node: &InProcess, token: &str) -> (u64, Value, Value, Value) {
    let (_, state) = node
        .get("/v1/namespaces/bank/aggregates/bank-account/acc-1", token)
        .await;
    let (_, namespaces) = node.get("/v1/namespaces", ADMIN).await;
    let (_, types) = node.get("/v1/namespaces/bank/aggregates", token).await;
    (node.head().await, state, namespaces, types)
}

async fn setup() -> (InProcess, String) {
    let node = InProcess::start(SandboxLimits::default()).await;
    let token = node.create_namespace("bank", json!({})).await;
    node.deploy("bank", &token, "bank-account", BANK).await;
    let (status, _) = node
        .send(
            "bank/bank-account/acc-1",
            &token,
            json!({"type": "Open", "data": {"owner": "Ada"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    (node, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_with_a_clear_error() {
    let (node, token) = setup().await;
    let before = stored(&node, &token).await;
    let json_type = Some("application/json");
    // (what, content type, body, status, error code, a word the message must hold)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "not JSON",
            json_type,
            b"{\"type\": \"Deposit\",".to_vec(),
            400,
            "malformed_request",
            "EOF",
        ),
        (
            "not an object",
            json_type,
            b"\"Deposit\"".to_vec(),
            400,
            "malformed_request",
            "expected struct",
        ),
        (
            "no type",
            json_type,
            br#"{"data": {}}"#.to_vec(),
            400,
            "malformed_request",
            "missing field `type`",
        ),
        (
            "unknown field",
            json_type,
            br#"{"type": "Deposit", "amount": 5}"#.to_vec(),
            400,
            "malformed_request",
            "unknown field `amount`",
        ),
        (
            "invalid UTF-8",
            json_type,
            b"{\"type\": \"Dep\xff\xfeosit\"}".to_vec(),
            400,
            "malformed_request",
            "not valid UTF-8",
        ),
        (
            "negative version",
            json_type,
            br#"{"type": "Deposit", "expected_version": -1}"#.to_vec(),
            400,
            "malformed_request",
            "expected_version",
        ),
        (
            "overflowing version",
            json_type,
            br#"{"type": "Deposit", "expected_version": 18446744073709551616}"#.to_vec(),
            400,
            "malformed_request",
            "expected_version",
        ),
        (
            "fractional version",
            json_type,
            br#"{"type": "Deposit", "expected_version": 1.5}"#.to_vec(),
            400,
            "malformed_request",
            "expected_version",
        ),
        (
            "string version",
            json_type,
            br#"{"type": "Deposit", "expected_version": "1"}"#.to_vec(),
            400,
            "malformed_request",
            "expected_version",
        ),
        (
            "empty type",
            json_type,
            br#"{"type": ""}"#.to_vec(),
            400,
            "malformed_command",
            "empty",
        ),
        (
            "control character in command id",
            json_type,
            br#"{"type": "Deposit", "command_id": "a\u0000b"}"#.to_vec(),
            400,
            "malformed_request",
            "command_id",
        ),
        (
            "overlong command id",
            json_type,
            format!(
                r#"{{"type": "Deposit", "command_id": "{}"}}"#,
                "c".repeat(129)
            )
            .into_bytes(),
            400,
            "malformed_request",
            "command_id",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            br#"{"type": "Deposit"}"#.to_vec(),
            415,
            "unsupported_content_type",
            "application/json",
        ),
        (
            "no content type",
            None,
            br#"{"type": "Deposit"}"#.to_vec(),
            415,
            "unsupported_content_type",
            "application/json",
        ),
        (
            "huge body",
            json_type,
            vec![b' '; 9 << 20],
            413,
            "payload_too_large",
            "larger than",
        ),
        (
            "payload over the namespace's limit",
            json_type,
            format!(
                r#"{{"type": "Deposit", "data": "{}"}}"#,
                "z".repeat(2 << 20)
            )
            .into_bytes(),
            413,
            "payload_too_large",
            "limit",
        ),
        (
            "command the aggregate cannot read",
            json_type,
            br#"{"type": "Deposit", "data": {"amount": "lots"}}"#.to_vec(),
            422,
            "rejected",
            "",
        ),
    ];
    for (what, content_type, body, status, code, hint) in cases {
        let (got, answer) = node
            .call("POST", COMMANDS, Some(&token), content_type, body)
            .await;
        assert_error(got.as_u16(), &answer, status, code);
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(hint),
            "{what}: {message:?} should mention {hint:?}"
        );
    }
    assert_eq!(
        stored(&node, &token).await,
        before,
        "nothing stored changed"
    );
    let (status, _) = node
        .send(
            "bank/bank-account/acc-1",
            &token,
            json!({"type": "Deposit", "data": {"amount": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the node keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_traversal_attempts_are_refused() {
    let (node, token) = setup().await;
    let before = stored(&node, &token).await;
    let command = json!({"type": "Deposit", "data": {"amount": 1}}).to_string();
    let paths = [
        // Path separators and traversal, raw and percent-encoded.
        "/v1/namespaces/bank/aggregates/bank-account/..%2F..%2Fetc/commands",
        "/v1/namespaces/bank/aggregates/..%2Fbank-account/acc-1/commands",
        "/v1/namespaces/bank/aggregates/bank-account/%2E%2E/commands",
        "/v1/namespaces/bank/aggregates/bank-account/a%5Cb/commands",
        // NATS-significant characters, whitespace, non-ASCII, too long.
        "/v1/namespaces/bank/aggregates/bank-account/acc.1/commands",
        "/v1/namespaces/bank/aggregates/bank-account/acc*/commands",
        "/v1/namespaces/bank/aggregates/bank-account/acc%3E/commands",
        "/v1/namespaces/bank/aggregates/bank-account/acc%201/commands",
        "/v1/namespaces/bank/aggregates/bank-account/acc%C3%A9/commands",
        "/v1/namespaces/bank/aggregates/Bank-Account/acc-1/commands",
        "/v1/namespaces/bank/aggregates/bank-account/acc%FF/commands",
    ];
    let long_id = format!(
        "/v1/namespaces/bank/aggregates/bank-account/{}/commands",
        "a".repeat(129)
    );
    for path in paths.iter().copied().chain([long_id.as_str()]) {
        let (status, answer) = node
            .call(
                "POST",
                path,
                Some(&token),
                Some("application/json"),
                command.clone(),
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status} {answer}"
        );
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{path}: {answer}"
        );
    }
    // Namespace names: every rule, with the reason in the message.
    for (name, reason) in [
        ("", "empty"),
        (&"n".repeat(65)[..], "64"),
        ("a.b", "'.'"),
        ("a*", "'*'"),
        ("a>", "'>'"),
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("..", "'.'"),
        ("café", "é"),
        ("Bank", "'B'"),
    ] {
        let (status, answer) = node
            .post_json("/v1/namespaces", ADMIN, &json!({"name": name}))
            .await;
        assert_error(status.as_u16(), &answer, 400, "invalid_name");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(reason),
            "{name:?}: {message:?} should mention {reason:?}"
        );
    }
    // Queries: wrong types, out of range, unknown parameters.
    let events = "/v1/namespaces/bank/aggregates/bank-account/acc-1/events";
    for query in [
        "?from=-1",
        "?from=abc",
        "?from=99999999999999999999",
        "?limit=0",
        "?limit=100001",
        "?color=red",
    ] {
        let (status, answer) = node.get(&format!("{events}{query}"), &token).await;
        assert_error(status.as_u16(), &answer, 400, "malformed_request");
    }
    // Deploying something that is not a component.
    for (content_type, body, code) in [
        (
            "application/wasm",
            b"not wasm at all".to_vec(),
            "invalid_component",
        ),
        (
            "application/json",
            b"{}".to_vec(),
            "unsupported_content_type",
        ),
    ] {
        let (status, answer) = node
            .call(
                "PUT",
                "/v1/namespaces/bank/aggregates/bank-account/component",
                Some(&token),
                Some(content_type),
                body,
            )
            .await;
        assert!(status.is_client_error(), "{status} {answer}");
        assert_eq!(answer["error"], json!(code), "{answer}");
    }
    // Wrong methods and unknown paths answer in JSON too.
    let (status, answer) = node
        .call("DELETE", COMMANDS, Some(&token), None, Body::empty())
        .await;
    assert_error(status.as_u16(), &answer, 405, "method_not_allowed");

    assert_eq!(
        stored(&node, &token).await,
        before,
        "nothing stored changed"
    );
    let (status, _) = node.get("/readyz", &token).await;
    assert_eq!(status, StatusCode::OK, "the node keeps serving");
}

/// A start point past every version and log position (`u64::MAX`, after
/// which nothing can come) is refused with a 400 naming the parameter, on
/// the events page, the live stream's `from` and its `Last-Event-ID`; one
/// below it is merely after the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_past_every_position_is_refused_by_name() {
    let (node, token) = setup().await;
    let before = stored(&node, &token).await;
    let events = "/v1/namespaces/bank/aggregates/bank-account/acc-1/events";
    let live = "/v1/namespaces/bank/events/live";
    let max = u64::MAX;

    let (status, body) = node.get(&format!("{events}?from={max}"), &token).await;
    assert_error(status.as_u16(), &body, 400, "malformed_request");
    assert!(
        body["message"].as_str().unwrap().contains("`from`"),
        "{body}"
    );
    let (status, body) = node
        .get(&format!("{events}?from={}", max - 1), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["events"], &body["version"]), (&json!([]), &json!(1)));

    let (status, body) = node.get(&format!("{live}?from={max}"), &token).await;
    assert_error(status.as_u16(), &body, 400, "malformed_request");
    assert!(
        body["message"].as_str().unwrap().contains("`from`"),
        "{body}"
    );
    let resume = axum::http::Request::get(live)
        .header("authorization", format!("Bearer {token}"))
        .header("last-event-id", max.to_string())
        .body(Body::empty())
        .unwrap();
    let (status, body) = node.request(resume).await;
    assert_error(status.as_u16(), &body, 400, "malformed_request");
    assert!(
        body["message"].as_str().unwrap().contains("Last-Event-ID"),
        "{body}"
    );
    assert_eq!(stored(&node, &token).await, before);
}
