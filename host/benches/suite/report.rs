//! What the suite measured: one [`Metric`] per number, printed as a table
//! and written as JSON (`[{"name", "value", "unit", "params"}]`).
//!
//! Each metric may carry its DESIGN.md target; the target is written into
//! `params.target` (e.g. `">= 5000000"`) so the JSON alone says what the
//! number is compared with, and the table prints met / missed next to it.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};

/// A DESIGN.md performance target.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(bound) => value >= bound,
            Target::AtMost(bound) => value <= bound,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(bound) => format!(">= {}", number(bound)),
            Target::AtMost(bound) => format!("<= {}", number(bound)),
        }
    }
}

/// One measured number.
#[derive(Debug, Serialize)]
pub(crate) struct Metric {
    name: String,
    value: f64,
    unit: &'static str,
    params: Map<String, Value>,
    #[serde(skip)]
    target: Option<Target>,
}

impl Metric {
    pub(crate) fn new(name: &str, value: f64, unit: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            value,
            unit,
            params: Map::new(),
            target: None,
        }
    }

    /// Records a parameter of the measurement (sizes, runs, concurrency…).
    pub(crate) fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// Attaches the DESIGN.md target the value is compared with.
    pub(crate) fn target(mut self, target: Target) -> Self {
        self.params
            .insert("target".to_owned(), target.describe().into());
        self.target = Some(target);
        self
    }
}

/// Every metric of one run of the suite, in the order measured.
#[derive(Default)]
pub(crate) struct Report {
    metrics: Vec<Metric>,
}

impl Report {
    pub(crate) fn push(&mut self, metric: Metric) {
        let status = match metric.target {
            Some(target) if target.met(metric.value) => "met",
            Some(_) => "MISSED",
            None => "",
        };
        eprintln!(
            "bench: {} = {} {} {status}",
            metric.name,
            number(metric.value),
            metric.unit
        );
        self.metrics.push(metric);
    }

    /// The names of the metrics reported so far, in order.
    #[allow(dead_code)] // read by host/tests/bench_smoke.rs only
    pub(crate) fn names(&self) -> Vec<&str> {
        self.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    /// Prints the metrics as a Markdown table (it pastes into BENCHMARKS.md).
    pub(crate) fn print_table(&self) {
        println!("| metric | value | unit | target | status |");
        println!("|---|---:|---|---|---|");
        for m in &self.metrics {
            let (target, status) = match m.target {
                Some(t) => (
                    t.describe(),
                    if t.met(m.value) { "met" } else { "**missed**" },
                ),
                None => (String::new(), ""),
            };
            println!(
                "| {} | {} | {} | {target} | {status} |",
                m.name,
                number(m.value),
                m.unit
            );
        }
    }

    /// Writes the metrics as a JSON array to `path`, creating its folder.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(&self.metrics)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// A number with as many decimals as its size deserves.
fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 1_000.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        v if v >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

/// The median of `values` (which it sorts); 0 for none.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

/// The `p`-th percentile of `values` (which it sorts), nearest rank; 0 for
/// none.
pub(crate) fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// The process's resident memory (VmRSS), in bytes.
pub(crate) fn resident_bytes() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line in /proc/self/status")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("reading {line:?}"))?;
    Ok(kib * 1024)
}
