//! Setting up `tenant_abuse`'s node: both tenants, the idle namespaces,
//! the components, B's inflated views and A's accounts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::super::fixture::{ACCOUNT, Ctx};
use super::attacks::{HOSTILE, Kind, Plan, TENANT_B};
use super::node::{self, ADMIN, Conn, NodeProcess};
use super::tenant_a::Load;
use super::{
    ACCOUNTS, ATTACKER_NICE, CLIENTS, EXTRA_STREAMS, HOSTILE_CALLERS, IDLE_NAMESPACES,
    MAX_LIVE_STREAMS, MAX_VIEW_BYTES, REDEPLOY_PADDING, SLOW_CONNECTIONS, TENANT_A, UPLOAD_BYTES,
    UPLOADERS, VIEW_READERS, VIEWS, b_limits,
};

/// The node with both tenants set up: A's load and B's attack plan.
pub(super) struct Setup {
    pub(super) load: Load,
    pub(super) plan: Arc<Plan>,
    pub(super) b_streams_limit: usize,
    pub(super) idle_namespaces: usize,
    pub(super) idle_namespaces_seconds: f64,
}

/// Creates the tenants and the idle namespaces, deploys, inflates B's
/// views and opens A's accounts.
pub(super) async fn setup(ctx: &Ctx, node: &NodeProcess) -> anyhow::Result<Setup> {
    let addr = node.addr;
    let b_streams_limit = ctx.size(MAX_LIVE_STREAMS, 4);
    let mut admin = Conn::open(addr, node::FROM_A).await?;
    let a_token = create_namespace(&mut admin, TENANT_A, json!({})).await?;
    let b_token = create_namespace(&mut admin, TENANT_B, b_limits(b_streams_limit)).await?;
    let hostile = std::fs::read(aether_test_artifacts::HOSTILE)
        .with_context(|| format!("reading {}", aether_test_artifacts::HOSTILE))?;
    deploy(addr, &a_token, TENANT_A, ACCOUNT, &ctx.component).await?;
    deploy(addr, &b_token, TENANT_B, HOSTILE, &hostile).await?;
    let idle_namespaces = ctx.size(IDLE_NAMESPACES, 10);
    let started = Instant::now();
    create_idle_namespaces(addr, idle_namespaces).await?;
    let idle_namespaces_seconds = started.elapsed().as_secs_f64();

    // B's inflated views: half just under the limit, half twice over it.
    let view_ids: Vec<String> = (0..ctx.size(VIEWS, 2))
        .map(|i| format!("view-{i}"))
        .collect();
    let mut b = Conn::open(addr, node::FROM_B).await?;
    for (i, id) in view_ids.iter().enumerate() {
        let bytes = if i % 2 == 0 {
            MAX_VIEW_BYTES * 9 / 10
        } else {
            MAX_VIEW_BYTES * 2
        };
        let path = format!("/v1/namespaces/{TENANT_B}/aggregates/{HOSTILE}/{id}/commands");
        let command = json!({"type": "InflateView", "data": {"bytes": bytes}});
        let answer = b
            .call("POST", &path, Some(&b_token), Some(&command))
            .await?;
        ensure!(answer.status == 200, "inflating {id}: {}", answer.json());
    }

    let accounts: Vec<String> = (0..ctx.size(ACCOUNTS, 8))
        .map(|i| format!("/v1/namespaces/{TENANT_A}/aggregates/{ACCOUNT}/acc-{i}"))
        .collect();
    let mut a = Conn::open(addr, node::FROM_A).await?;
    let open = json!({"type": "Open", "data": {"owner": "Ada"}});
    for account in &accounts {
        let path = format!("{account}/commands");
        let answer = a.call("POST", &path, Some(&a_token), Some(&open)).await?;
        ensure!(answer.status == 200, "opening {account}: {}", answer.json());
    }

    let plan = Plan {
        addr,
        token: b_token,
        kinds: selected_kinds()?,
        hostile_callers: ctx.size(HOSTILE_CALLERS, 2),
        view_ids,
        view_readers: ctx.size(VIEW_READERS, 1),
        streams: b_streams_limit + ctx.size(EXTRA_STREAMS, 2),
        uploaders: ctx.size(UPLOADERS, 2),
        junk: Arc::new(junk(ctx.size(UPLOAD_BYTES, 2 << 20))),
        component: Arc::new(hostile),
        padding: ctx.size(REDEPLOY_PADDING, 64 << 10),
        redeploys: AtomicU64::new(0),
        slow_connections: ctx.size(SLOW_CONNECTIONS, 30),
        attacker_nice: attacker_nice()?,
    };
    Ok(Setup {
        load: Load {
            addr,
            token: a_token,
            accounts: Arc::new(accounts),
            clients: ctx.size(CLIENTS, 2),
        },
        plan: Arc::new(plan),
        b_streams_limit,
        idle_namespaces,
        idle_namespaces_seconds,
    })
}

