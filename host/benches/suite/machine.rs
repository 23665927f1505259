//! `machine_*`: how busy the machine was around the run. The benchmark
//! machines are shared, so every run records its 1-minute load average and
//! the latency of a raw `fdatasync` on the disk the durable stores use,
//! before and after the scenarios: durable numbers are only comparable
//! between runs whose disks answered alike.

use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

use anyhow::Context;

use super::fixture::Ctx;
use super::report::{Metric, Report, percentile};

const SYNCS: usize = 200;
const PAGE: usize = 4096;

/// What the machine looked like at one moment.
pub(crate) struct Snapshot {
    load: f64,
    fdatasync_ms: Vec<f64>,
}

impl Snapshot {
    pub(crate) fn take(ctx: &Ctx) -> anyhow::Result<Self> {
        Ok(Self {
            load: load_average()?,
            fdatasync_ms: fdatasync_latencies(ctx)?,
        })
    }

    /// Reports the snapshot's metrics, suffixed `_before` or `_after`.
    pub(crate) fn report(mut self, when: &str, report: &mut Report) {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as u64);
        report.push(
            Metric::new(
                &format!("machine_loadavg_{when}"),
                self.load,
                "runnable tasks",
            )
            .param("what", "1-minute load average (/proc/loadavg)")
            .param("cpus", cpus),
        );
        for p in [50.0, 99.0] {
            let value = percentile(&mut self.fdatasync_ms, p);
            report.push(
                Metric::new(&format!("machine_fdatasync_p{p}_{when}"), value, "ms")
                    .param(
                        "what",
                        "write 4 KiB at a random page of a 256 KiB file, then fdatasync",
                    )
                    .param("samples", SYNCS as u64),
            );
        }
    }
}

/// The 1-minute load average (the first field of /proc/loadavg).
fn load_average() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    let first = text.split_whitespace().next().unwrap_or_default();
    first
        .parse()
        .with_context(|| format!("reading the load average {first:?}"))
}

/// [`SYNCS`] times: overwrite one page of a small file and `fdatasync` it;
/// the latency of each sync, in ms.
fn fdatasync_latencies(ctx: &Ctx) -> anyhow::Result<Vec<f64>> {
    let dir = ctx.tempdir()?;
    let mut file = std::fs::File::create(dir.path().join("probe"))?;
    file.write_all(&vec![0u8; 64 * PAGE])?;
    file.sync_all()?;
    let page = vec![0xa5u8; PAGE];
    let mut latencies = Vec::with_capacity(SYNCS);
    for i in 0..SYNCS {
        file.write_all_at(&page, ((i * 17) % 64 * PAGE) as u64)?;
        let start = Instant::now();
        file.sync_data()?;
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latencies)
}

/// The median latency of one `fdatasync` on the durable stores' disk, in
/// ms, probed now: the physical ceiling of a writer that must wait for one
/// sync per acknowledged command is `1000 / this` commands a second.
pub(crate) fn fdatasync_p50_ms(ctx: &Ctx) -> anyhow::Result<f64> {
    Ok(percentile(&mut fdatasync_latencies(ctx)?, 50.0))
}

/// The median latency of one `O_DIRECT | O_DSYNC` write of one 4 KiB page
/// (the way the embedded store's journal makes an entry durable, in one
/// call) on the durable stores' disk, in ms, probed now; `None` where the
/// file system refuses direct I/O (a tmpfs), as the journal then falls back
/// to a write and an `fdatasync`.
pub(crate) fn direct_write_p50_ms(ctx: &Ctx) -> anyhow::Result<Option<f64>> {
    let dir = ctx.tempdir()?;
    let path = dir.path().join("probe");
    std::fs::write(&path, vec![0u8; 64 * PAGE])?;
    std::fs::File::open(&path)?.sync_all()?;
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(&path);
    let Ok(file) = direct else {
        return Ok(None);
    };
    // Direct I/O wants a page-aligned buffer: one page out of two.
    let mut buffer = vec![0xa5u8; 2 * PAGE];
    let start = buffer.as_ptr().align_offset(PAGE);
    let page = &mut buffer[start..start + PAGE];
    let mut latencies = Vec::with_capacity(SYNCS);
    for i in 0..SYNCS {
        page[0] = i as u8;
        let begin = Instant::now();
        match file.write_all_at(page, ((i * 17) % 64 * PAGE) as u64) {
            Ok(()) => latencies.push(begin.elapsed().as_secs_f64() * 1e3),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Some(percentile(&mut latencies, 50.0)))
}
