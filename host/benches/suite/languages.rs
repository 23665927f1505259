//! `replay_py`, `replay_js` and their command overhead: the same
//! bank-account aggregate built with componentize-py and componentize-js,
//! measured the way `replay` and `overhead` measure the Rust component
//! (a [`DirectAggregate`], no store), with fewer events and commands since
//! these components are far slower. Also the time to compile each on first
//! load, and the Rust figures of this same run for the ratios.

use std::path::Path;
use std::time::{Duration, Instant};

use aether_host::runtime::{DirectAggregate, JSON, LoadedComponent, Runtime, RuntimeConfig};
use aether_host::store::MemoryStore;
use anyhow::{Context, bail, ensure};

use super::fixture::{self, Ctx};
use super::report::{Metric, Report, Target, median};

const EVENTS: usize = 20_000;
const BATCH: usize = 1_024;
const REPLAY_RUNS: usize = 5;
const COMMANDS: usize = 500;
const COMMAND_RUNS: usize = 3;
const TIMESTAMP_MS: u64 = 1_700_000_000_000;

/// Issue 17's targets for a guest language: (replay events/s at least,
/// command overhead µs at most). None for Rust (its own rows have theirs).
fn targets(suffix: &str) -> Option<(f64, f64)> {
    match suffix {
        "py" => Some((500_000.0, 10.0)),
        "js" => Some((200_000.0, 50.0)),
        _ => None,
    }
}

/// How much one measurement does: the constants above, or a smoke run's.
#[derive(Clone, Copy)]
struct Sizes {
    events: usize,
    replay_runs: usize,
    commands: usize,
    command_runs: usize,
}

impl Sizes {
    fn of(ctx: &Ctx) -> Self {
        Self {
            events: ctx.size(EVENTS, 200),
            replay_runs: ctx.size(REPLAY_RUNS, 1),
            commands: ctx.size(COMMANDS, 20),
            command_runs: ctx.size(COMMAND_RUNS, 1),
        }
    }
}

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Some(dir) = &ctx.guests else {
        bail!(
            "the languages scenario needs --guests <dir with bank_account_py.wasm and bank_account_js.wasm>"
        );
    };
    let sizes = Sizes::of(ctx);
    let config = RuntimeConfig {
        compile_cache: ctx.compile_cache.clone(),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(std::sync::Arc::new(MemoryStore::new()), config)?;
    let rust = runtime.load_component(ctx.component.clone()).await?;
    let (rust_replay, rust_command) = measure(&runtime, &rust, sizes)?;
    for (suffix, file) in [
        ("rust", None),
        ("py", Some("bank_account_py.wasm")),
        ("js", Some("bank_account_js.wasm")),
    ] {
        let (replay, command, compile, size) = match file {
            None => (rust_replay, rust_command, None, ctx.component.len()),
            Some(file) => {
                let path = dir.join(file);
                let bytes = read(&path)?;
                let size = bytes.len();
                let started = Instant::now();
                let component = runtime.load_component(bytes).await?;
                let compile = started.elapsed();
                let (replay, command) = measure(&runtime, &component, sizes)?;
                (replay, command, Some(compile), size)
            }
        };
        let params = |m: Metric| {
            m.param("events", sizes.events as u64)
                .param("batch", BATCH as u64)
                .param("component_bytes", size as u64)
                .param("runs", sizes.replay_runs as u64)
        };
        let mut replay_metric =
            params(Metric::new(&format!("replay_{suffix}"), replay, "events/s"));
        let mut command_metric = Metric::new(&format!("command_overhead_{suffix}"), command, "µs")
            .param("commands_per_run", sizes.commands as u64)
            .param("runs", sizes.command_runs as u64)
            .param(
                "what",
                "median of the runs' medians, runs spread between the replay runs",
            );
        if let Some((replay_target, command_target)) = targets(suffix) {
            replay_metric = replay_metric.target(Target::AtLeast(replay_target));
            command_metric = command_metric.target(Target::AtMost(command_target));
        }
        report.push(replay_metric);
        report.push(command_metric);
        if let Some(compile) = compile {
            report.push(
                Metric::new(&format!("compile_{suffix}"), compile.as_secs_f64(), "s")
                    .param("component_bytes", size as u64),
            );
            report.push(Metric::new(
                &format!("replay_rust_over_{suffix}"),
                rust_replay / replay,
                "ratio",
            ));
            report.push(Metric::new(
                &format!("command_overhead_{suffix}_over_rust"),
                command / rust_command,
                "ratio",
            ));
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("reading {}: `cargo xtask bench` builds it", path.display()))
}

/// Median replay rate (events/s) and per-command time (µs): the median of
/// the command runs' medians. The command runs are spread between the
/// replay runs, so a burst of other work on the machine (a command run
/// lasts about a tenth of a second) spoils at most one of them.
fn measure(
    runtime: &Runtime,
    component: &LoadedComponent,
    sizes: Sizes,
) -> anyhow::Result<(f64, f64)> {
    let stream = fixture::stream(fixture::ACCOUNT, "languages")?;
    let events = fixture::recorded_history(&stream, 1, sizes.events)?;
    let mut commanded = DirectAggregate::new(runtime, component, stream.clone())?;
    commanded.apply(&events[..1])?;
    let mut command_run = || -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(sizes.commands);
        for _ in 0..sizes.commands {
            times.push(command(&mut commanded)?.as_secs_f64() * 1e6);
        }
        Ok(median(&mut times))
    };
    let mut rates = Vec::new();
    let mut command_medians = Vec::new();
    for run in 0..sizes.replay_runs + 1 {
        let mut aggregate = DirectAggregate::new(runtime, component, stream.clone())?;
        let started = Instant::now();
        for batch in events.chunks(BATCH) {
            aggregate.apply(batch)?;
        }
        rates.push(sizes.events as f64 / started.elapsed().as_secs_f64());
        let view: serde_json::Value = serde_json::from_str(&aggregate.view()?)?;
        ensure!(
            fixture::balance(&view)? == sizes.events as u64 - 1,
            "wrong balance after replay: {view}"
        );
        // After every other replay run (the first is a warm-up).
        if run % 2 == 1 && command_medians.len() < sizes.command_runs {
            command_medians.push(command_run()?);
        }
    }
    rates.remove(0); // warm-up
    while command_medians.len() < sizes.command_runs {
        command_medians.push(command_run()?);
    }
    Ok((median(&mut rates), median(&mut command_medians)))
}

/// One `Deposit`, decided and applied (one `execute` call).
fn command(aggregate: &mut DirectAggregate) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let decided = aggregate.execute("Deposit", JSON, br#"{"amount":1}"#, TIMESTAMP_MS)?;
    let took = started.elapsed();
    match decided {
        Ok(events) if events.len() == 1 => Ok(took),
        Ok(events) => bail!("Deposit decided {} events, expected 1", events.len()),
        Err(rejection) => bail!("Deposit was rejected: {rejection:?}"),
    }
}
