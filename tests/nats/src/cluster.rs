//! A JetStream cluster of `nats-server` processes routed to each other on
//! loopback.

use std::time::Instant;

use tempfile::TempDir;

use crate::server::{ClusterRoutes, NatsServer, NotReady, POLL, PORT_ATTEMPTS, Ports, Probe};
use crate::{READY_TIMEOUT, monitor, ports};

/// The cluster name every harness cluster uses.
pub const CLUSTER_NAME: &str = "aether-test";

/// A JetStream cluster of `nats-server` processes (`nats-0`, `nats-1`, …),
/// each with its own client, route and monitoring ports on loopback and its
/// own store. Every server is killed (SIGKILL) when the cluster is dropped.
#[derive(Debug)]
pub struct NatsCluster {
    // Declared before the directory: fields drop in order, so every
    // server is dead before its files are removed.
    servers: Vec<NatsServer>,
    _dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` servers with JetStream, routed to each other as one
    /// cluster, and returns once the cluster has formed: every server's
    /// `/healthz` answers 200 and every server's `/jsz` names the same meta
    /// leader of a meta group of `size` (and a leader for each stream and
    /// consumer it holds, which matters after [`NatsCluster::restart_all`]).
    ///
    /// # Panics
    ///
    /// If `size` is 0, the binary is missing (see
    /// [`crate::nats_server_binary`]), or a server exits or the cluster has
    /// not formed within [`READY_TIMEOUT`]; the message holds the tail of
    /// every server's log.
    pub fn start(size: usize) -> Self {
        Self::start_with_max_payload(size, None)
    }

    /// As [`NatsCluster::start`], with every server's `max_payload` (the
    /// largest message a client may publish) set when given.
    pub fn start_with_max_payload(size: usize, max_payload: Option<usize>) -> Self {
        assert!(size > 0, "a cluster needs at least one server");
        let dir = tempfile::Builder::new()
            .prefix("aether-nats-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory for nats-server: {e}"));
        let servers = (0..size)
            .map(|i| {
                let name = format!("nats-{i}");
                let server_dir = dir.path().join(&name);
                let mut server = NatsServer::new(name, server_dir);
                server.set_max_payload(max_payload);
                server
            })
            .collect();
        let mut cluster = Self { servers, _dir: dir };
        let mut attempt = 1;
        loop {
            cluster.configure();
            for server in &mut cluster.servers {
                server.spawn();
            }
            match cluster.wait_formed(Instant::now() + READY_TIMEOUT) {
                Ok(()) => return cluster,
                Err(NotReady::Exited(_))
                    if cluster.servers.iter().any(NatsServer::port_taken)
                        && attempt < PORT_ATTEMPTS =>
                {
                    for server in &mut cluster.servers {
                        server.kill();
                        server.wipe_store();
                    }
                    attempt += 1;
                }
                Err(trouble) => panic!("{}", cluster.failure("start", &trouble)),
            }
        }
    }

    /// How many servers the cluster has.
    pub fn size(&self) -> usize {
        self.servers.len()
    }

    /// The cluster's name (`cluster.name`): [`CLUSTER_NAME`].
    pub fn name(&self) -> &str {
        CLUSTER_NAME
    }

    /// Every server's client URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// Every server's client URL, comma-joined: the server list as NATS
    /// configurations and command lines spell it. (`async_nats::connect`
    /// takes the list itself: [`NatsCluster::urls`].)
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Server `index`, to stop, kill or restart it.
    ///
    /// # Panics
    ///
    /// If there is no such server.
    pub fn server(&mut self, index: usize) -> &mut NatsServer {
        let size = self.servers.len();
        self.servers
            .get_mut(index)
            .unwrap_or_else(|| panic!("the cluster has servers 0..{size}, not {index}"))
    }

    /// All servers, in order.
    pub fn servers(&self) -> &[NatsServer] {
        &self.servers
    }

    /// The index of the server that every running server names as the
    /// JetStream meta leader, if they agree on one.
    pub fn meta_leader(&mut self) -> Option<usize> {
        let mut leader: Option<String> = None;
        for server in &mut self.servers {
            if !server.is_running() {
                continue;
            }
            let name = monitor::meta_cluster(server.ports().monitor).ok()?.leader;
            if name.is_empty() || leader.as_ref().is_some_and(|known| *known != name) {
                return None;
            }
            leader = Some(name);
        }
        self.servers_index(&leader?)
    }

    /// Stops every running server (SIGTERM), starts them all again on the
    /// same ports with the same stores, and returns once the cluster has
    /// formed again (as [`NatsCluster::start`] does).
    ///
    /// # Panics
    ///
    /// As [`NatsServer::stop`] and [`NatsCluster::wait_until_ready`].
    pub fn restart_all(&mut self) {
        for server in &mut self.servers {
            server.stop();
        }
        for server in &mut self.servers {
            server.spawn();
        }
        self.wait_until_ready();
    }

    /// Waits until every server is running and ready (see
    /// [`NatsServer::restart`]) and they all name the same meta leader of a
    /// meta group of the cluster's size.
    ///
    /// # Panics
    ///
    /// If a server is not running or exits, or the cluster is not ready
    /// within [`READY_TIMEOUT`].
    pub fn wait_until_ready(&mut self) {
        if let Err(trouble) = self.wait_formed(Instant::now() + READY_TIMEOUT) {
            panic!("{}", self.failure("wait for", &trouble));
        }
    }

    /// Picks every server's ports and writes the configurations.
    fn configure(&mut self) {
        let picked = ports::pick(3 * self.servers.len());
        let all: Vec<Ports> = picked
            .chunks_exact(3)
            .map(|p| Ports {
                client: p[0],
                monitor: p[1],
                cluster: Some(p[2]),
            })
            .collect();
        for (i, server) in self.servers.iter_mut().enumerate() {
            let routes = all
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .filter_map(|(_, ports)| ports.cluster)
                .collect();
            server.configure(
                all[i],
                Some(ClusterRoutes {
                    name: CLUSTER_NAME.to_owned(),
                    routes,
                }),
            );
        }
    }

    fn wait_formed(&mut self, deadline: Instant) -> Result<(), NotReady> {
        let size = self.servers.len() as u64;
        loop {
            let mut waiting = None;
            for server in &mut self.servers {
                match server.probe() {
                    Probe::Ready => {}
                    Probe::NotYet(why) => waiting = waiting.or(Some(why)),
                    Probe::Exited(what) => return Err(NotReady::Exited(what)),
                }
            }
            if waiting.is_none() {
                waiting = self.disagreement(size);
            }
            match waiting {
                None => return Ok(()),
                Some(last) if Instant::now() >= deadline => return Err(NotReady::TimedOut(last)),
                Some(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// What keeps the servers' views of the meta group from agreeing on
    /// one leader of `size` servers, if anything.
    fn disagreement(&self, size: u64) -> Option<String> {
        let mut leader: Option<String> = None;
        for server in &self.servers {
            let meta = match monitor::meta_cluster(server.ports().monitor) {
                Ok(meta) => meta,
                Err(why) => return Some(format!("{}: {why}", server.name())),
            };
            if meta.size != size {
                return Some(format!(
                    "{}: the meta group has {} servers, not {size}",
                    server.name(),
                    meta.size
                ));
            }
            match &leader {
                Some(known) if *known != meta.leader => {
                    return Some(format!(
                        "{} names {} as meta leader, another server {known}",
                        server.name(),
                        meta.leader
                    ));
                }
                _ => leader = Some(meta.leader),
            }
        }
        None
    }

    fn servers_index(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name() == name)
    }

    /// A panic message for a failed `action`, with every server's log tail.
    fn failure(&self, action: &str, trouble: &NotReady) -> String {
        let mut message = format!(
            "could not {action} the {}-server nats-server cluster: {trouble}\n",
            self.servers.len()
        );
        for server in &self.servers {
            message.push_str(&server.log_tail());
        }
        message
    }
}
