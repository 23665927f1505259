//! Running the node until it is told to stop.
//!
//! Shutdown (SIGTERM or Ctrl-C): stop accepting connections, end live event
//! streams, let every in-flight request finish (an acknowledged append is
//! already fsync'd by the store, so finishing in-flight commands is the
//! flush), then drop the runtime and the store and return, so the process
//! exits 0. A restart on the same data directory serves the same state.
//! Connections still open after the grace period
//! ([`super::ConnectionLimits::shutdown_grace`]) are dropped, so no client
//! can keep a stopping node alive (`connections.rs`).
//!
//! With [`NodeConfig::cluster`] set, the node joins the cluster once it
//! listens (announcing its address), and on shutdown hands its shards off
//! (finishing their in-flight commands) before it stops. If a background
//! task of the cluster panics, the node shuts down the same way and
//! `serve` returns an error (the process exits non-zero).
//!
//! With [`NodeConfig::watch`] set, watch mode (`watch.rs`) runs alongside
//! the API from just before the node reports it is ready; it stops when the
//! node begins shutting down, and the node waits for a deployment it has in
//! progress before it drops the runtime and the store.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use super::watch::WatchMode;
use super::{ConnectionLimits, Node, NodeConfig, api, connections};

/// Opens the node and serves its API until SIGTERM or Ctrl-C; `ready` is
/// told the address it listens on (useful when the port was 0).
pub async fn serve(config: NodeConfig, ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    let (node, new_admin) = Node::open(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    if let Some(token) = new_admin {
        eprintln!(
            "admin token (shown once; keep it, or set AETHER_ADMIN_TOKEN): {}",
            token.as_str()
        );
    }
    if let Some(cluster) = &config.cluster {
        let mut cluster = cluster.clone();
        if cluster.api.is_empty() {
            cluster.api = format!("http://{address}");
        }
        node.join_cluster(cluster).await?;
    }
    let watching = match &config.watch {
        Some(dir) => Some(WatchMode::start(node.clone(), dir)?),
        None => None,
    };
    let limits = config.connections.clone();
    ready(address);
    // A cluster whose background task failed serves nothing: shut down,
    // and exit non-zero.
    let cluster = node.cluster().cloned();
    let stop = shutdown_signal_or_failure(cluster.clone());
    run(node, listener, limits, stop, watching).await?;
    match cluster.and_then(|c| c.failed()) {
        Some(failure) => anyhow::bail!("the node stopped because its cluster failed: {failure}"),
        None => Ok(()),
    }
}

/// Serves `node` on `listener` until `stop` completes, then shuts down
/// gracefully (stopping `watching` before the node is dropped).
pub(crate) async fn run(
    node: Arc<Node>,
    listener: TcpListener,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()> + Send + 'static,
    watching: Option<WatchMode>,
) -> Result<()> {
    let router = api::router(node.clone());
    let stopping = node.clone();
    let counts = node.metrics().connections();
    connections::serve(listener, router, (limits, counts), async move {
        stop.await;
        tracing::info!("shutting down: finishing in-flight requests");
        stopping.begin_shutdown();
    })
    .await;
    if let Some(watching) = watching {
        watching.stop().await;
    }
    // In a cluster: hand this node's shards off before the runtime goes.
    if let Some(cluster) = node.cluster() {
        cluster.leave().await;
    }
    tracing::info!("all requests finished; the node has stopped");
    drop(node);
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C, or once `cluster` has failed.
async fn shutdown_signal_or_failure(cluster: Option<Arc<aether_cluster::Cluster>>) {
    let failed = async {
        match &cluster {
            Some(cluster) => cluster.failure().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        failure = failed => tracing::error!(%failure, "stopping: the cluster failed"),
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
