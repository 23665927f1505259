//! Tenants shared by every node on one NATS: with `--nats`, each
//! namespace's record (token hashes, limit overrides) is a key of the
//! replicated KV bucket `<P>_TENANTS` (`ns.<namespace>`), written with
//! compare-and-set, and every node follows the bucket ([`Shared::follow`]),
//! so an admin call on any node holds on all of them.
//!
//! **Invariant:** a change is made against the record's latest revision
//! (`create` for a new namespace, `update` at the revision read): two
//! nodes changing one namespace at once cannot lose either change (the
//! loser reads again and re-applies its change), and two creating it get
//! one `namespace_exists`.

use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;

use super::{NamespaceRecord, TenantError};
use aether_core::namespace::Namespace;

/// How often a change is tried again when another node changed the same
/// namespace in between.
const CAS_ATTEMPTS: usize = 16;

/// The bucket of the tenants every node shares.
#[derive(Clone)]
pub(crate) struct Shared {
    kv: kv::Store,
}

/// One namespace's record changed in the bucket (`None`: it was removed).
pub(crate) type Change = (Namespace, Option<NamespaceRecord>);

fn key(namespace: &Namespace) -> String {
    format!("ns.{namespace}")
}

impl Shared {
    /// Opens the bucket `<PREFIX>_TENANTS` (created with `replicas` if
    /// missing).
    pub(crate) async fn open(
        client: async_nats::Client,
        prefix: &str,
        replicas: usize,
    ) -> Result<Shared> {
        let context = jetstream::new(client);
        let name = format!(
            "{}_TENANTS",
            prefix.to_ascii_uppercase().replace(['-', '.'], "_")
        );
        let config = kv::Config {
            bucket: name.clone(),
            history: 1,
            num_replicas: replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let setup = format!("opening or creating the tenants bucket {name}");
        let kv = aether_store::retrying(&setup, || async {
            match context.get_key_value(&name).await {
                Ok(kv) => Ok::<_, anyhow::Error>(kv),
                // Missing: create it (a racing creator's bucket is opened
                // on the next round).
                Err(_) => Ok(context.create_key_value(config.clone()).await?),
            }
        })
        .await?;
        Ok(Shared { kv })
    }

    /// Every namespace in the bucket.
    pub(crate) async fn all(&self) -> Result<Vec<(Namespace, NamespaceRecord)>> {
        // A node reads the bucket as it starts, maybe just after creating
        // it on a cluster that is still electing the bucket's leader (a
        // listing then times out): the listing is a read, so ask again.
        let entries =
            aether_store::retrying("listing the tenants bucket", || self.entries()).await?;
        let mut all = Vec::new();
        for (namespace, entry) in entries {
            if let Some(record) = decode(&entry)? {
                all.push((namespace, record));
            }
        }
        Ok(all)
    }

    /// The bucket's namespace entries, as stored.
    async fn entries(&self) -> Result<Vec<(Namespace, kv::Entry)>> {
        let mut keys = self.kv.keys().await.context("listing the keys")?;
        let mut entries = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.context("listing the keys")?;
            let Some(namespace) = namespace_of(&key) else {
                continue;
            };
            if let Some(entry) = self.kv.entry(key.clone()).await? {
                entries.push((namespace, entry));
            }
        }
        Ok(entries)
    }

