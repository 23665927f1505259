//! Command-line interface of the `aether` binary.

mod conformance;
mod demo;
mod inspect;
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
    /// Print an aggregate's events from a data directory.
    Events(inspect::EventsArgs),
    /// Derive an aggregate's state from a data directory by replaying its
    /// events into its component.
    State(inspect::StateArgs),
    /// Run conformance scenarios (given events, when a command, then events
    /// or a rejection) against a compiled component.
    Test(conformance::TestArgs),
}

pub(crate) fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
            Command::Events(args) => inspect::events(args).await,
            Command::State(args) => inspect::state(args).await,
            Command::Test(args) => conformance::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
