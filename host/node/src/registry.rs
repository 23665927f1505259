//! The component registry: which component serves each (namespace,
//! aggregate type), and every change of it.
//!
//! Components are content-addressed: their bytes are kept under their
//! blake3 digest in the namespace's directory
//! (`components/<namespace>/<digest>.wasm`) and checked against it whenever
//! they are read back. Every deployment, activation and rollback is an
//! event, `ComponentActivated`, in the node's own event store, on the stream
//! `aether-system/registry/<namespace>`; the active component of a type is
//! the last such event for it. So the registry survives restarts, is
//! as durable as the events themselves, and its history is an audit log.
//!
//! **Invariant:** the registry stream is appended (with the expected
//! version, so two concurrent changes cannot both win) *before* the runtime
//! switches to the new component; a restart therefore serves exactly what
//! the last acknowledged change said.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Node;
use super::verify::VerifyReport;
use aether_core::namespace::layout::{namespace_dir, registry_stream};
use aether_core::namespace::{AggregateType, Namespace};
use aether_runtime::{DeployError, Digest, LoadedComponent, now_ms};
use aether_store::{
    AppendError, AppendRequest, EventMetadata, ExpectedVersion, NewEvent, StoreError,
    VersionConflict,
};

pub use aether_core::namespace::layout::SYSTEM_NAMESPACE;

/// The event type of a registry change.
const ACTIVATED: &str = "ComponentActivated";

/// Why the registry changed (stored in its events as `action`).
pub use aether_service::Action;

/// One change of the active component of an aggregate type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// The aggregate type.
    pub aggregate_type: AggregateType,
    /// The component now active.
    pub digest: String,
    /// The component active before, if any.
    pub previous: Option<String>,
    /// Why.
    pub action: Action,
    /// The component's declared state schema, if any.
    pub state_schema: Option<String>,
    /// The component's size in bytes.
    pub size: usize,
    /// When, in milliseconds since the Unix epoch (filled in from the event).
    #[serde(default)]
    pub at_ms: u64,
    /// In a cluster: the members that did not confirm within
    /// [`SWITCH_WAIT`] that they decide with the new component (not part
    /// of the stored event).
    #[serde(skip)]
    pub unconfirmed: Vec<String>,
}

/// How long a change of the registry waits, in a cluster, for every member
/// to confirm it switched before it is answered anyway.
pub const SWITCH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why a registry change was refused. What was active stays active.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The component was refused.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// No component with this digest was ever deployed in the namespace.
    #[error("no component {0} was deployed in this namespace")]
    UnknownComponent(String),
    /// Nothing to roll back to.
    #[error("`{0}` has no earlier component to roll back to")]
    NothingToRollBack(AggregateType),
    /// Another change of the registry got there first: look and try again.
    #[error(transparent)]
    Conflict(#[from] VersionConflict),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored component cannot be read, or is not what its name says.
    #[error("{0}")]
    Damaged(String),
    /// Storing the component would pass the namespace's
    /// `max_stored_component_bytes`; nothing was stored or activated.
    #[error(
        "the namespace stores {stored} bytes of components; this one's {adding} more would pass its quota of {limit} bytes (max_stored_component_bytes): nothing was stored"
    )]
    StorageQuota {
        /// Bytes of the namespace's stored components.
        stored: u64,
        /// The new component's size.
        adding: u64,
        /// The namespace's quota.
        limit: u64,
    },
    /// Verification replayed existing streams and some failed; nothing was
    /// activated.
    #[error("{} of {} replayed streams failed under the new component (first: {}): not activated", .0.failures.len(), .0.streams_checked, .0.failures.first().map_or("", |f| f.message.as_str()))]
    VerificationFailed(Box<VerifyReport>),
}

impl Node {
    fn component_file(&self, namespace: &Namespace, digest: &str) -> PathBuf {
        namespace_dir(&self.data_dir.join("components"), namespace).join(format!("{digest}.wasm"))
    }

