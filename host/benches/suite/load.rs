//! A closed-loop load driver: N callers, each sending its next command as
//! soon as the previous one is answered, for a fixed time.
//!
//! Caller `c` of `n` owns accounts `c`, `c + n`, `c + 2n`, … and deposits
//! into them in turn, so callers never queue on each other's aggregate
//! locks: the load measures the runtime and the store (group commit), not
//! contention on one aggregate. With `n` callers, Little's law ties the
//! numbers together: mean latency ≈ n / throughput.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_host::runtime::Runtime;
use aether_host::store::StreamId;
use tokio::task::JoinSet;

use super::fixture;
use super::report::percentile;

/// What one timed stretch of load achieved.
pub(crate) struct Load {
    /// Commands answered successfully (every command must succeed).
    pub(crate) commands: u64,
    /// `commands` over the wall time from start until the last caller
    /// finished.
    pub(crate) per_second: f64,
    /// Latency of each command, in µs.
    latencies: Vec<f64>,
}

impl Load {
    /// The latency percentile `p`, in ms.
    pub(crate) fn latency_ms(&mut self, p: f64) -> f64 {
        percentile(&mut self.latencies, p) / 1e3
    }
}

/// `count` account streams `acc-0`… of the bank-account type.
pub(crate) fn accounts(count: usize) -> anyhow::Result<Arc<Vec<StreamId>>> {
    let streams = (0..count).map(|i| fixture::stream(fixture::ACCOUNT, &format!("acc-{i}")));
    Ok(Arc::new(streams.collect::<anyhow::Result<_>>()?))
}

/// Opens every account, `callers` at a time.
pub(crate) async fn open_all(
    runtime: &Runtime,
    accounts: &Arc<Vec<StreamId>>,
    callers: usize,
) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for caller in 0..callers {
        let (runtime, accounts) = (runtime.clone(), accounts.clone());
        tasks.spawn(async move {
            for stream in accounts.iter().skip(caller).step_by(callers) {
                runtime.execute(fixture::open(stream)).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Runs `callers` callers depositing 1 into `accounts` for `duration`; each
/// caller finishes the command it is in when time is up. Any failed
/// command fails the run.
pub(crate) async fn deposits(
    runtime: &Runtime,
    accounts: &Arc<Vec<StreamId>>,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for caller in 0..callers.min(accounts.len()) {
        let (runtime, accounts) = (runtime.clone(), accounts.clone());
        tasks.spawn(async move {
            let mine: Vec<&StreamId> = accounts.iter().skip(caller).step_by(callers).collect();
            let mut latencies = Vec::new();
            for stream in mine.iter().cycle() {
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                runtime.execute(fixture::deposit(stream)).await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let commands = latencies.len() as u64;
    Ok(Load {
        commands,
        per_second: commands as f64 / start.elapsed().as_secs_f64(),
        latencies,
    })
}

/// The sum of the accounts' balances, read through the runtime.
pub(crate) async fn total_balance(runtime: &Runtime, accounts: &[StreamId]) -> anyhow::Result<u64> {
    let mut total = 0;
    for stream in accounts {
        total += fixture::balance(&runtime.state(stream).await?.view)?;
    }
    Ok(total)
}
