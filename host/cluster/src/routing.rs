//! Routing: any node takes a command (or a state read) and has it carried
//! out by the owner of the aggregate's shard.
//!
//! ```text
//! entry node ── shard open here? ── yes ─▶ run it locally (with a gate pass)
//!                    │ no
//!                    ▼
//!     NATS request <prefix>.cluster.shard.<n> ─▶ owner: gate pass? run : "not serving"
//!     no responders / "not serving" ─▶ wait a little, try again until the route timeout
//! ```
//!
//! Only the owner subscribes to a shard's subject, and only while its gate
//! is open. The owner answers with the typed answer or error a single node
//! would give ([`Reply`]), and the entry node passes it on unchanged; the
//! cluster's own errors are `aether_service::ServiceError`s too (no HTTP
//! status is built here: the transport that carries the reply out does).
//!
//! A node that was paused (SIGSTOP, a long GC-like stall of the machine)
//! or cut off from NATS may still be subscribed when it resumes, next to
//! the shard's new owner, so a request can reach two nodes. Three rules
//! keep every definite answer true:
//!
//! - a node whose ownership deadline has passed ([`super::gate`]) answers
//!   nothing on a shard subject: it cannot know who serves the shard now,
//!   and a "not serving" from it could race the real owner's answer and
//!   make the sender run the command twice. Locally it sends the request
//!   to the owner like any node that does not serve the shard;
//! - work whose pass lapsed while it ran is not answered either (on a
//!   shard subject) or answered `503 shard_unavailable` (locally), unless
//!   it is a command that stored events: those are fenced by the store's
//!   version check, so they are true;
//! - every answer carries the answering node and the epoch of its map;
//!   the sender ignores, and asks again, an answer from a node that does
//!   not own the shard in the sender's map when the answer's epoch is
//!   older, except a command that stored events.
//!
//! Wire format of a request: one line of JSON ([`Routed`]), a newline, then
//! the command's payload as raw bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::gate::ShardGate;
use super::health::Health;
use super::placement::ShardMap;
use super::spill::{Outgoing, Spill};
use aether_runtime::CommandRequest;
use aether_service::{Answered, ErrorCode, ServiceError};
use aether_store::StreamId;

/// What a node forwards to a shard's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Routed {
    /// Carry out a command.
    Command(CommandRequest),
    /// Read an aggregate's state.
    State {
        /// The aggregate.
        stream: StreamId,
    },
}

impl Routed {
    /// The aggregate it is about.
    pub fn stream(&self) -> &StreamId {
        match self {
            Routed::Command(command) => &command.stream,
            Routed::State { stream } => stream,
        }
    }

    /// The wire form: a JSON line, then the command's raw payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("a routed request encodes");
        bytes.push(b'\n');
        if let Routed::Command(command) = self {
            bytes.extend_from_slice(&command.data);
        }
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Routed, String> {
        let split = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no header line")?;
        let mut routed: Routed =
            serde_json::from_slice(&bytes[..split]).map_err(|e| e.to_string())?;
        if let Routed::Command(command) = &mut routed {
            command.data = bytes[split + 1..].to_vec();
        }
        Ok(routed)
    }
}

/// The answer to a routed request: the typed answer or error a single
/// node would give.
pub type Reply = Result<Answered, ServiceError>;

/// Whether `reply` is a command's success that stored events (true
/// whoever answered it: the store's version check fences a stale writer).
fn stored_events(reply: &Reply) -> bool {
    reply.as_ref().is_ok_and(Answered::stored_events)
}

/// The answer when `shard`'s ownership lapsed while this node worked on it.
fn lapsed(shard: u32) -> ServiceError {
    ServiceError::new(
        ErrorCode::ShardUnavailable,
        format!("ownership of shard {shard} lapsed while answering: retry"),
    )
}

/// What an owner sends back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    /// The work was done by `node`, which held the map of `epoch`.
    Done {
        epoch: u64,
        node: String,
        reply: Reply,
    },
    /// The shard is closed here (being handed off): try again.
    NotServing,
}

