//! Replay is deterministic, even for a guest that reads the clock and
//! random numbers: the host serves them from the command, not the world.

use std::sync::Arc;

use aether_host::store::{EventStore, MemoryStore};
use aether_tests::{artifacts, deploy, runtime_on, send, stream, test_config};
use serde_json::{Value, json};

fn observation(event: &aether_host::store::RecordedEvent) -> Value {
    serde_json::from_slice(&event.data).unwrap()
}

#[tokio::test]
async fn replay_gives_byte_identical_view_and_snapshot() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let writer = runtime_on(store.clone(), test_config());
    deploy(&writer, "d", "hostile", artifacts::HOSTILE).await;
    let agg = stream("d", "hostile", "observer");
    for i in 0..5 {
        send(&writer, &agg, "Observe", json!(null)).await.unwrap();
        send(&writer, &agg, "Record", json!({"note": format!("n{i}")}))
            .await
            .unwrap();
    }
    let live_view = writer.state(&agg).await.unwrap();

    // Two fresh runtimes (fresh instances) replay the same events.
    let mut views = Vec::new();
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        let reader = runtime_on(store.clone(), test_config());
        deploy(&reader, "d", "hostile", artifacts::HOSTILE).await;
        let state = reader.state(&agg).await.unwrap();
        views.push(serde_json::to_vec(&state.view).unwrap());
        snapshots.push(reader.snapshot_bytes(&agg).await.unwrap());
    }
    assert_eq!(views[0], views[1], "views are byte-identical");
    assert_eq!(snapshots[0], snapshots[1], "snapshots are byte-identical");
    assert_eq!(
        views[0],
        serde_json::to_vec(&live_view.view).unwrap(),
        "replay equals the live state"
    );
    assert_eq!(snapshots[0].1, 10);
}

#[tokio::test]
async fn clock_is_the_commands_time_and_random_is_seeded_by_stream_and_version() {
    // The same commands on two separate hosts.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let runtime = runtime_on(Arc::new(MemoryStore::new()), test_config());
        deploy(&runtime, "d", "hostile", artifacts::HOSTILE).await;
        let mut observed = Vec::new();
        for id in ["a", "b"] {
            let agg = stream("d", "hostile", id);
            for _ in 0..3 {
                let outcome = send(&runtime, &agg, "Observe", json!(null)).await.unwrap();
                let event = &outcome.events[0];
                let seen = observation(event);
                // The guest's wall and monotonic clocks read the command's timestamp.
                let ns = seen["wall_clock_ns"].as_u64().unwrap();
                assert_eq!(ns, event.timestamp_ms * 1_000_000);
                assert_eq!(seen["monotonic_ns"].as_u64().unwrap(), ns);
                observed.push((
                    seen["random"].as_u64().unwrap(),
                    seen["insecure_random"].as_u64().unwrap(),
                ));
            }
        }
        runs.push(observed);
    }
    assert_eq!(
        runs[0], runs[1],
        "same stream and version, same random numbers"
    );
    let mut distinct = runs[0].iter().map(|(r, _)| *r).collect::<Vec<_>>();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        6,
        "different streams and versions, different numbers"
    );
}
