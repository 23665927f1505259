//! The API's happy paths and its error codes, against a real process.

use serde_json::json;

use crate::support::{ADMIN, BANK, NodeProcess, assert_error};

#[test]
fn a_tenant_deploys_sends_and_reads_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let anyone = node.client(None);
    assert_eq!(anyone.get("/healthz"), (200, json!({"status": "ok"})));
    let (status, ready) = anyone.get("/readyz");
    assert_eq!((status, &ready["status"]), (200, &json!("ready")));

    let admin = node.client(Some(ADMIN));
    let token = admin.create_namespace("bank", json!({}));
    let bank = node.client(Some(&token));
    let digest = bank.deploy("bank", "bank-account", BANK);
    assert_eq!(digest.len(), 64);
    let (status, types) = bank.get("/v1/namespaces/bank/aggregates");
    assert_eq!(status, 200);
    assert_eq!(
        types["aggregate_types"],
        json!([{"aggregate_type": "bank-account", "digest": digest}])
    );

    let acc = "bank/bank-account/acc-1";
    let (status, opened) = bank.send(acc, json!({"type": "Open", "data": {"owner": "Ada"}}));
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["version"], json!(1));
    assert_eq!(opened["events"][0]["event_type"], json!("Opened"));
    assert_eq!(
        opened["events"][0]["metadata"]["component_digest"],
        json!(digest)
    );
    let (status, _) = bank.send(acc, json!({"type": "Deposit", "data": {"amount": 100}}));
    assert_eq!(status, 200);

    // A rejection: 422 with the aggregate's own code; nothing stored.
    let (status, rejected) = bank.send(acc, json!({"type": "Withdraw", "data": {"amount": 500}}));
    assert_error(status, &rejected, 422, "rejected");
    assert_eq!(rejected["rejection"]["code"], json!("insufficient-funds"));

    // A stale expected version: 409 with both versions.
    let (status, conflict) = bank.send(
        acc,
        json!({"type": "Deposit", "data": {"amount": 1}, "expected_version": 1}),
    );
    assert_error(status, &conflict, 409, "version_conflict");
    assert_eq!(
        (&conflict["expected"], &conflict["actual"]),
        (&json!(1), &json!(2))
    );

    let (status, state) = bank.get("/v1/namespaces/bank/aggregates/bank-account/acc-1");
    assert_eq!(status, 200);
    assert_eq!(state["version"], json!(2));
    assert_eq!(state["state"]["balance"], json!(100));
    let (status, events) =
        bank.get("/v1/namespaces/bank/aggregates/bank-account/acc-1/events?from=2");
    assert_eq!(status, 200);
    assert_eq!(events["version"], json!(2));
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["version"], json!(2));
    assert_eq!(events["next_version"], json!(3));

    // Unknown names: 404 with codes that say which.
    let (status, unknown) = bank.send(
        "bank/savings/acc-1",
        json!({"type": "Open", "data": {"owner": "X"}}),
    );
    assert_error(status, &unknown, 404, "unknown_aggregate_type");
    let (status, missing) = admin.get("/v1/namespaces/nowhere");
    assert_error(status, &missing, 404, "unknown_namespace");
    let (status, route) = bank.get("/v2/whatever");
    assert_error(status, &route, 404, "not_found");

    // Metrics: per namespace, by outcome, with a latency histogram.
    let (status, metrics) = admin.get("/metrics");
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    for line in [
        "aether_commands_total{namespace=\"bank\",outcome=\"ok\"} 2",
        "aether_commands_total{namespace=\"bank\",outcome=\"rejected\"} 1",
        "aether_commands_total{namespace=\"bank\",outcome=\"conflict\"} 1",
        "aether_command_duration_seconds_count{namespace=\"bank\"} 5",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let (status, _) = bank.get("/metrics");
    assert_eq!(status, 403, "metrics need the admin token");
}

#[test]
fn a_retried_command_id_returns_the_first_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let token = node.client(Some(ADMIN)).create_namespace("bank", json!({}));
    let bank = node.client(Some(&token));
    bank.deploy("bank", "bank-account", BANK);
    let acc = "bank/bank-account/acc-1";
    bank.send(acc, json!({"type": "Open", "data": {"owner": "Ada"}}));
    bank.send(acc, json!({"type": "Deposit", "data": {"amount": 80}}));

    let withdraw = json!({"type": "Withdraw", "data": {"amount": 50}, "command_id": "w-1"});
    let (status, first) = bank.send(acc, withdraw.clone());
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["duplicate"], json!(false));
    // Carried out again, the withdrawal would now be refused (30 left):
    // the retry must instead answer with what the first attempt stored.
    let (status, retry) = bank.send(acc, withdraw);
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["duplicate"], json!(true));
    assert_eq!(retry["events"], first["events"]);
    assert_eq!(retry["version"], json!(3));
    let (_, state) = bank.get("/v1/namespaces/bank/aggregates/bank-account/acc-1");
    assert_eq!(state["state"]["balance"], json!(30), "withdrawn once");
}
