//! `aether dev <crate dir>`: the inner loop for a Rust guest in one command.
//!
//! 1. Builds the crate with `cargo build --release --target wasm32-wasip2`
//!    (the compiler's output goes straight to the terminal).
//! 2. Copies the component (found through `cargo metadata`: the target
//!    directory and the crate's `cdylib` target) to
//!    `<data-dir>/watch/<namespace>/<aggregate-type>.wasm`.
//! 3. Runs a node in this process on `<data-dir>` in watch mode on
//!    `<data-dir>/watch`, which deploys the file (creating the namespace and
//!    printing its token the first time) and redeploys it whenever it
//!    changes.
//! 4. Watches the crate's `src/` and `Cargo.toml`; once they have been
//!    quiet for 300 ms it builds and copies again. A failed build leaves the
//!    file, and so the running version, as it was.
//!
//! SIGTERM or Ctrl-C stops the node as `aether serve` does, and with it the
//! source watcher and any build in progress (the `cargo` child is killed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::node::registry::SYSTEM_NAMESPACE;
use aether_host::node::{NodeConfig, serve};
use aether_host::runtime::Digest;

/// How long the sources must stay unchanged before a rebuild.
const QUIET: Duration = Duration::from_millis(300);

/// The target every guest is built for.
const TARGET: &str = "wasm32-wasip2";

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// The guest crate's directory (the one holding its Cargo.toml).
    crate_dir: PathBuf,
    /// The namespace to serve the aggregate in.
    #[arg(long, default_value = "dev")]
    namespace: String,
    /// The aggregate type (default: the crate's package name).
    #[arg(long)]
    aggregate_type: Option<String>,
    /// The node's data directory; the watched components go in its
    /// `watch/` directory.
    #[arg(long, default_value = "./aether-dev")]
    data_dir: PathBuf,
    /// Where the node's HTTP API listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// The admin token (at least 16 characters). Without it the node keeps
    /// the one it has, or makes one and prints it once.
    #[arg(long, env = "AETHER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

pub(crate) async fn run(args: DevArgs) -> Result<()> {
    let crate_dir = args
        .crate_dir
        .canonicalize()
        .with_context(|| format!("no crate directory {}", args.crate_dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let guest = Guest::find(&cargo, &crate_dir)?;
    let namespace = Namespace::new(args.namespace).context("--namespace")?;
    if namespace == SYSTEM_NAMESPACE {
        bail!(
            "namespace `{namespace}` is reserved for the node itself: choose another --namespace"
        );
    }
    let aggregate_type = match args.aggregate_type {
        Some(name) => AggregateType::new(name).context("--aggregate-type")?,
        None => AggregateType::new(guest.package.as_str()).with_context(|| {
            format!(
                "the package name `{}` is not an aggregate type: pass --aggregate-type",
                guest.package
            )
        })?,
    };
    let watch_dir = args.data_dir.join("watch");
    let build = Build {
        cargo,
        crate_dir: crate_dir.clone(),
        wasm: guest.wasm,
        destination: watch_dir
            .join(namespace.as_str())
            .join(format!("{aggregate_type}.wasm")),
    };

    // Watch the sources before the first build, so an edit made while it
    // runs is not missed.
    let (changes, sources) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = changes.send(event);
    })
    .context("starting the source watcher")?;
    watcher
        .watch(&crate_dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", crate_dir.display()))?;
    let src = crate_dir.join("src");
    if src.is_dir() {
        watcher
            .watch(&src, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", src.display()))?;
    }

    println!("building {} …", crate_dir.display());
    build.run().await?;

    let mut config = NodeConfig::new(&args.data_dir, args.listen);
    config.admin_token = args.admin_token;
    config.watch = Some(watch_dir);
    let data_dir = args.data_dir.display().to_string();
    let served = format!("{namespace}/{aggregate_type}");
    let source = crate_dir.display().to_string();
    let node = serve(config, move |address| {
        println!("aether dev: node listening on http://{address} (data in {data_dir})");
        println!(
            "serving {served} from {source}; a new namespace's token is printed once below; \
             edit and save to rebuild; Ctrl-C stops"
        );
    });
    tokio::select! {
        // The node stops on SIGTERM or Ctrl-C; the rebuild loop (and a
        // build it is running) is dropped with it.
        served = node => served,
        failed = rebuild_on_change(&build, &crate_dir, sources) => failed,
    }
}

/// What `cargo metadata` says about the guest crate.
struct Guest {
    /// Its package name.
    package: String,
    /// Where `cargo build --release --target wasm32-wasip2` puts its
    /// component.
    wasm: PathBuf,
}

impl Guest {
    fn find(cargo: &std::ffi::OsStr, crate_dir: &Path) -> Result<Guest> {
        let manifest = crate_dir.join("Cargo.toml");
        if !manifest.is_file() {
            bail!("{} has no Cargo.toml", crate_dir.display());
        }
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(crate_dir)
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo metadata")?;
        if !output.status.success() {
            bail!("cargo metadata failed in {}", crate_dir.display());
        }
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("reading cargo metadata's answer")?;
        let target_dir = metadata["target_directory"]
            .as_str()
            .context("cargo metadata names no target directory")?;
        let package = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["manifest_path"]
                    .as_str()
                    .and_then(|m| Path::new(m).canonicalize().ok())
                    .is_some_and(|m| m == manifest)
            })
            .with_context(|| format!("cargo metadata does not list {}", manifest.display()))?;
        let name = package["name"]
            .as_str()
            .context("the package has no name")?
            .to_owned();
        let lib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
            })
            .and_then(|t| t["name"].as_str())
            .with_context(|| {
                format!(
                    "package `{name}` builds no component: add `[lib] crate-type = [\"cdylib\"]` \
                     to {}",
                    manifest.display()
                )
            })?;
        let wasm = Path::new(target_dir)
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", lib.replace('-', "_")));
        Ok(Guest {
            package: name,
            wasm,
        })
    }
}

