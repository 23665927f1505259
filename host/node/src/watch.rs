//! Watch mode (`aether serve --watch DIR`): components dropped into a
//! directory are deployed, and redeployed whenever their file changes.
//!
//! Layout: `DIR/<namespace>/<aggregate-type>.wasm`, e.g.
//! `DIR/shop/bank-account.wasm` serves aggregate type `bank-account` in
//! namespace `shop`. The directory is created if missing. On start every
//! such file is deployed once; afterwards every create, modify or rename of
//! a `.wasm` file (and every new namespace directory, whose files are then
//! all looked at) is deployed once the file has been quiet for [`QUIET`]
//! (300 ms): a file still being written keeps postponing its deployment, so
//! a half-written file is not deployed. A file whose bytes have the digest
//! of the component already active is skipped, so rewriting the same bytes
//! does nothing. Deleting a file undeploys nothing.
//!
//! Deploying goes through [`Node::deploy`], exactly like
//! `PUT …/component`: the bytes are validated, stored, recorded as a
//! `ComponentActivated` event and hot-swapped. A namespace that does not
//! exist yet is created with the node's default limits (`aether-system` is
//! refused, as by the API), and its first token is printed once on stderr.
//! Each deployment prints a `deployed` line on stderr.
//!
//! A directory or file name that is not a valid namespace or aggregate type,
//! and a component the registry refuses, are logged as warnings naming the
//! file and the reason (once per file and bytes). A refused component never
//! creates a namespace.
//!
//! Threads: `notify` calls back on a thread of its own; the callback only
//! forwards the event into a tokio channel, and one task on the runtime
//! debounces and deploys, one file at a time, earliest first. The task ends
//! when the node begins shutting down, or when [`WatchMode::stop`] is called.
//!
//! **Invariant:** a refused file never replaces the active component. The
//! registry switches only after the component was validated and its change
//! recorded; until then (and if that fails) the previously active component
//! keeps serving.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::registry::{RegistryError, SYSTEM_NAMESPACE};
use super::{LimitOverrides, Node, TenantError};
use aether_core::namespace::{AggregateType, Namespace};
use aether_runtime::{Digest, now_ms};

/// How long a file must stay unchanged before it is deployed.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

/// A running watch: the watcher task and the way to stop it.
pub(crate) struct WatchMode {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl WatchMode {
    /// Creates `dir` if missing, starts watching it, and spawns the task
    /// that deploys what is already there and then every change.
    pub(crate) fn start(node: Arc<Node>, dir: &Path) -> Result<WatchMode> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the watched directory {}", dir.display()))?;
        let root = dir
            .canonicalize()
            .with_context(|| format!("resolving the watched directory {}", dir.display()))?;
        let (events, received) = mpsc::unbounded_channel();
        // Runs on notify's own thread: forward and return at once.
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = events.send(event);
        })
        .context("starting the file watcher")?;
        // Watch first, then scan: a file written in between is seen twice,
        // which the digest check makes harmless, rather than not at all.
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", dir.display()))?;
        let watched = Watched {
            node,
            refused: Default::default(),
            root,
            shown: dir.to_path_buf(),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(watched.run(watcher, received, stopped));
        Ok(WatchMode { task, stop })
    }

    /// Stops watching; waits for a deployment in progress to finish.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the watch task failed");
        }
    }
}

/// What the watch task works with.
struct Watched {
    node: Arc<Node>,
    /// The digest each file last had when its component was refused, so
    /// the same bytes are not refused (and warned about) twice.
    refused: std::sync::Mutex<HashMap<PathBuf, Digest>>,
    /// The watched directory, canonical (event paths start with it).
    root: PathBuf,
    /// The directory as the user named it, for messages.
    shown: PathBuf,
}

