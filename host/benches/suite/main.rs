//! The performance suite behind `cargo xtask bench`: measures the targets
//! of DESIGN.md ("Performance targets") in one process, prints a table and
//! writes one JSON record per metric (see `report`).
//!
//! ```text
//! cargo bench -p aether-host --bench suite -- \
//!     --component ../target/wasm32-wasip2/release/bank_account.wasm \
//!     --out ../target/bench/results.json [--only replay,activation]
//! ```
//!
//! `noisy_neighbour` and `tenant_abuse` also run the hostile test guest,
//! from the path `aether-test-artifacts` names (its build script builds
//! it); `tenant_abuse` runs the `aether` binary of this package as a node.
//!
//! Cargo runs a bench in its package's folder (`host/`), so relative paths
//! resolve from there; `cargo xtask bench` passes absolute ones.
//!
//! Every scenario checks the state it produced (a balance, a version, a
//! count of live aggregates), so a broken path fails the suite instead of
//! measuring nothing. Numbers are medians over several runs; ratios are
//! computed within one run.
//!
//! `--smoke` runs every scenario at tiny sizes without the disk probes: the
//! numbers mean nothing, but each scenario's code and state checks run.
//! `host/tests/bench_smoke.rs` includes this file as a module and runs each
//! scenario that way ([`smoke`]), so `cargo xtask test` fails when a
//! scenario breaks, long before the next `cargo xtask bench`.

mod abuse;
mod activation;
mod activation_jetstream;
mod clock;
mod cluster_reload;
mod density;
mod durable;
mod fanout;
mod fixture;
mod jetstream;
mod languages;
mod load;
mod machine;
mod noisy;
mod overhead;
mod reload;
mod replay;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};

use fixture::Ctx;
use report::Report;

/// The scenarios, in the order they run. Density runs first so the memory
/// other scenarios leave behind does not count against it; `many`, which
/// writes the most, runs last so the others do not meet a disk it has
/// just saturated.
pub(crate) const SCENARIOS: [&str; 14] = [
    "density",
    "replay",
    "overhead",
    "bus_fanout",
    "languages",
    "activation",
    "activation_jetstream",
    "single",
    "noisy_neighbour",
    "tenant_abuse",
    "reload",
    "cluster_reload",
    "commands_jetstream",
    "many",
];

/// The scenarios that fsync: the machine's disk is probed right before each.
const DURABLE: [&str; 6] = [
    "activation",
    "single",
    "noisy_neighbour",
    "tenant_abuse",
    "reload",
    "many",
];

/// How to call the suite, with the scenarios as [`SCENARIOS`] lists them.
fn usage() -> String {
    format!(
        "usage: suite --component <bank_account.wasm> --out <results.json> [--only <scenario>,...]
       [--guests <dir with bank_account_py.wasm, bank_account_js.wasm>] [--smoke]
scenarios (in this order): {}",
        SCENARIOS.join(", ")
    )
}

struct Args {
    component: PathBuf,
    out: PathBuf,
    only: Vec<String>,
    guests: Option<PathBuf>,
    smoke: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let (mut component, mut out, mut only) = (None, None, SCENARIOS.map(String::from).to_vec());
        let (mut guests, mut smoke) = (None, false);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value\n{}", usage()))
            };
            match arg.as_str() {
                "--component" => component = Some(PathBuf::from(value()?)),
                "--out" => out = Some(PathBuf::from(value()?)),
                "--guests" => guests = Some(PathBuf::from(value()?)),
                "--only" => only = value()?.split(',').map(|s| s.trim().to_owned()).collect(),
                "--smoke" => smoke = true,
                // `cargo bench` passes `--bench` to every bench target.
                "--bench" => {}
                other => bail!("unknown argument `{other}`\n{}", usage()),
            }
        }
        if let Some(unknown) = only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
            bail!("unknown scenario `{unknown}`\n{}", usage());
        }
        Ok(Self {
            component: component.with_context(usage)?,
            out: out.unwrap_or_else(|| PathBuf::from("target/bench/results.json")),
            only,
            guests,
            smoke,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let scratch = args
        .out
        .parent()
        .map_or_else(|| PathBuf::from("tmp"), |dir| dir.join("tmp"));
    let mut ctx = Ctx::new(&args.component, scratch)?;
    ctx.guests = args.guests.clone();
    ctx.smoke = args.smoke;
    let started = Instant::now();
    let mut report = run(&ctx, &args.only)?;
    report.push(
        report::Metric::new("suite_seconds", started.elapsed().as_secs_f64(), "s")
            .param("scenarios", args.only.join(","))
            .param("smoke", args.smoke),
    );
    report.print_table();
    report.write_json(&args.out)?;
    eprintln!(
        "bench: {:.1} s in all; results in {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// Runs the scenarios named in `only`, in [`SCENARIOS`] order, each checking
/// the state it produced; a smoke run skips the machine probes.
fn run(ctx: &Ctx, only: &[String]) -> anyhow::Result<Report> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::default();
    let probe = !ctx.smoke;
    let before = probe.then(|| machine::Snapshot::take(ctx)).transpose()?;
    for scenario in SCENARIOS.iter().filter(|s| only.iter().any(|o| o == *s)) {
        if probe && DURABLE.contains(scenario) {
            machine::Snapshot::take(ctx)?.report(&format!("before_{scenario}"), &mut report);
        }
        let at = Instant::now();
        eprintln!("bench: {scenario}…");
        tokio
            .block_on(async {
                match *scenario {
                    "density" => density::run(ctx, &mut report).await,
                    "replay" => replay::run(ctx, &mut report).await,
                    "overhead" => overhead::run(ctx, &mut report).await,
                    "languages" => languages::run(ctx, &mut report).await,
                    "many" => durable::many(ctx, &mut report).await,
                    "single" => durable::single(ctx, &mut report).await,
                    "activation" => activation::run(ctx, &mut report).await,
                    "activation_jetstream" => activation_jetstream::run(ctx, &mut report).await,
                    "noisy_neighbour" => noisy::run(ctx, &mut report).await,
                    "tenant_abuse" => abuse::run(ctx, &mut report).await,
                    "reload" => reload::run(ctx, &mut report).await,
                    "cluster_reload" => cluster_reload::run(ctx, &mut report).await,
                    "bus_fanout" => fanout::run(ctx, &mut report).await,
                    "commands_jetstream" => jetstream::run(ctx, &mut report).await,
                    other => bail!("unknown scenario `{other}`\n{}", usage()),
                }
            })
            .with_context(|| format!("scenario {scenario}"))?;
        eprintln!("bench: {scenario} took {:.1} s", at.elapsed().as_secs_f64());
    }
    if let Some(before) = before {
        before.report("before", &mut report);
        machine::Snapshot::take(ctx)?.report("after", &mut report);
    }
    Ok(report)
}

/// Runs one scenario at smoke size on `component` (the bank account),
/// with the Python and JavaScript guests from `guests`; the metrics it
/// reported. Durable stores and the compile cache go under `scratch`.
#[allow(dead_code)] // called by host/tests/bench_smoke.rs only
pub(crate) fn smoke(
    scenario: &str,
    component: &std::path::Path,
    guests: PathBuf,
    scratch: PathBuf,
) -> anyhow::Result<Report> {
    let mut ctx = Ctx::new(component, scratch.join("stores"))?;
    ctx.guests = Some(guests);
    ctx.smoke = true;
    ctx.compile_cache = Some(scratch.join("compiled"));
    run(&ctx, &[scenario.to_owned()])
}