/// Building the guest and handing the component to watch mode.
struct Build {
    cargo: std::ffi::OsString,
    crate_dir: PathBuf,
    /// Where cargo puts the component.
    wasm: PathBuf,
    /// `<data-dir>/watch/<namespace>/<aggregate-type>.wasm`.
    destination: PathBuf,
}

impl Build {
    /// Builds and, if the build succeeds, copies the component to the
    /// watched directory. A failed build is reported and leaves the copy
    /// (and so the running version) as it was; only failing to run cargo
    /// at all is an error.
    async fn run(&self) -> Result<()> {
        let child = Command::new(&self.cargo)
            .args(["build", "--release", "--target", TARGET])
            .current_dir(&self.crate_dir)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("running cargo build in {}", self.crate_dir.display()))?;
        let mut cargo = KillOnDrop(child);
        let status = loop {
            if let Some(status) = cargo.0.try_wait().context("waiting for cargo build")? {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if !status.success() {
            eprintln!(
                "build failed ({status}); the running version (if any) keeps serving; \
                 fix the errors above and save again"
            );
            return Ok(());
        }
        match self.copy() {
            Ok(Some(digest)) => println!(
                "built {} ({digest}); handing it to the node",
                self.wasm.display()
            ),
            Ok(None) => println!("built; the component is unchanged"),
            Err(error) => eprintln!("error: {error:#}"),
        }
        Ok(())
    }

    /// Copies the component to the watched directory (written aside, then
    /// renamed, so the watcher never sees half a file); its digest, or
    /// `None` if the file there has the same bytes.
    fn copy(&self) -> Result<Option<String>> {
        let bytes = std::fs::read(&self.wasm)
            .with_context(|| format!("reading the built component {}", self.wasm.display()))?;
        if std::fs::read(&self.destination).is_ok_and(|old| old == bytes) {
            return Ok(None);
        }
        let dir = self
            .destination
            .parent()
            .expect("the destination has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let aside = self.destination.with_extension("wasm.part");
        std::fs::write(&aside, &bytes).with_context(|| format!("writing {}", aside.display()))?;
        std::fs::rename(&aside, &self.destination)
            .with_context(|| format!("renaming to {}", self.destination.display()))?;
        Ok(Some(Digest::of(&bytes).to_hex()))
    }
}

/// Kills the child (a build in progress) if it is dropped still running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Rebuilds whenever the sources change and then stay quiet for
/// [`QUIET`]; returns only if the watcher stops.
async fn rebuild_on_change(
    build: &Build,
    crate_dir: &Path,
    mut events: mpsc::UnboundedReceiver<notify::Result<Event>>,
) -> Result<()> {
    let manifest = crate_dir.join("Cargo.toml");
    let src = crate_dir.join("src");
    let is_source_change = |event: &Event| {
        let changed = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Modify(_)
                | EventKind::Remove(_)
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Any
                | EventKind::Other
        );
        changed
            && event
                .paths
                .iter()
                .any(|p| p == &manifest || p.starts_with(&src))
    };
    loop {
        // Wait for a change…
        loop {
            match events.recv().await {
                Some(Ok(event)) if is_source_change(&event) => break,
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "watching the sources failed"),
                None => bail!("the source watcher stopped"),
            }
        }
        // …then for the sources to be quiet.
        let mut quiet_at = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(quiet_at, events.recv()).await {
                Err(_quiet) => break,
                Ok(Some(Ok(event))) if is_source_change(&event) => {
                    quiet_at = tokio::time::Instant::now() + QUIET;
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("the source watcher stopped"),
            }
        }
        println!("rebuilding…");
        build.run().await?;
    }
}
