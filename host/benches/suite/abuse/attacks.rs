//! The attacks of `tenant_abuse`, all at once, on a tokio runtime of their
//! own (one worker thread), so the attackers neither queue tenant A's
//! clients behind them in one executor nor take more than about a core of
//! the machine for themselves; stopping the attack shuts that runtime
//! down, which drops every connection it held.
//!
//! Each attack tallies what the node answered, by `<status> <error code>`
//! (or what became of the connection), in a [`Tally`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use aether_host::runtime::{lower_this_thread_by, with_custom_section};

use super::node::{self, Conn};
use super::tally::Tally;

/// Tenant B's namespace.
pub(crate) const TENANT_B: &str = "tenant-b";
/// The type tenant B runs the hostile guest as.
pub(crate) const HOSTILE: &str = "hostile";

/// How long a connection that ended waits before its attacker reconnects.
const RECONNECT: Duration = Duration::from_millis(100);
/// How often a slow client sends its next byte.
const DRIBBLE: Duration = Duration::from_secs(1);

/// One kind of attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// B: `Loop` and `GrowMemory` in turn, nonstop, one caller per
    /// aggregate.
    Hostile,
    /// B: state reads of aggregates whose views were inflated to just under
    /// and to twice `max_view_bytes`.
    Views,
    /// B: more live event streams than `max_live_streams`, held open; a
    /// refused one retries.
    Streams,
    /// B: large uploads of junk that starts like a component, several at
    /// once, nonstop.
    Uploads,
    /// B: the hostile component with a fresh padding section each time,
    /// so every deploy compiles and stores a new component.
    Redeploys,
    /// Anonymous: a request head one byte a second.
    SlowHeads,
    /// A request body one byte a second. With B's token, on B's commands:
    /// the node answers an anonymous request 401 before reading its body.
    SlowBodies,
    /// Anonymous: one request, then the connection kept open and idle.
    Idle,
}

impl Kind {
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Hostile,
        Kind::Views,
        Kind::Streams,
        Kind::Uploads,
        Kind::Redeploys,
        Kind::SlowHeads,
        Kind::SlowBodies,
        Kind::Idle,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Hostile => "hostile",
            Kind::Views => "views",
            Kind::Streams => "streams",
            Kind::Uploads => "uploads",
            Kind::Redeploys => "redeploys",
            Kind::SlowHeads => "slow_heads",
            Kind::SlowBodies => "slow_bodies",
            Kind::Idle => "idle",
        }
    }

    /// The address its connections come from: B's or the anonymous
    /// clients' (see [`node::FROM_A`]).
    fn from(self) -> std::net::Ipv4Addr {
        match self {
            Kind::SlowHeads | Kind::Idle => node::FROM_ANONYMOUS,
            _ => node::FROM_B,
        }
    }
}

/// What the attack needs to know, and how big it is.
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) token: String,
    pub(crate) kinds: Vec<Kind>,
    /// `Loop` / `GrowMemory` callers.
    pub(crate) hostile_callers: usize,
    /// The aggregates with inflated views, and the callers reading them.
    pub(crate) view_ids: Vec<String>,
    pub(crate) view_readers: usize,
    /// Live streams opened (more than the namespace's limit).
    pub(crate) streams: usize,
    /// Concurrent junk uploads, and the junk.
    pub(crate) uploaders: usize,
    pub(crate) junk: Arc<Vec<u8>>,
    /// The hostile component, and the padding each redeploy adds to it.
    pub(crate) component: Arc<Vec<u8>>,
    pub(crate) padding: usize,
    /// Redeploys sent so far, in every round: each one's padding starts
    /// with its number, so no two have the same digest and every one is
    /// compiled (numbered per round, later rounds' were served by the
    /// node's compile cache).
    pub(crate) redeploys: AtomicU64,
    /// Slow and idle connections, split evenly over the three kinds.
    pub(crate) slow_connections: usize,
    /// How many nice steps the attackers' threads run below the suite's
    /// (0: the same priority as tenant A's clients and the node).
    pub(crate) attacker_nice: i32,
}

/// The attack, running until [`Attack::stop`] (or until dropped).
pub(crate) struct Attack {
    /// Taken by [`Attack::stop`]; shut down in the background, since a
    /// runtime may not be dropped (which blocks) inside another.
    runtime: Option<tokio::runtime::Runtime>,
    tally: Arc<Tally>,
}