/// Whether the sender takes `reply`, answered for `shard` by `node` at
/// `epoch`, given the newest map the sender knows (`current`): not when a
/// node that does not own the shard in `current` answered from an older
/// map, unless the reply stored events.
fn trusted(current: Option<&ShardMap>, shard: u32, epoch: u64, node: &str, reply: &Reply) -> bool {
    let Some(current) = current else { return true };
    stored_events(reply) || epoch >= current.epoch || current.owner(shard) == Some(node)
}

/// What the cluster needs from the node it runs in.
#[async_trait::async_trait]
pub trait ShardHost: Send + Sync + 'static {
    /// Carries out `routed` on this node (its shard's pass is held).
    async fn run(&self, routed: Routed) -> Reply;

    /// Whether the holder of `token` may send `routed` (NATS submissions
    /// carry the same bearer tokens as HTTP requests).
    fn admit(&self, token: Option<&str>, routed: &Routed) -> Result<(), ServiceError>;

    /// Passivates the live aggregates `matches` selects (a shard is leaving
    /// or arriving: its cached state may be stale).
    async fn passivate(&self, matches: StreamFilter);
}

/// Selects aggregates (e.g. those of some shards).
pub type StreamFilter = Arc<dyn for<'a> Fn(&'a StreamId) -> bool + Send + Sync + 'static>;

/// Sends requests to shard owners, or runs them here when this node is
/// the owner.
pub(crate) struct Router {
    /// This node's id (named in its answers).
    pub(crate) node_id: String,
    pub(crate) client: async_nats::Client,
    pub(crate) prefix: String,
    pub(crate) shards: u32,
    pub(crate) gate: Arc<ShardGate>,
    pub(crate) host: Arc<dyn ShardHost>,
    pub(crate) timeout: Duration,
    /// How long one attempt of a repeatable request waits (the lease TTL).
    pub(crate) attempt_timeout: Duration,
    /// The newest map this node holds (set by the coordinator).
    pub(crate) map: std::sync::Mutex<Option<ShardMap>>,
    /// Where a panicking shard server reports.
    pub(crate) health: Arc<Health>,
    /// Where requests and answers too large for one NATS message go.
    pub(crate) spill: Spill,
}

/// How long to wait before asking again when no node serves a shard.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

impl Router {
    /// Has `routed` carried out by its shard's owner, waiting up to the
    /// route timeout for a shard that is moving or whose owner died.
    pub(crate) async fn route(&self, routed: Routed) -> Reply {
        // The request as sent (spilled, if too large, on the first send),
        // kept for the attempts that follow and deleted at the end.
        let mut sent = None;
        let reply = self.attempts(routed, &mut sent).await;
        if let Some(Outgoing { object, .. }) = sent {
            self.spill.forget(object).await;
        }
        reply
    }

