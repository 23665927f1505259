//! The Event Bus: fans stored events out to subscribers.
//!
//! This is the in-process bus. Publishing never blocks the command path:
//! each subscriber reads from a bounded ring, and one that falls behind by
//! more than the ring's capacity is cut off with [`BusError::Lagged`]
//! (saying how many events it missed) and counted
//! ([`LocalBus::cut_off_subscribers`]) rather than silently skipped.
//!
//! A subscription is scoped to one namespace ([`Scope::Namespace`]);
//! [`Scope::AllNamespaces`] is an explicit opt-in for operators' tools and
//! is logged as a warning. Within its scope a subscriber sees only the
//! events its [`Filter`] matches: by event type and by aggregate type and
//! an aggregate-id pattern.
//!
//! Durable subscriptions that start from a checkpoint and read history
//! before live events are in [`catchup`]; fan-out across nodes over NATS,
//! with the same scopes and filters, in [`nats`] (for a store without a
//! feed of its own) and [`feed`] (the JetStream store's streams, which are
//! the bus when events live in JetStream).
//!
//! **Architecture invariant:** `publish` is called only after the store has
//! acknowledged the events, and never waits for a subscriber.
//!
//! **Invariant:** a subscriber of one namespace is woken only by that
//! namespace's events. Each namespace someone listens to has a ring of its
//! own, and one more ring carries every event for the subscribers across
//! namespaces (and the NATS forwarder). With one ring for all, every live
//! stream of every tenant woke for every event any tenant stored and
//! dropped the others' on the node's shared async workers: one tenant's
//! streams taxed every other tenant's commands.

pub mod catchup;
pub mod feed;
mod filter;
pub mod nats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

pub use filter::{Filter, IdPattern, InvalidPattern, Scope};

use aether_core::event::EventSink;
use aether_core::namespace::Namespace;
use aether_store::RecordedEvent;

/// Events a subscriber may fall behind by before it is cut off (events of
/// its namespace, or of every namespace for one across namespaces).
pub const DEFAULT_CAPACITY: usize = 4096;

type Ring = broadcast::Sender<Arc<RecordedEvent>>;

/// The in-process event bus.
pub struct LocalBus {
    capacity: usize,
    /// Every event, for subscribers across namespaces and the NATS
    /// forwarder.
    every: Ring,
    /// Each namespace's events, for the namespaces with a subscriber (a
    /// ring takes about 40 bytes per event of capacity; it is dropped at
    /// the first publish or subscription after its last subscriber left).
    namespaces: RwLock<HashMap<Namespace, Ring>>,
    cut_off: Arc<AtomicU64>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

/// Why a subscriber stopped receiving.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The subscriber fell behind and was cut off; it missed this many
    /// events. Resubscribe and catch up from the store's log (or use a
    /// [`catchup`] subscription, which does so itself).
    #[error("subscriber fell behind and was cut off after missing {0} events")]
    Lagged(u64),
    /// The bus was shut down.
    #[error("the bus is closed")]
    Closed,
    /// The subscription cannot be made, for the reason given.
    #[error("subscription refused: {0}")]
    Refused(String),
}

