//! Snapshots: activation from a snapshot plus the tail gives the same state
//! as a full replay, and only the component that made a snapshot reads it.

use std::sync::Arc;

use aether_host::runtime::{
    CommandError, LoadError, Runtime, STATE_SCHEMA_SECTION, SnapshotPolicy, with_custom_section,
};
use aether_host::store::{EventStore, MemoryStore, Snapshot, StreamId};
use aether_tests::{artifacts, component, runtime_on, send, stream, test_config};
use serde_json::json;

/// A small deterministic generator, so a failing history can be replayed
/// from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn runtime_with(
    store: &Arc<dyn EventStore>,
    policy: SnapshotPolicy,
    bytes: Vec<u8>,
) -> Runtime {
    let runtime = runtime_on(store.clone(), test_config());
    let acc = stream("s", "bank-account", "x");
    runtime
        .deploy(&acc.namespace, &acc.aggregate_type, bytes)
        .await
        .unwrap();
    runtime.set_snapshot_policy(&acc.namespace, &acc.aggregate_type, policy);
    runtime
}

/// Sends a random mix of commands (some rejected) to `stream`.
async fn random_history(runtime: &Runtime, stream: &StreamId, rng: &mut Rng, commands: usize) {
    let _ = send(runtime, stream, "Open", json!({"owner": "R"})).await;
    for _ in 0..commands {
        let amount = rng.below(50);
        let result = match rng.below(10) {
            0..=5 => send(runtime, stream, "Deposit", json!({"amount": amount})).await,
            6..=8 => send(runtime, stream, "Withdraw", json!({"amount": amount})).await,
            _ => send(runtime, stream, "Open", json!({"owner": "again"})).await,
        };
        match result {
            Ok(_) | Err(CommandError::Rejected(_)) => {}
            Err(other) => panic!("unexpected failure {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_plus_tail_equals_full_replay_for_random_histories() {
    let bytes = component(artifacts::BANK_ACCOUNT);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // One writer; one reader that activates from snapshots; one reader
    // that replays everything (the same code under another digest finds no
    // snapshot of its own). Each history gets its own aggregate type, so
    // each can have its own snapshot interval.
    let writer = runtime_on(store.clone(), test_config());
    let from_snapshot = runtime_on(store.clone(), test_config());
    let full = runtime_on(store.clone(), test_config());
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let every = 1 + rng.below(12);
        let acc = stream("s", &format!("bank-{seed}"), "acc");
        let (ns, ty) = (&acc.namespace, &acc.aggregate_type);
        for runtime in [&writer, &from_snapshot] {
            runtime.deploy(ns, ty, bytes.clone()).await.unwrap();
            runtime.set_snapshot_policy(ns, ty, SnapshotPolicy::Every(every));
        }
        full.deploy(ns, ty, with_other_digest(bytes.clone()))
            .await
            .unwrap();
        full.set_snapshot_policy(ns, ty, SnapshotPolicy::Never);

        let commands = 5 + rng.below(60) as usize;
        random_history(&writer, &acc, &mut rng, commands).await;

        let version = store.stream_version(&acc).await.unwrap();
        let digest = writer
            .deployments()
            .iter()
            .find(|d| &d.1 == ty)
            .unwrap()
            .2
            .to_hex();
        let snapshot = store.load_snapshot(&acc, &digest).await.unwrap();
        if version >= every {
            let snapshot = snapshot.unwrap_or_else(|| {
                panic!("seed {seed}: no snapshot at {version} events, every {every}")
            });
            assert_eq!(
                snapshot.version % every,
                0,
                "seed {seed}: snapshot on a multiple of {every}"
            );
            assert!(
                version - snapshot.version < every,
                "seed {seed}: the newest snapshot is kept"
            );
        }

        let a = from_snapshot.state(&acc).await.unwrap();
        let b = full.state(&acc).await.unwrap();
        assert_eq!(
            a, b,
            "seed {seed}: snapshot + tail differs from full replay"
        );
        assert_eq!(a.version, version);
        assert_eq!(
            writer.state(&acc).await.unwrap(),
            a,
            "seed {seed}: live state differs"
        );
    }
}

/// The same component with a custom section appended: identical code, a
/// different digest.
fn with_other_digest(bytes: Vec<u8>) -> Vec<u8> {
    with_custom_section(&bytes, "aether-test", b"another build of the same code")
}

/// The component declaring state schema `version`.
fn with_schema(bytes: &[u8], version: &str) -> Vec<u8> {
    with_custom_section(bytes, STATE_SCHEMA_SECTION, version.as_bytes())
}

#[tokio::test]
async fn only_the_component_that_made_a_snapshot_reads_it() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bytes_a = component(artifacts::BANK_ACCOUNT);
    let bytes_b = with_other_digest(bytes_a.clone());
    let a = runtime_with(&store, SnapshotPolicy::Never, bytes_a.clone()).await;
    let acc = stream("s", "bank-account", "doctored");
    send(&a, &acc, "Open", json!({"owner": "S"})).await.unwrap();
    send(&a, &acc, "Deposit", json!({"amount": 10}))
        .await
        .unwrap();
    let digest_a = a.deployments()[0].2.to_hex();

    // A snapshot by component A that disagrees with the events, on purpose.
    let doctored = json!({"status": "open", "owner": "S", "balance": 424242});
    store
        .save_snapshot(Snapshot {
            stream: acc.clone(),
            version: 2,
            snapshot_key: digest_a.clone(),
            state: serde_json::to_vec(&doctored).unwrap(),
            timestamp_ms: 1,
        })
        .await
        .unwrap();

    // Component B (another digest) ignores A's snapshot: full replay.
    let b = runtime_with(&store, SnapshotPolicy::Never, bytes_b).await;
    assert_ne!(b.deployments()[0].2.to_hex(), digest_a);
    assert_eq!(b.state(&acc).await.unwrap().view["balance"], json!(10));

    // Component A starts from its own snapshot (proving snapshots are used).
    let a2 = runtime_with(&store, SnapshotPolicy::Never, bytes_a).await;
    assert_eq!(a2.state(&acc).await.unwrap().view["balance"], json!(424242));
}

#[tokio::test]
async fn a_snapshot_the_component_refuses_falls_back_to_full_replay() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bytes = component(artifacts::BANK_ACCOUNT);
    let writer = runtime_with(&store, SnapshotPolicy::Never, bytes.clone()).await;
    let acc = stream("s", "bank-account", "garbled");
    send(&writer, &acc, "Open", json!({"owner": "G"}))
        .await
        .unwrap();
    send(&writer, &acc, "Deposit", json!({"amount": 3}))
        .await
        .unwrap();
    let digest = writer.deployments()[0].2.to_hex();
    store
        .save_snapshot(Snapshot {
            stream: acc.clone(),
            version: 2,
            snapshot_key: digest,
            state: b"not json at all".to_vec(),
            timestamp_ms: 1,
        })
        .await
        .unwrap();
    let reader = runtime_with(&store, SnapshotPolicy::Never, bytes).await;
    let state = reader.state(&acc).await.unwrap();
    assert_eq!(
        (state.version, state.view["balance"].clone()),
        (2, json!(3))
    );
}

