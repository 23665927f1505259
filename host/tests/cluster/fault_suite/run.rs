//! Running one scenario: load, fault, recovery, check, report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::checker::check;
use super::history::{Op, Outcome, Stored};
use super::workload::Workload;
use crate::harness::Cluster;

/// How big a run is: `AETHER_FAULTS_SCALE` unset (or `default`) fits CI,
/// `large` is the run BENCHMARKS.md quotes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    pub(crate) accounts: usize,
    pub(crate) workers: usize,
    /// Load before the fault.
    pub(crate) warmup: Duration,
    /// How many times the fault is repeated, with `between` of load
    /// between repetitions.
    pub(crate) repetitions: usize,
    pub(crate) between: Duration,
    /// Load after the cluster has settled again.
    pub(crate) recovery: Duration,
}

impl Scale {
    /// The scale `AETHER_FAULTS_SCALE` names.
    pub(crate) fn from_env() -> Scale {
        match std::env::var("AETHER_FAULTS_SCALE").as_deref() {
            Err(_) | Ok("" | "default") => Scale {
                accounts: 16,
                workers: 10,
                warmup: Duration::from_secs(8),
                repetitions: 1,
                between: Duration::ZERO,
                recovery: Duration::from_secs(12),
            },
            Ok("large") => Scale {
                accounts: 24,
                workers: 12,
                warmup: Duration::from_secs(20),
                repetitions: 3,
                between: Duration::from_secs(15),
                recovery: Duration::from_secs(40),
            },
            Ok(other) => panic!("AETHER_FAULTS_SCALE is `default` or `large`, not `{other}`"),
        }
    }
}

/// Runs `fault` (repeated as the scale says) on `cluster` under the
/// workload, waits until the cluster has settled again on as many nodes as
/// it started with, loads it a while longer, then checks the history and
/// asserts every anomaly count is 0.
pub(crate) fn run(
    name: &str,
    mut cluster: Cluster,
    mut fault: impl FnMut(&mut Cluster, &Workload),
) {
    let scale = Scale::from_env();
    let started = Instant::now();
    let nodes = cluster.running().len();
    let workload = Workload::start(
        cluster.targets(),
        &cluster.token,
        scale.accounts,
        scale.workers,
    );
    std::thread::sleep(scale.warmup);
    // When each repetition of the fault began and when the cluster had
    // settled after it.
    let mut faults: Vec<(Instant, Instant)> = Vec::new();
    for repetition in 0..scale.repetitions {
        if repetition > 0 {
            std::thread::sleep(scale.between);
        }
        let at = Instant::now();
        fault(&mut cluster, &workload);
        cluster.wait_stable(nodes);
        workload.set_targets(cluster.targets());
        faults.push((at, Instant::now()));
    }
    let settled = Instant::now();
    std::thread::sleep(scale.recovery);
    let ops = workload.stop().ops();
    let readers: Vec<_> = cluster
        .running()
        .into_iter()
        .map(|i| (i, cluster.client(i)))
        .collect();
    let stored = Stored::read(&readers[0].1, &readers, scale.accounts);
    let anomalies = check(&ops, &stored);
    let ended = Instant::now();
    for (i, (at, settled)) in faults.iter().enumerate() {
        // Up to the next repetition, or the end of the load.
        let until = faults.get(i + 1).map_or(ended, |next| next.0);
        println!(
            "fault suite `{name}`, fault {}/{}: {}; settled {:.1} s after the fault",
            i + 1,
            faults.len(),
            Availability::of(&ops, *at, until),
            (*settled - *at).as_secs_f64(),
        );
    }
    println!(
        "fault suite `{name}` ({scale:?}, {:.0} s in all, {} ops): anomalies: {anomalies}",
        started.elapsed().as_secs_f64(),
        ops.len(),
    );
    let served_after = ops
        .iter()
        .filter(|o| o.is_ack() && o.invoked >= settled)
        .count();
    assert!(
        served_after > 0,
        "{name}: nothing was acknowledged after the cluster settled"
    );
    assert!(anomalies.is_clean(), "{name}: anomalies: {anomalies}");
}

/// What the clients saw from a fault on.
pub(crate) struct Availability {
    ops: usize,
    acked: usize,
    /// Acknowledgements of a retry whose first attempt had been stored.
    duplicates: usize,
    rejected: usize,
    conflicts: usize,
    reads: usize,
    failed: usize,
    /// The failures by kind (status and error code, or the transport
    /// error), with how many of each.
    failures: BTreeMap<String, usize>,
    /// From the invocation of the first failed op to the completion of the
    /// last.
    unavailable: Duration,
    /// The longest time between two acknowledgements (by completion).
    longest_ack_gap: Duration,
}

impl Availability {
    /// Of the ops invoked from `since` until `until`.
    pub(crate) fn of(ops: &[Op], since: Instant, until: Instant) -> Availability {
        let ops: Vec<&Op> = ops
            .iter()
            .filter(|o| o.invoked >= since && o.invoked < until)
            .collect();
        let count = |f: fn(&Outcome) -> bool| ops.iter().filter(|o| f(&o.outcome)).count();
        let failed: Vec<&&Op> = ops
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Failed { .. }))
            .collect();
        let unavailable = match (
            failed.iter().map(|o| o.invoked).min(),
            failed.iter().map(|o| o.completed).max(),
        ) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        let mut acks: Vec<Instant> = ops
            .iter()
            .filter(|o| o.is_ack())
            .map(|o| o.completed)
            .collect();
        acks.sort();
        let longest_ack_gap = std::iter::once(since)
            .chain(acks.iter().copied())
            .zip(acks.iter().copied())
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or_default();
        Availability {
            ops: ops.len(),
            acked: acks.len(),
            duplicates: count(|o| {
                matches!(
                    o,
                    Outcome::Acked {
                        duplicate: true,
                        ..
                    }
                )
            }),
            rejected: count(|o| matches!(o, Outcome::Rejected { .. })),
            conflicts: count(|o| matches!(o, Outcome::Conflict { .. })),
            reads: count(|o| matches!(o, Outcome::Read { .. })),
            failed: failed.len(),
            failures: failed.iter().fold(BTreeMap::new(), |mut kinds, op| {
                if let Outcome::Failed { status, error } = &op.outcome {
                    let status = status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
                    let error: String = error.chars().take(60).collect();
                    *kinds.entry(format!("{status} {error}")).or_default() += 1;
                }
                kinds
            }),
            unavailable,
            longest_ack_gap,
        }
    }
}

impl std::fmt::Display for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ops from the fault on ({} acked of which {} duplicate answers, {} rejected, {} conflicts, {} reads, {} failed: {:?}), unavailable {:.2} s (first to last failed op), longest gap between acks {:.2} s",
            self.ops,
            self.acked,
            self.duplicates,
            self.rejected,
            self.conflicts,
            self.reads,
            self.failed,
            self.failures,
            self.unavailable.as_secs_f64(),
            self.longest_ack_gap.as_secs_f64(),
        )
    }
}
