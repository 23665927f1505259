//! Graceful shutdown with a real process: SIGTERM stops accepting, lets
//! in-flight commands finish, exits 0, and a restart serves the same state.

use std::time::Duration;

use serde_json::json;

use crate::support::{ADMIN, BANK, HOSTILE, NodeProcess};

#[test]
fn sigterm_finishes_in_flight_commands_and_a_restart_serves_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let admin = node.client(Some(ADMIN));
    let token = admin.create_namespace("bank", json!({"call_deadline_ms": 60_000}));
    let bank = node.client(Some(&token));
    bank.deploy("bank", "bank-account", BANK);
    bank.deploy("bank", "hostile", HOSTILE);
    for i in 0..3 {
        let acc = format!("bank/bank-account/acc-{i}");
        let (status, _) = bank.send(&acc, json!({"type": "Open", "data": {"owner": "Ada"}}));
        assert_eq!(status, 200);
        let (status, _) = bank.send(&acc, json!({"type": "Deposit", "data": {"amount": 10 + i}}));
        assert_eq!(status, 200);
    }

    // A command that takes a while (a fixed amount of guest work), in
    // flight when SIGTERM arrives.
    let slow = {
        let bank = bank.clone();
        std::thread::spawn(move || {
            bank.send(
                "bank/hostile/slow",
                json!({"type": "Spin", "data": {"iterations": 3_000_000_000u64}}),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !slow.is_finished(),
        "the slow command must still be running at SIGTERM"
    );
    let url = node.url.clone();
    let (status, log) = node.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    let (code, answer) = slow.join().unwrap();
    assert_eq!(code, 200, "the in-flight command finished: {answer}");
    assert_eq!(answer["version"], json!(1));
    // Stopped accepting: nothing listens any more.
    let refused = ureq::get(&format!("{url}/healthz")).call();
    assert!(refused.is_err(), "the node still answers after exiting");

    let node = NodeProcess::start(dir.path(), &[]);
    let bank = node.client(Some(&token));
    for i in 0..3u64 {
        let (status, state) = bank.get(&format!(
            "/v1/namespaces/bank/aggregates/bank-account/acc-{i}"
        ));
        assert_eq!(status, 200, "{state}");
        assert_eq!(state["version"], json!(2));
        assert_eq!(state["state"]["balance"], json!(10 + i));
    }
    let (status, events) = bank.get("/v1/namespaces/bank/aggregates/hostile/slow/events");
    assert_eq!(status, 200);
    assert_eq!(
        events["version"],
        json!(1),
        "the in-flight command's event is stored"
    );
    let (status, shown) = bank.get("/v1/namespaces/bank");
    assert_eq!(status, 200);
    assert_eq!(
        shown["limits"]["call_deadline_ms"],
        json!(60_000),
        "limits survive a restart"
    );
}