impl Attack {
    /// Starts every attack of `plan.kinds`.
    pub(crate) fn start(plan: &Arc<Plan>) -> anyhow::Result<Self> {
        let nice = plan.attacker_nice;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("attack")
            // The attackers stand for clients on other machines: on one
            // 2-core machine their own CPU would otherwise be taken from the
            // node, which no defence of the node can prevent. Lowered the
            // way the node lowers its own background work.
            .on_thread_start(move || lower_this_thread_by(nice))
            .enable_all()
            .build()?;
        let tally = Arc::new(Tally::default());
        let (p, t) = (|| plan.clone(), || tally.clone());
        let slow = plan.slow_connections / 3;
        for kind in &plan.kinds {
            match kind {
                Kind::Hostile => (0..plan.hostile_callers).for_each(|i| {
                    runtime.spawn(hostile(p(), t(), i));
                }),
                Kind::Views => (0..plan.view_readers).for_each(|i| {
                    runtime.spawn(views(p(), t(), i));
                }),
                Kind::Streams => (0..plan.streams).for_each(|_| {
                    runtime.spawn(stream(p(), t()));
                }),
                Kind::Uploads => (0..plan.uploaders).for_each(|_| {
                    runtime.spawn(upload(p(), t()));
                }),
                Kind::Redeploys => {
                    runtime.spawn(redeploy(p(), t()));
                }
                Kind::SlowHeads => (0..slow).for_each(|_| {
                    runtime.spawn(slow_head(p(), t()));
                }),
                Kind::SlowBodies => (0..slow).for_each(|i| {
                    runtime.spawn(slow_body(p(), t(), i));
                }),
                Kind::Idle => (0..slow).for_each(|_| {
                    runtime.spawn(idle(p(), t()));
                }),
            }
        }
        Ok(Self {
            runtime: Some(runtime),
            tally,
        })
    }

