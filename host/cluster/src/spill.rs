//! Messages larger than the NATS servers' `max_payload`: a routed request
//! (a command up to the namespace's `max_command_bytes`) or an answer (a
//! large view, a command's events) that does not fit in one NATS message
//! travels through the cluster's object store bucket `<P>_CLUSTER_SPILL`.
//!
//! The sender puts the bytes there under a fresh name (chunked below
//! `max_payload`; the object store checks their SHA-256 on read) and sends
//! an empty message whose [`SPILLED`] header names the object; the
//! receiver reads it from the bucket. The side that knows when it is no
//! longer needed deletes it: the entry node deletes its request once the
//! route is over (a request may be sent again to a new owner) and an
//! answer once it has read it. The bucket's `max_age` removes what a
//! crashed node left behind.

use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, object_store};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use aether_core::namespace::layout::cluster_bucket;
use aether_service::{ErrorCode, ServiceError};

use crate::ClusterConfig;

/// The header that names a spilled message's object.
pub(crate) const SPILLED: &str = "Aether-Spilled";

/// Room kept in a message for its subject, reply subject and headers.
const ENVELOPE_ROOM: usize = 16 << 10;

/// How long a spilled object is kept if nobody deletes it.
const MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// The largest chunk the object store writes (its default).
const MAX_CHUNK: usize = 128 << 10;

/// The cluster's bucket for messages too large for NATS.
#[derive(Clone)]
pub(crate) struct Spill {
    store: object_store::ObjectStore,
    /// Payloads up to this size travel as they are.
    fits: usize,
}

/// A message's payload, and the headers to send with it.
pub(crate) struct Outgoing {
    pub(crate) payload: Bytes,
    pub(crate) headers: Option<HeaderMap>,
    /// The spilled object's name, if it was spilled.
    pub(crate) object: Option<String>,
}

impl Spill {
    /// Opens the bucket (created, with the cluster's replicas, if missing).
    pub(crate) async fn open(
        client: &async_nats::Client,
        context: &jetstream::Context,
        config: &ClusterConfig,
    ) -> Result<Spill> {
        let name = cluster_bucket(&config.prefix, "SPILL");
        let bucket = object_store::Config {
            bucket: name.clone(),
            max_age: MAX_AGE,
            num_replicas: config.replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let setup = format!("opening or creating the object store {name}");
        let store = aether_store::retrying(&setup, || async {
            if crate::settings::exists(context, &format!("OBJ_{name}")).await? {
                return Ok::<_, anyhow::Error>(context.get_object_store(&name).await?);
            }
            Ok(context.create_object_store(bucket.clone()).await?)
        })
        .await?;
        let max_payload = client.server_info().max_payload;
        Ok(Spill {
            store,
            fits: max_payload.saturating_sub(ENVELOPE_ROOM).max(1),
        })
    }

    /// `payload` ready to send: as it is if it fits in a message, else put
    /// in the bucket and named in the headers.
    pub(crate) async fn outgoing(&self, payload: Bytes) -> Result<Outgoing, ServiceError> {
        if payload.len() <= self.fits {
            return Ok(Outgoing {
                payload,
                headers: None,
                object: None,
            });
        }
        let name = format!("m-{}", uuid::Uuid::now_v7());
        let meta = object_store::ObjectMetadata {
            name: name.clone(),
            chunk_size: Some(self.fits.min(MAX_CHUNK)),
            ..Default::default()
        };
        self.store
            .put(meta, &mut payload.as_ref())
            .await
            .map_err(|e| {
                ServiceError::new(
                    ErrorCode::StoreUnavailable,
                    format!(
                        "a message of {} bytes, larger than a NATS message, could not be stored for the cluster ({e}): nothing was sent; retry",
                        payload.len()
                    ),
                )
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(SPILLED, name.as_str());
        Ok(Outgoing {
            payload: Bytes::new(),
            headers: Some(headers),
            object: Some(name),
        })
    }

    /// The payload of a message that arrived: its own, or its spilled
    /// object's (and that object's name).
    pub(crate) async fn incoming(
        &self,
        message: &async_nats::Message,
    ) -> Result<(Bytes, Option<String>)> {
        let Some(name) = spilled(message) else {
            return Ok((message.payload.clone(), None));
        };
        let mut object = self
            .store
            .get(&name)
            .await
            .with_context(|| format!("the spilled message {name} cannot be found"))?;
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .with_context(|| format!("reading the spilled message {name}"))?;
        Ok((bytes.into(), Some(name)))
    }

    /// Deletes a spilled object nobody needs any more (a failure only
    /// leaves it to the bucket's `max_age`).
    pub(crate) async fn forget(&self, object: Option<String>) {
        let Some(name) = object else { return };
        if let Err(error) = self.store.delete(&name).await {
            tracing::debug!(%name, %error, "a spilled message stays until it expires");
        }
    }
}

/// The object a message's payload was spilled to, if it was.
fn spilled(message: &async_nats::Message) -> Option<String> {
    let value = message.headers.as_ref()?.get(SPILLED)?;
    Some(value.as_str().to_owned())
}
