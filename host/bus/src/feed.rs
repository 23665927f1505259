//! The bus over a store's own feed: when events live in JetStream, the
//! namespace's stream is the bus. A subscriber follows it
//! ([`EventStore::follow_log`]) from the head on, so it sees every event any
//! node stores, in position order, and nothing publishes the events a
//! second time.
//!
//! A subscriber reads at its own pace (the store keeps the events), so it
//! is never cut off for falling behind, unlike the in-process and NATS
//! buses. A feed follows one namespace: [`Scope::AllNamespaces`] is refused
//! (each namespace is its own log; follow each one).

use std::sync::Arc;

use super::{Bus, BusError, Filter, Scope, Subscription};
use aether_core::namespace::Namespace;
use aether_store::{EventStore, LogFollower, RecordedEvent, StoreError};

/// Subscriptions to a store's feed; see the module docs.
#[derive(Clone)]
pub struct StoreFeed {
    store: Arc<dyn EventStore>,
}

/// Why a feed subscription could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The store has no feed of its own (its events reach subscribers
    /// through the bus of the process that stores them).
    #[error(
        "this event store has no feed of its own; subscribe on the bus of the node that stores the events"
    )]
    NoFeed,
    /// Finding the head of the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StoreFeed {
    /// Subscriptions to `store`'s feed.
    pub fn new(store: Arc<dyn EventStore>) -> StoreFeed {
        StoreFeed { store }
    }

    /// Follows the events of `namespace` that `filter` matches, from the
    /// next one stored on.
    pub async fn subscribe(
        &self,
        namespace: &Namespace,
        filter: Filter,
    ) -> Result<FeedSubscriber, FeedError> {
        let head = self.store.head_position(namespace).await?;
        let follower = self
            .store
            .follow_log(namespace, head)
            .await?
            .ok_or(FeedError::NoFeed)?;
        Ok(FeedSubscriber { follower, filter })
    }
}

/// Follows one namespace's events on a store's feed.
pub struct FeedSubscriber {
    follower: Box<dyn LogFollower>,
    filter: Filter,
}

impl FeedSubscriber {
    /// The next matching event, waiting for it to be stored.
    pub async fn recv(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            let event = self.follower.next().await?;
            if self.filter.matches(&event) {
                return Ok(event);
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for StoreFeed {
    /// Nothing to do: the store's feed carries every stored event already.
    async fn publish_events(&self, _events: &[RecordedEvent]) {}

    async fn subscribe_to(
        &self,
        scope: Scope,
        filter: Filter,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let Scope::Namespace(namespace) = scope else {
            return Err(BusError::Refused(
                "a store's feed follows one namespace's log; subscribe to each namespace".into(),
            ));
        };
        match self.subscribe(&namespace, filter).await {
            Ok(subscriber) => Ok(Box::new(subscriber)),
            Err(error) => Err(BusError::Refused(error.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl Subscription for FeedSubscriber {
    /// A follower that fails ends the subscription: [`BusError::Closed`]
    /// (logged with the store's error).
    async fn next_event(&mut self) -> Result<Arc<RecordedEvent>, BusError> {
        match self.recv().await {
            Ok(event) => Ok(Arc::new(event)),
            Err(error) => {
                tracing::error!(%error, "a store feed subscription ended");
                Err(BusError::Closed)
            }
        }
    }
}
