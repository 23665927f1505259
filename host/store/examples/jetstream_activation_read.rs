//! Times what activation reads of a long aggregate on the JetStream
//! store: 10 000 small events on one aggregate (appended 500 at a time,
//! under JetStream's 1 000-message limit on an atomic batch), then the
//! whole stream read as the runtime replays it, `read_stream` in batches
//! of 1 024 until a short one, 15 times after 2 warm-ups. Prints the
//! median and the fastest run.
//!
//! ```text
//! cargo run --release -p aether-store --features jetstream \
//!     --example jetstream_activation_read -- [nats://127.0.0.1:PORT]
//! ```
//!
//! Without a URL it starts a JetStream-enabled `nats-server` of its own
//! (`$AETHER_NATS_SERVER`, else `nats-server` on the `PATH`) on a free
//! port with a fresh store directory, and stops it at the end. With a URL,
//! each run appends to the same aggregate, so use a fresh server.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aether_store::*;

const EVENTS: u64 = 10_000;
const CHUNK: u64 = 500;
const BATCH: usize = 1_024;
const WARMUP: usize = 2;
const RUNS: usize = 15;

/// A `nats-server` of the example's own, killed on drop.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server() -> (Server, String) {
    let binary = std::env::var("AETHER_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("a store directory");
    let child = Command::new(&binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let server = Server { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{binary} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, format!("nats://127.0.0.1:{port}"))
}

fn main() {
    let (_server, url) = match std::env::args().nth(1) {
        Some(url) => (None, url),
        None => {
            let (server, url) = spawn_server();
            (Some(server), url)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = JetStreamStore::connect(JetStreamConfig::new(vec![url], 1))
            .await
            .unwrap();
        let s = StreamId::new(
            "bank".parse().unwrap(),
            "account".parse().unwrap(),
            "long-lived".parse().unwrap(),
        );
        let mut n = store.stream_version(&s).await.unwrap();
        while n < EVENTS {
            let events = (0..CHUNK)
                .map(|i| NewEvent::json("deposited", format!("{{\"amount\":{i}}}").into_bytes()))
                .collect();
            store
                .append(AppendRequest {
                    stream: s.clone(),
                    expected: ExpectedVersion::Exact(n),
                    events,
                    metadata: EventMetadata::default(),
                    timestamp_ms: 1,
                })
                .await
                .unwrap();
            n += CHUNK;
        }
        let mut times = Vec::new();
        for run in 0..WARMUP + RUNS {
            let t = Instant::now();
            let mut version = 0;
            loop {
                let events = store.read_stream(&s, version + 1, BATCH).await.unwrap();
                if let Some(first) = events.first() {
                    assert_eq!(first.version, version + 1);
                }
                version += events.len() as u64;
                if events.len() < BATCH {
                    break;
                }
            }
            assert_eq!(version, n);
            if run >= WARMUP {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "activation read of {n} events in batches of {BATCH}: median {:.1} ms, min {:.1} ms \
             ({RUNS} runs)",
            times[RUNS / 2],
            times[0]
        );
    });
}
