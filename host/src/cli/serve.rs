//! `aether serve`: run a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use aether_host::cluster::ClusterConfig;
use aether_host::node::{ConnectionLimits, NodeConfig, serve};
use aether_host::runtime::SandboxLimits;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The data directory: events, tenants, components, compile cache.
    #[arg(long, default_value = "./aether-data")]
    data_dir: PathBuf,
    /// Where the HTTP API listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// The admin token (at least 16 characters). Without it the node keeps
    /// the one it has, or makes one and prints it once.
    #[arg(long, env = "AETHER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Default memory per guest instance, in MiB.
    #[arg(long, default_value_t = 256)]
    memory_mib: usize,
    /// Default deadline of one guest call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    call_deadline_ms: u64,
    /// Default largest command payload, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_command_bytes: usize,
    /// Default largest JSON view of one aggregate a state read returns, in
    /// bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_view_bytes: usize,
    /// Default live event streams one namespace may have open at once.
    #[arg(long, default_value_t = 64)]
    max_live_streams: usize,
    /// Default bytes of event payloads one namespace may store in all.
    #[arg(long, default_value_t = SandboxLimits::default().max_stored_event_bytes)]
    max_stored_event_bytes: u64,
    /// Default bytes of components one namespace may store in all.
    #[arg(long, default_value_t = SandboxLimits::default().max_stored_component_bytes)]
    max_stored_component_bytes: u64,
    /// Default component uploads one namespace may have in progress at once.
    #[arg(long, default_value_t = SandboxLimits::default().max_concurrent_uploads)]
    max_concurrent_uploads: usize,
    /// Seconds a namespace's partition threads run without a command or
    /// read before they stop (the next command starts them again).
    #[arg(long, default_value_t = 60)]
    lane_idle_secs: u64,
    /// Default live aggregates per namespace.
    #[arg(long, default_value_t = 200_000)]
    max_live_aggregates: usize,
    /// Keep events in NATS JetStream at these servers (comma-separated,
    /// e.g. nats://127.0.0.1:4222) instead of the embedded store.
    #[arg(long, value_delimiter = ',')]
    nats: Vec<String>,
    /// Replicas of the JetStream event stream and snapshot bucket (use 3 in
    /// production, on three servers).
    #[arg(long, default_value_t = 1, requires = "nats")]
    nats_replicas: usize,
    /// Join a cluster of nodes over NATS (needs --nats and --node-id):
    /// aggregates are spread over the nodes by shard, and any node takes
    /// any command.
    #[arg(long, requires_all = ["nats", "node_id"])]
    cluster: bool,
    /// This node's id in the cluster: unique, stable across restarts.
    #[arg(long, requires = "cluster")]
    node_id: Option<String>,
    /// Shards in the cluster (every node must use the same number).
    #[arg(long, default_value_t = aether_host::cluster::DEFAULT_SHARDS, requires = "cluster")]
    shards: u32,
    /// How often a cluster node beats and the leader renews its lease.
    #[arg(long, default_value_t = 1000, requires = "cluster")]
    heartbeat_ms: u64,
    /// How long a silent node stays a member and a silent leader leader
    /// (at least three heartbeats).
    #[arg(long, default_value_t = 5000, requires = "cluster")]
    lease_ttl_ms: u64,
    /// How long a command waits for its shard's owner (while a shard
    /// moves) before it fails with 503.
    #[arg(long, default_value_t = 10_000, requires = "cluster")]
    route_timeout_ms: u64,
    /// Partition threads per namespace: the most cores one tenant's guest
    /// code can use (default: half the CPUs, at least 1).
    #[arg(long)]
    partitions: Option<usize>,
    /// Watch mode: deploy every DIR/<namespace>/<aggregate-type>.wasm on
    /// start and again whenever it changes; a missing namespace is created
    /// and its token printed once. DIR is created if missing.
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,
    /// Time a client gets to send a request's head (request line and
    /// headers), counted from when the node waits for it; then the
    /// connection is closed.
    #[arg(long, default_value_t = 10_000)]
    header_read_timeout_ms: u64,
    /// Time a request body gets before it must keep arriving at
    /// --min-body-bytes-per-sec; a slower one is answered 408.
    #[arg(long, default_value_t = 10_000)]
    body_read_timeout_ms: u64,
    /// The slowest a request body may arrive past --body-read-timeout-ms.
    #[arg(long, default_value_t = 16 * 1024)]
    min_body_bytes_per_sec: u64,
    /// How long a connection with no request in flight may sit idle.
    #[arg(long, default_value_t = 5_000)]
    keep_alive_timeout_ms: u64,
    /// Connections served at once; more go to the --ops-reserve.
    #[arg(long, default_value_t = 1_024)]
    max_connections: usize,
    /// Connections kept, once --max-connections are open, for /healthz,
    /// /readyz and /metrics only.
    #[arg(long, default_value_t = 16)]
    ops_reserve: usize,
    /// How long SIGTERM waits for open connections to finish before it
    /// drops them and the node exits.
    #[arg(long, default_value_t = 20_000)]
    shutdown_grace_ms: u64,
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let mut config = NodeConfig::new(&args.data_dir, args.listen);
    config.admin_token = args.admin_token;
    config.watch = args.watch;
    let limits = &mut config.runtime.limits;
    limits.memory_bytes = args.memory_mib << 20;
    limits.call_deadline = Duration::from_millis(args.call_deadline_ms);
    limits.max_command_bytes = args.max_command_bytes;
    limits.max_live_aggregates = args.max_live_aggregates;
    limits.max_view_bytes = args.max_view_bytes;
    limits.max_live_streams = args.max_live_streams;
    limits.max_stored_event_bytes = args.max_stored_event_bytes;
    limits.max_stored_component_bytes = args.max_stored_component_bytes;
    limits.max_concurrent_uploads = args.max_concurrent_uploads;
    config.runtime.lane_idle_timeout = Duration::from_secs(args.lane_idle_secs.max(1));
    if !args.nats.is_empty() {
        config.nats = Some(aether_host::store::JetStreamConfig::new(
            args.nats.clone(),
            args.nats_replicas,
        ));
    }
    if args.cluster {
        let node_id = args.node_id.clone().unwrap_or_default();
        let mut cluster = ClusterConfig::new(node_id, args.nats.clone());
        cluster.replicas = args.nats_replicas;
        cluster.shards = args.shards;
        cluster.heartbeat = Duration::from_millis(args.heartbeat_ms);
        cluster.lease_ttl = Duration::from_millis(args.lease_ttl_ms);
        cluster.route_timeout = Duration::from_millis(args.route_timeout_ms);
        cluster.check()?;
        config.cluster = Some(cluster);
    }
    if let Some(partitions) = args.partitions {
        config.runtime.partitions = partitions;
    }
    config.connections = ConnectionLimits {
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
        min_body_bytes_per_sec: args.min_body_bytes_per_sec,
        keep_alive_timeout: Duration::from_millis(args.keep_alive_timeout_ms),
        max_connections: args.max_connections,
        ops_reserve: args.ops_reserve,
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
    };
    config.connections.check()?;
    let data_dir = args.data_dir.display().to_string();
    serve(config, |address| {
        // Scripts and tests read this line for the address.
        println!("aether node listening on http://{address} (data in {data_dir})");
    })
    .await
}
