//! One `nats-server` process: its directory, ports and configuration, and
//! the start, stop, kill and restart of the process.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{READY_TIMEOUT, STOP_TIMEOUT, monitor, nats_server_binary, ports};

/// How often a waiting harness looks again.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// How many sets of ports a start tries when another process takes one
/// before the server binds it.
pub(crate) const PORT_ATTEMPTS: u32 = 5;
/// How many lines of a server's log a panic message shows.
const LOG_TAIL_LINES: usize = 40;

/// A `nats-server` process with JetStream, on loopback ports of its own,
/// with its store in a directory of its own. Killed (SIGKILL) when dropped.
///
/// [`NatsServer::start`] makes a single node; [`crate::NatsCluster`] makes
/// its members with the same type.
#[derive(Debug)]
pub struct NatsServer {
    name: String,
    /// Holds the configuration, the log and the store.
    dir: PathBuf,
    ports: Ports,
    cluster: Option<ClusterRoutes>,
    /// The largest message a client may publish (`max_payload`), if not
    /// the server's default (1 MiB).
    max_payload: Option<usize>,
    child: Option<Child>,
    /// The log's length when the running process started.
    log_start: u64,
    /// The temporary directory of a single node, removed after the kill on
    /// drop (fields drop after `Drop::drop` runs).
    _own_dir: Option<TempDir>,
}

/// A server's loopback ports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) client: u16,
    pub(crate) monitor: u16,
    /// For cluster members: the port other servers route to.
    pub(crate) cluster: Option<u16>,
}

/// A cluster member's cluster name and the route ports of the others.
#[derive(Debug, Clone)]
pub(crate) struct ClusterRoutes {
    pub(crate) name: String,
    pub(crate) routes: Vec<u16>,
}

/// Why a server did not become ready.
#[derive(Debug)]
pub(crate) enum NotReady {
    /// A process exited (or was not running); says which and how.
    Exited(String),
    /// The deadline passed; the last answer that was not "ready".
    TimedOut(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(what) => write!(f, "{what}"),
            Self::TimedOut(last) => write!(
                f,
                "not ready within {} s; last: {last}",
                READY_TIMEOUT.as_secs()
            ),
        }
    }
}

/// One look at a server.
pub(crate) enum Probe {
    Ready,
    NotYet(String),
    Exited(String),
}

impl NatsServer {
    /// Starts a single node with JetStream on random loopback ports, its
    /// store in a new temporary directory, and returns once it is ready
    /// (`/healthz` answers 200).
    ///
    /// # Panics
    ///
    /// If the binary is missing (see [`crate::nats_server_binary`]), or the
    /// server exits or is not ready within [`READY_TIMEOUT`]; the message
    /// holds the tail of its log.
    pub fn start() -> Self {
        Self::start_with_max_payload(None)
    }

