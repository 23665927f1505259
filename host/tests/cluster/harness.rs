//! A cluster of real processes: 3 `nats-server`s (R3 streams and buckets)
//! and N `aether serve --cluster` nodes on random loopback ports.
//!
//! Namespaces and components are set up once on the first node; the
//! others start from a copy of its `node.json` and `components/` (which
//! the cluster shares through NATS too), or with an empty data directory
//! (`add_empty_node`).

use std::path::Path;
use std::time::{Duration, Instant};

use aether_nats_harness::NatsCluster;
use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, Http, NodeProcess};

/// Shards of every test cluster (the default).
pub(crate) const SHARDS: usize = 256;

/// A test cluster; every process is killed on drop.
pub(crate) struct Cluster {
    pub(crate) nats: NatsCluster,
    pub(crate) nodes: Vec<Option<NodeProcess>>,
    dirs: Vec<tempfile::TempDir>,
    /// The `bank` namespace's token (the same on every node).
    pub(crate) token: String,
    /// Nodes whose wall clock is shifted, by how many milliseconds
    /// (`AETHER_CLOCK_SKEW_MS`), kept across restarts.
    clock_skews: Vec<(usize, i64)>,
}

impl Cluster {
    /// 3 NATS servers and `size` nodes with the bank-account component
    /// deployed in namespace `bank`; returns once the shard map is stable.
    pub(crate) fn start(size: usize) -> Cluster {
        Self::start_with_clock_skews(size, &[])
    }

    /// As [`Cluster::start`], with the wall clocks of some nodes shifted:
    /// `(node index, milliseconds)`.
    pub(crate) fn start_with_clock_skews(size: usize, clock_skews: &[(usize, i64)]) -> Cluster {
        Self::start_on(NatsCluster::start(3), size, clock_skews)
    }

    /// As [`Cluster::start`], on NATS servers whose `max_payload` (the
    /// largest message) is `max_payload` bytes.
    pub(crate) fn start_with_max_payload(size: usize, max_payload: usize) -> Cluster {
        let nats = NatsCluster::start_with_max_payload(3, Some(max_payload));
        Self::start_on(nats, size, &[])
    }

    fn start_on(nats: NatsCluster, size: usize, clock_skews: &[(usize, i64)]) -> Cluster {
        let mut cluster = Cluster {
            nats,
            nodes: Vec::new(),
            dirs: Vec::new(),
            token: String::new(),
            clock_skews: clock_skews.to_vec(),
        };
        cluster.add_node();
        let admin = cluster.admin(0);
        cluster.token = admin.create_namespace("bank", json!({}));
        cluster.client(0).deploy("bank", "bank-account", BANK);
        for _ in 1..size {
            cluster.add_node();
        }
        cluster.wait_stable(size);
        cluster
    }

    /// Node `index`'s id.
    pub(crate) fn node_id(index: usize) -> String {
        format!("node-{}", index + 1)
    }

    /// Starts one more node (seeded from node 1's tenants and components).
    pub(crate) fn add_node(&mut self) -> usize {
        let dir = tempfile::tempdir().unwrap();
        if let Some(first) = self.dirs.first() {
            seed(first.path(), dir.path());
        }
        self.dirs.push(dir);
        self.nodes.push(None);
        let index = self.nodes.len() - 1;
        self.restart(index);
        index
    }

    /// Starts one more node on an empty data directory: all it is given is
    /// the NATS servers and its node id.
    pub(crate) fn add_empty_node(&mut self) -> usize {
        self.dirs.push(tempfile::tempdir().unwrap());
        self.nodes.push(None);
        let index = self.nodes.len() - 1;
        self.restart(index);
        index
    }

    /// Starts one more node on an empty data directory, on a thread of its
    /// own: a node that is not ready (it waits for something before it
    /// joins) does not hold the test up. Give the node to
    /// [`Cluster::adopt`] once the thread returns it.
    pub(crate) fn add_empty_node_in_background(
        &mut self,
    ) -> (usize, std::thread::JoinHandle<NodeProcess>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        self.dirs.push(dir);
        self.nodes.push(None);
        let index = self.nodes.len() - 1;
        let flags = self.flags(index, &[]);
        let starting = std::thread::spawn(move || {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            NodeProcess::start_with_env(&path, &flags, &[])
        });
        (index, starting)
    }

    /// Takes node `index`, started by
    /// [`Cluster::add_empty_node_in_background`], into the cluster.
    pub(crate) fn adopt(&mut self, index: usize, node: NodeProcess) {
        assert!(self.nodes[index].is_none(), "node {index} is running");
        self.nodes[index] = Some(node);
    }

