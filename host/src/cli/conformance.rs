//! `aether test <component> <scenarios-dir>`: runs conformance scenarios
//! against a compiled component and reports each one, with a diff for
//! every failure. Exits non-zero if any scenario failed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::json;

use aether_host::runtime::scenario::{self, Outcome};
use aether_host::runtime::{Runtime, RuntimeConfig, stream_id};
use aether_host::store::MemoryStore;

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The compiled component (`.wasm`) to test.
    component: PathBuf,
    /// A directory of `*.json` scenario files.
    scenarios: PathBuf,
    /// Print JSON for scripts instead of a report.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: TestArgs) -> Result<()> {
    let scenarios = scenario::load_scenarios(&args.scenarios)?;
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading the component {}", args.component.display()))?;
    let size = bytes.len();
    let runtime = Runtime::new(
        Arc::new(MemoryStore::new()),
        RuntimeConfig {
            partitions: 1,
            ..RuntimeConfig::default()
        },
    )?;
    let component = runtime.load_component(bytes).await?;
    let stream = stream_id("conformance", "aggregate", "scenario")?;

    let mut failed = 0;
    let mut report = Vec::new();
    if !args.json {
        println!(
            "{} ({} KiB, digest {})",
            args.component.display(),
            size / 1024,
            component.digest().short()
        );
    }
    // Guest calls are synchronous and WASI's sync bindings block on Tokio:
    // run them on a blocking thread, never on an async worker.
    let outcomes = {
        let scenarios = scenarios.clone();
        tokio::task::spawn_blocking(move || {
            scenarios
                .iter()
                .map(|s| s.run(&runtime, &component, &stream))
                .collect::<Vec<_>>()
        })
        .await?
    };
    for (scenario, actual) in scenarios.iter().zip(outcomes) {
        let passed = scenario.accepts(&actual);
        let file = scenario
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !passed {
            failed += 1;
        }
        if args.json {
            report.push(json!({ "file": file, "name": scenario.name, "passed": passed, "expected": scenario.then, "actual": actual }));
        } else if passed {
            println!("  ok    {file}: {}", scenario.name);
        } else {
            println!("  FAIL  {file}: {}", scenario.name);
            if let Outcome::Failure(message) = &actual {
                println!("        the component failed: {message}");
            }
            println!("        (- expected, + actual)");
            for line in scenario::diff(&scenario.then, &actual).lines() {
                println!("        {line}");
            }
        }
    }
    let passed = scenarios.len() - failed;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{passed} scenarios passed, {failed} failed");
    }
    if failed > 0 {
        bail!("{failed} of {} scenarios failed", scenarios.len());
    }
    Ok(())
}
