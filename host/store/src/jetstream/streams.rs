//! The stream of each namespace: its settings, finding or creating it
//! (once per namespace, safe when two nodes create it at once), waiting
//! for it to settle after creation, and the setup retries.

use std::sync::PoisonError;
use std::time::Duration;

use async_nats::jetstream::context::{
    CreateStreamError, CreateStreamErrorKind, GetStreamError, GetStreamErrorKind,
};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{self, ErrorCode, stream};

use super::{JetStreamStore, StoreError, unavailable};
use aether_core::namespace::Namespace;
use aether_core::namespace::layout::{
    legacy_store_stream_name, store_namespace_subjects, store_stream_name,
};

impl JetStreamStore {
    /// The settings of `namespace`'s stream: the same for every namespace
    /// and every node, so creating it twice is harmless.
    fn stream_config(&self, namespace: &Namespace) -> stream::Config {
        stream::Config {
            name: store_stream_name(&self.prefix, namespace),
            subjects: vec![store_namespace_subjects(&self.prefix, namespace)],
            num_replicas: self.replicas,
            storage: stream::StorageType::File,
            allow_atomic_publish: true,
            allow_direct: true,
            deny_delete: true,
            deny_purge: true,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }

    fn known_stream(&self, namespace: &Namespace) -> Option<stream::Stream> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.get(namespace).cloned()
    }