    /// [`Router::route`]'s attempts; `sent` keeps the request as sent.
    async fn attempts(&self, routed: Routed, sent: &mut Option<Outgoing>) -> Reply {
        let shard = super::shard_of(routed.stream(), self.shards);
        let subject = aether_core::namespace::layout::cluster_shard_subject(&self.prefix, shard);
        let deadline = Instant::now() + self.timeout;
        // Whether an attempt of a command may have reached an owner that
        // never answered: then running out of time says nothing about
        // whether it was carried out, and the answer must not say it was not.
        let mut maybe_delivered = false;
        loop {
            if let Some(pass) = self.gate.enter(shard) {
                let reply = self.host.run(routed).await;
                return if pass.still_owned() || stored_events(&reply) {
                    reply
                } else {
                    Err(lapsed(shard))
                };
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            // A request that may safely be sent twice (a read, or a command
            // with an id) waits at most one lease TTL per attempt: if its
            // owner died with it, the shard has a new owner by then.
            let attempt = match &routed {
                Routed::Command(c) if c.command_id.is_none() => remaining,
                _ => remaining.min(self.attempt_timeout),
            };
            let outgoing = match sent {
                Some(outgoing) => outgoing,
                None => sent.insert(self.spill.outgoing(Bytes::from(routed.encode())).await?),
            };
            let mut request = async_nats::Request::new()
                .payload(outgoing.payload.clone())
                .timeout(Some(attempt.max(Duration::from_millis(10))));
            if let Some(headers) = &outgoing.headers {
                request = request.headers(headers.clone());
            }
            match self.client.send_request(subject.clone(), request).await {
                Ok(message) => match self.read_answer(&message).await {
                    Ok(Answer::Done { epoch, node, reply }) => {
                        if self.trusts(shard, epoch, &node, &reply) {
                            return reply;
                        }
                        tracing::info!(shard, epoch, %node, "ignored an answer from a former owner");
                    }
                    Ok(Answer::NotServing) => {}
                    Err(error) => {
                        return Err(ServiceError::new(
                            ErrorCode::ClusterError,
                            format!(
                                "shard {shard}'s owner sent an unreadable answer ({error:#}); a command may or may not have been carried out: retry it with the same command_id"
                            ),
                        ));
                    }
                },
                Err(error)
                    if error.kind() == async_nats::RequestErrorKind::TimedOut
                        && attempt >= remaining =>
                {
                    return Err(ServiceError::new(
                        ErrorCode::OwnerTimeout,
                        format!(
                            "shard {shard}'s owner did not answer within {:?}; the command may or may not have been carried out: retry it with the same command_id",
                            self.timeout
                        ),
                    ));
                }
                // No responders: nobody serves the shard yet, so nobody
                // got it. Try again until the deadline.
                Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
                // A lost connection (or an attempt that timed out with time
                // left): the owner may have the request. Only what may be
                // carried out twice is sent again.
                Err(error) if matches!(&routed, Routed::Command(c) if c.command_id.is_none()) => {
                    return Err(ServiceError::new(
                        ErrorCode::OwnerTimeout,
                        format!(
                            "the request to shard {shard}'s owner failed ({error}); the command may or may not have been carried out: send commands with a command_id to retry them safely"
                        ),
                    ));
                }
                Err(_) => maybe_delivered |= matches!(&routed, Routed::Command(_)),
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                if maybe_delivered {
                    return Err(ServiceError::new(
                        ErrorCode::OwnerTimeout,
                        format!(
                            "shard {shard}'s owner did not answer within {:?}, though the command was sent again; it may or may not have been carried out: retry it with the same command_id",
                            self.timeout
                        ),
                    ));
                }
                return Err(ServiceError::new(
                    ErrorCode::ShardUnavailable,
                    format!(
                        "no node served shard {shard} within {:?} (a node joined or left and the shard is moving): retry",
                        self.timeout
                    ),
                ));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// An owner's answer, read from the message or from the bucket it was
    /// spilled to (then deleted there).
    async fn read_answer(&self, message: &async_nats::Message) -> anyhow::Result<Answer> {
        let (payload, object) = self.spill.incoming(message).await?;
        let answer = serde_json::from_slice::<Answer>(&payload);
        self.spill.forget(object).await;
        Ok(answer?)
    }

    /// Whether to take `reply`, answered for `shard` by `node` at `epoch`,
    /// judged by the newest map this node holds ([`trusted`]).
    fn trusts(&self, shard: u32, epoch: u64, node: &str, reply: &Reply) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        trusted(map.as_ref(), shard, epoch, node, reply)
    }

    /// Takes `map` as the newest (the coordinator accepted it).
    pub(crate) fn learn(&self, map: &ShardMap) {
        *self.map.lock().unwrap_or_else(|e| e.into_inner()) = Some(map.clone());
    }

    /// The epoch of the newest map this node holds (0 before the first).
    fn epoch(&self) -> u64 {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |m| m.epoch)
    }

    /// The answer to a request of `shard` that reached this node: `None`
    /// when this node must not answer at all (its ownership lapsed before
    /// or during the work: the shard may have another owner by now).
    async fn answer(&self, shard: u32, message: &async_nats::Message) -> Option<Answer> {
        let Some(pass) = self.gate.enter(shard) else {
            return (!self.gate.lapsed()).then_some(Answer::NotServing);
        };
        let reply = match self.spill.incoming(message).await {
            // The sender deletes a spilled request: it may send it again.
            Ok((payload, _)) => match Routed::decode(&payload) {
                Ok(routed) => self.host.run(routed).await,
                Err(error) => Err(ServiceError::malformed(format!(
                    "unreadable routed request: {error}"
                ))),
            },
            Err(error) => Err(ServiceError::new(
                ErrorCode::StoreUnavailable,
                format!("the routed request cannot be read: {error:#}: nothing was carried out"),
            )),
        };
        if !pass.still_owned() && !stored_events(&reply) {
            tracing::warn!(shard, "ownership lapsed while answering: no answer sent");
            return None;
        }
        Some(Answer::Done {
            epoch: self.epoch(),
            node: self.node_id.clone(),
            reply,
        })
    }

    /// A command a NATS client sent to the submit subject: its payload is
    /// a routed request (or, too large for a message, spilled: see
    /// [`super::spill`]), its `Authorization` header a bearer token.
    pub(crate) async fn submitted(&self, message: &async_nats::Message) -> Reply {
        let (payload, object) = match self.spill.incoming(message).await {
            Ok(incoming) => incoming,
            Err(error) => {
                return Err(ServiceError::malformed(format!(
                    "the spilled request cannot be read: {error:#}"
                )));
            }
        };
        let reply = self.submitted_request(message, &payload).await;
        self.spill.forget(object).await;
        reply
    }

    async fn submitted_request(&self, message: &async_nats::Message, payload: &[u8]) -> Reply {
        let routed = match Routed::decode(payload) {
            Ok(routed) => routed,
            Err(error) => {
                return Err(ServiceError::malformed(format!(
                    "unreadable request: {error}"
                )));
            }
        };
        let token = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Authorization"))
            .and_then(|v| v.as_str().strip_prefix("Bearer "));
        self.host.admit(token, &routed)?;
        self.route(routed).await
    }

    /// Publishes an answer (spilled if too large for a message). One that
    /// cannot be sent is not sent at all: the sender's attempt times out
    /// and says the outcome is unknown, which is true.
    pub(crate) async fn send_answer(&self, reply_to: async_nats::Subject, bytes: Bytes) {
        let outgoing = match self.spill.outgoing(bytes).await {
            Ok(outgoing) => outgoing,
            Err(error) => {
                tracing::warn!(%error, "cannot answer a routed request");
                return;
            }
        };
        let sent = match outgoing.headers {
            Some(headers) => {
                self.client
                    .publish_with_headers(reply_to, headers, outgoing.payload)
                    .await
            }
            None => self.client.publish(reply_to, outgoing.payload).await,
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "cannot answer a routed request");
        }
    }

    /// Starts answering requests of `shard` (its gate must be open).
    pub(crate) async fn serve(self: &Arc<Self>, shard: u32) -> anyhow::Result<ShardServer> {
        let subject = aether_core::namespace::layout::cluster_shard_subject(&self.prefix, shard);
        let mut subscriber = self.client.subscribe(subject).await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let router = self.clone();
        let task = self.health.spawn("a shard server", async move {
            let answer = |message: async_nats::Message| {
                let router = router.clone();
                tokio::spawn(async move {
                    let Some(reply_to) = message.reply.clone() else {
                        return;
                    };
                    let Some(answer) = router.answer(shard, &message).await else {
                        return;
                    };
                    let bytes = serde_json::to_vec(&answer).expect("an answer encodes");
                    router.send_answer(reply_to, bytes.into()).await;
                });
            };
            loop {
                tokio::select! {
                    message = subscriber.next() => match message {
                        Some(message) => answer(message),
                        None => return,
                    },
                    _ = &mut stopped => break,
                }
            }
            // Hand-off: the gate is closed, so what is still queued here, or
            // was sent before the server took the unsubscription (drain
            // waits for that), is answered "not serving" and its sender
            // asks again. The timeout only guards a lost connection.
            let _ = subscriber.drain().await;
            let wait = Duration::from_secs(2);
            while let Ok(Some(message)) = tokio::time::timeout(wait, subscriber.next()).await {
                answer(message);
            }
        });
        Ok(ShardServer { stop, task })
    }
}

/// The subscription of one served shard.
pub(crate) struct ShardServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ShardServer {
    /// Unsubscribes and answers what was already queued.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_core::namespace::{AggregateId, AggregateType, Namespace};
    use serde_json::json;

