//! Times an append with a command id on a JetStream stream of 5 000
//! events (what finding the command id's earlier events costs). Run it
//! against a JetStream-enabled `nats-server`:
//!
//! ```text
//! nats-server -js -sd /tmp/js -p 14777 &
//! cargo run --release -p aether-store --features jetstream \
//!     --example command_id_append -- nats://127.0.0.1:14777
//! ```
//!
//! Each run appends to the same stream, so use a fresh server directory.

use aether_store::*;
fn main() {
    let url = std::env::args().nth(1).unwrap();
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
            "long".parse().unwrap(),
        );
        let mut n = 0;
        while n < 5000 {
            let events = (0..500)
                .map(|i| NewEvent::json("noted", format!("{{\"i\":{i}}}").into_bytes()))
                .collect();
            store
                .append(AppendRequest {
                    stream: s.clone(),
                    expected: ExpectedVersion::Any,
                    events,
                    metadata: EventMetadata::default(),
                    timestamp_ms: 1,
                })
                .await
                .unwrap();
            n += 500;
        }
        let mut times = Vec::new();
        for i in 0..40 {
            let t = std::time::Instant::now();
            store
                .append(AppendRequest {
                    stream: s.clone(),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent::json("noted", b"{}".to_vec())],
                    metadata: EventMetadata {
                        command_id: Some(format!("cmd-{i}")),
                        ..Default::default()
                    },
                    timestamp_ms: 1,
                })
                .await
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "append with a command id on a 5000-event stream: median {:.2} ms, min {:.2} ms",
            times[20], times[0]
        );
    });
}