    /// Every change of the namespace's registry, oldest first, and the
    /// registry stream's version.
    pub async fn registry_history(
        &self,
        namespace: &Namespace,
    ) -> Result<(Vec<Activation>, u64), StoreError> {
        let stream = registry_stream(namespace);
        let store = self.runtime.store();
        let (mut out, mut from) = (Vec::new(), 1);
        loop {
            let events = store.read_stream(&stream, from, 1024).await?;
            let Some(last) = events.last() else { break };
            from = last.version + 1;
            for event in events {
                let mut activation: Activation =
                    serde_json::from_slice(&event.data).map_err(|e| StoreError::Corrupt {
                        location: format!("{stream} version {}", event.version),
                        message: format!("not a registry event: {e}"),
                    })?;
                activation.at_ms = event.timestamp_ms;
                out.push(activation);
            }
        }
        let version = out.len() as u64;
        Ok((out, version))
    }

    /// Bytes of the namespace's stored components (each distinct digest
    /// its registry names, once): what `max_stored_component_bytes` limits.
    pub async fn stored_component_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        let (history, _) = self.registry_history(namespace).await?;
        Ok(component_bytes(&history))
    }

    /// The changes of one aggregate type, oldest first.
    pub async fn component_history(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<Vec<Activation>, StoreError> {
        let (history, _) = self.registry_history(namespace).await?;
        Ok(history
            .into_iter()
            .filter(|a| &a.aggregate_type == aggregate_type)
            .collect())
    }

    /// Uploads and activates a component (see [`Node::verify`] for
    /// checking it against existing streams first).
    pub async fn deploy(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        bytes: Vec<u8>,
    ) -> Result<Activation, RegistryError> {
        let bytes = Arc::new(bytes);
        let loaded = self
            .runtime
            .load_component_for(namespace, bytes.clone())
            .await?;
        self.switch(
            namespace,
            aggregate_type,
            loaded,
            Action::Deploy,
            Some(bytes),
        )
        .await
    }

    /// Uploads a component, replays the type's existing streams (all, or
    /// `sample` of them) through it, and activates it only if every replay
    /// succeeded. `progress(done, total)` follows the replay.
    pub async fn deploy_verified(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        bytes: Vec<u8>,
        sample: Option<usize>,
        progress: impl Fn(usize, usize) + Send + Sync,
    ) -> Result<(Activation, VerifyReport), RegistryError> {
        let bytes = Arc::new(bytes);
        let loaded = self
            .runtime
            .load_component_for(namespace, bytes.clone())
            .await?;
        let report = self
            .verify(namespace, aggregate_type, &loaded, sample, progress)
            .await?;
        if !report.passed() {
            return Err(RegistryError::VerificationFailed(Box::new(report)));
        }
        let activation = self
            .switch(
                namespace,
                aggregate_type,
                loaded,
                Action::Deploy,
                Some(bytes),
            )
            .await?;
        Ok((activation, report))
    }

    /// Loads a component deployed earlier in the namespace, unpaced: for
    /// the node's own work (restoring active components on start,
    /// following a switch made through another node). A tenant's
    /// `activate` and `rollback` go through `stored_component_for`.
    pub async fn stored_component(
        &self,
        namespace: &Namespace,
        digest: &str,
    ) -> Result<Arc<LoadedComponent>, RegistryError> {
        let bytes = self.read_stored_component(namespace, digest).await?;
        Ok(self.runtime.load_component(bytes).await?)
    }

    /// Loads a component deployed earlier in the namespace at the
    /// namespace's compile pace (`compile_share_percent`), like a deploy:
    /// a version whose compiled code left memory and the compile cache
    /// (which is bounded) is compiled again, and a tenant activating
    /// versions in turn must not compile without limit.
    async fn stored_component_for(
        &self,
        namespace: &Namespace,
        digest: &str,
    ) -> Result<Arc<LoadedComponent>, RegistryError> {
        let bytes = self.read_stored_component(namespace, digest).await?;
        Ok(self
            .runtime
            .load_component_for(namespace, Arc::new(bytes))
            .await?)
    }

    /// The bytes of a component deployed earlier in the namespace, checked
    /// against their digest.
    async fn read_stored_component(
        &self,
        namespace: &Namespace,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let valid = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(RegistryError::UnknownComponent(digest.to_owned()));
        }
        let (path, wanted, given) = (
            self.component_file(namespace, &digest.to_ascii_lowercase()),
            digest.to_ascii_lowercase(),
            digest.to_owned(),
        );
        // Reading and hashing tens of MB: on a blocking thread, not on the
        // async workers that serve every tenant.
        self.fetch_shared_component(namespace, &wanted).await?;
        let read = tokio::task::spawn_blocking(move || {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(RegistryError::UnknownComponent(given));
                }
                Err(e) => {
                    return Err(RegistryError::Store(StoreError::Unavailable {
                        backend: "components",
                        message: format!("reading {}: {e}", path.display()),
                    }));
                }
            };
            if Digest::of(&bytes).to_hex() != wanted {
                return Err(RegistryError::Damaged(format!(
                    "{} does not have the digest it is stored under",
                    path.display()
                )));
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| StoreError::Unavailable {
            backend: "components",
            message: format!("reading a component stopped: {e}"),
        })??;
        Ok(read)
    }

    /// With shared components: copies component `digest` from the shared
    /// bucket into this node's directory if it is not there yet (deployed
    /// through another node). Nothing if the bucket does not have it
    /// either: the caller finds no file.
    async fn fetch_shared_component(
        &self,
        namespace: &Namespace,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let Some(shared) = self.shared_components() else {
            return Ok(());
        };
        if self.component_file(namespace, digest).exists() {
            return Ok(());
        }
        let unavailable = |e: anyhow::Error| {
            RegistryError::Store(StoreError::Unavailable {
                backend: "components",
                message: format!("{e:#}"),
            })
        };
        let Some(bytes) = shared.get(digest).await.map_err(unavailable)? else {
            return Ok(());
        };
        let digest = Digest::of(&bytes);
        self.store_component(namespace, &digest, Arc::new(bytes))
            .await
    }

    /// With shared components: puts the component's bytes in the shared
    /// bucket (if they are not there yet) before the registry names it,
    /// so every node can fetch what the registry says is active.
    async fn share_component(
        &self,
        namespace: &Namespace,
        digest: &str,
        bytes: Option<Arc<Vec<u8>>>,
    ) -> Result<(), RegistryError> {
        let Some(shared) = self.shared_components() else {
            return Ok(());
        };
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => {
                let path = self.component_file(namespace, digest);
                let read = tokio::task::spawn_blocking(move || std::fs::read(path))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|read| read);
                Arc::new(read.map_err(|e| {
                    RegistryError::Store(StoreError::Unavailable {
                        backend: "components",
                        message: format!("reading component {digest}: {e}"),
                    })
                })?)
            }
        };
        shared.put(digest, &bytes).await.map_err(|e| {
            RegistryError::Store(StoreError::Unavailable {
                backend: "components",
                message: format!("{e:#}"),
            })
        })
    }

    /// In a cluster: records that this node decides the type with `digest`.
    pub(crate) async fn confirm_switch(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        digest: &str,
    ) {
        let (Some(cluster), Some(shared)) = (self.cluster(), self.shared_components()) else {
            return;
        };
        let node = &cluster.config().node_id;
        if let Err(error) = shared
            .confirm(node, namespace, aggregate_type, digest)
            .await
        {
            tracing::warn!(%namespace, %aggregate_type, error = %format!("{error:#}"), "cannot confirm a switch");
        }
    }

    /// In a cluster: waits until every member confirms it decides the type
    /// with `digest` (at most [`SWITCH_WAIT`]), so that once a change is
    /// answered no member decides with the previous component; the members
    /// that did not confirm.
    async fn await_members(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        digest: &str,
    ) -> Vec<String> {
        let (Some(cluster), Some(shared)) = (self.cluster(), self.shared_components()) else {
            return Vec::new();
        };
        let deadline = tokio::time::Instant::now() + SWITCH_WAIT;
        let members = || -> Vec<String> {
            let status = cluster.status();
            status.members.iter().map(|m| m.node_id.clone()).collect()
        };
        let mut waiting = members();
        loop {
            // A member that left (died, or was paused past its lease) is
            // not waited for: it serves nothing until it rejoins, and a
            // node that joins restores the registry's components first.
            let now = members();
            waiting.retain(|node| now.contains(node));
            let mut still = Vec::new();
            for node in waiting {
                match shared.confirmed(&node, namespace, aggregate_type).await {
                    Ok(Some(confirmed)) if confirmed == digest => {}
                    _ => still.push(node),
                }
            }
            if still.is_empty() || tokio::time::Instant::now() >= deadline {
                if !still.is_empty() {
                    tracing::warn!(%namespace, %aggregate_type, ?still, "members did not confirm the switch in time");
                }
                return still;
            }
            waiting = still;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Switches the runtime to what `namespace`'s registry makes active,
    /// for the types whose active component differs here (another node
    /// changed the registry): each new component is fetched and compiled
    /// before its type switches, so commands never wait on it.
    pub(crate) async fn follow_registry(&self, namespace: &Namespace) -> anyhow::Result<()> {
        let _one_change_at_a_time = self.registry_lock.lock().await;
        let (history, _) = self.registry_history(namespace).await?;
        let mut active = std::collections::BTreeMap::new();
        for activation in history {
            active.insert(activation.aggregate_type.clone(), activation.digest);
        }
        for (aggregate_type, digest) in active {
            let current = self
                .runtime
                .active_component(namespace, &aggregate_type)
                .map(|c| c.digest().to_hex());
            if current.as_deref() == Some(digest.as_str()) {
                continue;
            }
            let loaded = self
                .stored_component(namespace, &digest)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("component {digest} of {namespace}/{aggregate_type}: {e}")
                })?;
            self.runtime.activate(namespace, &aggregate_type, loaded);
            tracing::info!(%namespace, %aggregate_type, %digest, "switched to the component another node activated");
        }
        Ok(())
    }

    /// Activates a component deployed earlier in the namespace.
    pub async fn activate(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        digest: &str,
    ) -> Result<Activation, RegistryError> {
        let loaded = self.stored_component_for(namespace, digest).await?;
        self.switch(namespace, aggregate_type, loaded, Action::Activate, None)
            .await
    }

    /// Activates the component that was active before the current one.
    pub async fn rollback(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<Activation, RegistryError> {
        let history = self.component_history(namespace, aggregate_type).await?;
        let previous = history
            .last()
            .and_then(|current| current.previous.clone())
            .ok_or_else(|| RegistryError::NothingToRollBack(aggregate_type.clone()))?;
        let loaded = self.stored_component_for(namespace, &previous).await?;
        self.switch(namespace, aggregate_type, loaded, Action::Rollback, None)
            .await
    }

    /// Re-activates every namespace's active components (on start), and
    /// returns the types whose active component it cannot find (neither
    /// in this node's directory nor in the shared bucket), as
    /// `namespace/type (digest)`. With shared components, a component this
    /// node has that the shared bucket lacks (deployed before components
    /// were shared, perhaps on this node alone) is put there, so every
    /// node can fetch it.
    pub(super) async fn restore_components(
        &self,
        namespace: &Namespace,
    ) -> anyhow::Result<Vec<String>> {
        let (history, _) = self.registry_history(namespace).await?;
        let mut active = std::collections::BTreeMap::new();
        for activation in history {
            active.insert(activation.aggregate_type.clone(), activation.digest);
        }
        let mut missing = Vec::new();
        for (aggregate_type, digest) in active {
            let loaded = match self.stored_component(namespace, &digest).await {
                Ok(loaded) => loaded,
                // Deployed through another node, and not in the shared
                // bucket (or there is none): this node cannot serve the
                // type until it is deployed again.
                Err(RegistryError::UnknownComponent(_)) => {
                    tracing::warn!(
                        %namespace, %aggregate_type, %digest,
                        "the active component is neither in this node's components directory nor in the shared bucket: deploy it again to serve the type"
                    );
                    missing.push(format!("{namespace}/{aggregate_type} ({digest})"));
                    continue;
                }
                Err(e) => {
                    anyhow::bail!("component {digest} of {namespace}/{aggregate_type}: {e}")
                }
            };
            // Best effort: this node serves the type either way; a node
            // that cannot fetch it waits (and logs) until some node puts it.
            if let Err(error) = self.share_component(namespace, &digest, None).await {
                tracing::warn!(%namespace, %aggregate_type, %digest, %error, "cannot put the active component in the shared bucket");
            }
            self.runtime.activate(namespace, &aggregate_type, loaded);
        }
        Ok(missing)
    }

    /// **Invariant:** a namespace's stored components (every distinct
    /// digest its registry names, each counted once) never pass its
    /// `max_stored_component_bytes`; checked under the registry lock, so two
    /// uploads cannot both squeeze in. A digest already stored costs
    /// nothing.
    fn check_component_quota(
        &self,
        namespace: &Namespace,
        history: &[Activation],
        digest: &Digest,
        size: usize,
    ) -> Result<(), RegistryError> {
        let digest = digest.to_hex();
        if history.iter().any(|a| a.digest == digest) {
            return Ok(());
        }
        let stored = component_bytes(history);
        let limit = self
            .runtime
            .namespace_limits(namespace)
            .map_err(|e| StoreError::Unavailable {
                backend: "components",
                message: e.to_string(),
            })?
            .max_stored_component_bytes;
        if stored.saturating_add(size as u64) > limit {
            return Err(RegistryError::StorageQuota {
                stored,
                adding: size as u64,
                limit,
            });
        }
        Ok(())
    }

    /// Writes the component's file (on a blocking thread: it can be tens
    /// of MB, and the async workers serve every tenant).
    async fn store_component(
        &self,
        namespace: &Namespace,
        digest: &Digest,
        bytes: Arc<Vec<u8>>,
    ) -> Result<(), RegistryError> {
        let path = self.component_file(namespace, &digest.to_hex());
        let written = tokio::task::spawn_blocking({
            let path = path.clone();
            move || {
                if path.exists() {
                    return Ok(());
                }
                // A write that fails (a full disk) damages nothing: retryable.
                super::tenants::write_atomically(&path, &bytes).map_err(|e| format!("{e:#}"))
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        written.map_err(|message| {
            RegistryError::Store(StoreError::Unavailable {
                backend: "components",
                message: format!("storing the component in {}: {message}", path.display()),
            })
        })
    }

    /// Records the change, then switches the runtime to `loaded`. A new
    /// upload's `bytes` are stored first, within the namespace's
    /// `max_stored_component_bytes`.
    async fn switch(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        loaded: Arc<LoadedComponent>,
        action: Action,
        bytes: Option<Arc<Vec<u8>>>,
    ) -> Result<Activation, RegistryError> {
        let _one_change_at_a_time = self.registry_lock.lock().await;
        let (history, version) = self.registry_history(namespace).await?;
        if let Some(bytes) = &bytes {
            self.check_component_quota(namespace, &history, loaded.digest(), bytes.len())?;
            self.store_component(namespace, loaded.digest(), bytes.clone())
                .await?;
        }
        self.share_component(namespace, &loaded.digest().to_hex(), bytes)
            .await?;
        let previous = history
            .iter()
            .rev()
            .find(|a| &a.aggregate_type == aggregate_type)
            .map(|a| a.digest.clone());
        let mut activation = Activation {
            aggregate_type: aggregate_type.clone(),
            digest: loaded.digest().to_hex(),
            previous,
            action,
            state_schema: loaded.state_schema().map(str::to_owned),
            size: loaded.size(),
            at_ms: 0,
            unconfirmed: Vec::new(),
        };
        let data = serde_json::to_vec(&activation).map_err(|e| StoreError::Unavailable {
            backend: "registry",
            message: e.to_string(),
        })?;
        let timestamp_ms = now_ms();
        let appended = self
            .runtime
            .store()
            .append(AppendRequest {
                stream: registry_stream(namespace),
                expected: ExpectedVersion::Exact(version),
                events: vec![NewEvent::json(ACTIVATED, data)],
                metadata: EventMetadata::default(),
                timestamp_ms,
            })
            .await;
        match appended {
            Ok(_) => {}
            Err(AppendError::Conflict(conflict)) => return Err(conflict.into()),
            Err(AppendError::Store(store)) => return Err(store.into()),
            Err(AppendError::Invalid(message)) => {
                return Err(StoreError::Unavailable {
                    backend: "registry",
                    message,
                }
                .into());
            }
        }
        self.runtime.activate(namespace, aggregate_type, loaded);
        if let Some(shared) = self.shared_components() {
            // Other nodes switch on this; one that misses it switches on
            // its next start (the registry is the truth).
            if let Err(error) = shared
                .announce(namespace, aggregate_type, &activation.digest)
                .await
            {
                tracing::warn!(%namespace, %aggregate_type, error = %format!("{error:#}"), "other nodes were not told of the switch");
            }
            self.confirm_switch(namespace, aggregate_type, &activation.digest)
                .await;
            activation.unconfirmed = self
                .await_members(namespace, aggregate_type, &activation.digest)
                .await;
        }
        activation.at_ms = timestamp_ms;
        Ok(activation)
    }
}

/// Bytes of the distinct components a registry history names.
fn component_bytes(history: &[Activation]) -> u64 {
    let mut sizes = std::collections::BTreeMap::new();
    for activation in history {
        sizes.insert(activation.digest.as_str(), activation.size as u64);
    }
    sizes.values().sum()
}