impl Watched {
    async fn run(
        self,
        _watcher: RecommendedWatcher,
        mut events: mpsc::UnboundedReceiver<notify::Result<Event>>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut shutdown = self.node.shutdown_signal();
        // Path → when it is due (its last event plus QUIET).
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        self.schedule_everything(&mut pending, Instant::now());
        loop {
            let next = pending
                .iter()
                .min_by_key(|(_, due)| **due)
                .map(|(path, due)| (path.clone(), *due));
            let due = next.as_ref().map_or_else(Instant::now, |(_, due)| *due);
            let stopping = async {
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            };
            tokio::select! {
                // New events first: they postpone what they touch.
                biased;
                _ = &mut stop => break,
                () = stopping => break,
                event = events.recv() => match event {
                    Some(Ok(event)) => self.note(event, &mut pending),
                    Some(Err(error)) => {
                        tracing::warn!(dir = %self.shown.display(), %error, "watching failed");
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(due), if next.is_some() => {
                    let (path, _) = next.expect("guarded by the condition");
                    pending.remove(&path);
                    self.process(&path, &pending).await;
                }
            }
        }
        tracing::debug!(dir = %self.shown.display(), "stopped watching");
    }

    /// Makes everything in the watched directory due at `due`: on start
    /// (deploy everything once) and when the watcher lost events.
    fn schedule_everything(&self, pending: &mut HashMap<PathBuf, Instant>, due: Instant) {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(dir = %self.shown.display(), %error, "cannot list the watched directory");
                return;
            }
        };
        for entry in entries.flatten() {
            pending.insert(entry.path(), due);
        }
    }

