//! The NATS bus: fans stored events out across nodes.
//!
//! A node forwards every event its [`LocalBus`] publishes to NATS, on the
//! event's subject ([`aether_core::namespace::layout::bus_subject`]:
//! `aether.bus.<namespace>.<aggregate-type>.<aggregate-id>`), as the
//! event's JSON. Any process subscribes with the same [`Scope`] and
//! [`Filter`] as on the local bus: the scope picks the subjects (one
//! namespace's, or every namespace's by explicit, logged opt-in), the filter
//! is applied to each event received.
//!
//! Publishing never blocks the command path: the forwarder reads the local
//! bus like any other subscriber (if it falls behind it is cut off, counted
//! and logged, and starts again from the live events: remote subscribers
//! that need every event use a catch-up subscription on the store). Each NATS
//! subscriber has a bounded buffer; one that falls behind is cut off with
//! [`BusError::Lagged`] and counted, never silently skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Bus, BusError, Filter, LocalBus, Scope, Subscription};
use aether_core::namespace::layout::{ALL_BUS_SUBJECTS, bus_namespace_subjects, bus_subject};
use aether_store::RecordedEvent;

/// A connection to NATS for the bus.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    cut_off: Arc<AtomicU64>,
}

/// What goes wrong connecting or subscribing.
#[derive(Debug, thiserror::Error)]
#[error("NATS bus: {0}")]
pub struct NatsBusError(String);

impl NatsBus {
    /// Connects to the NATS servers at `urls`.
    pub async fn connect(urls: &[String]) -> Result<NatsBus, NatsBusError> {
        let addresses: Vec<async_nats::ServerAddr> = urls
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| NatsBusError(format!("invalid server address: {e}")))?;
        let client = async_nats::connect(addresses)
            .await
            .map_err(|e| NatsBusError(format!("cannot connect to {}: {e}", urls.join(", "))))?;
        Ok(NatsBus {
            client,
            cut_off: Arc::default(),
        })
    }

    /// The NATS connection (shared with the node's other NATS users).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Forwards every event `local` publishes to NATS, until `local` is
    /// dropped or the connection closes.
    pub fn forward(&self, local: &LocalBus) -> JoinHandle<()> {
        let (client, cut_off) = (self.client.clone(), self.cut_off.clone());
        let mut events = local.every_event();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let payload = match serde_json::to_vec(&*event) {
                            Ok(payload) => payload,
                            Err(error) => {
                                tracing::error!(%error, "cannot encode an event for NATS");
                                continue;
                            }
                        };
                        let subject = bus_subject(&event.stream);
                        if let Err(error) = client.publish(subject, payload.into()).await {
                            tracing::warn!(%error, "cannot publish an event to NATS");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        cut_off.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            missed,
                            "the NATS forwarder fell behind the local bus; remote subscribers missed events"
                        );
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    /// Subscribes to the events of `scope` that `filter` matches, from now
    /// on, with room for `capacity` undelivered events.
    pub async fn subscribe(
        &self,
        scope: Scope,
        filter: Filter,
        capacity: usize,
    ) -> Result<NatsSubscriber, NatsBusError> {
        let subject = match &scope {
            Scope::Namespace(namespace) => bus_namespace_subjects(namespace),
            Scope::AllNamespaces { reason } => {
                tracing::warn!(%reason, "a NATS subscription spans every namespace");
                ALL_BUS_SUBJECTS.to_owned()
            }
        };
        let mut messages = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| NatsBusError(format!("cannot subscribe to {subject}: {e}")))?;
        self.registered()
            .await
            .map_err(|e| NatsBusError(format!("cannot subscribe to {subject}: {e}")))?;
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let cut_off = self.cut_off.clone();
        let task = tokio::spawn(async move {
            let mut missed = 0u64;
            while let Some(message) = messages.next().await {
                let Ok(event) = serde_json::from_slice::<RecordedEvent>(&message.payload) else {
                    tracing::warn!(subject = %message.subject, "not an event on an event subject; ignored");
                    continue;
                };
                if !(scope.contains(&event) && filter.matches(&event)) {
                    continue;
                }
                if missed > 0 {
                    missed += 1;
                    continue;
                }
                match sender.try_send(Ok(Arc::new(event))) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        missed = 1;
                        cut_off.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%scope, "NATS bus subscriber cut off");
                        // Tell it once there is room, then stop.
                        let _ = sender.send(Err(BusError::Lagged(missed))).await;
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            let _ = messages.unsubscribe().await;
        });
        Ok(NatsSubscriber {
            receiver,
            task,
            done: false,
        })
    }

    /// Returns once the server has processed everything this connection
    /// sent so far (a subscription included): a message to a fresh inbox,
    /// sent after it, has come back. (Flushing only empties the client's
    /// buffer; the server handles one connection's commands in order.)
    async fn registered(&self) -> Result<(), String> {
        let inbox = self.client.new_inbox();
        let mut probe = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| e.to_string())?;
        self.client
            .publish(inbox, bytes::Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(std::time::Duration::from_secs(30), probe.next())
            .await
            .map_err(|_| "the server did not answer within 30 s".to_owned())?
            .ok_or_else(|| "the connection closed".to_owned())?;
        let _ = probe.unsubscribe().await;
        Ok(())
    }

    /// How many subscribers and forwarders have fallen behind, ever.
    pub fn cut_off_subscribers(&self) -> u64 {
        self.cut_off.load(Ordering::Relaxed)
    }
}

/// Receives matching events from NATS, in the order NATS delivers them.
pub struct NatsSubscriber {
    receiver: mpsc::Receiver<Result<Arc<RecordedEvent>, BusError>>,
    task: JoinHandle<()>,
    done: bool,
}

impl NatsSubscriber {
    /// The next matching event, or why there is none.
    pub async fn recv(&mut self) -> Result<Arc<RecordedEvent>, BusError> {
        if self.done {
            return Err(BusError::Closed);
        }
        match self.receiver.recv().await {
            Some(Ok(event)) => Ok(event),
            Some(Err(error)) => {
                self.done = true;
                Err(error)
            }
            None => {
                self.done = true;
                Err(BusError::Closed)
            }
        }
    }
}

impl Drop for NatsSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Room for undelivered events of a subscription made through [`Bus`].
pub const DEFAULT_CAPACITY: usize = super::DEFAULT_CAPACITY;

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn publish_events(&self, events: &[RecordedEvent]) {
        for event in events {
            match serde_json::to_vec(event) {
                Ok(payload) => {
                    let subject = bus_subject(&event.stream);
                    if let Err(error) = self.client.publish(subject, payload.into()).await {
                        tracing::warn!(%error, "cannot publish an event to NATS");
                    }
                }
                Err(error) => tracing::error!(%error, "cannot encode an event for NATS"),
            }
        }
    }

    async fn subscribe_to(
        &self,
        scope: Scope,
        filter: Filter,
    ) -> Result<Box<dyn Subscription>, BusError> {
        match self.subscribe(scope, filter, DEFAULT_CAPACITY).await {
            Ok(subscriber) => Ok(Box::new(subscriber)),
            Err(error) => {
                tracing::error!(%error, "cannot subscribe on NATS");
                Err(BusError::Closed)
            }
        }
    }
}

#[async_trait::async_trait]
impl Subscription for NatsSubscriber {
    async fn next_event(&mut self) -> Result<Arc<RecordedEvent>, BusError> {
        self.recv().await
    }
}