/// The attackers' nice steps below the suite: `AETHER_TENANT_ABUSE_ATTACKER_NICE`,
/// or [`ATTACKER_NICE`].
fn attacker_nice() -> anyhow::Result<i32> {
    match std::env::var("AETHER_TENANT_ABUSE_ATTACKER_NICE") {
        Err(_) => Ok(ATTACKER_NICE),
        Ok(steps) => steps
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=19).contains(n))
            .with_context(|| {
                format!("AETHER_TENANT_ABUSE_ATTACKER_NICE: `{steps}` is not 0 to 19")
            }),
    }
}

/// The attacks named in `AETHER_TENANT_ABUSE_ATTACKS`, or all.
fn selected_kinds() -> anyhow::Result<Vec<Kind>> {
    let Ok(names) = std::env::var("AETHER_TENANT_ABUSE_ATTACKS") else {
        return Ok(Kind::ALL.to_vec());
    };
    names
        .split(',')
        .map(|name| {
            Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .with_context(|| format!("AETHER_TENANT_ABUSE_ATTACKS: no attack `{name}`"))
        })
        .collect()
}

/// Creates `name` with `limits` (on the admin's connection); its token.
async fn create_namespace(admin: &mut Conn, name: &str, limits: Value) -> anyhow::Result<String> {
    let body = json!({ "name": name, "limits": limits });
    let answer = admin
        .call("POST", "/v1/namespaces", Some(ADMIN), Some(&body))
        .await?;
    ensure!(answer.status == 201, "creating {name}: {}", answer.json());
    answer.json()["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token in {}", answer.json()))
}

/// Creates namespaces `idle-0`… (8 at a time), never used afterwards.
async fn create_idle_namespaces(addr: SocketAddr, count: usize) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for first in 0..8.min(count) {
        tasks.spawn(async move {
            let mut admin = Conn::open(addr, node::FROM_A).await?;
            for i in (first..count).step_by(8) {
                create_namespace(&mut admin, &format!("idle-{i}"), json!({})).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Deploys `bytes` as `aggregate_type` in `namespace`.
async fn deploy(
    addr: SocketAddr,
    token: &str,
    namespace: &str,
    aggregate_type: &str,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let path = format!("/v1/namespaces/{namespace}/aggregates/{aggregate_type}/component");
    let answer = node::call_once(
        (addr, node::FROM_A),
        "PUT",
        &path,
        Some(token),
        "application/wasm",
        bytes,
    )
    .await?;
    ensure!(answer.status == 200, "deploying {path}: {}", answer.json());
    Ok(())
}

/// `bytes` of junk that start like a component (the WebAssembly magic and
/// a component's version and layer), so the node reads all of it before it
/// can refuse it: junk without them is refused from its first bytes.
fn junk(bytes: usize) -> Vec<u8> {
    let mut junk = b"\0asm\x0d\0\x01\0".to_vec();
    junk.resize(bytes.max(junk.len()), 0xA5);
    junk
}
