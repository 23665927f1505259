//! Times reading one 10 000-event stream from the embedded store in
//! batches of 1 024, the way activation replays an aggregate (the store's
//! share of `activation_store_read`). The store lives in a temporary
//! directory under the given directory (default: the system's temporary
//! directory; give one on a real disk, not a tmpfs):
//!
//! ```text
//! cargo run --release -p aether-store --example stream_read -- /some/dir
//! ```
//!
//! Prints the minimum and the median of 50 whole-stream reads, after 3
//! warm-up reads.

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
        let mut times = Vec::new();
        for run in 0..WARMUP + RUNS {
            let start = std::time::Instant::now();
            let mut read = 0;
            loop {
                let events = store
                    .read_stream(&stream, read as u64 + 1, BATCH)
                    .await
                    .unwrap();
                read += events.len();
                if events.len() < BATCH {
                    break;
                }
            }
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            assert_eq!(read, EVENTS);
            if run >= WARMUP {
                times.push(elapsed);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "read {EVENTS} events in batches of {BATCH}: median {:.3} ms, min {:.3} ms ({RUNS} runs)",
            times[RUNS / 2],
            times[0]
        );
    });
}
