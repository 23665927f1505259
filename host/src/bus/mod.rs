//! The Event Bus: fans stored events out to subscribers.
//!
//! This is the in-process bus. Publishing never blocks the command path:
//! each subscriber reads from a bounded ring, and one that falls behind by
//! more than the ring's capacity is cut off with [`BusError::Lagged`]
//! (saying how many events it missed) rather than silently skipping them.
//! Subscriptions are scoped to one namespace.
//!
//! **Architecture invariant:** `publish` is called only after the store has
//! acknowledged the events, and never waits for a subscriber.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::namespace::Namespace;
use crate::store::RecordedEvent;

/// Events a subscriber may fall behind by before it is cut off.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The in-process event bus.
pub struct LocalBus {
    sender: broadcast::Sender<Arc<RecordedEvent>>,
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
    /// events. Resubscribe and catch up from the store's global log.
    #[error("subscriber fell behind and was cut off after missing {0} events")]
    Lagged(u64),
    /// The bus was shut down.
    #[error("the bus is closed")]
    Closed,
}

impl LocalBus {
    /// A bus whose subscribers may fall `capacity` events behind.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Publishes stored events to every subscriber; never blocks.
    pub fn publish(&self, events: &[RecordedEvent]) {
        for event in events {
            // An error only means there is no subscriber right now.
            let _ = self.sender.send(Arc::new(event.clone()));
        }
    }

    /// Subscribes to the events of one namespace, from now on.
    pub fn subscribe(&self, namespace: Namespace) -> Subscriber {
        Subscriber {
            namespace,
            receiver: self.sender.subscribe(),
            cut_off: false,
        }
    }
}

/// Receives the events of one namespace, in publish order.
pub struct Subscriber {
    namespace: Namespace,
    receiver: broadcast::Receiver<Arc<RecordedEvent>>,
    cut_off: bool,
}

impl Subscriber {
    /// The next event of the subscribed namespace.
    pub async fn recv(&mut self) -> Result<Arc<RecordedEvent>, BusError> {
        if self.cut_off {
            return Err(BusError::Closed);
        }
        loop {
            match self.receiver.recv().await {
                Ok(event) if event.stream.namespace == self.namespace => return Ok(event),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.cut_off = true;
                    tracing::warn!(namespace = %self.namespace, missed, "bus subscriber cut off");
                    return Err(BusError::Lagged(missed));
                }
                Err(broadcast::error::RecvError::Closed) => return Err(BusError::Closed),
            }
        }
    }
}
