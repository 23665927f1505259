//! Prometheus metrics of the node, per namespace, in the text exposition
//! format (`GET /metrics`).
//!
//! - `aether_commands_total{namespace, outcome}`: commands by outcome
//!   (`ok`, `duplicate`, `rejected`, `conflict`, `guest_failure`,
//!   `refused`, `error`);
//! - `aether_guest_failures_total{namespace, kind}`: traps, deadlines,
//!   memory and fuel exhaustion;
//! - `aether_command_duration_seconds{namespace}`: a histogram of command
//!   latency as the node saw it;
//! - `aether_connections_open`, `aether_connections_refused_total{reason}`:
//!   the accept loop's ([`ConnectionCounts`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether_core::namespace::Namespace;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The node's counters and histograms.
#[derive(Default)]
pub struct Metrics {
    namespaces: Mutex<BTreeMap<Namespace, NamespaceMetrics>>,
    connections: Arc<ConnectionCounts>,
}

/// The node's HTTP connections, counted by its accept loop
/// (`connections.rs`).
#[derive(Default)]
pub(crate) struct ConnectionCounts {
    /// Connections open, on ordinary slots and the reserve (not the ones
    /// being answered `too_many_connections`).
    pub(crate) open: AtomicU64,
    /// Connections whose client already had `--max-connections-per-address`
    /// open.
    pub(crate) refused_client_cap: AtomicU64,
    /// Connections closed at once: every slot and the reserve were taken.
    pub(crate) refused_full: AtomicU64,
}

impl ConnectionCounts {
    fn render(&self, out: &mut String) {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str(
            "# HELP aether_connections_open HTTP connections open (ordinary and reserve).\n",
        );
        out.push_str("# TYPE aether_connections_open gauge\n");
        let _ = writeln!(out, "aether_connections_open {}", read(&self.open));
        out.push_str("# HELP aether_connections_refused_total HTTP connections refused: client_cap (--max-connections-per-address), full (every slot and the reserve taken).\n");
        out.push_str("# TYPE aether_connections_refused_total counter\n");
        for (reason, counter) in [
            ("client_cap", &self.refused_client_cap),
            ("full", &self.refused_full),
        ] {
            let _ = writeln!(
                out,
                "aether_connections_refused_total{{reason=\"{reason}\"}} {}",
                read(counter)
            );
        }
    }
}

#[derive(Default)]
struct NamespaceMetrics {
    outcomes: BTreeMap<&'static str, u64>,
    guest_failures: BTreeMap<&'static str, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    /// The accept loop's counts, shared with it.
    pub(crate) fn connections(&self) -> Arc<ConnectionCounts> {
        self.connections.clone()
    }

    /// Counts one command of `namespace` that ended with `outcome` after
    /// `elapsed`; `guest_failure` names the kind when the guest failed.
    pub fn command(
        &self,
        namespace: &Namespace,
        outcome: &'static str,
        guest_failure: Option<&'static str>,
        elapsed: Duration,
    ) {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = namespaces.entry(namespace.clone()).or_default();
        *metrics.outcomes.entry(outcome).or_default() += 1;
        if let Some(kind) = guest_failure {
            *metrics.guest_failures.entry(kind).or_default() += 1;
        }
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in metrics.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        metrics.count += 1;
        metrics.sum_seconds += seconds;
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP aether_commands_total Commands handled, by namespace and outcome.\n");
        out.push_str("# TYPE aether_commands_total counter\n");
        for (namespace, metrics) in namespaces.iter() {
            for (outcome, count) in &metrics.outcomes {
                let _ = writeln!(
                    out,
                    "aether_commands_total{{namespace=\"{namespace}\",outcome=\"{outcome}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP aether_guest_failures_total Guest failures (traps, deadlines, memory, fuel), by namespace and kind.\n");
        out.push_str("# TYPE aether_guest_failures_total counter\n");
        for (namespace, metrics) in namespaces.iter() {
            for (kind, count) in &metrics.guest_failures {
                let _ = writeln!(
                    out,
                    "aether_guest_failures_total{{namespace=\"{namespace}\",kind=\"{kind}\"}} {count}"
                );
            }
        }
        out.push_str(
            "# HELP aether_command_duration_seconds Command latency as the node saw it.\n",
        );
        out.push_str("# TYPE aether_command_duration_seconds histogram\n");
        for (namespace, metrics) in namespaces.iter() {
            for (bound, count) in BUCKETS.iter().zip(metrics.buckets) {
                let _ = writeln!(
                    out,
                    "aether_command_duration_seconds_bucket{{namespace=\"{namespace}\",le=\"{bound}\"}} {count}"
                );
            }
            let (count, sum) = (metrics.count, metrics.sum_seconds);
            let _ = writeln!(
                out,
                "aether_command_duration_seconds_bucket{{namespace=\"{namespace}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "aether_command_duration_seconds_sum{{namespace=\"{namespace}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "aether_command_duration_seconds_count{{namespace=\"{namespace}\"}} {count}"
            );
        }
        self.connections.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_are_per_namespace() {
        let metrics = Metrics::default();
        let (a, b): (Namespace, Namespace) = ("a".parse().unwrap(), "b".parse().unwrap());
        metrics.command(&a, "ok", None, Duration::from_micros(700));
        metrics.command(
            &a,
            "guest_failure",
            Some("deadline_exceeded"),
            Duration::from_secs(1),
        );
        metrics.command(&b, "rejected", None, Duration::from_millis(3));
        let text = metrics.render();
        for line in [
            "aether_commands_total{namespace=\"a\",outcome=\"ok\"} 1",
            "aether_commands_total{namespace=\"a\",outcome=\"guest_failure\"} 1",
            "aether_commands_total{namespace=\"b\",outcome=\"rejected\"} 1",
            "aether_guest_failures_total{namespace=\"a\",kind=\"deadline_exceeded\"} 1",
            "aether_command_duration_seconds_bucket{namespace=\"a\",le=\"0.001\"} 1",
            "aether_command_duration_seconds_bucket{namespace=\"a\",le=\"1\"} 2",
            "aether_command_duration_seconds_bucket{namespace=\"a\",le=\"+Inf\"} 2",
            "aether_command_duration_seconds_count{namespace=\"b\"} 1",
            "aether_connections_open 0",
            "aether_connections_refused_total{reason=\"client_cap\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
