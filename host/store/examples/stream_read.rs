//! Times reading one 10 000-event stream from the embedded store in
//! batches of 1 024, as owned events (`read_stream`) and the way
//! activation replays an aggregate (`read_replay_batch`, the store's share
//! of `activation_store_read`). The store lives in a temporary
//! directory under the given directory (default: the system's temporary
//! directory; give one on a real disk, not a tmpfs):
//!
//! ```text
//! cargo run --release -p aether-store --example stream_read -- /some/dir
//! ```
//!
//! Prints, for each kind of read, the minimum and the median of 50
//! whole-stream reads, after 3 warm-up reads, and the CPU time of the process (all threads) per read,
//! from `/proc/self/stat` (Linux; 10 ms ticks over all 50 reads), which a
//! busy machine disturbs less than the wall-clock times.

use aether_store::*;

const EVENTS: usize = 10_000;
const APPEND: usize = 1_000;
const BATCH: usize = 1_024;
const WARMUP: usize = 3;
const RUNS: usize = 50;

fn main() {
    let parent = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(parent).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let stream = StreamId::new(
            "bank".parse().unwrap(),
            "account".parse().unwrap(),
            "long-lived".parse().unwrap(),
        );
        let mut version = 0;
        while version < EVENTS as u64 {
            let events = (0..APPEND)
                .map(|i| NewEvent::json("Deposited", format!("{{\"amount\":{}}}", i % 100)))
                .collect();
            let outcome = store
                .append(AppendRequest {
                    stream: stream.clone(),
                    expected: ExpectedVersion::Exact(version),
                    events,
                    metadata: EventMetadata::default(),
                    timestamp_ms: 1_700_000_000_000,
                })
                .await
                .unwrap();
            version = outcome.last_version();
        }
        for replay in [false, true] {
            let mut times = Vec::new();
            let mut cpu_start = None;
            for run in 0..WARMUP + RUNS {
                if run == WARMUP {
                    cpu_start = cpu_ticks();
                }
                let start = std::time::Instant::now();
                let mut read = 0;
                loop {
                    let from = read as u64 + 1;
                    let got = if replay {
                        store
                            .read_replay_batch(&stream, from, BATCH)
                            .await
                            .unwrap()
                            .len()
                    } else {
                        store.read_stream(&stream, from, BATCH).await.unwrap().len()
                    };
                    read += got;
                    if got < BATCH {
                        break;
                    }
                }
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                assert_eq!(read, EVENTS);
                if run >= WARMUP {
                    times.push(elapsed);
                }
            }
            let cpu = cpu_start
                .zip(cpu_ticks())
                .map_or("n/a".to_owned(), |(start, end)| {
                    format!("{:.2} ms", (end - start) as f64 * 10.0 / RUNS as f64)
                });
            times.sort_by(f64::total_cmp);
            let kind = if replay {
                "read_replay_batch"
            } else {
                "read_stream"
            };
            println!(
                "{kind}: {EVENTS} events in batches of {BATCH}: median {:.3} ms, min {:.3} ms, \
                 CPU {cpu} per read ({RUNS} runs)",
                times[RUNS / 2],
                times[0]
            );
        }
    });
}

/// User + system CPU time of the process so far, in clock ticks (10 ms on
/// Linux); `None` where `/proc/self/stat` cannot be read.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may
    // hold spaces): state is the 1st, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(tick(11)? + tick(12)?)
}