    /// Creates `namespace` with `record`, unless it exists.
    pub(crate) async fn create(
        &self,
        namespace: &Namespace,
        record: &NamespaceRecord,
    ) -> Result<(), TenantError> {
        let bytes = serde_json::to_vec(record).map_err(anyhow::Error::from)?;
        let mut last_error = None;
        // Whether the key, found, holds this very record: an earlier
        // attempt whose answer was lost stored it (its token hash is new,
        // so no other creation holds the same record).
        let ours = |entry: &kv::Entry| decode(entry).ok().flatten().as_ref() == Some(record);
        for attempt in 0..CAS_ATTEMPTS {
            match self.kv.create(key(namespace), bytes.clone().into()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists && attempt == 0 => {
                    return Err(TenantError::Exists(namespace.clone()));
                }
                Err(e) => last_error = Some(e),
            }
            // Another node created it at the same moment (the write fails
            // on the key's sequence, and the read that would say so may
            // reach a replica that has not seen the winner yet), the bucket
            // is not ready yet (just created), or an earlier attempt stored
            // it: look, then try again.
            if let Ok(Some(entry)) = self.kv.entry(key(namespace)).await
                && entry.operation == kv::Operation::Put
            {
                if ours(&entry) {
                    return Ok(());
                }
                return Err(TenantError::Exists(namespace.clone()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let error = last_error.map_or_else(
            || anyhow::anyhow!("no attempt was made"),
            anyhow::Error::from,
        );
        Err(error
            .context(format!(
                "storing namespace `{namespace}` in the tenants bucket"
            ))
            .into())
    }

    /// Makes `change` to `namespace`'s latest record and stores it at that
    /// revision (again, on a newer one, if another node got there first);
    /// the record as stored.
    pub(crate) async fn update(
        &self,
        namespace: &Namespace,
        change: impl Fn(&mut NamespaceRecord) -> Result<(), TenantError>,
    ) -> Result<NamespaceRecord, TenantError> {
        let mut unseen = 0;
        for _ in 0..CAS_ATTEMPTS * 2 {
            let entry = self
                .kv
                .entry(key(namespace))
                .await
                .map_err(anyhow::Error::from)?;
            let found = match &entry {
                Some(entry) => decode(entry)?.map(|record| (record, entry.revision)),
                None => None,
            };
            let Some((mut record, revision)) = found else {
                // A replica may answer before it has seen a namespace
                // created moments ago on another node: look again before
                // saying it does not exist.
                unseen += 1;
                if unseen >= CAS_ATTEMPTS {
                    return Err(TenantError::UnknownNamespace(namespace.clone()));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            };
            change(&mut record)?;
            let bytes = serde_json::to_vec(&record).map_err(anyhow::Error::from)?;
            match self.kv.update(key(namespace), bytes.into(), revision).await {
                Ok(_) => return Ok(record),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!(
                            "storing namespace `{namespace}` in the tenants bucket"
                        ))
                        .into());
                }
            }
        }
        Err(anyhow::anyhow!("namespace `{namespace}` kept changing on other nodes: retry").into())
    }

    /// Every change of the bucket, starting with each namespace's current
    /// record, sent to `changes` until it is closed or the watch fails.
    pub(crate) async fn follow(&self, changes: tokio::sync::mpsc::Sender<Change>) -> Result<()> {
        let mut watch =
            crate::kv_watch::Watching::start(&self.kv, "ns.>", "watching the tenants bucket")
                .await?;
        while let Some(entry) = watch.next().await? {
            let Some(namespace) = namespace_of(&entry.key) else {
                continue;
            };
            let record = match decode(&entry) {
                Ok(record) => record,
                Err(error) => {
                    tracing::warn!(%namespace, error = %format!("{error:#}"), "an unreadable tenant record is ignored");
                    continue;
                }
            };
            if changes.send((namespace, record)).await.is_err() {
                return Ok(());
            }
        }
        anyhow::bail!("the watch of the tenants bucket ended")
    }
}

/// The namespace a key names (`ns.<namespace>`), if it is one.
fn namespace_of(key: &str) -> Option<Namespace> {
    Namespace::new(key.strip_prefix("ns.")?).ok()
}

/// The record an entry holds (`None`: deleted or purged).
fn decode(entry: &kv::Entry) -> Result<Option<NamespaceRecord>> {
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    serde_json::from_slice(&entry.value)
        .map(Some)
        .with_context(|| {
            format!(
                "the tenants bucket's {} is not a namespace record",
                entry.key
            )
        })
}
