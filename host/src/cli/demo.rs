//! `aether demo`: the walking skeleton, end to end, as a newcomer sees it.
//!
//! Every step checks its outcome: the demo exits non-zero if the host does
//! not behave as described (a rejection not rejected, a conflict not
//! detected, a wrong balance).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;

use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::runtime::{CommandError, CommandRequest, Runtime, RuntimeConfig};
use aether_host::store::{EmbeddedStore, RecordedEvent, StreamId};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// The bank-account component (`cargo xtask demo` builds it).
    #[arg(long, default_value = "target/wasm32-wasip2/release/bank_account.wasm")]
    component: PathBuf,
    /// Where the events are stored. Runs with the same directory add to
    /// what earlier runs stored.
    #[arg(long, default_value = "./aether-data")]
    data_dir: PathBuf,
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    let bytes = std::fs::read(&args.component).with_context(|| {
        format!(
            "reading the component {}: build it with `cargo xtask demo`",
            args.component.display()
        )
    })?;
    let store = EmbeddedStore::open(&args.data_dir)
        .with_context(|| format!("opening the data directory {}", args.data_dir.display()))?;
    let config = RuntimeConfig {
        compile_cache: Some(args.data_dir.join("compiled")),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(Arc::new(store), config)?;
    let namespace = Namespace::new("demo")?;
    let account_type = AggregateType::new("bank-account")?;

    println!("Aether demo: a bank account as a WebAssembly component\n");
    // The demo stores its events in its own namespace only, so that
    // namespace's head counts what earlier runs stored.
    let earlier = runtime.store().head_position(&namespace).await?;
    println!(
        "data dir   {} ({earlier} events stored by earlier runs)",
        args.data_dir.display()
    );
    let started = Instant::now();
    let digest = runtime.deploy(&namespace, &account_type, bytes).await?;
    println!(
        "deployed   bank-account  digest {}  ({} KiB, compiled in {} ms)",
        digest.short(),
        std::fs::metadata(&args.component)
            .map(|m| m.len() / 1024)
            .unwrap_or(0),
        started.elapsed().as_millis()
    );

    // Each run opens a new account; earlier ones stay as they were.
    let mut run = 1;
    let account = loop {
        let candidate = StreamId::new(
            namespace.clone(),
            account_type.clone(),
            AggregateId::new(format!("acc-{run}"))?,
        );
        let version = runtime.store().stream_version(&candidate).await?;
        if version == 0 {
            break candidate;
        }
        let earlier = runtime.state(&candidate).await?;
        println!(
            "earlier    {candidate} at version {}, balance {}",
            earlier.version, earlier.view["balance"]
        );
        run += 1;
    };
    println!("aggregate  {account}\n");

    send(&runtime, &account, "Open", json!({ "owner": "Ada" })).await?;
    send(&runtime, &account, "Deposit", json!({ "amount": 100 })).await?;
    send(&runtime, &account, "Withdraw", json!({ "amount": 30 })).await?;

    print!("{:<34}", "Withdraw {\"amount\":200}");
    match runtime
        .execute(CommandRequest::json(
            account.clone(),
            "Withdraw",
            &json!({ "amount": 200 }),
        ))
        .await
    {
        Err(CommandError::Rejected(rejection)) => {
            ensure!(
                rejection.code == "insufficient-funds",
                "unexpected rejection {rejection}"
            );
            println!("rejected  {}: {}", rejection.code, rejection.message);
        }
        other => bail!("an overdraw must be rejected, got {other:?}"),
    }

    print!("{:<34}", "Deposit {\"amount\":5} @ version 2");
    let stale =
        CommandRequest::json(account.clone(), "Deposit", &json!({ "amount": 5 })).expecting(2);
    match runtime.execute(stale).await {
        Err(CommandError::Conflict(conflict)) => {
            println!(
                "conflict  expected version {}, the aggregate is at {}",
                conflict.expected, conflict.actual
            );
        }
        other => bail!("a stale expected version must conflict, got {other:?}"),
    }

    println!("\nevents of {account}:");
    let events = runtime.store().read_stream(&account, 1, usize::MAX).await?;
    for event in &events {
        print_event(event);
    }
    ensure!(
        events.len() == 3,
        "expected 3 stored events, found {}",
        events.len()
    );

    let state = runtime.state(&account).await?;
    println!("\nstate at version {}: {}", state.version, state.view);
    ensure!(
        state.version == 3,
        "expected version 3, found {}",
        state.version
    );
    ensure!(
        state.view["balance"] == json!(70),
        "expected balance 70 in {}",
        state.view
    );
    println!("balance {}", state.view["balance"]);
    println!(
        "\nThe events are stored in {dir}. Inspect them with\n  aether events --data-dir {dir} {ns} {ty} {id}",
        dir = args.data_dir.display(),
        ns = account.namespace,
        ty = account.aggregate_type,
        id = account.aggregate_id,
    );
    Ok(())
}

async fn send(
    runtime: &Runtime,
    stream: &StreamId,
    command: &str,
    data: serde_json::Value,
) -> Result<()> {
    print!("{:<34}", format!("{command} {data}"));
    let outcome = runtime
        .execute(CommandRequest::json(stream.clone(), command, &data))
        .await
        .with_context(|| format!("{command} failed"))?;
    let types: Vec<&str> = outcome
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    println!(
        "ok        version {} ({})",
        outcome.version,
        types.join(", ")
    );
    Ok(())
}

fn print_event(event: &RecordedEvent) {
    println!(
        "  v{:<3} {:<10} {}  (position {}, component {})",
        event.version,
        event.event_type,
        String::from_utf8_lossy(&event.data),
        event.position,
        event
            .metadata
            .component_digest
            .as_deref()
            .map_or("-", |d| &d[..12.min(d.len())]),
    );
}
