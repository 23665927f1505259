//! Runs the example program twice on one data directory: the second run
//! continues from the events the first one stored on disk.

use std::process::Command;

fn run(data_dir: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_embedded"))
        .arg(aether_test_artifacts::BANK_ACCOUNT)
        .arg(data_dir)
        .arg("acc-1")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the example failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_runtime_and_the_embedded_store_work_as_a_library() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path());
    assert!(
        first.contains("opened bank/bank-account/acc-1 (version 1)"),
        "{first}"
    );
    assert!(first.contains("deposited 100 (version 2)"), "{first}");
    assert!(
        first.contains("withdraw 1000000 rejected: insufficient-funds"),
        "{first}"
    );
    assert!(first.contains("state at version 2: "), "{first}");
    assert!(first.contains(r#""balance":100"#), "{first}");

    // Reopened: the account is not opened again, and the deposit lands on
    // top of the stored history.
    let second = run(dir.path());
    assert!(!second.contains("opened"), "{second}");
    assert!(second.contains("deposited 100 (version 3)"), "{second}");
    assert!(second.contains(r#""balance":200"#), "{second}");
}

/// Embedding takes neither the HTTP server nor NATS nor the CLI's crates.
#[test]
fn the_example_depends_on_no_http_nats_or_cli_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "-p",
            "embedded",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.contains("aether-runtime") && tree.contains("redb"),
        "{tree}"
    );
    for forbidden in ["axum", "hyper", "async-nats", "clap", "ureq", "aether-node"] {
        assert!(
            !tree
                .lines()
                .any(|line| line.split(' ').next() == Some(forbidden)),
            "{forbidden} is in the embedding example's dependencies:\n{tree}"
        );
    }
}
