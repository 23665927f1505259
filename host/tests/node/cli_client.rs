//! The CLI as a client of a real node: readable output by default, `--json`
//! for scripts, and exit codes that tell a rejection (3) and a conflict (4)
//! from other failures (1).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, NodeProcess};
use crate::uploads::stalled_upload;

fn aether(node: &NodeProcess, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(args)
        .env("AETHER_NODE", &node.url)
        .env("AETHER_TOKEN", token)
        .output()
        .expect("run aether")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

#[test]
fn the_cli_drives_a_node_with_distinct_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);

    let created = aether(&node, ADMIN, &["namespace", "create", "bank", "--json"]);
    let token = json_of(&created)["token"].as_str().unwrap().to_owned();
    let deployed = aether(&node, &token, &["deploy", "bank", "bank-account", BANK]);
    assert!(deployed.status.success(), "{}", text(&deployed));
    assert!(text(&deployed).contains("deployed"), "{}", text(&deployed));

    let opened = aether(
        &node,
        &token,
        &[
            "send",
            "bank",
            "bank-account",
            "acc-1",
            "Open",
            r#"{"owner":"Ada"}"#,
        ],
    );
    assert!(opened.status.success(), "{}", text(&opened));
    assert!(
        text(&opened).contains("now at version 1"),
        "{}",
        text(&opened)
    );
    let deposited = aether(
        &node,
        &token,
        &[
            "send",
            "bank",
            "bank-account",
            "acc-1",
            "Deposit",
            r#"{"amount":70}"#,
            "--json",
            "--command-id",
            "d-1",
        ],
    );
    assert_eq!(json_of(&deposited)["version"], json!(2));
    let again = aether(
        &node,
        &token,
        &[
            "send",
            "bank",
            "bank-account",
            "acc-1",
            "Deposit",
            r#"{"amount":70}"#,
            "--command-id",
            "d-1",
        ],
    );
    assert!(
        text(&again).contains("already carried out"),
        "{}",
        text(&again)
    );

    let rejected = aether(
        &node,
        &token,
        &[
            "send",
            "bank",
            "bank-account",
            "acc-1",
            "Withdraw",
            r#"{"amount":500}"#,
        ],
    );
    assert_eq!(rejected.status.code(), Some(3), "{}", text(&rejected));
    assert!(
        text(&rejected).contains("insufficient-funds"),
        "{}",
        text(&rejected)
    );
    let conflict = aether(
        &node,
        &token,
        &[
            "send",
            "bank",
            "bank-account",
            "acc-1",
            "Deposit",
            r#"{"amount":1}"#,
            "--expect",
            "1",
        ],
    );
    assert_eq!(conflict.status.code(), Some(4), "{}", text(&conflict));
    assert!(
        text(&conflict).contains("expected version 1"),
        "{}",
        text(&conflict)
    );
    let unknown = aether(
        &node,
        &token,
        &["send", "elsewhere", "bank-account", "acc-1", "Open", "{}"],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(text(&unknown).contains("forbidden"), "{}", text(&unknown));

    let events = json_of(&aether(
        &node,
        &token,
        &["events", "bank", "bank-account", "acc-1", "--json"],
    ));
    let types: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(types, [json!("Opened"), json!("Deposited")]);
    let readable = aether(&node, &token, &["events", "bank", "bank-account", "acc-1"]);
    assert!(
        text(&readable).contains("2 events of bank/bank-account/acc-1"),
        "{}",
        text(&readable)
    );
    let state = json_of(&aether(
        &node,
        &token,
        &["state", "bank", "bank-account", "acc-1", "--json"],
    ));
    assert_eq!(
        (&state["version"], &state["state"]["balance"]),
        (&json!(2), &json!(70))
    );

    // tail: the next stored event arrives as one JSON line.
    let mut tail = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(["tail", "bank", "--json", "--id", "acc-1"])
        .env("AETHER_NODE", &node.url)
        .env("AETHER_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    // The subscription starts when the node answers; send until the event
    // shows up (events before the subscription are not tailed).
    let sender = {
        let (url, token) = (node.url.clone(), token.clone());
        std::thread::spawn(move || {
            let client = crate::support::Http::new(&url, Some(&token));
            for _ in 0..50 {
                client.send(
                    "bank/bank-account/acc-2",
                    json!({"type": "Open", "data": {"owner": "Nobody"}}),
                );
                let (status, _) = client.send(
                    "bank/bank-account/acc-1",
                    json!({"type": "Deposit", "data": {"amount": 1}}),
                );
                assert_eq!(status, 200);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let line = lines.next().expect("a tailed event").unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        event["stream"],
        json!("bank/bank-account/acc-1"),
        "filtered by id"
    );
    assert_eq!(event["event_type"], json!("Deposited"));
    tail.kill().unwrap();
    let _ = tail.wait();
    sender.join().unwrap();
}

/// `aether namespace revoke-token` takes a token's id or the token itself
/// (whose id it works out without sending it); the revocation is kept
/// across a restart.
#[test]
fn the_cli_revokes_a_token_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let created = json_of(&aether(
        &node,
        ADMIN,
        &["namespace", "create", "bank", "--json"],
    ));
    let first = created["token"].as_str().unwrap().to_owned();
    let issued = json_of(&aether(
        &node,
        ADMIN,
        &["namespace", "token", "bank", "--json"],
    ));
    let (second, second_id) = (
        issued["token"].as_str().unwrap().to_owned(),
        issued["token_id"].as_str().unwrap().to_owned(),
    );
    let show =
        |node: &NodeProcess, token: &str| aether(node, token, &["namespace", "show", "bank"]);
    assert!(show(&node, &second).status.success());

    let listed = aether(&node, ADMIN, &["namespace", "tokens", "bank"]);
    assert!(text(&listed).contains(&second_id), "{}", text(&listed));
    let revoked = aether(
        &node,
        ADMIN,
        &["namespace", "revoke-token", "bank", &second],
    );
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(text(&revoked).contains(&second_id), "{}", text(&revoked));
    let refused = show(&node, &second);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("unauthorized"),
        "{}",
        text(&refused)
    );
    let again = aether(
        &node,
        ADMIN,
        &["namespace", "revoke-token", "bank", &second_id],
    );
    assert!(text(&again).contains("unknown_token"), "{}", text(&again));

    let (status, _) = node.terminate();
    assert!(status.success());
    let node = NodeProcess::start(dir.path(), &[]);
    assert!(!show(&node, &second).status.success());
    assert!(show(&node, &first).status.success());
}

/// `aether deploy` says why a component was refused, also when the node
/// refuses it before reading it whole: a file that cannot be a component
/// is refused before anything is sent, and a large one waits for the
/// node's `100 Continue`, so a wrong token, the size limit or no upload
/// place reaches the user (not "cannot reach the node: Broken pipe").
#[test]
fn the_cli_says_why_a_deploy_was_refused_before_it_was_sent_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let created = aether(&node, ADMIN, &["namespace", "create", "bank", "--json"]);
    let token = json_of(&created)["token"].as_str().unwrap().to_owned();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, vec![0xA5u8; 1 << 20]).unwrap();
    // Starts like a component and is one byte over the node's limit.
    let over = dir.path().join("over.wasm");
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    let limit = aether_host::runtime::RuntimeConfig::default().max_component_bytes;
    bytes.resize(limit + 1, 0);
    std::fs::write(&over, bytes).unwrap();
    for (what, token, file, expected) in [
        ("junk", token.as_str(), &junk, "WebAssembly magic"),
        ("over the limit", token.as_str(), &over, "payload_too_large"),
        ("a wrong token", "aether_wrong", &over, "unauthorized"),
    ] {
        let file = file.to_str().unwrap();
        let refused = aether(&node, token, &["deploy", "bank", "bank-account", file]);
        assert_eq!(refused.status.code(), Some(1), "{what}: {}", text(&refused));
        assert!(
            text(&refused).contains(expected),
            "{what}: {}",
            text(&refused)
        );
    }
    // With the namespace's upload places held, the node refuses after its
    // second's wait for one, from the head alone.
    let held = [0, 1].map(|_| stalled_upload(&node, "bank", &token, 1 << 20));
    // Large enough that sending it would still be under way at the
    // refusal.
    let large = dir.path().join("large.wasm");
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.resize(32 << 20, 0);
    std::fs::write(&large, bytes).unwrap();
    let refused = aether(
        &node,
        &token,
        &["deploy", "bank", "bank-account", large.to_str().unwrap()],
    );
    assert!(
        text(&refused).contains("too_many_uploads"),
        "{}",
        text(&refused)
    );
    drop(held);
    let shown = json_of(&aether(
        &node,
        &token,
        &["namespace", "show", "bank", "--json"],
    ));
    assert_eq!(shown["aggregate_types"], json!([]), "{shown}");
}