    #[test]
    fn a_command_travels_with_its_raw_payload() {
        let stream = StreamId::new(
            Namespace::new("bank").unwrap(),
            AggregateType::new("account").unwrap(),
            AggregateId::new("a-1").unwrap(),
        );
        let mut command = CommandRequest::json(stream, "Deposit", &json!({"amount": 5}))
            .expecting(3)
            .with_command_id("c-1");
        command.data = b"{\"note\":\"two\nlines\"}\n".to_vec();
        let decoded = Routed::decode(&Routed::Command(command.clone()).encode()).unwrap();
        let Routed::Command(decoded) = decoded else {
            panic!("not a command")
        };
        assert_eq!(decoded.data, command.data);
        assert_eq!(decoded.expected_version, Some(3));
        assert_eq!(decoded.command_id.as_deref(), Some("c-1"));
        assert!(Routed::decode(b"{}").is_err());
    }

    fn map_of(epoch: u64, owner_of_0: &str) -> ShardMap {
        let members = vec!["a".to_owned(), "b".to_owned()];
        let mut map = ShardMap::new(epoch, "a", 1, &members, 2);
        map.owners[0] = owner_of_0.to_owned();
        map
    }

    fn stored() -> Reply {
        Ok(Answered::Command(aether_service::CommandAnswer {
            duplicate: false,
            events: vec![event(4)],
            version: 4,
        }))
    }