    /// Starts node `index` again on its data directory.
    pub(crate) fn restart(&mut self, index: usize) {
        assert!(self.nodes[index].is_none(), "node {index} is running");
        let flags = self.flags(index, &[]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let env: Vec<(&str, String)> = self
            .clock_skews
            .iter()
            .filter(|(node, _)| *node == index)
            .map(|(_, ms)| ("AETHER_CLOCK_SKEW_MS", ms.to_string()))
            .collect();
        let node = NodeProcess::start_with_env(self.dirs[index].path(), &flags, &env);
        self.nodes[index] = Some(node);
    }

    /// The cluster flags of node `index`, with `changed` ones replaced.
    fn flags(&self, index: usize, changed: &[(&str, &str)]) -> Vec<String> {
        let urls = self.nats.urls().join(",");
        let id = Self::node_id(index);
        let mut flags = vec![
            ("--nats", urls.as_str()),
            ("--nats-replicas", "3"),
            ("--node-id", &id),
            ("--heartbeat-ms", "300"),
            ("--lease-ttl-ms", "2000"),
            ("--route-timeout-ms", "10000"),
        ];
        for &(flag, value) in changed {
            match flags.iter_mut().find(|(f, _)| *f == flag) {
                Some(entry) => entry.1 = value,
                None => flags.push((flag, value)),
            }
        }
        let mut args = vec!["--cluster".to_owned()];
        for (flag, value) in flags {
            args.extend([flag.to_owned(), value.to_owned()]);
        }
        args
    }

    /// Starts one more node (seeded like the others) with `changed` flags
    /// and waits up to 90 s for it to exit; its exit status and stderr.
    /// Panics if it is still running then (it was not refused).
    pub(crate) fn start_expecting_exit(
        &self,
        changed: &[(&str, &str)],
    ) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().unwrap();
        seed(self.dirs[0].path(), dir.path());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aether"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(self.flags(self.nodes.len(), changed))
            .env("AETHER_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "a node with {changed:?} still ran after 90 s:\n{}",
                    log.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, log.join().unwrap())
    }

    /// Kills node `index` with SIGKILL.
    pub(crate) fn kill(&mut self, index: usize) {
        drop(self.nodes[index].take().expect("running"));
    }

    /// Stops node `index` with SIGTERM (it hands its shards off).
    pub(crate) fn terminate(&mut self, index: usize) -> String {
        let node = self.nodes[index].take().expect("running");
        let (status, log) = node.terminate();
        assert!(
            status.success(),
            "node {index} exited with {status}:\n{log}"
        );
        log
    }

    /// Freezes node `index` with SIGSTOP (a long GC pause, a stalled VM).
    pub(crate) fn pause(&self, index: usize) {
        signal("STOP", self.node(index).pid());
    }

    /// Lets a paused node `index` run again (SIGCONT).
    pub(crate) fn resume(&self, index: usize) {
        signal("CONT", self.node(index).pid());
    }

    /// The running nodes: index and base URL.
    pub(crate) fn targets(&self) -> Vec<(usize, String)> {
        self.running()
            .into_iter()
            .map(|i| (i, self.node(i).url.clone()))
            .collect()
    }

    /// The indexes of the running nodes.
    pub(crate) fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// The base URLs of the running nodes.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().flatten().map(|n| n.url.clone()).collect()
    }

    /// A client of node `index` with the `bank` token.
    pub(crate) fn client(&self, index: usize) -> Http {
        self.node(index).client(Some(&self.token))
    }

    /// A client of node `index` with the admin token.
    pub(crate) fn admin(&self, index: usize) -> Http {
        self.node(index).client(Some(ADMIN))
    }

    pub(crate) fn node(&self, index: usize) -> &NodeProcess {
        self.nodes[index].as_ref().expect("running")
    }

    /// Node `index`'s `GET /v1/cluster`.
    pub(crate) fn status(&self, index: usize) -> Value {
        let (status, body) = self.admin(index).get("/v1/cluster");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The running node that holds the lease, once all agree on it.
    pub(crate) fn leader(&self) -> usize {
        let leaders: Vec<usize> = self
            .running()
            .into_iter()
            .filter(|&i| self.status(i)["is_leader"] == json!(true))
            .collect();
        assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
        leaders[0]
    }

    /// Waits until the running nodes (`members` of them) agree on one map
    /// of exactly them, with every shard served by its owner.
    pub(crate) fn wait_stable(&self, members: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let statuses: Vec<Value> = self.running().into_iter().map(|i| self.status(i)).collect();
            if stable(&statuses, members) {
                return statuses[0].clone();
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self.nodes.iter().flatten().map(tail_of_log).collect();
                panic!(
                    "the cluster did not settle on {members} members within 90 s: {statuses:#?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Node `index`'s Prometheus metrics.
    pub(crate) fn metrics(&self, index: usize) -> String {
        let (status, body) = self.admin(index).get("/metrics");
        assert_eq!(status, 200);
        body.as_str().unwrap().to_owned()
    }
}

/// Sends `SIG<name>` to process `pid`.
pub(crate) fn signal(name: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid}");
}

/// The last lines a node logged.
pub(crate) fn tail_of_log(node: &NodeProcess) -> String {
    let log = node.log();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "--- {}:\n{}",
        node.url,
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}

/// Whether every node sees the same epoch, a map of exactly the running
/// `members`, the same leader, and serves exactly the shards it owns.
fn stable(statuses: &[Value], members: usize) -> bool {
    let first = &statuses[0];
    let ids: Vec<String> = statuses
        .iter()
        .map(|s| s["node_id"].as_str().unwrap().to_owned())
        .collect();
    statuses.len() == members
        && first["epoch"].as_u64().unwrap_or(0) > 0
        && statuses.iter().all(|s| {
            s["epoch"] == first["epoch"]
                && s["leader"] == first["leader"]
                && s["members"].as_array().map(Vec::len) == Some(members)
                && s["shards_per_node"].as_object().is_some_and(|per| {
                    per.len() == members && ids.iter().all(|id| per.contains_key(id))
                })
                && s["serving"] == s["shards_per_node"][s["node_id"].as_str().unwrap()]
        })
}

/// Copies node 1's tenants and components into a new node's directory.
fn seed(from: &Path, to: &Path) {
    std::fs::copy(from.join("node.json"), to.join("node.json")).unwrap();
    copy_dir(&from.join("components"), &to.join("components"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
