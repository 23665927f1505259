//! The node's tenants: namespaces, their token hashes and limit overrides,
//! kept in `<data dir>/node.json`, or, with `--nats`, in a KV bucket every
//! node shares ([`shared`]; `node.json` then keeps the admin token, and
//! the namespaces it had before, which were copied to the bucket).
//!
//! The file is rewritten whole on every change (written to a temporary file,
//! synced, renamed over the old one, then the directory synced), so a crash
//! leaves either the old or the new file, never a torn one.
//!
//! **Invariant:** a change is all or nothing. It is made on a copy of the
//! state, the copy is saved, and only a saved copy replaces the state in
//! memory ([`Tenants::commit`]); a failed save (a full disk) leaves the node
//! exactly as it was, so retrying the request works.
//!
//! **Invariant:** no token is ever written in clear; only its hash.
//!
//! **Invariant:** authenticating a request is one lookup, whatever the
//! number of namespaces: beside the state, memory holds which namespace
//! each token hash belongs to ([`Known`]), kept in step with every change
//! of the namespaces.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::access::{Principal, Token, TokenHash};
use super::limits::LimitOverrides;
use aether_core::namespace::Namespace;

mod shared;

pub(crate) use shared::Shared;

/// The format of `node.json` this build reads and writes.
const FORMAT: u32 = 1;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeState {
    format: u32,
    admin: Option<TokenHash>,
    namespaces: BTreeMap<Namespace, NamespaceRecord>,
}

/// The state in memory, and who holds each token hash, derived from it.
/// The namespaces change only through [`Known::set`] (the whole index
/// rebuilt) and [`Known::set_namespace`] (that namespace's tokens moved),
/// which keep the two in step.
struct Known {
    state: NodeState,
    by_token: HashMap<TokenHash, Namespace>,
}

impl Known {
    fn new(state: NodeState) -> Self {
        let mut known = Known {
            state,
            by_token: HashMap::new(),
        };
        known.reindex();
        known
    }

    /// Replaces the whole state.
    fn set(&mut self, state: NodeState) {
        self.state = state;
        self.reindex();
    }

    /// Replaces one namespace's record (`None`: removes it); returns the
    /// record it had.
    fn set_namespace(
        &mut self,
        namespace: &Namespace,
        record: Option<NamespaceRecord>,
    ) -> Option<NamespaceRecord> {
        let before = match record {
            Some(record) => self.state.namespaces.insert(namespace.clone(), record),
            None => self.state.namespaces.remove(namespace),
        };
        // Only this namespace's tokens move: a node following a shared
        // bucket applies its namespaces one by one.
        for hash in before.iter().flat_map(|record| &record.tokens) {
            self.by_token.remove(hash);
        }
        for hash in (self.state.namespaces.get(namespace))
            .into_iter()
            .flat_map(|r| &r.tokens)
        {
            self.by_token.insert(hash.clone(), namespace.clone());
        }
        before
    }

    fn reindex(&mut self) {
        self.by_token = (self.state.namespaces.iter())
            .flat_map(|(namespace, record)| {
                (record.tokens.iter()).map(move |hash| (hash.clone(), namespace.clone()))
            })
            .collect();
    }
}

impl std::ops::Deref for Known {
    type Target = NodeState;

    fn deref(&self) -> &NodeState {
        &self.state
    }
}

/// One namespace: when it was created, its token hashes and its limits.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespaceRecord {
    created_ms: u64,
    tokens: Vec<TokenHash>,
    limits: LimitOverrides,
}

/// Why a tenant operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The namespace was never created.
    #[error("namespace `{0}` does not exist")]
    UnknownNamespace(Namespace),
    /// The namespace already exists.
    #[error("namespace `{0}` already exists")]
    Exists(Namespace),
    /// The namespace has no token with this id (never issued, or revoked).
    #[error("namespace `{0}` has no token with id `{1}`")]
    UnknownToken(Namespace, String),
    /// Writing the state file failed.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// The node's tenants, loaded from and saved to its data directory.
pub struct Tenants {
    file: PathBuf,
    state: Mutex<Known>,
    /// With `--nats`: where namespaces live (set once, at start).
    shared: std::sync::OnceLock<Shared>,
}

