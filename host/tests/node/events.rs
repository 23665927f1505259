//! Following a namespace's events over HTTP with `aether tail`: from the
//! beginning, filtered, and durably (a named subscriber resumes after the
//! last event it was sent).

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, NodeProcess};

struct Tail {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Tail {
    fn start(node: &NodeProcess, token: &str, args: &[&str]) -> Tail {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
            .args(["tail", "bank", "--json"])
            .args(args)
            .env("AETHER_NODE", &node.url)
            .env("AETHER_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Tail { child, lines }
    }

    fn next(&mut self) -> Value {
        let line = self.lines.next().expect("an event").unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_reads_history_then_live_and_a_named_subscriber_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let token = node.client(Some(ADMIN)).create_namespace("bank", json!({}));
    let bank = node.client(Some(&token));
    bank.deploy("bank", "bank-account", BANK);
    for i in 0..3 {
        let acc = format!("bank/bank-account/acc-{i}");
        bank.send(&acc, json!({"type": "Open", "data": {"owner": "T"}}));
        bank.send(&acc, json!({"type": "Deposit", "data": {"amount": 10}}));
    }

    // From the beginning, only deposits of acc-*: history, then live.
    {
        let mut tail = Tail::start(
            &node,
            &token,
            &[
                "--from",
                "beginning",
                "--event-types",
                "Deposited",
                "--id",
                "acc-*",
            ],
        );
        for i in 0..3 {
            let event = tail.next();
            assert_eq!(event["event_type"], json!("Deposited"));
            assert_eq!(event["stream"], json!(format!("bank/bank-account/acc-{i}")));
        }
        bank.send(
            "bank/bank-account/vip-1",
            json!({"type": "Open", "data": {"owner": "V"}}),
        );
        bank.send(
            "bank/bank-account/vip-1",
            json!({"type": "Deposit", "data": {"amount": 1}}),
        );
        bank.send(
            "bank/bank-account/acc-0",
            json!({"type": "Deposit", "data": {"amount": 2}}),
        );
        let live = tail.next();
        assert_eq!(
            (&live["stream"], &live["version"]),
            (&json!("bank/bank-account/acc-0"), &json!(3))
        );
    }

    // A named subscriber following acc-1 reads its two events and goes
    // away; a deposit arrives while it is gone; back, it gets exactly that.
    {
        let mut tail = Tail::start(
            &node,
            &token,
            &["--from", "checkpoint", "--name", "audit", "--id", "acc-1"],
        );
        assert_eq!(tail.next()["version"], json!(1));
        assert_eq!(tail.next()["version"], json!(2));
    }
    let (status, _) = bank.send(
        "bank/bank-account/acc-1",
        json!({"type": "Deposit", "data": {"amount": 3}}),
    );
    assert_eq!(status, 200);
    let mut resumed = Tail::start(
        &node,
        &token,
        &["--from", "checkpoint", "--name", "audit", "--id", "acc-1"],
    );
    let next = resumed.next();
    assert_eq!(
        (&next["stream"], &next["version"]),
        (&json!("bank/bank-account/acc-1"), &json!(3))
    );
    assert_eq!(next["data"], json!({"amount": 3}));
}
