//! The live copy of an aggregate: activation (from a snapshot, then a
//! replay of the events after it), state reads, and the check that a live
//! copy is still the stream's version in the store. The command path
//! (`command.rs`) decides on what this module makes live.

use std::sync::Arc;

use aether_core::namespace::{AggregateType, Namespace};
use aether_store::{StoreError, StreamId};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::command::{AggregateState, LOST_LIMIT, REFRESH_LIMIT, instances_kept_failing};
use super::command_ids::{self, CommandIds};
use super::error::CommandError;
use super::partition::{CallError, LivePosition, PartitionHandle, Snapshotted, StartingPoint};
use super::{LoadedComponent, Runtime};

/// A read-only call on a live aggregate: its answer and the version it
/// was made at.
type LiveRead<R> = fn(&mut super::partition::Partition, &StreamId) -> Result<(R, u64), CallError>;

/// How a replay into an activating aggregate ended.
enum Replayed {
    /// The whole stream is applied. `last_timestamp` is its last event's
    /// when the replay did not apply that event itself (the activation
    /// started from a snapshot at the stream's version).
    Whole { last_timestamp: Option<u64> },
    /// The aggregate lost its instance meanwhile (a guest failure in the
    /// same instance, or new limits): decide again from the store.
    Lost,
}

impl Runtime {
    /// Whether the live `version` of `stream` is still the stream's version
    /// in the store: see [`Runtime::stored_version`].
    async fn confirm_current(
        &self,
        partition: &PartitionHandle,
        stream: &StreamId,
        version: u64,
    ) -> Result<bool, CommandError> {
        Ok(self.stored_version(partition, stream, version).await? == version)
    }

    /// The stream's version in the store, read now. If it is not the live
    /// `version`, the live copy is passivated (its next use rebuilds it).
    /// A store that answers with an older version than the live one cannot
    /// be trusted now: a retryable error.
    pub(super) async fn stored_version(
        &self,
        partition: &PartitionHandle,
        stream: &StreamId,
        version: u64,
    ) -> Result<u64, CommandError> {
        let stored = self.inner.store.stream_version(stream).await?;
        if stored == version {
            return Ok(stored);
        }
        let s = stream.clone();
        partition.call(move |p| p.passivate(&s)).await?;
        if stored < version {
            return Err(CommandError::Store(StoreError::Unavailable {
                backend: "runtime",
                message: format!(
                    "the store reports version {stored} of {stream}, behind the {version} already applied here"
                ),
            }));
        }
        tracing::debug!(%stream, live = version, stored, "the live copy was stale; rebuilding it");
        Ok(stored)
    }

    /// Derives the aggregate's state by activating it (if not live) and
    /// asking its component for the view.
    pub async fn state(&self, stream: &StreamId) -> Result<AggregateState, CommandError> {
        let (view, version) = self.read_live(stream, |p, s| p.view(s)).await?;
        Ok(AggregateState {
            version,
            view: view?,
        })
    }

    /// [`Runtime::state`] with the view as compact JSON bytes (what
    /// `serde_json::to_vec` makes of [`AggregateState::view`]), written on
    /// the namespace's own partition thread: the version and the bytes.
    pub async fn state_json(&self, stream: &StreamId) -> Result<(u64, Vec<u8>), CommandError> {
        let (view, version) = self.read_live(stream, |p, s| p.view_json(s)).await?;
        Ok((version, view?))
    }

    /// The component's snapshot of the aggregate (activating it if not
    /// live) and the version it was taken at; for tests and tools.
    pub async fn snapshot_bytes(&self, stream: &StreamId) -> Result<(Vec<u8>, u64), CommandError> {
        self.read_live(stream, |p, s| {
            p.snapshot(s).map(|taken| (taken.state, taken.version))
        })
        .await
    }