impl LocalBus {
    /// A bus whose subscribers may fall `capacity` events behind.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            every: broadcast::channel(capacity).0,
            namespaces: RwLock::default(),
            cut_off: Arc::default(),
        }
    }

    /// Publishes stored events to their namespaces' subscribers and to
    /// those of every namespace; never blocks (the lock is held only while
    /// events are put in rings).
    pub fn publish(&self, events: &[RecordedEvent]) {
        let mut unheard = false;
        {
            let namespaces = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
            for event in events {
                let ring = namespaces.get(&event.stream.namespace);
                if ring.is_none() && self.every.receiver_count() == 0 {
                    continue;
                }
                let event = Arc::new(event.clone());
                if let Some(ring) = ring {
                    // An error means its last subscriber has left.
                    unheard |= ring.send(event.clone()).is_err();
                }
                // An error only means there is no such subscriber now.
                let _ = self.every.send(event);
            }
        }
        if unheard {
            let mut namespaces = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
            namespaces.retain(|_, ring| ring.receiver_count() > 0);
        }
    }

    /// Subscribes to the events of `scope` that `filter` matches, from now
    /// on.
    pub fn subscribe(&self, scope: Scope, filter: Filter) -> Subscriber {
        if let Scope::AllNamespaces { reason } = &scope {
            tracing::warn!(%reason, "a subscription spans every namespace");
        }
        let receiver = match &scope {
            Scope::Namespace(namespace) => self.listen(namespace),
            Scope::AllNamespaces { .. } => self.every.subscribe(),
        };
        Subscriber {
            scope,
            filter,
            receiver,
            cut_off: false,
            cut_off_count: self.cut_off.clone(),
        }
    }

    /// How many subscribers have been cut off for falling behind, ever.
    pub fn cut_off_subscribers(&self) -> u64 {
        self.cut_off.load(Ordering::Relaxed)
    }

    /// A receiver of every event `namespace` publishes from now on,
    /// unfiltered: for the catch-up subscriptions, which filter themselves
    /// and need every position of the namespace's log.
    pub(crate) fn listen(&self, namespace: &Namespace) -> broadcast::Receiver<Arc<RecordedEvent>> {
        let mut namespaces = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        namespaces.retain(|_, ring| ring.receiver_count() > 0);
        namespaces
            .entry(namespace.clone())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// A receiver of every event published from now on, of every
    /// namespace: for the NATS forwarder.
    pub(crate) fn every_event(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.every.subscribe()
    }

    /// How many namespaces have a ring (for tests).
    #[cfg(test)]
    fn rings(&self) -> usize {
        self.namespaces.read().unwrap().len()
    }
}

/// Receives the events of one scope that its filter matches, in publish
/// order.
pub struct Subscriber {
    scope: Scope,
    filter: Filter,
    receiver: broadcast::Receiver<Arc<RecordedEvent>>,
    cut_off: bool,
    cut_off_count: Arc<AtomicU64>,
}

impl Subscriber {
    /// The next matching event.
    pub async fn recv(&mut self) -> Result<Arc<RecordedEvent>, BusError> {
        if self.cut_off {
            return Err(BusError::Closed);
        }
        loop {
            match self.receiver.recv().await {
                Ok(event) if self.scope.contains(&event) && self.filter.matches(&event) => {
                    return Ok(event);
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.cut_off = true;
                    self.cut_off_count.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(scope = %self.scope, missed, "bus subscriber cut off");
                    return Err(BusError::Lagged(missed));
                }
                Err(broadcast::error::RecvError::Closed) => return Err(BusError::Closed),
            }
        }
    }
}

/// One interface over the in-process bus and the NATS bus: publish stored
/// events, subscribe to a scope with a filter.
#[async_trait::async_trait]
pub trait Bus: Send + Sync {
    /// Publishes stored events; never waits for a subscriber.
    async fn publish_events(&self, events: &[RecordedEvent]);

    /// Subscribes to the events of `scope` that `filter` matches, from now
    /// on.
    async fn subscribe_to(
        &self,
        scope: Scope,
        filter: Filter,
    ) -> Result<Box<dyn Subscription>, BusError>;
}

/// A subscription on either bus.
#[async_trait::async_trait]
pub trait Subscription: Send {
    /// The next matching event, or why there is none (cut off for falling
    /// behind, or closed).
    async fn next_event(&mut self) -> Result<Arc<RecordedEvent>, BusError>;
}

#[async_trait::async_trait]
impl Bus for LocalBus {
    async fn publish_events(&self, events: &[RecordedEvent]) {
        self.publish(events);
    }

    async fn subscribe_to(
        &self,
        scope: Scope,
        filter: Filter,
    ) -> Result<Box<dyn Subscription>, BusError> {
        Ok(Box::new(self.subscribe(scope, filter)))
    }
}

#[async_trait::async_trait]
impl Subscription for Subscriber {
    async fn next_event(&mut self) -> Result<Arc<RecordedEvent>, BusError> {
        self.recv().await
    }
}

