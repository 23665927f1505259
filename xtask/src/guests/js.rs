//! Builds the JavaScript guests into `target/guest-components/` with
//! componentize-js: the bank account (`examples/bank-account-js`,
//! `bank_account_js.wasm`) and the WASI probe (`tests/programs/probe-js`,
//! `probe_js.wasm`).
//!
//! Each guest folder holds a `package.json`, a `package-lock.json` and a
//! `build.mjs`. Steps, each skipped when its output is current:
//! 1. `npm ci` in the guest folder, when `node_modules` is missing or
//!    older than `package-lock.json` (the lock file pins componentize-js
//!    and everything it pulls in, from the npm registry only);
//! 2. `node build.mjs <out>`, when the component is missing or older than
//!    any of its sources: `src/`, `build.mjs`, `package.json`,
//!    `package-lock.json` and the workspace's `wit/`.
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
    /// The component's file name in `target/guest-components`.
    pub(crate) output: &'static str,
}

/// The bank-account example.
pub(crate) const BANK_ACCOUNT: Guest = Guest {
    dir: "examples/bank-account-js",
    output: "bank_account_js.wasm",
};
/// The aggregate that reaches for files, sockets, clocks and randomness.
pub(crate) const PROBE: Guest = Guest {
    dir: "tests/programs/probe-js",
    output: "probe_js.wasm",
};

/// Where the components are written, relative to the workspace root.
const OUTPUT_DIR: &str = "target/guest-components";
/// The oldest Node.js major version known to work.
const MIN_NODE_MAJOR: u32 = 20;

/// Builds each of `guests` that is out of date and returns the components' paths.
pub(crate) fn build(root: &Path, guests: &[Guest]) -> Result<Vec<PathBuf>> {
    check_node()?;
    guests.iter().map(|guest| build_one(root, guest)).collect()
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

    let sources = [
        dir.join("src"),
        dir.join("build.mjs"),
        dir.join("package.json"),
        lock,
        root.join("wit"),
    ];
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
