//! Durable catch-up subscriptions: read from a checkpoint through the
//! store's history into live events, without a gap and without a
//! subscriber-visible switch.
//!
//! A catch-up subscription follows ONE namespace: it reads that
//! namespace's log ([`EventStore::read_log`]), and every position here (the
//! start, [`CatchUp::position`], the checkpoint) is a position in that log.
//! Positions of different namespaces are unrelated, so there is no
//! catch-up across namespaces ([`super::Scope::AllNamespaces`] exists only
//! for live subscriptions); a tool that needs several namespaces runs one
//! catch-up per namespace.
//!
//! ```text
//! start:  listen to the namespace's events on the bus     ─┐ buffered while
//!         (unfiltered)                                     │ history is read
//!         read the log from the checkpoint, page by page   │
//! live:   take the next published event:                   ◀┘
//!           position ≤ last seen  → already delivered (or skipped): drop
//!           position = last + 1   → deliver if it matches
//!           position > last + 1   → a gap (published out of order, or the
//!                                   buffer overflowed): read the log again
//!                                   from last + 1, then carry on live
//!           nothing of the namespace for 500 ms
//!                                 → read the log again (events another
//!                                   node stored in a shared store)
//! ```
//!
//! A store that has a feed of its own ([`EventStore::follow_log`]: the
//! JetStream store, shared by every node) is followed instead of the bus:
//! its follower reads history and then each event as any node stores it,
//! in one stream, with no polling and no second publish of the events.
//!
//! Events come out in log order (so in version order per stream), each at
//! least once across restarts: a named subscriber's checkpoint is the last
//! position it [`CatchUp::commit`]ted, kept in the store (as the
//! never-going-backwards snapshot of the subscriber's own stream, see
//! [`aether_core::namespace::layout::subscriber_stream`]); it resumes after it.
//! A subscriber that falls behind the bus is never cut off: it reads the
//! missed stretch from the log.
//!
//! **Invariant:** the bus is listened to *before* history is read, so an
//! event stored while the subscriber switches from history to live is seen
//! either in the log or on the bus.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Filter, LocalBus, Scope};
use aether_core::namespace::layout::subscriber_stream;
use aether_core::namespace::{InvalidName, Namespace};
use aether_store::{EventStore, LogFollower, RecordedEvent, Snapshot, StoreError, StreamId};

/// Events read from the log per round trip.
const PAGE: usize = 1024;

/// How long the bus may stay quiet before the log is read again.
const QUIET_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// The snapshot key checkpoints are kept under.
const CHECKPOINT: &str = "checkpoint";

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// From the first event of the namespace's log.
    Beginning,
    /// After the named subscriber's checkpoint (from the beginning if it
    /// has none).
    Checkpoint,
    /// After this position in the namespace's log.
    After(u64),
    /// From the next event stored.
    Now,
}

/// Why a catch-up subscription stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatchUpError {
    /// Reading the log or the checkpoint failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The subscriber's name is not valid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// Only a named subscription has a checkpoint.
    #[error("starting from a checkpoint needs a subscriber name")]
    Unnamed,
    /// The bus closed (the node is stopping).
    #[error("the event bus closed")]
    Closed,
}

/// Where a catch-up subscription's events come from once it has read
/// history.
enum Source {
    /// Every event this process publishes (listened to before history was
    /// read), with the log read again for what it misses.
    Bus(broadcast::Receiver<Arc<RecordedEvent>>),
    /// The store's own feed of the namespace's log (history too): the bus,
    /// the pages and the polling are not used.
    Feed(Box<dyn LogFollower>),
}

/// A catch-up subscription; see the module docs.
pub struct CatchUp {
    store: Arc<dyn EventStore>,
    /// Where events come from after history.
    source: Source,
    /// The namespace followed; `scope` is always `Scope::Namespace` of it.
    namespace: Namespace,
    scope: Scope,
    filter: Filter,
    checkpoint: Option<StreamId>,
    /// The last position of the namespace's log read (delivered, or
    /// skipped by the filter).
    last: u64,
    /// Events read from the log, not handed out yet.
    pending: VecDeque<RecordedEvent>,
    /// Whether the next events come from the bus (else from the log).
    following: bool,
    /// When following, read the log again if no event of the namespace
    /// arrived by then.
    quiet_until: tokio::time::Instant,
}