impl EventSink for LocalBus {
    fn publish(&self, events: &[RecordedEvent]) {
        LocalBus::publish(self, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_core::namespace::Namespace;
    use aether_store::{EventMetadata, StreamId};

    pub(crate) fn event(
        ns: &str,
        ty: &str,
        id: &str,
        event_type: &str,
        position: u64,
    ) -> RecordedEvent {
        RecordedEvent {
            id: uuid::Uuid::nil(),
            stream: StreamId::new(
                ns.parse().unwrap(),
                ty.parse().unwrap(),
                id.parse().unwrap(),
            ),
            version: 1,
            position,
            event_type: event_type.into(),
            content_type: "application/json".into(),
            data: b"{}".to_vec(),
            metadata: EventMetadata::default(),
            timestamp_ms: 0,
        }
    }

    fn namespace(name: &str) -> Scope {
        Scope::Namespace(Namespace::new(name).unwrap())
    }

    #[tokio::test]
    async fn a_subscriber_sees_only_its_namespace_and_filter() {
        let bus = LocalBus::default();
        let filter = Filter {
            event_types: Some(["Deposited".to_owned()].into()),
            aggregate_type: None,
            aggregate_id: Some(IdPattern::new("vip-*").unwrap()),
        };
        let mut subscriber = bus.subscribe(namespace("bank"), filter);
        let mut everything = bus.subscribe(
            Scope::AllNamespaces {
                reason: "test".into(),
            },
            Filter::default(),
        );
        bus.publish(&[
            event("shop", "account", "vip-1", "Deposited", 1),
            event("bank", "account", "vip-1", "Opened", 2),
            event("bank", "account", "acc-1", "Deposited", 3),
            event("bank", "account", "vip-2", "Deposited", 4),
        ]);
        assert_eq!(subscriber.recv().await.unwrap().position, 4);
        for position in 1..=4 {
            assert_eq!(everything.recv().await.unwrap().position, position);
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_cut_off_and_counted() {
        let bus = LocalBus::with_capacity(2);
        let mut slow = bus.subscribe(namespace("bank"), Filter::default());
        let events: Vec<_> = (1..=5)
            .map(|p| event("bank", "account", "a", "E", p))
            .collect();
        bus.publish(&events);
        assert_eq!(slow.recv().await, Err(BusError::Lagged(3)));
        assert_eq!(slow.recv().await, Err(BusError::Closed), "stays cut off");
        assert_eq!(bus.cut_off_subscribers(), 1);
    }

    /// Another tenant's events neither wake a namespace's subscriber nor
    /// fill its ring: far more of them than the ring holds leave it
    /// uncut, and its own event is the next it gets.
    #[tokio::test]
    async fn other_namespaces_events_never_reach_a_namespaces_ring() {
        let bus = LocalBus::with_capacity(2);
        let mut bank = bus.subscribe(namespace("bank"), Filter::default());
        let mut live = bus.listen(&Namespace::new("bank").unwrap());
        let shop: Vec<_> = (1..=10)
            .map(|p| event("shop", "account", "a", "E", p))
            .collect();
        bus.publish(&shop);
        assert!(live.try_recv().is_err(), "nothing of bank's was published");
        bus.publish(&[event("bank", "account", "a", "E", 1)]);
        assert_eq!(bank.recv().await.unwrap().position, 1);
        assert_eq!(live.recv().await.unwrap().position, 1);
        assert_eq!(bus.cut_off_subscribers(), 0);
    }

    #[tokio::test]
    async fn a_namespaces_ring_goes_with_its_last_subscriber() {
        let bus = LocalBus::default();
        let bank = bus.subscribe(namespace("bank"), Filter::default());
        let again = bus.subscribe(namespace("bank"), Filter::default());
        assert_eq!(bus.rings(), 1, "one ring per namespace");
        drop(bank);
        bus.publish(&[event("bank", "account", "a", "E", 1)]);
        assert_eq!(bus.rings(), 1, "a subscriber is left");
        drop(again);
        bus.publish(&[event("bank", "account", "a", "E", 2)]);
        assert_eq!(bus.rings(), 0);
        // A new subscriber gets a new ring and the events from then on.
        let mut late = bus.subscribe(namespace("bank"), Filter::default());
        bus.publish(&[event("bank", "account", "a", "E", 3)]);
        assert_eq!(late.recv().await.unwrap().position, 3);
        // A namespace that never publishes again loses its ring at the
        // next subscription anywhere.
        drop(bus.subscribe(namespace("shop"), Filter::default()));
        assert_eq!(bus.rings(), 2);
        let _zoo = bus.subscribe(namespace("zoo"), Filter::default());
        assert_eq!(bus.rings(), 2, "bank's and zoo's");
    }
}