    /// As [`NatsServer::start`], with `max_payload` (the largest message a
    /// client may publish) set when given.
    pub fn start_with_max_payload(max_payload: Option<usize>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("aether-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory for nats-server: {e}"));
        let mut server = Self::new("nats-0".to_owned(), dir.path().to_owned());
        server._own_dir = Some(dir);
        server.max_payload = max_payload;
        let mut attempt = 1;
        loop {
            let [client, monitor] = ports::pick(2)[..] else {
                unreachable!("two ports were asked for")
            };
            server.configure(
                Ports {
                    client,
                    monitor,
                    cluster: None,
                },
                None,
            );
            server.spawn();
            match server.wait_ready(Instant::now() + READY_TIMEOUT) {
                Ok(()) => return server,
                Err(NotReady::Exited(_)) if server.port_taken() && attempt < PORT_ATTEMPTS => {
                    server.kill();
                    server.wipe_store();
                    attempt += 1;
                }
                Err(trouble) => panic!("{}", server.failure("start", &trouble)),
            }
        }
    }

    /// A server that is neither configured nor running, in `dir`.
    pub(crate) fn new(name: String, dir: PathBuf) -> Self {
        Self {
            name,
            dir,
            ports: Ports {
                client: 0,
                monitor: 0,
                cluster: None,
            },
            cluster: None,
            max_payload: None,
            child: None,
            log_start: 0,
            _own_dir: None,
        }
    }

    /// The server's name (`server_name`): `nats-0`, `nats-1`, …
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL clients connect to: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports.client)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.ports.client
    }

    /// The HTTP monitoring endpoint: `http://127.0.0.1:PORT` (`/varz`,
    /// `/jsz`, `/healthz`, …).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.monitor)
    }

    /// The JetStream store directory (`store_dir`); it outlives restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Everything the server has written to stdout and stderr, across
    /// restarts (each start begins with a `--- aether-nats-harness` line).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (it may not be ready yet).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops the server gracefully: SIGTERM, then waits for it to exit.
    /// Does nothing if it is not running.
    ///
    /// # Panics
    ///
    /// If it has not exited within [`STOP_TIMEOUT`] (it is killed first).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !sent.as_ref().is_ok_and(ExitStatus::success) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sending SIGTERM to {} (pid {pid}) with `kill` failed ({sent:?}); killed it",
                self.name
            );
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                waited => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{}",
                        self.failure(
                            "stop",
                            &NotReady::Exited(format!(
                                "it had not exited {} s after SIGTERM ({waited:?}); killed it",
                                STOP_TIMEOUT.as_secs()
                            ))
                        )
                    );
                }
            }
        }
    }

    /// Kills the server with SIGKILL, as a crash or a power cut of the
    /// process would, and reaps it. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it is running (SIGTERM), starts it again on the
    /// same ports with the same store, and returns once it is ready: its
    /// `/healthz` answers 200, which in a cluster also means it is in
    /// contact with a meta leader and its streams have caught up, and, in
    /// a cluster, every stream and consumer it holds has a leader.
    ///
    /// A cluster member needs a quorum to be ready: restart a whole
    /// cluster with [`crate::NatsCluster::restart_all`].
    ///
    /// # Panics
    ///
    /// If the server exits (for example because another process took its
    /// port meanwhile) or is not ready within [`READY_TIMEOUT`].
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(trouble) = self.wait_ready(Instant::now() + READY_TIMEOUT) {
            panic!("{}", self.failure("restart", &trouble));
        }
    }

    /// Waits until the server is ready (see [`NatsServer::restart`]).
    ///
    /// # Panics
    ///
    /// If it is not running, exits, or is not ready within
    /// [`READY_TIMEOUT`].
    pub fn wait_until_ready(&mut self) {
        if let Err(trouble) = self.wait_ready(Instant::now() + READY_TIMEOUT) {
            panic!("{}", self.failure("wait for", &trouble));
        }
    }

    /// Sets `max_payload` for the next configuration (cluster members).
    pub(crate) fn set_max_payload(&mut self, max_payload: Option<usize>) {
        self.max_payload = max_payload;
    }

    pub(crate) fn ports(&self) -> Ports {
        self.ports
    }

    /// Sets the ports (and, for a cluster member, the routes) and writes
    /// the configuration file.
    pub(crate) fn configure(&mut self, ports: Ports, cluster: Option<ClusterRoutes>) {
        self.ports = ports;
        self.cluster = cluster;
        let config = self.config();
        let path = self.config_path();
        fs::create_dir_all(&self.dir)
            .and_then(|()| fs::write(&path, config))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    fn config(&self) -> String {
        let mut config = format!(
            "server_name: {}\nlisten: \"127.0.0.1:{}\"\nhttp: \"127.0.0.1:{}\"\n\
             jetstream {{\n  store_dir: {}\n}}\n",
            quoted(&self.name),
            self.ports.client,
            self.ports.monitor,
            quoted(&self.store_dir().to_string_lossy()),
        );
        if let Some(bytes) = self.max_payload {
            let _ = writeln!(config, "max_payload: {bytes}");
        }
        if let (Some(cluster), Some(port)) = (&self.cluster, self.ports.cluster) {
            let routes: Vec<String> = cluster
                .routes
                .iter()
                .map(|route| quoted(&format!("nats-route://127.0.0.1:{route}")))
                .collect();
            let _ = write!(
                config,
                "cluster {{\n  name: {}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{}]\n}}\n",
                quoted(&cluster.name),
                routes.join(", ")
            );
        }
        config
    }

    /// Starts the process (the server must not be running), its stdout and
    /// stderr appended to the log.
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let binary = nats_server_binary();
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log_path.display()));
        self.log_start = log.metadata().map(|m| m.len()).unwrap_or_default();
        let _ = writeln!(
            log,
            "--- aether-nats-harness: starting {} ({}) ---",
            self.name,
            binary.display()
        );
        let stdout = log
            .try_clone()
            .unwrap_or_else(|e| panic!("opening {}: {e}", log_path.display()));
        let child = Command::new(&binary)
            .arg("-c")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        self.child = Some(child);
    }

    /// Looks once whether the server is ready: running, `/healthz` 200 and,
    /// in a cluster, a meta leader known and a leader for every stream and
    /// consumer it holds (`/healthz` can pass before a restarted cluster
    /// has elected them, and requests meanwhile go unanswered).
    pub(crate) fn probe(&mut self) -> Probe {
        let Some(child) = self.child.as_mut() else {
            return Probe::Exited(format!("{} is not running", self.name));
        };
        match child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => return Probe::Exited(format!("{} exited: {status}", self.name)),
            Err(e) => return Probe::Exited(format!("{}: waiting for it failed: {e}", self.name)),
        }
        if let Err(why) = monitor::healthy(self.ports.monitor) {
            return Probe::NotYet(format!("{}: {why}", self.name));
        }
        if self.cluster.is_some() {
            match monitor::meta_cluster(self.ports.monitor) {
                Ok(meta) if !meta.leader.is_empty() => {}
                Ok(_) => return Probe::NotYet(format!("{}: no meta leader yet", self.name)),
                Err(why) => return Probe::NotYet(format!("{}: {why}", self.name)),
            }
            match monitor::leaderless(self.ports.monitor) {
                Ok(leaderless) if leaderless.is_empty() => {}
                Ok(leaderless) => {
                    return Probe::NotYet(format!(
                        "{}: no leader yet for {}",
                        self.name,
                        leaderless.join(", ")
                    ));
                }
                Err(why) => return Probe::NotYet(format!("{}: {why}", self.name)),
            }
        }
        Probe::Ready
    }

    pub(crate) fn wait_ready(&mut self, deadline: Instant) -> Result<(), NotReady> {
        loop {
            match self.probe() {
                Probe::Ready => return Ok(()),
                Probe::Exited(what) => return Err(NotReady::Exited(what)),
                Probe::NotYet(last) if Instant::now() >= deadline => {
                    return Err(NotReady::TimedOut(last));
                }
                Probe::NotYet(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Deletes the store, so a start on new ports after a failed one
    /// begins afresh.
    pub(crate) fn wipe_store(&self) {
        let store = self.store_dir();
        if store.exists() {
            fs::remove_dir_all(&store)
                .unwrap_or_else(|e| panic!("clearing {}: {e}", store.display()));
        }
    }

    /// Whether the process started last said a port was in use.
    pub(crate) fn port_taken(&self) -> bool {
        let log = fs::read(self.log_path()).unwrap_or_default();
        let since_start = log.get(self.log_start as usize..).unwrap_or_default();
        String::from_utf8_lossy(since_start).contains("address already in use")
    }

    /// A panic message for a failed `action`, with the log's tail.
    fn failure(&self, action: &str, trouble: &NotReady) -> String {
        format!(
            "could not {action} nats-server {}: {trouble}\n{}",
            self.name,
            self.log_tail()
        )
    }

    /// The server's name, ports and the last lines of its log, without the
    /// warnings the harness's own `/healthz` polls cause.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| !line.contains("Healthcheck failed"))
            .collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        let cluster = self
            .ports
            .cluster
            .map(|port| format!(", cluster port {port}"))
            .unwrap_or_default();
        format!(
            "--- {} (client port {}, monitor port {}{cluster}): the last {} lines of {} \
             (less failed health checks) ---\n{}\n",
            self.name,
            self.ports.client,
            self.ports.monitor,
            tail.len(),
            self.log_path().display(),
            tail.join("\n")
        )
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("nats-server.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `text` as a double-quoted string in the configuration file's syntax
/// (JSON's escapes).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    #[test]
    fn a_server_whose_port_is_taken_exits_and_says_so() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut server = NatsServer::new("nats-0".to_owned(), dir.path().to_owned());
        let [monitor] = ports::pick(1)[..] else {
            unreachable!()
        };
        server.configure(
            Ports {
                client: taken.local_addr().unwrap().port(),
                monitor,
                cluster: None,
            },
            None,
        );
        server.spawn();
        let trouble = server
            .wait_ready(Instant::now() + READY_TIMEOUT)
            .expect_err("the client port is taken");
        assert!(
            matches!(trouble, NotReady::Exited(_)),
            "{trouble}: {}",
            server.log()
        );
        assert!(server.port_taken(), "{}", server.log());
        let message = server.failure("start", &trouble);
        assert!(
            message.contains("nats-0 exited") && message.contains("address already in use"),
            "the panic message names the server and shows its log: {message}"
        );
    }
}