impl CatchUp {
    /// Starts a subscription to the events of `namespace` that `filter`
    /// matches; `name` makes it durable (a checkpoint per namespace and
    /// name).
    pub async fn start(
        store: Arc<dyn EventStore>,
        bus: &LocalBus,
        namespace: &Namespace,
        filter: Filter,
        name: Option<&str>,
        from: StartFrom,
    ) -> Result<CatchUp, CatchUpError> {
        // Listen first: see the module's invariant.
        let live = bus.listen(namespace);
        let checkpoint = name
            .map(|name| subscriber_stream(namespace, name))
            .transpose()?;
        let last = match from {
            StartFrom::Beginning => 0,
            StartFrom::After(position) => position,
            StartFrom::Now => store.head_position(namespace).await?,
            StartFrom::Checkpoint => {
                let stream = checkpoint.as_ref().ok_or(CatchUpError::Unnamed)?;
                let saved = store.load_snapshot(stream, CHECKPOINT).await?;
                saved.map_or(0, |s| s.version)
            }
        };
        let source = match store.follow_log(namespace, last).await? {
            Some(feed) => Source::Feed(feed),
            None => Source::Bus(live),
        };
        Ok(CatchUp {
            store,
            source,
            namespace: namespace.clone(),
            scope: Scope::Namespace(namespace.clone()),
            filter,
            checkpoint,
            last,
            pending: VecDeque::new(),
            following: false,
            quiet_until: tokio::time::Instant::now(),
        })
    }

    /// The position in the namespace's log up to which every event has been
    /// handed out (or skipped by the filter): what [`CatchUp::commit`]
    /// records.
    pub fn position(&self) -> u64 {
        self.pending
            .front()
            .map_or(self.last, |next| next.position - 1)
    }

    /// The next matching event, from the log or live.
    pub async fn next(&mut self) -> Result<RecordedEvent, CatchUpError> {
        let live = match &mut self.source {
            Source::Bus(live) => live,
            Source::Feed(feed) => loop {
                let event = feed.next().await?;
                self.last = event.position;
                if wants(&self.scope, &self.filter, &event) {
                    return Ok(event);
                }
            },
        };
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if !self.following {
                let page = self
                    .store
                    .read_log(&self.namespace, self.last + 1, PAGE)
                    .await?;
                if page.is_empty() {
                    self.following = true;
                    self.quiet_until = tokio::time::Instant::now() + QUIET_POLL;
                }
                for event in page {
                    self.last = event.position;
                    if wants(&self.scope, &self.filter, &event) {
                        self.pending.push_back(event);
                    }
                }
                continue;
            }
            // Events stored by other nodes (a shared JetStream store) never
            // reach this node's bus: look at the log whenever the bus has
            // been quiet about this namespace for a while.
            let received = tokio::time::timeout_at(self.quiet_until, live.recv()).await;
            let Ok(received) = received else {
                self.following = false;
                continue;
            };
            match received {
                Ok(event) if event.position <= self.last => {}
                Ok(event) if event.position == self.last + 1 => {
                    self.last = event.position;
                    self.quiet_until = tokio::time::Instant::now() + QUIET_POLL;
                    if wants(&self.scope, &self.filter, &event) {
                        return Ok((*event).clone());
                    }
                }
                // A gap, or the bus outran us: the log has everything.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.following = false,
                Err(broadcast::error::RecvError::Closed) => return Err(CatchUpError::Closed),
            }
        }
    }

    /// Records [`CatchUp::position`] as the subscriber's checkpoint, so a
    /// restart resumes after the last event handed out. Call it once the
    /// events up to here are processed. (An unnamed subscription has
    /// nothing to record.)
    pub async fn commit(&self) -> Result<(), StoreError> {
        let Some(stream) = &self.checkpoint else {
            return Ok(());
        };
        self.store
            .save_snapshot(Snapshot {
                stream: stream.clone(),
                version: self.position(),
                snapshot_key: CHECKPOINT.into(),
                state: Vec::new(),
                timestamp_ms: aether_core::clock::now_ms(),
            })
            .await
    }
}

/// Whether a subscription of `scope` with `filter` hands `event` out.
fn wants(scope: &Scope, filter: &Filter, event: &RecordedEvent) -> bool {
    scope.contains(event) && filter.matches(event)
}
