//! Aether embedded in a Rust program: the aggregate runtime on the embedded
//! (redb) store, called as a library. No HTTP server, no NATS.
//!
//! ```text
//! cargo run -p embedded -- <bank_account.wasm> <data-dir> <account-id>
//! ```
//!
//! Opens (or reopens) the store in `<data-dir>`, deploys the bank-account
//! component, opens the account if it is new, deposits 100, tries to
//! withdraw more than the balance (a rejection: nothing is stored) and
//! prints the account's state. Run it twice on the same directory: the
//! second run finds the account's events on disk and continues from them.

use std::path::PathBuf;
use std::sync::Arc;

use aether_runtime::{CommandError, CommandRequest, Runtime, RuntimeConfig, stream_id};
use aether_store::EmbeddedStore;
use anyhow::{Context, Result, bail};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [component, data_dir, account] = args.as_slice() else {
        bail!("usage: embedded <bank_account.wasm> <data-dir> <account-id>");
    };
    let data_dir = PathBuf::from(data_dir);

    // The store is a directory on disk; the runtime compiles and runs the
    // component, and derives the account's state from its stored events.
    let store = EmbeddedStore::open(&data_dir)
        .with_context(|| format!("opening the event store in {}", data_dir.display()))?;
    let runtime = Runtime::new(Arc::new(store), RuntimeConfig::default())?;

    let account = stream_id("bank", "bank-account", account)?;
    let bytes = std::fs::read(component).with_context(|| format!("reading {component}"))?;
    let digest = runtime
        .deploy(&account.namespace, &account.aggregate_type, bytes)
        .await?;
    println!("deployed bank-account {}", digest.short());

    if runtime.state(&account).await?.version == 0 {
        let opened = runtime
            .execute(CommandRequest::json(
                account.clone(),
                "Open",
                &json!({ "owner": "Ada" }),
            ))
            .await?;
        println!("opened {account} (version {})", opened.version);
    }
    let deposit = CommandRequest::json(account.clone(), "Deposit", &json!({ "amount": 100 }));
    let deposited = runtime.execute(deposit).await?;
    println!("deposited 100 (version {})", deposited.version);

    // A rejection is the aggregate's answer, not a failure: nothing is stored.
    let withdraw =
        CommandRequest::json(account.clone(), "Withdraw", &json!({ "amount": 1_000_000 }));
    match runtime.execute(withdraw).await {
        Err(CommandError::Rejected(rejection)) => {
            println!("withdraw 1000000 rejected: {}", rejection.code);
        }
        other => bail!("expected a rejection, got {other:?}"),
    }

    let state = runtime.state(&account).await?;
    println!("state at version {}: {}", state.version, state.view);
    Ok(())
}