/// What a change of the shared bucket did to this node's tenants.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Applied {
    /// Nothing this node did not know.
    Nothing,
    /// A namespace this node did not have, or new limits for one: the
    /// runtime must take its limits.
    Limits(Box<LimitOverrides>),
    /// Only its tokens changed.
    Tokens,
    /// It was removed.
    Removed,
}

impl Tenants {
    /// Loads `<data_dir>/node.json` (a new node starts with none).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let file = data_dir.join("node.json");
        let state = match fs::read(&file) {
            Ok(bytes) => {
                let state: NodeState = serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is not a valid node state file", file.display())
                })?;
                anyhow::ensure!(
                    state.format == FORMAT,
                    "{} has format {}, this build reads format {FORMAT}",
                    file.display(),
                    state.format
                );
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => NodeState {
                format: FORMAT,
                ..NodeState::default()
            },
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        Ok(Self {
            file,
            state: Mutex::new(Known::new(state)),
            shared: std::sync::OnceLock::new(),
        })
    }

    /// From now on, namespaces live in `shared`: the namespaces of this
    /// node's file that the bucket lacks are stored there first (a node
    /// that ran alone brings its tenants to the cluster), then the
    /// bucket's namespaces replace this node's.
    pub(crate) async fn share(&self, shared: Shared) -> Result<()> {
        let known: std::collections::BTreeSet<Namespace> = shared
            .all()
            .await?
            .into_iter()
            .map(|(namespace, _)| namespace)
            .collect();
        let local = self.lock().namespaces.clone();
        for (namespace, record) in local {
            if known.contains(&namespace) {
                continue;
            }
            match shared.create(&namespace, &record).await {
                Ok(()) | Err(TenantError::Exists(_)) => {}
                Err(error) => return Err(anyhow::anyhow!("{error:#}")),
            }
        }
        let all = shared.all().await?;
        let mut known = self.lock();
        let state = NodeState {
            format: known.format,
            admin: known.admin.clone(),
            namespaces: all.into_iter().collect(),
        };
        known.set(state);
        drop(known);
        self.shared
            .set(shared)
            .map_err(|_| anyhow::anyhow!("the tenants are already shared"))?;
        Ok(())
    }

    /// The shared bucket, if the tenants are shared.
    pub(crate) fn shared(&self) -> Option<&Shared> {
        self.shared.get()
    }

    /// Takes a namespace's record as the shared bucket has it now (`None`:
    /// removed) and says what changed here.
    pub(crate) fn apply(&self, namespace: &Namespace, record: Option<NamespaceRecord>) -> Applied {
        let mut state = self.lock();
        let Some(record) = record else {
            return match state.set_namespace(namespace, None) {
                Some(_) => Applied::Removed,
                None => Applied::Nothing,
            };
        };
        let applied = match state.namespaces.get(namespace) {
            Some(known) if *known == record => return Applied::Nothing,
            Some(known) if known.limits == record.limits => Applied::Tokens,
            _ => Applied::Limits(Box::new(record.limits.clone())),
        };
        state.set_namespace(namespace, Some(record));
        applied
    }

    /// Makes `token` the admin token if given; otherwise keeps the stored
    /// one, or, on a node that has none, generates one and returns it (to
    /// be shown once).
    pub fn ensure_admin(&self, token: Option<&str>) -> Result<Option<Token>> {
        if let Some(token) = token {
            anyhow::ensure!(
                token.len() >= 16,
                "the admin token must be at least 16 characters long"
            );
            let hash = TokenHash::of(token);
            // Unchanged: nothing to write (a node restarted with the same
            // AETHER_ADMIN_TOKEN starts on a full disk too).
            if self.lock().admin.as_ref() == Some(&hash) {
                return Ok(None);
            }
            self.commit::<anyhow::Error>(|state| {
                state.admin = Some(hash);
                Ok(())
            })?;
            return Ok(None);
        }
        if self.lock().admin.is_some() {
            return Ok(None);
        }
        let token = Token::generate()?;
        self.commit::<anyhow::Error>(|state| {
            state.admin = Some(token.hash());
            Ok(())
        })?;
        Ok(Some(token))
    }

    /// Who presents `token`, if anyone.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented = TokenHash::of(token);
        let known = self.lock();
        if known.admin.as_ref() == Some(&presented) {
            return Some(Principal::Admin);
        }
        (known.by_token.get(&presented)).map(|namespace| Principal::Tenant(namespace.clone()))
    }

    /// Creates a namespace and its first token.
    pub async fn create(
        &self,
        namespace: &Namespace,
        limits: LimitOverrides,
        created_ms: u64,
    ) -> Result<Token, TenantError> {
        let token = Token::generate().map_err(anyhow::Error::from)?;
        if let Some(shared) = self.shared() {
            let record = NamespaceRecord {
                created_ms,
                tokens: vec![token.hash()],
                limits,
            };
            shared.create(namespace, &record).await?;
            self.apply(namespace, Some(record));
            return Ok(token);
        }
        self.commit(|state| {
            if state.namespaces.contains_key(namespace) {
                return Err(TenantError::Exists(namespace.clone()));
            }
            state.namespaces.insert(
                namespace.clone(),
                NamespaceRecord {
                    created_ms,
                    tokens: vec![token.hash()],
                    limits,
                },
            );
            Ok(())
        })?;
        Ok(token)
    }

    /// Issues another token for an existing namespace.
    pub async fn issue_token(&self, namespace: &Namespace) -> Result<Token, TenantError> {
        let token = Token::generate().map_err(anyhow::Error::from)?;
        self.update(namespace, |record| {
            record.tokens.push(token.hash());
            Ok(())
        })
        .await?;
        Ok(token)
    }

    /// The ids of the namespace's tokens ([`TokenHash::id`]), in issue order.
    pub fn token_ids(&self, namespace: &Namespace) -> Result<Vec<String>, TenantError> {
        self.lock()
            .namespaces
            .get(namespace)
            .map(|r| r.tokens.iter().map(TokenHash::id).collect())
            .ok_or_else(|| TenantError::UnknownNamespace(namespace.clone()))
    }

    /// Revokes the namespace's token with this id: from now on it
    /// authenticates nobody. The namespace's other tokens keep working.
    pub async fn revoke_token(&self, namespace: &Namespace, id: &str) -> Result<(), TenantError> {
        self.update(namespace, |record| {
            let before = record.tokens.len();
            record.tokens.retain(|hash| hash.id() != id);
            if record.tokens.len() == before {
                return Err(TenantError::UnknownToken(namespace.clone(), id.to_owned()));
            }
            Ok(())
        })
        .await
    }

    /// Whether the namespace exists.
    pub fn exists(&self, namespace: &Namespace) -> bool {
        self.lock().namespaces.contains_key(namespace)
    }

    /// Every namespace, in name order.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.lock().namespaces.keys().cloned().collect()
    }

    /// The namespace's limit overrides.
    pub fn limits(&self, namespace: &Namespace) -> Result<LimitOverrides, TenantError> {
        self.lock()
            .namespaces
            .get(namespace)
            .map(|r| r.limits.clone())
            .ok_or_else(|| TenantError::UnknownNamespace(namespace.clone()))
    }

    /// Replaces the namespace's limit overrides.
    pub async fn set_limits(
        &self,
        namespace: &Namespace,
        limits: LimitOverrides,
    ) -> Result<(), TenantError> {
        self.update(namespace, |record| {
            record.limits = limits.clone();
            Ok(())
        })
        .await
    }

    /// Changes one namespace's record: in the shared bucket (then here),
    /// or here and in the file ([`Tenants::commit`]).
    async fn update(
        &self,
        namespace: &Namespace,
        change: impl Fn(&mut NamespaceRecord) -> Result<(), TenantError>,
    ) -> Result<(), TenantError> {
        if let Some(shared) = self.shared() {
            let record = shared.update(namespace, change).await?;
            self.apply(namespace, Some(record));
            return Ok(());
        }
        self.commit(|state| {
            let record = state
                .namespaces
                .get_mut(namespace)
                .ok_or_else(|| TenantError::UnknownNamespace(namespace.clone()))?;
            change(record)
        })
    }

    /// Makes `change` on a copy of the state, saves the copy, and only then
    /// makes it the state: a refused change or a failed save changes
    /// nothing. Holding the lock throughout keeps changes in order.
    fn commit<E: From<anyhow::Error>>(
        &self,
        change: impl FnOnce(&mut NodeState) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut known = self.lock();
        let mut next = known.state.clone();
        change(&mut next)?;
        let json = serde_json::to_vec_pretty(&next).map_err(anyhow::Error::from)?;
        write_atomically(&self.file, &json)?;
        known.set(next);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one: temporary file, sync, rename, sync the directory.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tenants_survive_a_reopen_and_keep_no_token_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let bank: Namespace = "bank".parse().unwrap();
        let (admin, token) = {
            let tenants = Tenants::open(dir.path()).unwrap();
            let admin = tenants
                .ensure_admin(None)
                .unwrap()
                .expect("a new admin token");
            let token = tenants
                .create(&bank, LimitOverrides::default(), 1)
                .await
                .unwrap();
            assert!(matches!(
                tenants.create(&bank, LimitOverrides::default(), 2).await,
                Err(TenantError::Exists(_))
            ));
            (admin, token)
        };
        let tenants = Tenants::open(dir.path()).unwrap();
        assert!(
            tenants.ensure_admin(None).unwrap().is_none(),
            "kept, not replaced"
        );
        assert_eq!(tenants.authenticate(admin.as_str()), Some(Principal::Admin));
        assert_eq!(
            tenants.authenticate(token.as_str()),
            Some(Principal::Tenant(bank.clone()))
        );
        assert_eq!(tenants.authenticate("aether_wrong"), None);
        let file = fs::read_to_string(dir.path().join("node.json")).unwrap();
        assert!(!file.contains(admin.as_str()) && !file.contains(token.as_str()));
    }

    /// Every token finds its own namespace among many, and stops the
    /// moment it is revoked or its namespace is removed; after a reopen
    /// the same holds.
    #[tokio::test]
    async fn each_token_authenticates_its_own_namespace_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let tenants = Tenants::open(dir.path()).unwrap();
        let mut issued = Vec::new();
        for n in 0..200 {
            let namespace: Namespace = format!("tenant-{n}").parse().unwrap();
            let token = tenants
                .create(&namespace, LimitOverrides::default(), n)
                .await
                .unwrap();
            issued.push((namespace, token));
        }
        let (first, first_token) = &issued[0];
        let second_token = tenants.issue_token(first).await.unwrap();
        for (namespace, token) in &issued {
            assert_eq!(
                tenants.authenticate(token.as_str()),
                Some(Principal::Tenant(namespace.clone()))
            );
        }
        let first_id = tenants.token_ids(first).unwrap()[0].clone();
        tenants.revoke_token(first, &first_id).await.unwrap();
        assert_eq!(tenants.authenticate(first_token.as_str()), None);
        assert_eq!(
            tenants.authenticate(second_token.as_str()),
            Some(Principal::Tenant(first.clone()))
        );
        let (last, last_token) = issued.last().unwrap();
        assert_eq!(tenants.apply(last, None), Applied::Removed);
        assert_eq!(tenants.authenticate(last_token.as_str()), None);
        // Another node replaced a namespace's tokens (a shared bucket).
        let (changed, changed_token) = &issued[50];
        let replacement = Token::generate().unwrap();
        let record = NamespaceRecord {
            created_ms: 50,
            tokens: vec![replacement.hash()],
            limits: LimitOverrides::default(),
        };
        assert_eq!(tenants.apply(changed, Some(record)), Applied::Tokens);
        assert_eq!(tenants.authenticate(changed_token.as_str()), None);
        assert_eq!(
            tenants.authenticate(replacement.as_str()),
            Some(Principal::Tenant(changed.clone()))
        );

        let reopened = Tenants::open(dir.path()).unwrap();
        assert_eq!(reopened.authenticate(first_token.as_str()), None);
        assert_eq!(
            reopened.authenticate(second_token.as_str()),
            Some(Principal::Tenant(first.clone()))
        );
        let (middle, middle_token) = &issued[100];
        assert_eq!(
            reopened.authenticate(middle_token.as_str()),
            Some(Principal::Tenant(middle.clone()))
        );
    }
}
