//! Developer commands, run as `cargo xtask <command>` (`demo`, `test`,
//! `bench`).
//!
//! Each command installs what it needs on a fresh machine (the
//! `wasm32-wasip2` target; for the tests and benchmarks also the guests'
//! builders and the pinned `nats-server`) before it builds anything, so the
//! README's two commands work on a clean checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod guests;
mod nats;

const USAGE: &str = "\
usage: cargo xtask <command> [args...]

commands:
  demo [args...]   build the example components and run `aether demo` (args go to it)
  test [args...]   build the test components and run the whole test suite (args go to cargo test)
  bench [args...]  build the bank-account component and run the performance suite (args go to it,
                   e.g. `--only replay,activation`); results in target/bench/results.json
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "demo" => demo(&rest),
        "test" => test(&rest),
        "bench" => bench(&rest),
        "" | "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// Builds the example components, then runs the scripted tour on them.
fn demo(args: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--package",
        "bank-account",
        "--package",
        "counter",
    ])?;
    let component = bank_account_component(&workspace_root());
    let mut run: Vec<&str> = vec![
        "run",
        "--package",
        "aether-host",
        "--bin",
        "aether",
        "--",
        "demo",
    ];
    let component = component.to_string_lossy().into_owned();
    run.extend(["--component", &component]);
    run.extend(args.iter().map(String::as_str));
    cargo(&run)
}

/// Runs every test in the workspace. The Python and JavaScript guests are
/// built here (installing their pinned tools under `target/` and the
/// example's folder); the Rust test components are built by
/// `tests/artifacts/build.rs` as part of the test build. The pinned
/// `nats-server` is installed under `target/` and named to the tests in
/// `AETHER_NATS_SERVER`.
fn test(args: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    let root = workspace_root();
    guests::build_all(&root)?;
    let nats_server = nats::install(&root)?;
    let mut run = vec!["test", "--workspace"];
    run.extend(args.iter().map(String::as_str));
    let mut test = cargo_command(&run);
    test.env(nats::NATS_SERVER_ENV, &nats_server);
    self::run(&mut test)
}

/// Builds the bank-account component, then runs the benchmark suite
/// (`host/benches/suite`, release build) on it. See BENCHMARKS.md.
fn bench(args: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    cargo(&[
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--package",
        "bank-account",
    ])?;
    let root = workspace_root();
    guests::build_all(&root)?;
    let nats_server = nats::install(&root)?;
    let guest_dir = root
        .join("target/guest-components")
        .to_string_lossy()
        .into_owned();
    // Absolute paths: cargo runs a bench binary in its package's folder.
    let component = bank_account_component(&root).to_string_lossy().into_owned();
    let out = root
        .join("target/bench/results.json")
        .to_string_lossy()
        .into_owned();
    let mut run = vec![
        "bench",
        "--package",
        "aether-host",
        "--bench",
        "suite",
        "--",
        "--component",
        &component,
        "--out",
        &out,
        "--guests",
        &guest_dir,
    ];
    run.extend(args.iter().map(String::as_str));
    let mut bench = cargo_command(&run);
    bench.env(nats::NATS_SERVER_ENV, &nats_server);
    self::run(&mut bench)
}

/// Installs the `wasm32-wasip2` target for the pinned toolchain if missing.
fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(workspace_root())
        .output()
        .context("running `rustup target list --installed`: is rustup installed?")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    eprintln!("xtask: installing the wasm32-wasip2 target");
    run(Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(workspace_root()))
}

fn cargo(args: &[&str]) -> Result<()> {
    run(&mut cargo_command(args))
}

/// `cargo <args>` in the workspace root, ready to run.
fn cargo_command(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(workspace_root());
    if args.contains(&"wasm32-wasip2") {
        // Guests ship without debug info: smaller components compile faster.
        // One codegen unit with LTO lets LLVM inline across the SDK, serde
        // and serde_json before Cranelift sees the code: replay_wasm 1.93 →
        // 2.12 M events/s, ratio 2.89 → 2.54 (medians of 4 alternating runs).
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
            .env("CARGO_PROFILE_RELEASE_LTO", "true")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
    }
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `python -m pip install` with the flags every pinned install uses (the
/// package and `--target` follow). Installs go into folders under
/// `target/`, so pip's warning about running as root is moot.
fn pip_install(mut python: Command) -> Command {
    python.env("PIP_ROOT_USER_ACTION", "ignore").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
    ]);
    python
}

/// Where cargo puts the bank-account component it builds: under
/// `CARGO_TARGET_DIR` when that is set (a relative one is read from the
/// workspace root, where xtask runs cargo), else under the workspace's
/// `target/`.
fn bank_account_component(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    target.join("wasm32-wasip2/release/bank_account.wasm")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}
