//! Builds the JavaScript guests into `target/guest-components/` with
//! componentize-js: the examples written on the JavaScript SDK
//! (`guest-sdk/js`, package `@aether/guest`) — the bank account
//! (`examples/bank-account-js`, `bank_account_js.wasm`) and the order
//! (`examples/order-js`, `order_js.wasm`) — and the WASI probe
//! (`tests/programs/probe-js`, `probe_js.wasm`), which uses the bindings
//! directly.
//!
//! Each guest folder holds a `package.json`, a `package-lock.json` and a
//! `build.mjs`; an SDK guest depends on the SDK through a `file:` link
//! (`"@aether/guest": "file:../../guest-sdk/js"`), which `npm ci` makes a
//! symlink, so the SDK's sources are used as they are. Steps:
//! 1. `npm ci` in the guest folder, when `node_modules` is missing or
//!    older than `package-lock.json` (the lock file pins componentize-js
//!    and everything it pulls in, from the npm registry only);
//! 2. the native tests under plain Node, every time: the SDK's
//!    (`node --test test/` in `guest-sdk/js`, no dependencies) and each
//!    SDK guest's; a failure stops the build;
//! 3. `node build.mjs <out>`, when the component is missing or older than
//!    any of its sources: `src/`, `build.mjs`, `package.json`,
//!    `package-lock.json`, the workspace's `wit/` and, for an SDK guest,
//!    the SDK's `src/` and `package.json`. The SDK's build bundles the
//!    module with rolldown, runs componentize-js and writes the state
//!    schema into the component.
//!
//! Needs Node.js 20 or newer and npm on `PATH`; nothing else (componentize-js
//! brings the JS engine and its own `wizer` binary as npm packages).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

/// A JavaScript guest: a folder with `build.mjs`, and the component it becomes.
pub(crate) struct Guest {
    /// The folder, relative to the workspace root.
    pub(crate) dir: &'static str,
    /// Whether the guest is written on the SDK (`@aether/guest`), with
    /// native tests in `test/`.
    pub(crate) sdk: bool,
    /// The component's file name in `target/guest-components`.
    pub(crate) output: &'static str,
}

/// The bank-account example.
pub(crate) const BANK_ACCOUNT: Guest = Guest {
    dir: "examples/bank-account-js",
    sdk: true,
    output: "bank_account_js.wasm",
};
/// The order example.
pub(crate) const ORDER: Guest = Guest {
    dir: "examples/order-js",
    sdk: true,
    output: "order_js.wasm",
};
/// The aggregate that reaches for files, sockets, clocks and randomness.
pub(crate) const PROBE: Guest = Guest {
    dir: "tests/programs/probe-js",
    sdk: false,
    output: "probe_js.wasm",
};

/// The JavaScript SDK's folder.
const SDK_DIR: &str = "guest-sdk/js";

/// Where the components are written, relative to the workspace root.
const OUTPUT_DIR: &str = "target/guest-components";
/// The oldest Node.js major version known to work.
const MIN_NODE_MAJOR: u32 = 20;

/// Runs the SDK's native tests, then installs, tests and builds each of
/// `guests` (see the module docs for what is skipped when current), and
/// returns the components' paths.
pub(crate) fn build(root: &Path, guests: &[Guest]) -> Result<Vec<PathBuf>> {
    check_node()?;
    node_tests(root, SDK_DIR)?;
    guests.iter().map(|guest| build_one(root, guest)).collect()
}

/// Runs `node --test test/` in `dir` (relative to `root`); fails if a test does.
fn node_tests(root: &Path, dir: &str) -> Result<()> {
    eprintln!("xtask: {dir}: native tests (node --test)");
    let output = Command::new("node")
        .args(["--test", "--test-reporter=dot", "test/"])
        .current_dir(root.join(dir))
        .output()
        .context("starting `node --test`")?;
    if !output.status.success() {
        bail!(
            "the native tests of {dir} failed ({}):\n{}{}\nrun `node --test test/` there to see them",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn build_one(root: &Path, guest: &Guest) -> Result<PathBuf> {
    let (name, file) = (guest.dir, guest.output);
    let dir = root.join(name);
    let output = root.join(OUTPUT_DIR).join(file);
    if !dir.join("package.json").is_file() {
        bail!(
            "{} is missing: is {} the workspace root?",
            dir.join("package.json").display(),
            root.display()
        );
    }

    let lock = dir.join("package-lock.json");
    // npm rewrites node_modules/.package-lock.json on every install: its age
    // is the age of the installed tree.
    let installed = dir.join("node_modules/.package-lock.json");
    if newer(&lock, modified(&installed)?)? {
        eprintln!("xtask: {name}: npm ci (installing the pinned componentize-js)");
        let status = npm()
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .context("starting `npm ci`: is npm installed? (it comes with Node.js 20+)")?;
        if !status.success() {
            bail!(
                "`npm ci` failed in {name} ({status}): check that the npm registry is reachable, \
                 then run `npm ci` there by hand to see the full error"
            );
        }
    }

    if guest.sdk {
        node_tests(root, name)?;
    }

    let mut sources = vec![
        dir.join("src"),
        dir.join("build.mjs"),
        dir.join("package.json"),
        lock,
        root.join("wit"),
    ];
    if guest.sdk {
        sources.push(root.join(SDK_DIR).join("src"));
        sources.push(root.join(SDK_DIR).join("package.json"));
    }
    let built = modified(&output)?;
    let mut stale = built.is_none();
    for source in &sources {
        stale = stale || newer(source, built)?;
    }
    if !stale {
        eprintln!("xtask: {name}: {file} is up to date");
        return Ok(output);
    }

    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    eprintln!("xtask: {name}: componentize-js -> {file} (takes ~20 s)");
    let status = Command::new("node")
        .arg("build.mjs")
        .arg(&output)
        .current_dir(&dir)
        .status()
        .context("starting `node build.mjs`")?;
    if !status.success() {
        // Do not leave a half-written file that looks newer than the sources.
        let _ = std::fs::remove_file(&output);
        bail!(
            "componentize-js failed to build {name} ({status}); the error is above \
             (a syntax error in src/, or a WIT change the JS does not follow)"
        );
    }
    Ok(output)
}

/// Checks that `node` runs and is recent enough.
fn check_node() -> Result<()> {
    let out = match Command::new("node").arg("--version").output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!(
                "node/npm not found: install Node.js {MIN_NODE_MAJOR}+ (it includes npm) and put it on PATH"
            )
        }
        Err(e) => return Err(e).context("running `node --version`"),
    };
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= MIN_NODE_MAJOR => Ok(()),
        _ => bail!(
            "found Node.js {version:?}, need {MIN_NODE_MAJOR} or newer: install Node.js {MIN_NODE_MAJOR}+"
        ),
    }
}

/// `npm`, which is a `.cmd` script on Windows.
fn npm() -> Command {
    Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
}

/// When `path` was last modified, or `None` if it does not exist.
fn modified(path: &Path) -> Result<Option<SystemTime>> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            Ok(Some(meta.modified().with_context(|| {
                format!("reading the time of {}", path.display())
            })?))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Whether `path` (a file, or any file under a directory) was modified
/// after `than`; always true when `than` is `None` (nothing built yet).
fn newer(path: &Path, than: Option<SystemTime>) -> Result<bool> {
    let Some(than) = than else { return Ok(true) };
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.modified()? > than {
        return Ok(true);
    }
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
        {
            if newer(&entry?.path(), Some(than))? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
