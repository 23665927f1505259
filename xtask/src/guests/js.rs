//! Builds the JavaScript bank account (`examples/bank-account-js`) into
//! `target/guest-components/bank_account_js.wasm` with componentize-js.
//!
//! Steps, each skipped when its output is current:
//! 1. `npm ci` in the example folder, when `node_modules` is missing or
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

/// The example folder, relative to the workspace root.
const EXAMPLE: &str = "examples/bank-account-js";
/// The component, relative to the workspace root.
const OUTPUT: &str = "target/guest-components/bank_account_js.wasm";
/// The oldest Node.js major version known to work.
const MIN_NODE_MAJOR: u32 = 20;

/// Builds the component if it is out of date and returns its path.
pub(crate) fn build(root: &Path) -> Result<PathBuf> {
    let example = root.join(EXAMPLE);
    let output = root.join(OUTPUT);
    if !example.join("package.json").is_file() {
        bail!(
            "{} is missing: is {} the workspace root?",
            example.join("package.json").display(),
            root.display()
        );
    }
    check_node()?;

    let lock = example.join("package-lock.json");
    // npm rewrites node_modules/.package-lock.json on every install: its age
    // is the age of the installed tree.
    let installed = example.join("node_modules/.package-lock.json");
    if newer(&lock, modified(&installed)?)? {
        eprintln!("xtask: {EXAMPLE}: npm ci (installing the pinned componentize-js)");
        let status = npm()
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&example)
            .status()
            .context("starting `npm ci`: is npm installed? (it comes with Node.js 20+)")?;
        if !status.success() {
            bail!(
                "`npm ci` failed in {EXAMPLE} ({status}): check that the npm registry is reachable, \
                 then run `npm ci` there by hand to see the full error"
            );
        }
    }

    let sources = [
        example.join("src"),
        example.join("build.mjs"),
        example.join("package.json"),
        lock,
        root.join("wit"),
    ];
    let built = modified(&output)?;
    let mut stale = built.is_none();
    for source in &sources {
        stale = stale || newer(source, built)?;
    }
    if !stale {
        eprintln!("xtask: {EXAMPLE}: {OUTPUT} is up to date");
        return Ok(output);
    }

    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    eprintln!("xtask: {EXAMPLE}: componentize-js -> {OUTPUT} (takes ~20 s)");
    let status = Command::new("node")
        .arg("build.mjs")
        .arg(&output)
        .current_dir(&example)
        .status()
        .context("starting `node build.mjs`")?;
    if !status.success() {
        // Do not leave a half-written file that looks newer than the sources.
        let _ = std::fs::remove_file(&output);
        bail!(
            "componentize-js failed to build {EXAMPLE} ({status}); the error is above \
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
