//! Verified deploy: before a new component goes live, replay existing
//! streams of its aggregate type through it.
//!
//! Every stream of the type (or an evenly spread sample) is replayed from
//! its first event in an instance of its own ([`DirectAggregate`], on a
//! blocking thread, never touching the live aggregates). A stream whose
//! replay traps, runs past its deadline or memory, or whose events the new
//! component refuses to apply is a *failure*; a stream whose view differs
//! from the one the active component derives is a *change* (expected when
//! the new version changes the view; worth reading when it should not).
//! The deploy is refused if any replay fails: the new version could not
//! serve those aggregates.
//!
//! Finding the streams scans the global log (there is no stream index by
//! type yet), which is linear in the store's size.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use super::Node;
use aether_core::namespace::{AggregateType, Namespace};
use aether_runtime::{DirectAggregate, GuestFailure, LoadedComponent};
use aether_store::{StoreError, StreamId};

/// Events read per round trip while replaying or scanning.
const PAGE: usize = 4096;

/// How many changed views the report shows in full.
const CHANGED_EXAMPLES: usize = 5;

/// A stream the candidate could not replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayFailure {
    /// The stream.
    pub stream: String,
    /// `trap`, `deadline_exceeded`, `memory_limit`, `apply_failed`, …
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// A stream whose view the candidate derives differently.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedView {
    /// The stream.
    pub stream: String,
    /// The active component's view.
    pub before: serde_json::Value,
    /// The candidate's view.
    pub after: serde_json::Value,
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Streams of the type in the namespace.
    pub streams_total: usize,
    /// Streams replayed (all, or the sample).
    pub streams_checked: usize,
    /// Events replayed through the candidate.
    pub events_replayed: u64,
    /// Streams the candidate could not replay: the deploy is refused.
    pub failures: Vec<ReplayFailure>,
    /// How many streams' views changed.
    pub views_changed: usize,
    /// The first few changed views in full.
    pub changed_examples: Vec<ChangedView>,
}

impl VerifyReport {
    /// Whether the candidate may go live.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl Node {
    /// Replays the type's streams (all, or `sample` of them) through
    /// `candidate`; `progress(done, total)` is called after each stream.
    pub async fn verify(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
        candidate: &Arc<LoadedComponent>,
        sample: Option<usize>,
        progress: impl Fn(usize, usize) + Send + Sync,
    ) -> Result<VerifyReport, StoreError> {
        let streams = self.streams_of(namespace, aggregate_type).await?;
        let chosen = choose(&streams, sample);
        let mut report = VerifyReport {
            streams_total: streams.len(),
            streams_checked: chosen.len(),
            ..VerifyReport::default()
        };
        progress(0, chosen.len());
        for (done, stream) in chosen.iter().enumerate() {
            match self
                .replay(stream, candidate, &mut report.events_replayed)
                .await?
            {
                Err(failure) => report.failures.push(ReplayFailure {
                    stream: stream.to_string(),
                    kind: format!("{:?}", failure.kind),
                    message: failure.message,
                }),
                Ok(after) => {
                    let before = self.runtime.state(stream).await.ok().map(|s| s.view);
                    if before.as_ref() != Some(&after) {
                        report.views_changed += 1;
                        if report.changed_examples.len() < CHANGED_EXAMPLES {
                            report.changed_examples.push(ChangedView {
                                stream: stream.to_string(),
                                before: before.unwrap_or(serde_json::Value::Null),
                                after,
                            });
                        }
                    }
                }
            }
            progress(done + 1, chosen.len());
        }
        Ok(report)
    }

    /// Every stream of the type in the namespace, by scanning the
    /// namespace's log.
    async fn streams_of(
        &self,
        namespace: &Namespace,
        aggregate_type: &AggregateType,
    ) -> Result<BTreeSet<StreamId>, StoreError> {
        let store = self.runtime.store();
        let (mut streams, mut from) = (BTreeSet::new(), 1);
        loop {
            let events = store.read_log(namespace, from, PAGE).await?;
            let Some(last) = events.last() else { break };
            from = last.position + 1;
            for event in events {
                if &event.stream.aggregate_type == aggregate_type {
                    streams.insert(event.stream);
                }
            }
        }
        Ok(streams)
    }

    /// Replays `stream` from its first event into a fresh instance of
    /// `candidate`; its view, or how it failed.
    async fn replay(
        &self,
        stream: &StreamId,
        candidate: &Arc<LoadedComponent>,
        events_replayed: &mut u64,
    ) -> Result<Result<serde_json::Value, GuestFailure>, StoreError> {
        let (runtime, component, id) = (self.runtime.clone(), candidate.clone(), stream.clone());
        let created =
            tokio::task::spawn_blocking(move || DirectAggregate::new(&runtime, &component, id))
                .await
                .map_err(|e| StoreError::Unavailable {
                    backend: "verify",
                    message: e.to_string(),
                })?;
        let mut aggregate = match created {
            Ok(aggregate) => aggregate,
            Err(failure) => return Ok(Err(failure)),
        };
        let mut from = 1;
        loop {
            let events = self.runtime.store().read_stream(stream, from, PAGE).await?;
            let Some(last) = events.last() else { break };
            from = last.version + 1;
            *events_replayed += events.len() as u64;
            let (applied, back) = tokio::task::spawn_blocking(move || {
                let applied = aggregate.apply(&events);
                (applied, aggregate)
            })
            .await
            .map_err(|e| StoreError::Unavailable {
                backend: "verify",
                message: e.to_string(),
            })?;
            aggregate = back;
            if let Err(failure) = applied {
                return Ok(Err(failure));
            }
        }
        let view = tokio::task::spawn_blocking(move || aggregate.view())
            .await
            .map_err(|e| StoreError::Unavailable {
                backend: "verify",
                message: e.to_string(),
            })?;
        Ok(view.map(|v| serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v))))
    }
}

/// All streams, or `sample` of them spread evenly over the sorted list.
fn choose(streams: &BTreeSet<StreamId>, sample: Option<usize>) -> Vec<StreamId> {
    let all: Vec<StreamId> = streams.iter().cloned().collect();
    match sample {
        Some(n) if n < all.len() => {
            let n = n.max(1);
            (0..n).map(|i| all[i * all.len() / n].clone()).collect()
        }
        _ => all,
    }
}
