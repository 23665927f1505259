//! The node's tenants: namespaces, their token hashes and limit overrides,
//! kept in `<data dir>/node.json`.
//!
//! The file is rewritten whole on every change (written to a temporary file,
//! synced, renamed over the old one, then the directory synced), so a crash
//! leaves either the old or the new file, never a torn one.
//!
//! **Invariant:** no token is ever written in clear; only its hash.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::access::{Principal, Token, TokenHash};
use super::limits::LimitOverrides;
use crate::namespace::Namespace;

/// The format of `node.json` this build reads and writes.
const FORMAT: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeState {
    format: u32,
    admin: Option<TokenHash>,
    namespaces: BTreeMap<Namespace, NamespaceRecord>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceRecord {
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
    /// Writing the state file failed.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// The node's tenants, loaded from and saved to its data directory.
pub struct Tenants {
    file: PathBuf,
    state: Mutex<NodeState>,
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
            state: Mutex::new(state),
        })
    }

    /// Makes `token` the admin token if given; otherwise keeps the stored
    /// one, or, on a node that has none, generates one and returns it (to
    /// be shown once).
    pub fn ensure_admin(&self, token: Option<&str>) -> Result<Option<Token>> {
        let mut state = self.lock();
        if let Some(token) = token {
            anyhow::ensure!(
                token.len() >= 16,
                "the admin token must be at least 16 characters long"
            );
            state.admin = Some(TokenHash::of(token));
            self.save(&state)?;
            return Ok(None);
        }
        if state.admin.is_some() {
            return Ok(None);
        }
        let token = Token::generate()?;
        state.admin = Some(token.hash());
        self.save(&state)?;
        Ok(Some(token))
    }

    /// Who presents `token`, if anyone.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented = TokenHash::of(token);
        let state = self.lock();
        if state.admin.as_ref() == Some(&presented) {
            return Some(Principal::Admin);
        }
        state
            .namespaces
            .iter()
            .find(|(_, record)| record.tokens.contains(&presented))
            .map(|(namespace, _)| Principal::Tenant(namespace.clone()))
    }

    /// Creates a namespace and its first token.
    pub fn create(
        &self,
        namespace: &Namespace,
        limits: LimitOverrides,
        created_ms: u64,
    ) -> Result<Token, TenantError> {
        let mut state = self.lock();
        if state.namespaces.contains_key(namespace) {
            return Err(TenantError::Exists(namespace.clone()));
        }
        let token = Token::generate().map_err(anyhow::Error::from)?;
        state.namespaces.insert(
            namespace.clone(),
            NamespaceRecord {
                created_ms,
                tokens: vec![token.hash()],
                limits,
            },
        );
        self.save(&state)?;
        Ok(token)
    }

    /// Issues another token for an existing namespace.
    pub fn issue_token(&self, namespace: &Namespace) -> Result<Token, TenantError> {
        let token = Token::generate().map_err(anyhow::Error::from)?;
        self.update(namespace, |record| record.tokens.push(token.hash()))?;
        Ok(token)
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
    pub fn set_limits(
        &self,
        namespace: &Namespace,
        limits: LimitOverrides,
    ) -> Result<(), TenantError> {
        self.update(namespace, |record| record.limits = limits)
    }

    fn update(
        &self,
        namespace: &Namespace,
        change: impl FnOnce(&mut NamespaceRecord),
    ) -> Result<(), TenantError> {
        let mut state = self.lock();
        let record = state
            .namespaces
            .get_mut(namespace)
            .ok_or_else(|| TenantError::UnknownNamespace(namespace.clone()))?;
        change(record);
        self.save(&state)?;
        Ok(())
    }

    fn save(&self, state: &NodeState) -> Result<()> {
        let json = serde_json::to_vec_pretty(state)?;
        write_atomically(&self.file, &json)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NodeState> {
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

    #[test]
    fn tenants_survive_a_reopen_and_keep_no_token_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let bank: Namespace = "bank".parse().unwrap();
        let (admin, token) = {
            let tenants = Tenants::open(dir.path()).unwrap();
            let admin = tenants
                .ensure_admin(None)
                .unwrap()
                .expect("a new admin token");
            let token = tenants.create(&bank, LimitOverrides::default(), 1).unwrap();
            assert!(matches!(
                tenants.create(&bank, LimitOverrides::default(), 2),
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
}
