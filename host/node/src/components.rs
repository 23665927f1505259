//! Components shared by every node on one NATS: with `--nats`, a deployed
//! component's bytes go to the object store bucket `<P>_COMPONENTS`
//! (named by their digest: content-addressed, and checked against it on
//! read), and each change of a registry is announced in the KV bucket
//! `<P>_ACTIVE` (`active.<namespace>.<aggregate type>` → digest), which
//! every node follows to switch to what the registry (the source of truth,
//! in the shared event store) now says. In a cluster each node confirms a
//! switch (`serving.<node>.<namespace>.<aggregate type>` → digest), and the
//! node that made the change answers once every member has confirmed it.
//!
//! A node fetches a component it does not have from the bucket into its
//! `components/` directory before it loads it, so a node started with an
//! empty data directory serves every namespace's active components.

use anyhow::{Context, Result};
use async_nats::jetstream::{self, kv, object_store};
use tokio::io::AsyncReadExt;

use aether_core::namespace::{AggregateType, Namespace};
use aether_runtime::Digest;

/// The shared component buckets.
#[derive(Clone)]
pub(crate) struct SharedComponents {
    bytes: object_store::ObjectStore,
    active: kv::Store,
    /// The chunk size of stored components: the object store's default,
    /// or less to fit the servers' `max_payload`.
    chunk: usize,
}

/// The object store's default chunk size.
const MAX_CHUNK: usize = 128 << 10;

/// Room kept in a chunk's message for its subject and headers.
const ENVELOPE_ROOM: usize = 16 << 10;

/// A registry's change, as announced: the namespace, the type, the digest.
pub(crate) type Announced = (Namespace, AggregateType, String);

fn bucket(prefix: &str, what: &str) -> String {
    format!(
        "{}_{what}",
        prefix.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

impl SharedComponents {
    /// Opens (or creates, with `replicas`) the two buckets.
    pub(crate) async fn open(
        client: async_nats::Client,
        prefix: &str,
        replicas: usize,
    ) -> Result<SharedComponents> {
        let chunk = client
            .server_info()
            .max_payload
            .saturating_sub(ENVELOPE_ROOM)
            .clamp(1, MAX_CHUNK);
        let context = jetstream::new(client);
        let (bytes_name, active_name) = (bucket(prefix, "COMPONENTS"), bucket(prefix, "ACTIVE"));
        let bytes = aether_store::retrying(&format!("opening the bucket {bytes_name}"), || async {
            match context.get_object_store(&bytes_name).await {
                Ok(store) => Ok::<_, anyhow::Error>(store),
                Err(_) => Ok(context
                    .create_object_store(object_store::Config {
                        bucket: bytes_name.clone(),
                        num_replicas: replicas,
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await?),
            }
        })
        .await?;
        let active =
            aether_store::retrying(&format!("opening the bucket {active_name}"), || async {
                match context.get_key_value(&active_name).await {
                    Ok(kv) => Ok::<_, anyhow::Error>(kv),
                    Err(_) => Ok(context
                        .create_key_value(kv::Config {
                            bucket: active_name.clone(),
                            history: 1,
                            num_replicas: replicas,
                            storage: jetstream::stream::StorageType::File,
                            ..Default::default()
                        })
                        .await?),
                }
            })
            .await?;
        Ok(SharedComponents {
            bytes,
            active,
            chunk,
        })
    }

    /// Stores `bytes` under their digest, unless they are there already.
    pub(crate) async fn put(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        // (A deleted object still has its info, marked deleted.)
        if self
            .bytes
            .info(digest)
            .await
            .is_ok_and(|info| !info.deleted)
        {
            return Ok(());
        }
        let meta = object_store::ObjectMetadata {
            name: digest.to_owned(),
            chunk_size: Some(self.chunk),
            ..Default::default()
        };
        self.bytes
            .put(meta, &mut &bytes[..])
            .await
            .with_context(|| format!("storing component {digest} in the shared bucket"))?;
        Ok(())
    }

    /// The bytes of component `digest`, if the bucket has them; an error
    /// if what it has is not what the digest names.
    pub(crate) async fn get(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let mut object = match self.bytes.get(digest).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading component {digest}"));
            }
        };
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .with_context(|| format!("reading component {digest}"))?;
        anyhow::ensure!(
            Digest::of(&bytes).to_hex() == digest,
            "the shared bucket's component {digest} does not have that digest"
        );
        Ok(Some(bytes))
    }

    /// Tells every node that `namespace`'s registry now makes `digest`
    /// the active component of `aggregate_type`.
    pub(crate) async fn announce(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        digest: &str,
    ) -> Result<()> {
        self.active
            .put(
                format!("active.{namespace}.{aggregate_type}"),
                digest.to_owned().into(),
            )
            .await
            .context("announcing a registry change")?;
        Ok(())
    }

    /// Records that `node` now decides `namespace`'s `aggregate_type` with
    /// `digest`.
    pub(crate) async fn confirm(
        &self,
        node: &str,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        digest: &str,
    ) -> Result<()> {
        self.active
            .put(
                serving_key(node, namespace, aggregate_type),
                digest.to_owned().into(),
            )
            .await
            .context("confirming a switch")?;
        Ok(())
    }

    /// The digest `node` last confirmed for the type, if any.
    pub(crate) async fn confirmed(
        &self,
        node: &str,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<Option<String>> {
        let entry = self
            .active
            .entry(serving_key(node, namespace, aggregate_type))
            .await
            .context("reading a confirmation")?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// Every announcement, starting with the latest of each type, sent to
    /// `announced` until it is closed or the watch fails.
    pub(crate) async fn follow(
        &self,
        announced: tokio::sync::mpsc::Sender<Announced>,
    ) -> Result<()> {
        let mut watch = super::kv_watch::Watching::start(
            &self.active,
            "active.>",
            "watching the active components",
        )
        .await?;
        while let Some(entry) = watch.next().await? {
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let key = entry.key.strip_prefix("active.").unwrap_or_default();
            let Some((namespace, aggregate_type)) = key.split_once('.') else {
                continue;
            };
            let (Ok(namespace), Ok(aggregate_type)) = (
                Namespace::new(namespace),
                AggregateType::new(aggregate_type.to_owned()),
            ) else {
                continue;
            };
            let digest = String::from_utf8_lossy(&entry.value).into_owned();
            if announced
                .send((namespace, aggregate_type, digest))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
        anyhow::bail!("the watch of the active components ended")
    }
}

/// The key of `node`'s confirmation (the node id made key-safe).
fn serving_key(node: &str, namespace: &Namespace, aggregate_type: &AggregateType) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("serving.{node}.{namespace}.{aggregate_type}")
}