    fn event(version: u64) -> aether_service::EventJson {
        aether_service::EventJson {
            content_type: "application/json".into(),
            data: json!({"amount": 1}),
            event_type: "Deposited".into(),
            id: "0190".into(),
            metadata: Default::default(),
            position: version,
            stream: "bank/account/a-1".into(),
            timestamp_ms: 1,
            version,
        }
    }

    fn read() -> Reply {
        Ok(Answered::State(aether_service::StateAnswer {
            state: b"{}".to_vec(),
            stream: "bank/account/a-1".into(),
            version: 2,
        }))
    }

    fn rejected() -> Reply {
        Err(ServiceError::new(ErrorCode::Rejected, "insufficient funds"))
    }

    #[test]
    fn only_commands_that_stored_events_count_as_stored() {
        assert!(stored_events(&stored()));
        let none = Ok(Answered::Command(aether_service::CommandAnswer {
            duplicate: true,
            events: vec![],
            version: 4,
        }));
        assert!(!stored_events(&none), "a duplicate stored nothing");
        assert!(!stored_events(&read()));
        assert!(!stored_events(&rejected()));
        assert!(!stored_events(&Err(lapsed(3))));
        assert_eq!(lapsed(3).http_status(), 503);
    }

    #[test]
    fn a_former_owner_answering_from_an_older_map_is_not_trusted() {
        let current = map_of(7, "b");
        let (read, rejected) = (read(), rejected());
        // "a" owned shard 0 at epoch 6; "b" owns it at 7.
        assert!(!trusted(Some(&current), 0, 6, "a", &read));
        assert!(!trusted(Some(&current), 0, 6, "a", &rejected));
        assert!(
            trusted(Some(&current), 0, 6, "a", &stored()),
            "stored events are fenced by the store: true, never retried"
        );
        assert!(trusted(Some(&current), 0, 6, "b", &read), "the owner");
        assert!(
            trusted(Some(&current), 0, 8, "a", &read),
            "a newer map than the sender's: the sender is the one behind"
        );
        assert!(trusted(Some(&current), 0, 7, "a", &read), "the same map");
        assert!(trusted(None, 0, 1, "a", &read), "no map to judge by");
    }

    #[test]
    fn an_answer_names_its_node_and_epoch_on_the_wire() {
        for reply in [stored(), read(), rejected()] {
            let answer = Answer::Done {
                epoch: 9,
                node: "node-2".into(),
                reply: reply.clone(),
            };
            let bytes = serde_json::to_vec(&answer).unwrap();
            let Answer::Done {
                epoch,
                node,
                reply: decoded,
            } = serde_json::from_slice(&bytes).unwrap()
            else {
                panic!("not done")
            };
            assert_eq!((epoch, node.as_str(), decoded), (9, "node-2", reply));
        }
    }
}
