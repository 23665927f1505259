//! `aether serve`: run a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use aether_host::cluster::ClusterConfig;
use aether_host::node::{ConnectionLimits, NodeConfig, serve};
use aether_host::runtime::{LimitOverrides, SandboxLimits, limits};
use clap::{Arg, ArgMatches};

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
    /// The default limits of every namespace: one flag per limit.
    #[command(flatten)]
    limits: LimitFlags,
    /// Seconds a namespace's partition threads run without a command or
    /// read before they stop (the next command starts them again).
    #[arg(long, default_value_t = 60)]
    lane_idle_secs: u64,
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
    /// Watch mode: deploy every `DIR/<namespace>/<aggregate-type>.wasm` on
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
    /// Connections one client (an IPv4 address, an IPv6 /64) may have open
    /// at once; more are answered 429. Behind a proxy (every client one
    /// address) raise it to --max-connections.
    #[arg(long, default_value_t = 256)]
    max_connections_per_address: usize,
    /// Connections kept, once --max-connections are open, for /healthz,
    /// /readyz and /metrics only.
    #[arg(long, default_value_t = 16)]
    ops_reserve: usize,
    /// The most the compile cache (DATA_DIR/compiled, shared by every
    /// tenant) keeps on disk, in MiB; the entries used longest ago are
    /// removed first. 0 keeps nothing (every start compiles).
    #[arg(long, default_value_t = 1_024)]
    compile_cache_mib: u64,
    /// How long SIGTERM waits for open connections to finish before it
    /// drops them and the node exits.
    #[arg(long, default_value_t = 20_000)]
    shutdown_grace_ms: u64,
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let mut config = NodeConfig::new(&args.data_dir, args.listen);
    config.admin_token = args.admin_token;
    config.watch = args.watch;
    config.runtime.limits = args.limits.0.apply(&SandboxLimits::default());
    config.runtime.lane_idle_timeout = Duration::from_secs(args.lane_idle_secs.max(1));
    config.runtime.compile_cache_max_bytes = args.compile_cache_mib.saturating_mul(1 << 20);
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
        max_connections_per_address: args.max_connections_per_address,
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

/// The flags that set every namespace's default limits, made from the
/// runtime's one definition of each limit (`aether_runtime::limits()`):
/// `--<limit>` with dashes (`--call-deadline-ms`), in the limit's API unit,
/// defaulting to the runtime's default.
#[derive(Debug, Clone, Default)]
struct LimitFlags(LimitOverrides);

impl clap::FromArgMatches for LimitFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = LimitOverrides::default();
        for limit in limits() {
            if let Some(value) = matches.get_one::<u64>(limit.name) {
                let known = overrides.set(limit.name, *value);
                debug_assert!(known, "{} is a limit", limit.name);
            }
        }
        Ok(Self(overrides))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for LimitFlags {
    fn augment_args(command: clap::Command) -> clap::Command {
        limits().into_iter().fold(command, |command, limit| {
            let mut arg = Arg::new(limit.name)
                .long(limit.flag())
                .value_name("N")
                .value_parser(clap::value_parser!(u64))
                .help(format!("Every namespace's default: {}", limit.summary));
            if let Some(default) = limit.default {
                arg = arg.default_value(default.to_string());
            }
            command.arg(arg)
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}