    /// Stops every attacker and drops its connections; what the node
    /// answered.
    pub(crate) fn stop(mut self) -> Arc<Tally> {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        self.tally.clone()
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A call on a kept-alive connection, opened first if there is none;
/// tallies it as `sent`, then its answer (or `no answer` if the connection
/// failed).
async fn call(
    conn: &mut Option<Conn>,
    plan: &Plan,
    tally: &Tally,
    kind: Kind,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) {
    if conn.is_none() {
        match Conn::open(plan.addr, kind.from()).await {
            Ok(opened) => *conn = Some(opened),
            Err(_) => {
                tally.add(kind, "connect failed");
                tokio::time::sleep(RECONNECT).await;
                return;
            }
        }
    }
    let open = conn.as_mut().expect("opened above");
    tally.add(kind, "sent");
    match open.call(method, path, Some(&plan.token), body).await {
        Ok(answer) => {
            tally.answer(kind, &answer);
            if answer.closes {
                *conn = None;
            }
        }
        Err(_) => {
            tally.add(kind, "no answer");
            *conn = None;
        }
    }
}

/// `Loop` and `GrowMemory` in turn on aggregate `attacker-<i>`.
async fn hostile(plan: Arc<Plan>, tally: Arc<Tally>, i: usize) {
    let path = format!("/v1/namespaces/{TENANT_B}/aggregates/{HOSTILE}/attacker-{i}/commands");
    let mut conn = None;
    for command in ["Loop", "GrowMemory"].into_iter().cycle().skip(i % 2) {
        let body = json!({ "type": command });
        call(
            &mut conn,
            &plan,
            &tally,
            Kind::Hostile,
            "POST",
            &path,
            Some(&body),
        )
        .await;
    }
}

/// Reads the inflated views in turn.
async fn views(plan: Arc<Plan>, tally: Arc<Tally>, i: usize) {
    let mut conn = None;
    for id in plan.view_ids.iter().cycle().skip(i) {
        let path = format!("/v1/namespaces/{TENANT_B}/aggregates/{HOSTILE}/{id}");
        call(&mut conn, &plan, &tally, Kind::Views, "GET", &path, None).await;
    }
}

/// Opens a live event stream and holds it, reading what comes; a refused
/// one retries after a while.
async fn stream(plan: Arc<Plan>, tally: Arc<Tally>) {
    let request = node::head(
        "GET",
        &format!("/v1/namespaces/{TENANT_B}/events/live"),
        Some(&plan.token),
        None,
    );
    loop {
        let Some((mut reader, _writer)) = connect(&plan, &tally, Kind::Streams, &request).await
        else {
            continue;
        };
        match node::read_head(&mut reader).await {
            Ok((200, _, _)) => {
                tally.add(Kind::Streams, "200 open");
                let mut buffer = [0u8; 4096];
                while matches!(reader.read(&mut buffer).await, Ok(n) if n > 0) {}
                tally.add(Kind::Streams, "closed by the node");
            }
            Ok((status, length, _)) => {
                let mut body = vec![0; length.unwrap_or(0)];
                let _ = reader.read_exact(&mut body).await;
                let answer = node::Answer {
                    status,
                    body,
                    closes: false,
                };
                tally.answer(Kind::Streams, &answer);
            }
            Err(_) => tally.add(Kind::Streams, "no answer"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Connects and sends `request` (or its first part); the two halves of the
/// connection.
async fn connect(
    plan: &Plan,
    tally: &Tally,
    kind: Kind,
    request: &[u8],
) -> Option<(
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
)> {
    let sent = async {
        let stream = node::dial(plan.addr, kind.from()).await?;
        let (reader, mut writer) = stream.into_split();
        writer.write_all(request).await?;
        std::io::Result::Ok((BufReader::new(reader), writer))
    };
    match sent.await {
        Ok(halves) => {
            tally.add(kind, "opened");
            Some(halves)
        }
        Err(_) => {
            tally.add(kind, "connect failed");
            tokio::time::sleep(RECONNECT).await;
            None
        }
    }
}

/// Uploads the junk as a component, again and again.
async fn upload(plan: Arc<Plan>, tally: Arc<Tally>) {
    let path = format!("/v1/namespaces/{TENANT_B}/aggregates/junk/component");
    loop {
        tally.add(Kind::Uploads, "sent");
        let answer = node::call_once(
            (plan.addr, Kind::Uploads.from()),
            "PUT",
            &path,
            Some(&plan.token),
            "application/wasm",
            &plan.junk,
        )
        .await;
        match answer {
            Ok(answer) => tally.answer(Kind::Uploads, &answer),
            Err(_) => {
                tally.add(Kind::Uploads, "no answer");
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

/// Deploys the hostile component with a new padding section each time
/// (a new digest, never sent before: compiled and stored again).
async fn redeploy(plan: Arc<Plan>, tally: Arc<Tally>) {
    let path = format!("/v1/namespaces/{TENANT_B}/aggregates/churn/component");
    loop {
        let n = plan.redeploys.fetch_add(1, Ordering::Relaxed);
        let bytes = padded(&plan.component, plan.padding, n);
        tally.add(Kind::Redeploys, "sent");
        let answer = node::call_once(
            (plan.addr, Kind::Redeploys.from()),
            "PUT",
            &path,
            Some(&plan.token),
            "application/wasm",
            &bytes,
        )
        .await;
        match answer {
            Ok(answer) => tally.answer(Kind::Redeploys, &answer),
            Err(_) => {
                tally.add(Kind::Redeploys, "no answer");
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

/// `component` with a custom section of `padding` bytes at its end that
/// starts with `n` (a component may carry custom sections anywhere).
fn padded(component: &[u8], padding: usize, n: u64) -> Vec<u8> {
    let mut data = n.to_le_bytes().to_vec();
    data.resize(data.len() + padding, 0);
    with_custom_section(component, "tenant-abuse-padding", &data)
}

/// Sends `request`, then `then` one byte every [`DRIBBLE`] while waiting
/// for the node's answer; tallies how the connection ended, and starts
/// over.
async fn dribble(plan: &Plan, tally: &Tally, kind: Kind, request: &[u8], then: &[u8]) {
    loop {
        let Some((mut reader, mut writer)) = connect(plan, tally, kind, request).await else {
            continue;
        };
        let answer = node::read_answer(&mut reader);
        tokio::pin!(answer);
        let mut ticks = tokio::time::interval(DRIBBLE);
        ticks.tick().await;
        let mut bytes = then.iter().cycle();
        loop {
            tokio::select! {
                answer = &mut answer => {
                    match answer {
                        Ok(answer) => tally.answer(kind, &answer),
                        Err(_) => tally.add(kind, "closed by the node"),
                    }
                    break;
                }
                _ = ticks.tick() => {
                    let byte = *bytes.next().expect("a cycle never ends");
                    if writer.write_all(&[byte]).await.is_err() {
                        tally.add(kind, "closed by the node");
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Anonymous: a request head, then a header line one byte at a time.
async fn slow_head(plan: Arc<Plan>, tally: Arc<Tally>) {
    let request = b"GET /healthz HTTP/1.1\r\nHost: node\r\n";
    dribble(&plan, &tally, Kind::SlowHeads, request, b"X-Slow: a\r\n").await;
}

/// A command whose body comes one byte at a time (B's token: see
/// [`Kind::SlowBodies`]).
async fn slow_body(plan: Arc<Plan>, tally: Arc<Tally>, i: usize) {
    let path = format!("/v1/namespaces/{TENANT_B}/aggregates/{HOSTILE}/slow-{i}/commands");
    let mut request = node::head(
        "POST",
        &path,
        Some(&plan.token),
        Some(("application/json", 4096)),
    );
    request.extend_from_slice(br#"{"type":"Record","data":{"note":""#);
    dribble(&plan, &tally, Kind::SlowBodies, &request, b"a").await;
}

/// Anonymous: one request, then the connection kept open with nothing
/// more, until the node closes it.
async fn idle(plan: Arc<Plan>, tally: Arc<Tally>) {
    let request = node::head("GET", "/healthz", None, None);
    loop {
        let Some((mut reader, _writer)) = connect(&plan, &tally, Kind::Idle, &request).await else {
            continue;
        };
        match node::read_answer(&mut reader).await {
            Ok(answer) => {
                tally.answer(Kind::Idle, &answer);
                let mut buffer = [0u8; 64];
                while matches!(reader.read(&mut buffer).await, Ok(n) if n > 0) {}
                tally.add(Kind::Idle, "closed when idle");
            }
            Err(_) => tally.add(Kind::Idle, "no answer"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
