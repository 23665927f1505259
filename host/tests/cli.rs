//! The `aether` binary as a user runs it: the demo on a data directory
//! (twice: the first run's events are still there in the second), then
//! offline inspection of that directory.

use std::process::{Command, Output};

const AETHER: &str = env!("CARGO_BIN_EXE_aether");

fn aether(args: &[&str]) -> Output {
    Command::new(AETHER)
        .args(args)
        .output()
        .expect("run aether")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ok(args: &[&str]) -> String {
    let output = aether(args);
    assert!(
        output.status.success(),
        "aether {args:?} failed: {}\n{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

#[test]
fn demo_persists_across_runs_and_inspection_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let component = aether_test_artifacts::BANK_ACCOUNT;

    let first = ok(&["demo", "--component", component, "--data-dir", data]);
    assert!(
        first.contains("(0 events stored by earlier runs)"),
        "{first}"
    );
    assert!(first.contains("rejected  insufficient-funds"), "{first}");
    assert!(
        first.contains("conflict  expected version 2, the aggregate is at 3"),
        "{first}"
    );
    assert!(first.contains("balance 70"), "{first}");
    assert!(first.contains("demo/bank-account/acc-1"), "{first}");

    // A second run (a node restart) finds the first run's events on disk.
    let second = ok(&["demo", "--component", component, "--data-dir", data]);
    assert!(
        second.contains("(3 events stored by earlier runs)"),
        "{second}"
    );
    assert!(
        second.contains("earlier    demo/bank-account/acc-1 at version 3, balance 70"),
        "{second}"
    );
    assert!(
        second.contains("aggregate  demo/bank-account/acc-2"),
        "{second}"
    );

    let events = ok(&[
        "events",
        "--data-dir",
        data,
        "demo",
        "bank-account",
        "acc-1",
    ]);
    for expected in [
        "Opened",
        "Deposited",
        "Withdrawn",
        "3 events of demo/bank-account/acc-1",
    ] {
        assert!(events.contains(expected), "{expected} in {events}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "events",
        "--json",
        "--data-dir",
        data,
        "demo",
        "bank-account",
        "acc-2",
    ]))
    .unwrap();
    let versions: Vec<u64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(json[1]["data"]["amount"], 100);

    let state: serde_json::Value = serde_json::from_str(&ok(&[
        "state",
        "--json",
        "--data-dir",
        data,
        "--component",
        component,
        "demo",
        "bank-account",
        "acc-1",
    ]))
    .unwrap();
    assert_eq!(state["version"], 3);
    assert_eq!(state["view"]["balance"], 70);
    let readable = ok(&[
        "state",
        "--data-dir",
        data,
        "--component",
        component,
        "demo",
        "bank-account",
        "acc-1",
    ]);
    assert!(readable.contains("at version 3"), "{readable}");
}

#[test]
fn inspection_refuses_a_missing_directory_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let output = aether(&[
        "events",
        "--data-dir",
        missing.to_str().unwrap(),
        "demo",
        "bank-account",
        "acc-1",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no data directory at"), "{stderr}");
    assert!(
        !missing.exists(),
        "inspection must not create a data directory"
    );

    let output = aether(&[
        "events",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "Bad.Name",
        "bank-account",
        "x",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("namespace") && stderr.contains("Bad.Name"),
        "{stderr}"
    );
}

#[test]
fn conformance_runner_reports_a_wrong_scenario_with_a_diff() {
    let component = aether_test_artifacts::BANK_ACCOUNT;
    let scenarios = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/scenarios/bank-account"
    );
    let all_pass = ok(&["test", component, scenarios]);
    assert!(
        all_pass.contains("16 scenarios passed, 0 failed"),
        "{all_pass}"
    );

    // A deliberately wrong scenario: the balance after 100 - 30 is 70, not 80.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrong.json"),
        r#"{
          "name": "a deliberately wrong expectation",
          "given": [{ "type": "Opened", "data": { "owner": "Ada" } },
                    { "type": "Deposited", "data": { "amount": 100 } },
                    { "type": "Withdrawn", "data": { "amount": 30 } }],
          "when": { "type": "Withdraw", "data": { "amount": 200 } },
          "then": { "rejection": { "code": "insufficient-funds", "message": "cannot withdraw 200: the balance is 80" } }
        }"#,
    )
    .unwrap();
    let output = aether(&["test", component, dir.path().to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "a failing scenario must fail the run"
    );
    let report = stdout(&output);
    assert!(
        report.contains("FAIL  wrong.json: a deliberately wrong expectation"),
        "{report}"
    );
    assert!(
        report.contains("-     \"message\": \"cannot withdraw 200: the balance is 80\""),
        "{report}"
    );
    assert!(
        report.contains("+     \"message\": \"cannot withdraw 200: the balance is 70\""),
        "{report}"
    );
    assert!(report.contains("0 scenarios passed, 1 failed"), "{report}");

    // A scenario file that is not valid is refused with its name.
    std::fs::write(dir.path().join("broken.json"), "{ \"when\": 3 }").unwrap();
    let output = aether(&["test", component, dir.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.json"));
}

#[test]
fn conformance_runner_survives_a_guest_that_prints() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prints.json"),
        r#"{
          "name": "a guest that writes to stdout and the host log",
          "when": { "type": "Log", "data": { "message": "hello from the guest", "repeat": 3 } },
          "then": { "events": [{ "type": "Recorded", "data": { "note": "hello from the guest" } }] }
        }"#,
    )
    .unwrap();
    let report = ok(&[
        "test",
        aether_test_artifacts::HOSTILE,
        dir.path().to_str().unwrap(),
    ]);
    assert!(report.contains("1 scenarios passed, 0 failed"), "{report}");
}

/// Each limit is defined once (`aether_runtime::limits()`): `aether serve`
/// has a flag for it and docs/api.md's table names it with that flag.
#[test]
fn every_limit_has_a_serve_flag_and_a_row_in_the_api_docs() {
    let help = ok(&["serve", "--help"]);
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("read docs/api.md");
    let limits = aether_host::runtime::limits();
    assert_eq!(limits.len(), 16, "every limit is listed once");
    for limit in limits {
        let flag = format!("--{}", limit.flag());
        assert!(
            help.contains(&flag),
            "`aether serve` has no {flag}:\n{help}"
        );
        let row = docs
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", limit.name)))
            .unwrap_or_else(|| panic!("docs/api.md has no row for `{}`", limit.name));
        assert!(
            row.contains(&format!("(`{flag}`)")),
            "the row names no {flag}: {row}"
        );
    }
}
