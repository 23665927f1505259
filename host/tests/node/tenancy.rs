//! Tenants cannot reach each other: with tenant A's token, every endpoint
//! on tenant B is refused and nothing in B changes.

use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, Http, NodeProcess, assert_error};

/// Everything a client can observe of namespace B.
fn snapshot_of_b(admin: &Http) -> Vec<Value> {
    vec![
        admin.get("/v1/namespaces/tenant-b").1,
        admin.get("/v1/namespaces/tenant-b/aggregates").1,
        admin
            .get("/v1/namespaces/tenant-b/aggregates/bank-account/acc-1")
            .1,
        admin
            .get("/v1/namespaces/tenant-b/aggregates/bank-account/acc-1/events")
            .1,
    ]
}

#[test]
fn a_tenant_token_reaches_only_its_own_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let admin = node.client(Some(ADMIN));
    let token_a = admin.create_namespace("tenant-a", json!({}));
    let token_b = admin.create_namespace("tenant-b", json!({}));
    let (a, b) = (node.client(Some(&token_a)), node.client(Some(&token_b)));
    a.deploy("tenant-a", "bank-account", BANK);
    b.deploy("tenant-b", "bank-account", BANK);
    let (status, _) = b.send(
        "tenant-b/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "B"}}),
    );
    assert_eq!(status, 200);
    let before = snapshot_of_b(&admin);

    // Refused before the body is read, so a short one will do (a large
    // upload would be cut off mid-send, as HTTP allows).
    let wasm = std::fs::read(BANK).unwrap()[..64].to_vec();
    let command = json!({"type": "Deposit", "data": {"amount": 5}}).to_string();
    let attempts: Vec<(&str, &str, &str, Option<Vec<u8>>)> = vec![
        ("GET", "/v1/namespaces/tenant-b", "", None),
        ("GET", "/v1/namespaces/tenant-b/aggregates", "", None),
        (
            "PUT",
            "/v1/namespaces/tenant-b/aggregates/bank-account/component",
            "application/wasm",
            Some(wasm.clone()),
        ),
        (
            "PUT",
            "/v1/namespaces/tenant-b/aggregates/other/component",
            "application/wasm",
            Some(wasm),
        ),
        (
            "POST",
            "/v1/namespaces/tenant-b/aggregates/bank-account/acc-1/commands",
            "application/json",
            Some(command.clone().into_bytes()),
        ),
        (
            "POST",
            "/v1/namespaces/tenant-b/aggregates/bank-account/acc-2/commands",
            "application/json",
            Some(command.into_bytes()),
        ),
        (
            "GET",
            "/v1/namespaces/tenant-b/aggregates/bank-account/acc-1",
            "",
            None,
        ),
        (
            "GET",
            "/v1/namespaces/tenant-b/aggregates/bank-account/acc-1/events",
            "",
            None,
        ),
        ("GET", "/v1/namespaces/tenant-b/events/live", "", None),
        (
            "PUT",
            "/v1/namespaces/tenant-b/limits",
            "application/json",
            Some(b"{}".to_vec()),
        ),
        (
            "POST",
            "/v1/namespaces/tenant-b/tokens",
            "application/json",
            None,
        ),
        // A namespace that does not exist: refused the same way, so a
        // tenant cannot probe which namespaces exist.
        ("GET", "/v1/namespaces/tenant-c", "", None),
    ];
    for (method, path, content_type, body) in &attempts {
        let (status, answer) = a.call(method, path, content_type, body.clone());
        assert_error(status, &answer, 403, "forbidden");
    }
    // Administration needs the admin token.
    for (method, path) in [("GET", "/v1/namespaces"), ("GET", "/metrics")] {
        let (status, answer) = a.call(method, path, "", None);
        assert_error(status, &answer, 403, "forbidden");
    }
    let (status, answer) = a.post_json("/v1/namespaces", &json!({"name": "tenant-d"}));
    assert_error(status, &answer, 403, "forbidden");
    // No token, or a made-up one: 401 everywhere.
    for client in [node.client(None), node.client(Some("aether_0000"))] {
        for (method, path, content_type, body) in &attempts {
            let (status, answer) = client.call(method, path, content_type, body.clone());
            assert_error(status, &answer, 401, "unauthorized");
        }
    }

    assert_eq!(snapshot_of_b(&admin), before, "nothing in tenant-b changed");
    let (_, namespaces) = admin.get("/v1/namespaces");
    assert_eq!(namespaces["namespaces"], json!(["tenant-a", "tenant-b"]));
    // A's own namespace works with A's token.
    let (status, _) = a.send(
        "tenant-a/bank-account/acc-1",
        json!({"type": "Open", "data": {"owner": "A"}}),
    );
    assert_eq!(status, 200);
}

#[test]
fn tokens_survive_a_restart_and_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let node = NodeProcess::start(dir.path(), &[]);
        let admin = node.client(Some(ADMIN));
        let token = admin.create_namespace("bank", json!({}));
        let (status, second) = admin.call("POST", "/v1/namespaces/bank/tokens", "", None);
        assert_eq!(status, 201, "{second}");
        let second = second["token"].as_str().unwrap().to_owned();
        assert_ne!(second, token);
        let (status, _) = node.client(Some(&second)).get("/v1/namespaces/bank");
        assert_eq!(status, 200);
        token
    };
    let state = std::fs::read_to_string(dir.path().join("node.json")).unwrap();
    assert!(
        !state.contains(&token) && !state.contains(ADMIN),
        "tokens in clear:\n{state}"
    );
    let node = NodeProcess::start(dir.path(), &[]);
    let (status, shown) = node.client(Some(&token)).get("/v1/namespaces/bank");
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["namespace"], json!("bank"));
}