/// A new version of a component that declares the same state schema reads
/// the snapshots an older version made; one with another schema, or none,
/// replays from the events.
#[tokio::test]
async fn a_snapshot_is_shared_by_components_with_the_same_state_schema() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let bank = component(artifacts::BANK_ACCOUNT);
    let v1 = with_schema(&bank, "1");
    let v1_rebuilt = with_other_digest(v1.clone());
    let v2 = with_schema(&bank, "2");

    let a = runtime_with(&store, SnapshotPolicy::Never, v1).await;
    let loaded = a
        .active_component(&"s".parse().unwrap(), &"bank-account".parse().unwrap())
        .unwrap();
    assert_eq!(loaded.state_schema(), Some("1"));
    assert_eq!(loaded.snapshot_key(), "schema:1");
    let acc = stream("s", "bank-account", "schema");
    send(&a, &acc, "Open", json!({"owner": "S"})).await.unwrap();
    send(&a, &acc, "Deposit", json!({"amount": 10}))
        .await
        .unwrap();
    let doctored = json!({"status": "open", "owner": "S", "balance": 777});
    store
        .save_snapshot(Snapshot {
            stream: acc.clone(),
            version: 2,
            snapshot_key: "schema:1".into(),
            state: serde_json::to_vec(&doctored).unwrap(),
            timestamp_ms: 1,
        })
        .await
        .unwrap();

    // Another build, same schema: starts from the snapshot.
    let same = runtime_with(&store, SnapshotPolicy::Never, v1_rebuilt).await;
    assert_eq!(same.state(&acc).await.unwrap().view["balance"], json!(777));
    // Another schema, or none: full replay.
    let other = runtime_with(&store, SnapshotPolicy::Never, v2).await;
    assert_eq!(other.state(&acc).await.unwrap().view["balance"], json!(10));
    let undeclared = runtime_with(&store, SnapshotPolicy::Never, bank.clone()).await;
    assert_eq!(
        undeclared.state(&acc).await.unwrap().view["balance"],
        json!(10)
    );

    // Hot reload inside one runtime: the live aggregate re-activates under
    // the new version from the shared snapshot.
    let reloading = runtime_with(&store, SnapshotPolicy::Never, bank.clone()).await;
    assert_eq!(
        reloading.state(&acc).await.unwrap().view["balance"],
        json!(10)
    );
    let (ns, ty) = (acc.namespace.clone(), acc.aggregate_type.clone());
    reloading
        .deploy(&ns, &ty, with_schema(&bank, "1"))
        .await
        .unwrap();
    assert_eq!(
        reloading.state(&acc).await.unwrap().view["balance"],
        json!(777)
    );

    // The SDK's `state_schema!` reaches the component (the counter declares "1").
    let counter = a
        .load_component(component(artifacts::COUNTER))
        .await
        .unwrap();
    assert_eq!(counter.state_schema(), Some("1"));
    // Two different declarations are refused.
    let twice = with_schema(&with_schema(&bank, "1"), "2");
    match a.load_component(twice).await {
        Err(aether_host::runtime::DeployError::Load(LoadError::Invalid(message))) => {
            assert!(message.contains("two state schemas"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