    /// Runs a read-only call on the live aggregate, activating it first,
    /// in the aggregate's turn. The answer is given only once the store
    /// confirms the live version is the stream's version (a read is never
    /// older than the store at some instant during the call).
    async fn read_live<R: Send + 'static>(
        &self,
        stream: &StreamId,
        read: LiveRead<R>,
    ) -> Result<(R, u64), CommandError> {
        let component = self.component_for(&stream.namespace, &stream.aggregate_type)?;
        let partition = self.inner.lanes.lane(&stream.namespace).partition(stream)?;
        let _turn = self.inner.locks.lock(stream).await;
        // Dropped before the turn: no eviction between this read's jobs.
        let _pin = partition.pin(stream);
        let (mut refreshed, mut lost) = (0, 0);
        loop {
            let live = self.ensure_live(&partition, stream, &component).await?;
            let answer = match live {
                Some(_) => {
                    let s = stream.clone();
                    match partition.call(move |p| read(p, &s)).await? {
                        Ok((value, version)) => Some((value, version)),
                        // Pinned, so only a dropped instance takes it away.
                        Err(CallError::NotLive) => None,
                        Err(CallError::Guest(failure)) => return Err(failure.into()),
                    }
                }
                None => None,
            };
            let Some((value, version)) = answer else {
                lost += 1;
                if lost > LOST_LIMIT {
                    return Err(instances_kept_failing(stream));
                }
                continue;
            };
            if self.confirm_current(&partition, stream, version).await? {
                return Ok((value, version));
            }
            refreshed += 1;
            if refreshed > REFRESH_LIMIT {
                return Err(CommandError::Store(StoreError::Unavailable {
                    backend: "runtime",
                    message: format!(
                        "{stream} kept changing while its state was read ({REFRESH_LIMIT} refreshes)"
                    ),
                }));
            }
        }
    }

    /// Passivates an aggregate: its next use rebuilds it from the store.
    pub async fn passivate(&self, stream: &StreamId) -> Result<(), CommandError> {
        let lane = self.inner.lanes.lane(&stream.namespace);
        // A stopped lane has nothing live: no need to start it.
        let Some(partition) = lane.running_partition(stream) else {
            return Ok(());
        };
        let _turn = self.inner.locks.lock(stream).await;
        let s = stream.clone();
        partition.call(move |p| p.passivate(&s)).await?;
        Ok(())
    }

    pub(super) fn component_for(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<Arc<LoadedComponent>, CommandError> {
        self.inner
            .registry
            .active(namespace, aggregate_type)
            .ok_or_else(|| CommandError::UnknownAggregateType {
                namespace: namespace.clone(),
                aggregate_type: aggregate_type.clone(),
            })
    }

    /// The newest snapshot of `stream` made by `component`, if any, with
    /// the command-id filter saved at the same version. A snapshot that
    /// cannot be read is skipped (full replay), never fatal; a filter that
    /// cannot be read, or is of another version, is not used.
    async fn starting_point(
        &self,
        stream: &StreamId,
        component: &LoadedComponent,
    ) -> StartingPoint {
        let store = &self.inner.store;
        let snapshot = match store.load_snapshot(stream, &component.snapshot_key()).await {
            Ok(snapshot) => snapshot?,
            Err(error) => {
                tracing::warn!(%stream, %error, "cannot load the snapshot; replaying in full");
                return None;
            }
        };
        let command_ids = match store.load_snapshot(stream, command_ids::SNAPSHOT_KEY).await {
            Ok(Some(saved)) if saved.version == snapshot.version => {
                CommandIds::from_bytes(&saved.state)
            }
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%stream, %error, "cannot load the command ids saved with the snapshot");
                None
            }
        };
        Some(Snapshotted {
            version: snapshot.version,
            state: snapshot.state,
            command_ids,
        })
    }

    /// Makes the aggregate live under `component` and returns its
    /// position: already live, or activated from its newest snapshot by
    /// the same component (if any) and the events after it, replayed in
    /// batches. The caller holds the aggregate's lock and its pin, so the
    /// LRU cannot evict it meanwhile; `None` if it lost its instance
    /// (another aggregate's guest failure, new limits): decide again.
    ///
    /// All or nothing: the aggregate becomes live only once the whole
    /// stream is applied; a failed read or apply passivates it and returns
    /// the error (a cancelled call leaves it incomplete, which its next use
    /// discards), so no answer is ever derived from part of a stream.
    async fn ensure_live(
        &self,
        partition: &PartitionHandle,
        stream: &StreamId,
        component: &Arc<LoadedComponent>,
    ) -> Result<Option<LivePosition>, CommandError> {
        let (s, digest) = (stream.clone(), component.digest().clone());
        if let Some(live) = partition.call(move |p| p.live_version(&s, &digest)).await? {
            return Ok(Some(live));
        }
        self.activate_live(partition, stream, component).await
    }

    /// The activation half of [`Runtime::ensure_live`], for an aggregate
    /// known not to be live under `component` (same contract).
    pub(super) async fn activate_live(
        &self,
        partition: &PartitionHandle,
        stream: &StreamId,
        component: &Arc<LoadedComponent>,
    ) -> Result<Option<LivePosition>, CommandError> {
        let snapshot = self.starting_point(stream, component).await;
        let (s, c) = (stream.clone(), component.clone());
        let start = partition
            .call(move |p| p.activate(&s, &c, snapshot))
            .await??;
        match self.replay(partition, stream, start).await {
            Ok(Replayed::Whole { last_timestamp }) => {
                let s = stream.clone();
                Ok(partition
                    .call(move |p| p.complete(&s, last_timestamp))
                    .await?)
            }
            Ok(Replayed::Lost) => Ok(None),
            Err(error) => {
                let s = stream.clone();
                partition.call(move |p| p.passivate(&s)).await?;
                Err(error)
            }
        }
    }

    /// Applies the stream's events after version `start` to the aggregate
    /// being activated, in batches the store writes in the guest's layout
    /// ([`aether_store::EventStore::read_replay_batch`]); the partition
    /// checks that each continues the live version.
    ///
    /// Once the first batch comes back full (a long stream), the next
    /// batches are read while the partition applies the current one, as
    /// many in flight at once as the store asks for
    /// ([`aether_store::EventStore::replay_read_ahead`]: two keep both
    /// cores of a small machine busy, two reads and the guest's apply, and
    /// cost at most two reads past the end of the stream). Stored events
    /// never change, so reading ahead reads what a read after the apply
    /// would.
    /// The replay still ends at the first batch that is not full, and the
    /// reads after it are dropped unread. A read-ahead that fails matters
    /// only if every batch before it applied.
    async fn replay(
        &self,
        partition: &PartitionHandle,
        stream: &StreamId,
        start: u64,
    ) -> Result<Replayed, CommandError> {
        let limit = self.inner.config.replay_batch.max(1);
        let store = &self.inner.store;
        let read_ahead = store.replay_read_ahead().max(1);
        let mut version = start;
        let mut batch = store.read_replay_batch(stream, version + 1, limit).await?;
        // Reads in flight, in version order; `next_from` is where the next
        // one to start begins.
        let mut ahead = FuturesOrdered::new();
        let mut next_from = version + 1 + batch.len() as u64;
        loop {
            let Some((last_version, _)) = batch.events().last() else {
                if version > start || version == 0 {
                    return Ok(Replayed::Whole {
                        last_timestamp: None,
                    });
                }
                // From a snapshot, with nothing after it: its last event's
                // timestamp still bounds the next one's.
                let last = store.read_stream(stream, version, 1).await?;
                return Ok(Replayed::Whole {
                    last_timestamp: last.first().map(|e| e.timestamp_ms),
                });
            };
            let full = batch.len() == limit;
            if full {
                while ahead.len() < read_ahead {
                    ahead.push_back(store.read_replay_batch(stream, next_from, limit));
                    next_from += limit as u64;
                }
            }
            let s = stream.clone();
            let apply = partition.call(move |p| p.apply(&s, &batch));
            let (applied, next) = if full {
                let (applied, next) = tokio::join!(apply, ahead.next());
                (applied, next)
            } else {
                (apply.await, None)
            };
            match applied? {
                Ok(v) => version = v,
                Err(CallError::NotLive) => return Ok(Replayed::Lost),
                Err(CallError::Guest(failure)) => return Err(failure.into()),
            }
            debug_assert_eq!(version, last_version);
            let Some(next) = next else {
                return Ok(Replayed::Whole {
                    last_timestamp: None,
                });
            };
            batch = next?;
        }
    }
}
