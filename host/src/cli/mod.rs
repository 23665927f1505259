//! Command-line interface of the `aether` binary.

mod client;
mod cluster;
mod conformance;
mod demo;
mod dev;
mod inspect;
mod remote;
mod serve;
mod time;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Aether: event-sourced aggregates as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "aether", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A scripted tour: deploy the bank-account component, send commands,
    /// show a rejection and a conflict, print the events and the state.
    Demo(demo::DemoArgs),
    /// Run a node: the HTTP API for many namespaces, on the embedded store
    /// (or JetStream with --nats).
    Serve(Box<serve::ServeArgs>),
    /// Develop a Rust guest: build it, serve it on a local node in watch
    /// mode, and rebuild and redeploy it whenever its sources change.
    Dev(dev::DevArgs),
    /// Create namespaces, issue tokens, set limits (on a node).
    Namespace(remote::NamespaceArgs),
    /// Deploy a component for an aggregate type (on a node).
    Deploy(remote::DeployArgs),
    /// An aggregate type's components: history, activate, rollback (on a
    /// node).
    Components(remote::ComponentsArgs),
    /// Send a command to an aggregate (on a node).
    Send(remote::SendArgs),
    /// Print an aggregate's events, from a node or (with --data-dir) from
    /// a stopped node's data directory.
    Events(inspect::EventsArgs),
    /// Print an aggregate's state, from a node or (with --data-dir and
    /// --component) by replaying a data directory's events.
    State(inspect::StateArgs),
    /// A cluster's members, leader and shard map (on any of its nodes).
    Cluster(cluster::ClusterArgs),
    /// Follow a namespace's new events as they are stored (on a node).
    Tail(remote::TailArgs),
    /// Run conformance scenarios (given events, when a command, then events
    /// or a rejection) against a compiled component.
    Test(conformance::TestArgs),
}

pub(crate) fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Every request passes through these threads (`aether_core::thread`).
        .on_thread_start(aether_core::thread::answer_promptly)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Namespace(args) => blocking(move || remote::namespace(args)).await,
            Command::Deploy(args) => blocking(move || remote::deploy(args)).await,
            Command::Send(args) => blocking(move || remote::send(args)).await,
            Command::Components(args) => blocking(move || remote::components(args)).await,
            Command::Cluster(args) => blocking(move || cluster::run(args)).await,
            Command::Tail(args) => blocking(move || remote::tail(args)).await,
            Command::Events(args) => inspect::events(args).await,
            Command::State(args) => inspect::state(args).await,
            Command::Test(args) => conformance::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// Exit codes: 0 success, 1 failure, 2 usage (clap), 3 the aggregate
/// rejected the command, 4 version conflict.
fn exit_code(error: &anyhow::Error) -> ExitCode {
    use aether_host::service::ErrorCode;
    let code = error
        .downcast_ref::<client::ApiFailure>()
        .and_then(|failure| failure.code.parse::<ErrorCode>().ok());
    match code {
        Some(ErrorCode::Rejected) => ExitCode::from(3),
        Some(ErrorCode::VersionConflict) => ExitCode::from(4),
        _ => ExitCode::FAILURE,
    }
}

/// Runs blocking client work (HTTP calls) off the async workers.
pub(crate) async fn blocking(
    work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow::anyhow!("the command stopped: {e}"))?
}

/// Logs go to stderr; `RUST_LOG` selects them (default: warnings).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