    /// Records that `event` touched its paths: each is due once it has
    /// been quiet for [`QUIET`].
    fn note(&self, event: Event, pending: &mut HashMap<PathBuf, Instant>) {
        let changed = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Modify(_)
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Any
                | EventKind::Other
        );
        let due = Instant::now() + QUIET;
        if event.need_rescan() {
            tracing::warn!(dir = %self.shown.display(), "the watcher lost events; looking at every file again");
            return self.schedule_everything(pending, due);
        }
        if !changed {
            return;
        }
        for path in event.paths {
            // A `.wasm` file, or anything directly in the watched directory
            // (a new namespace directory, or a file misplaced there).
            if is_wasm(&path) || path.parent() == Some(self.root.as_path()) {
                pending.insert(path, due);
            }
        }
    }

    /// `path` went quiet: deploys it, or if it is a namespace directory
    /// every `.wasm` file in it that is not waiting for quiet itself (files
    /// written before the new directory was watched have no events).
    async fn process(&self, path: &Path, pending: &HashMap<PathBuf, Instant>) {
        let metadata = match tokio::fs::metadata(path).await {
            Ok(metadata) => metadata,
            // Removed or renamed away meanwhile: its new name has events of
            // its own.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) => {
                tracing::warn!(file = %self.show(path).display(), %error, "cannot read it");
                return;
            }
        };
        if !metadata.is_dir() {
            if is_wasm(path) {
                self.deploy_file(path).await;
            }
            return;
        }
        if path.parent() != Some(self.root.as_path()) {
            return;
        }
        let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| is_wasm(p) && p.is_file() && !pending.contains_key(p))
                .collect(),
            Err(error) => {
                tracing::warn!(dir = %self.show(path).display(), %error, "cannot list it");
                return;
            }
        };
        files.sort();
        for file in files {
            self.deploy_file(&file).await;
        }
    }

    /// Deploys the `.wasm` file at `path` unless its component is already
    /// active, or these very bytes were refused for this file before.
    async fn deploy_file(&self, path: &Path) {
        let file = self.show(path);
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) => return refuse(&file, format!("cannot read it: {error}")),
        };
        let digest = Digest::of(&bytes);
        if self.refused_before(path, &digest) {
            tracing::debug!(file = %file.display(), digest = %digest.short(), "refused before");
            return;
        }
        let (namespace, aggregate_type) = match self.names(path) {
            Ok(names) => names,
            Err(reason) => {
                self.remember_refused(path, digest);
                return refuse(&file, reason);
            }
        };
        let active = self
            .node
            .runtime()
            .active_component(&namespace, &aggregate_type);
        if active.is_some_and(|active| *active.digest() == digest) {
            tracing::debug!(file = %file.display(), digest = %digest.short(), "already active");
            return;
        }
        if !self.node.tenants().exists(&namespace) {
            // Refuse an invalid component before creating a namespace for it.
            if let Err(error) = self.node.runtime().load_component(bytes.clone()).await {
                self.remember_refused(path, digest);
                return refuse(&file, format!("the component was refused: {error}"));
            }
            if let Err(reason) = self.ensure_namespace(&namespace).await {
                return refuse(
                    &file,
                    format!("cannot create namespace `{namespace}`: {reason}"),
                );
            }
        }
        match self.node.deploy(&namespace, &aggregate_type, bytes).await {
            Ok(activation) => {
                self.forget_refused(path);
                eprintln!(
                    "deployed {namespace}/{aggregate_type} {} from {}",
                    activation.digest,
                    file.display()
                );
            }
            Err(error) => {
                // Only the bytes' own fault is remembered; a store failure
                // or a concurrent change may pass on the next write.
                if matches!(error, RegistryError::Deploy(_)) {
                    self.remember_refused(path, digest);
                }
                refuse(&file, format!("the component was refused: {error}"));
            }
        }
    }

    /// The namespace and aggregate type of a file at
    /// `<root>/<namespace>/<aggregate-type>.wasm`, or why `path` names none.
    fn names(&self, path: &Path) -> Result<(Namespace, AggregateType), String> {
        let misplaced = || {
            "not where watch mode looks: expected <dir>/<namespace>/<aggregate-type>.wasm"
                .to_owned()
        };
        let relative = path.strip_prefix(&self.root).map_err(|_| misplaced())?;
        let mut parts = relative.components();
        let (Some(Component::Normal(directory)), Some(Component::Normal(_)), None) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(misplaced());
        };
        let namespace = Namespace::new(directory.to_string_lossy())
            .map_err(|e| format!("the directory is not a namespace name: {e}"))?;
        if namespace == SYSTEM_NAMESPACE {
            return Err(format!(
                "namespace `{namespace}` is reserved for the node itself"
            ));
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default();
        let aggregate_type = AggregateType::new(stem)
            .map_err(|e| format!("the file name is not an aggregate type name: {e}"))?;
        Ok((namespace, aggregate_type))
    }

    fn refused_before(&self, path: &Path, digest: &Digest) -> bool {
        self.refused().get(path) == Some(digest)
    }

    fn remember_refused(&self, path: &Path, digest: Digest) {
        self.refused().insert(path.to_path_buf(), digest);
    }

    fn forget_refused(&self, path: &Path) {
        self.refused().remove(path);
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Digest>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `namespace` if it does not exist, the way
    /// `POST /v1/namespaces` does, and prints its first token once.
    async fn ensure_namespace(&self, namespace: &Namespace) -> Result<(), String> {
        let tenants = self.node.tenants();
        if tenants.exists(namespace) {
            return Ok(());
        }
        let overrides = LimitOverrides::default();
        let config = self.node.runtime().config();
        self.node
            .limits_with(&overrides)
            .check(config.memory_ceiling_bytes, config.fuel_metering)
            .map_err(|e| e.to_string())?;
        let token = match tenants.create(namespace, overrides.clone(), now_ms()).await {
            Ok(token) => token,
            // Created through the API meanwhile.
            Err(TenantError::Exists(_)) => return Ok(()),
            Err(error) => return Err(format!("{error:#}")),
        };
        self.node
            .apply_limits(namespace, &overrides)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(%namespace, "namespace created by watch mode");
        eprintln!(
            "namespace {namespace} created for {}; token: {}",
            self.shown.join(namespace.as_str()).display(),
            token.as_str()
        );
        Ok(())
    }

    /// `path` as under the directory the user named.
    fn show(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root)
            .map_or_else(|_| path.to_path_buf(), |relative| self.shown.join(relative))
    }
}

/// Logs why the file at `file` was not deployed.
fn refuse(file: &Path, reason: impl std::fmt::Display) {
    tracing::warn!(
        file = %file.display(),
        %reason,
        "not deployed; the active component (if any) keeps serving"
    );
}

/// Whether `path` names a `.wasm` file.
fn is_wasm(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wasm")
}