    fn remember(&self, namespace: &Namespace, stream: &stream::Stream) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.insert(namespace.clone(), stream.clone());
    }

    /// The stream of `namespace`; `None` if nothing was ever appended to
    /// the namespace (so it has no stream yet). Creates nothing.
    pub(super) async fn find_stream(
        &self,
        namespace: &Namespace,
    ) -> Result<Option<stream::Stream>, StoreError> {
        if let Some(stream) = self.known_stream(namespace) {
            return Ok(Some(stream));
        }
        let found = self
            .settled(&store_stream_name(&self.prefix, namespace), false)
            .await?;
        if let Some(stream) = &found {
            self.remember(namespace, stream);
        }
        Ok(found)
    }

    /// The stream of `namespace`, created if it does not exist yet (by
    /// this store or, at the same moment, by another: creating a stream
    /// with the settings it already has succeeds), with a leader.
    pub(super) async fn stream_for_append(
        &self,
        namespace: &Namespace,
    ) -> Result<stream::Stream, StoreError> {
        if let Some(stream) = self.find_stream(namespace).await? {
            return Ok(stream);
        }
        let config = self.stream_config(namespace);
        let name = config.name.clone();
        let created = retrying(&format!("creating the stream {name}"), || async {
            match self.context.create_stream(config.clone()).await {
                Ok(_) => Ok(Ok(())),
                // Asking again would not change its settings.
                Err(e) if is_other_settings(&e) => Ok(Err(e)),
                Err(e) => Err(e),
            }
        })
        .await?;
        if let Err(e) = created {
            return Err(unavailable(format!(
                "the stream {name} exists with other settings than this store's (replicas \
                 {}, subjects {:?}): {e}",
                config.num_replicas, config.subjects
            )));
        }
        let stream = self.settled(&name, true).await?.ok_or_else(|| {
            unavailable(format!(
                "the stream {name} is missing right after it was created"
            ))
        })?;
        self.remember(namespace, &stream);
        Ok(stream)
    }

    /// The stream `name` once the cluster gives a definite answer: `None`
    /// if it does not exist, the stream once it has a leader. A stream
    /// that is being created (by this or another node) answers nothing, or
    /// has no leader, for a moment: ask again (briefly each time) until
    /// [`LOOKUP_DEADLINE`]. A server that has not learnt of a new stream
    /// yet may say it does not exist: when the stream is `known_to_exist`
    /// (it was just created), that answer means "ask again" too, until
    /// [`SETUP_DEADLINE`] (a busy cluster takes a while to elect a leader).
    async fn settled(
        &self,
        name: &str,
        known_to_exist: bool,
    ) -> Result<Option<stream::Stream>, StoreError> {
        let patience = if known_to_exist {
            SETUP_DEADLINE
        } else {
            LOOKUP_DEADLINE
        };
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let answer: Result<Response<stream::Info>, _> =
                self.probe.request(format!("STREAM.INFO.{name}"), &()).await;
            let why = match answer {
                Ok(Response::Err { error })
                    if error.error_code() == ErrorCode::STREAM_NOT_FOUND && !known_to_exist =>
                {
                    return Ok(None);
                }
                Ok(Response::Ok(info))
                    if self.replicas <= 1
                        || info.cluster.as_ref().is_some_and(|c| c.leader.is_some()) =>
                {
                    match self.context.get_stream(name).await {
                        Ok(stream) => return Ok(Some(stream)),
                        Err(e) => e.to_string(),
                    }
                }
                Ok(Response::Ok(_)) => "it has no leader yet".to_owned(),
                Ok(Response::Err { error }) => error.to_string(),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(format!("finding the stream {name}: {why}")));
            }
            tracing::debug!(stream = name, %why, "finding a stream: asking again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The last sequence of a namespace's stream: its head position.
pub(super) async fn last_sequence(events: &stream::Stream) -> Result<u64, StoreError> {
    Ok(state(events).await?.last_sequence)
}

/// The bytes a namespace's stream holds, as JetStream counts them (every
/// message with its subject, headers and framing).
pub(super) async fn stored_bytes(events: &stream::Stream) -> Result<u64, StoreError> {
    Ok(state(events).await?.bytes)
}

/// The stream's state, asked of the servers now.
async fn state(events: &stream::Stream) -> Result<stream::State, StoreError> {
    let mut events = events.clone();
    let name = events.cached_info().config.name.clone();
    let info = events
        .info()
        .await
        .map_err(|e| unavailable(format!("reading the state of the stream {name}: {e}")))?;
    Ok(info.state.clone())
}

/// Whether creating a stream failed because it exists with other settings.
fn is_other_settings(error: &CreateStreamError) -> bool {
    matches!(error.kind(), CreateStreamErrorKind::JetStream(e)
        if e.error_code() == ErrorCode::STREAM_NAME_EXIST)
}

/// Whether `get_stream` failed because the stream does not exist.
pub(super) fn is_stream_not_found(error: &GetStreamError) -> bool {
    matches!(error.kind(), GetStreamErrorKind::JetStream(e)
        if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// Refuses a server that has the single event stream of versions before
/// the stream per namespace: its subjects overlap every namespace's
/// stream, and this version neither reads nor converts it.
pub(super) async fn refuse_legacy_stream(
    context: &jetstream::Context,
    prefix: &str,
) -> Result<(), StoreError> {
    let legacy = legacy_store_stream_name(prefix);
    let found = retrying(&format!("looking for the stream {legacy}"), || async {
        match context.get_stream(&legacy).await {
            Ok(_) => Ok(true),
            Err(e) if is_stream_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await?;
    if found {
        return Err(unavailable(format!(
            "the server has the stream {legacy}, which an earlier Aether used for the events \
             of every namespace; this version keeps one stream per namespace \
             ({legacy}_<namespace>) and does not convert it: use another prefix, or move or \
             delete {legacy} once its events are no longer needed"
        )));
    }
    Ok(())
}

/// How long one question about a stream's existence waits for an answer
/// (none comes while the stream is being created: ask again).
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a read keeps asking whether its namespace has a stream before
/// it reports the store unavailable (as long as any other request waits).
const LOOKUP_DEADLINE: Duration = Duration::from_secs(10);

/// How long an append keeps publishing again while its namespace's stream
/// does not get the messages (a stream just created is routed to by every
/// server within moments).
pub(super) const ROUTING_DEADLINE: Duration = Duration::from_secs(10);

/// How long connecting, and the first append to a namespace, wait for the
/// cluster to create and elect what the store needs (a busy or
/// just-started cluster takes a few seconds).
const SETUP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `attempt` until it succeeds or `SETUP_DEADLINE` passes (a fresh
/// cluster may still be electing its leaders).
pub async fn retrying<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, StoreError> {
    let deadline = tokio::time::Instant::now() + SETUP_DEADLINE;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(unavailable(format!("{what}: {error}")));
            }
            Err(error) => {
                tracing::debug!(%error, "{what}: retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Waits until a replicated stream has a leader, so the first append does
/// not meet an election.
pub(super) async fn wait_for_leader(
    events: &stream::Stream,
    replicas: usize,
) -> Result<(), StoreError> {
    if replicas <= 1 {
        return Ok(());
    }
    let mut events = events.clone();
    let deadline = tokio::time::Instant::now() + SETUP_DEADLINE;
    loop {
        let leader = match events.info().await {
            Ok(info) => info.cluster.as_ref().and_then(|c| c.leader.clone()),
            Err(_) => None,
        };
        if leader.is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(unavailable(format!(
                "the stream {} has no leader after 60 s",
                events.cached_info().config.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
