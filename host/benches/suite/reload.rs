//! `reload`: hot reload under load. While callers deposit into many
//! accounts nonstop, a new version of the component (the same code with a
//! marker section, so a new digest) is deployed again and again. Measured:
//! the time from the start of a deploy to the first command served by the
//! new version (decided by its digest), with a warm compile cache (every
//! version compiled into the node's on-disk cache beforehand, as after a
//! restart or a rollback); and every command that failed during the swaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::runtime::{Runtime, RuntimeConfig, with_custom_section};
use aether_host::store::MemoryStore;
use anyhow::ensure;
use tokio::task::JoinSet;

use super::fixture::{self, Ctx};
use super::load;
use super::report::{Metric, Report, Target, median};

const ACCOUNTS: usize = 200;
const CALLERS: usize = 8;
const SWAPS: u32 = 15;

pub(crate) async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (accounts_count, callers_count, swaps) = (
        ctx.size(ACCOUNTS, 16),
        ctx.size(CALLERS, 4),
        ctx.size(SWAPS, 2),
    );
    let dir = ctx.tempdir()?;
    let cache = dir.path().join("compiled");
    let versions: Vec<Vec<u8>> = (0..=swaps)
        .map(|i| with_custom_section(&ctx.component, "bench-version", &i.to_le_bytes()))
        .collect();
    // Warm the on-disk compile cache with every version, from another runtime.
    {
        let config = RuntimeConfig {
            compile_cache: Some(cache.clone()),
            ..RuntimeConfig::default()
        };
        let warm = Runtime::new(Arc::new(MemoryStore::new()), config)?;
        for version in &versions {
            warm.load_component(version.clone()).await?;
        }
    }

    let store = fixture::durable_store(&dir.path().join("events"))?;
    let config = RuntimeConfig {
        compile_cache: Some(cache),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(store, config)?;
    let (namespace, aggregate_type) = (
        Namespace::new(fixture::NAMESPACE)?,
        AggregateType::new(fixture::ACCOUNT)?,
    );
    runtime
        .deploy(&namespace, &aggregate_type, versions[0].clone())
        .await?;
    let accounts = load::accounts(accounts_count)?;
    load::open_all(&runtime, &accounts, callers_count).await?;
    let probe = fixture::stream(fixture::ACCOUNT, "probe")?;
    runtime.execute(fixture::open(&probe)).await?;

    let (running, failed, served) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut callers = JoinSet::new();
    for caller in 0..callers_count {
        let (runtime, accounts) = (runtime.clone(), accounts.clone());
        let (running, failed, served) = (running.clone(), failed.clone(), served.clone());
        callers.spawn(async move {
            let mine: Vec<_> = accounts
                .iter()
                .skip(caller)
                .step_by(callers_count)
                .collect();
            let mut i = 0;
            while running.load(Ordering::Relaxed) {
                match runtime
                    .execute(fixture::deposit(mine[i % mine.len()]))
                    .await
                {
                    Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                    Err(error) => {
                        eprintln!("reload: a command failed during a swap: {error}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                i += 1;
            }
        });
    }

    let mut swap_ms = Vec::new();
    for version in &versions[1..] {
        let started = Instant::now();
        let digest = runtime
            .deploy(&namespace, &aggregate_type, version.clone())
            .await?
            .to_hex();
        let outcome = runtime.execute(fixture::deposit(&probe)).await?;
        let decided_by = outcome.events[0].metadata.component_digest.as_deref();
        ensure!(
            decided_by == Some(digest.as_str()),
            "the first command after the deploy was decided by {decided_by:?}, not {digest}"
        );
        swap_ms.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running.store(false, Ordering::Relaxed);
    while let Some(done) = callers.join_next().await {
        done?;
    }
    let total = load::total_balance(&runtime, &accounts).await?;
    let served = served.load(Ordering::Relaxed);
    ensure!(
        total == served,
        "the accounts hold {total}, but {served} deposits were acknowledged"
    );

    let failed = failed.load(Ordering::Relaxed);
    let max = swap_ms.iter().cloned().fold(0.0, f64::max);
    let params = |m: Metric| {
        m.param("swaps", swaps)
            .param("accounts", accounts_count as u64)
            .param("callers", callers_count as u64)
            .param("compile_cache", "warm")
            .param("backend", fixture::DURABLE_BACKEND)
    };
    report.push(
        params(Metric::new(
            "reload_to_first_command_ms",
            median(&mut swap_ms),
            "ms",
        ))
        .target(Target::AtMost(100.0)),
    );
    report.push(params(Metric::new(
        "reload_to_first_command_ms_max",
        max,
        "ms",
    )));
    report.push(
        params(Metric::new(
            "reload_failed_commands",
            failed as f64,
            "commands",
        ))
        .param("commands_during_swaps", served)
        .target(Target::AtMost(0.0)),
    );
    Ok(())
}
