//! Deterministic, capability-free WASI holds for big language runtimes:
//! CPython (componentize-py) and SpiderMonkey (componentize-js) import most
//! of WASI p2, and the host serves them the same sandbox as a Rust guest.
//! The probe guests (`tests/programs/probe-*`) reach for the clock, random
//! numbers, files, the environment and the network through their
//! language's ordinary APIs.

use std::path::Path;
use std::sync::Arc;

use aether_host::runtime::{CommandError, Runtime};
use aether_host::store::{EventStore, MemoryStore, RecordedEvent};
use aether_tests::{artifacts, deploy, runtime_on, send, stream, test_config};
use serde_json::{Value, json};

const PROBES: [(&str, &str); 2] = [
    ("python", artifacts::PROBE_PY),
    ("javascript", artifacts::PROBE_JS),
];

fn probe(path: &str, language: &str) -> &'static str {
    assert!(
        Path::new(path).exists(),
        "the {language} probe is missing at {path}: `cargo xtask test` builds it"
    );
    "probe"
}

async fn probe_runtime(store: &Arc<dyn EventStore>, path: &str, language: &str) -> Runtime {
    // Each runtime is a node restart; the compile cache spares compiling the
    // 12–18 MB components again for each.
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
    let config = aether_host::runtime::RuntimeConfig {
        compile_cache: Some(cache),
        ..test_config()
    };
    let runtime = runtime_on(store.clone(), config);
    deploy(&runtime, "lang", probe(path, language), path).await;
    runtime
}

fn data(event: &RecordedEvent) -> Value {
    serde_json::from_slice(&event.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_and_random_are_the_hosts_and_replay_is_identical() {
    for (language, path) in PROBES {
        // The same commands on two separate hosts.
        let mut randoms = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..2 {
            let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
            let runtime = probe_runtime(&store, path, language).await;
            let mut seen = Vec::new();
            for id in ["a", "b"] {
                let agg = stream("lang", "probe", id);
                for _ in 0..2 {
                    let outcome = send(&runtime, &agg, "Observe", json!(null)).await.unwrap();
                    let event = &outcome.events[0];
                    let observed = data(event);
                    assert_eq!(
                        observed["wall_clock_ms"].as_u64(),
                        Some(event.timestamp_ms),
                        "{language}: the guest's clock reads the command's timestamp"
                    );
                    seen.push(observed["random"].as_str().unwrap().to_string());
                }
            }
            randoms.push(seen);
            stores.push(store);
        }
        assert_eq!(
            randoms[0], randoms[1],
            "{language}: same stream and version, same random number"
        );
        let mut distinct = randoms[0].clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            4,
            "{language}: different streams and versions, different numbers"
        );

        // Replaying into fresh instances gives byte-identical views.
        let agg = stream("lang", "probe", "a");
        let mut views = Vec::new();
        for _ in 0..2 {
            let reader = probe_runtime(&stores[0], path, language).await;
            views.push(serde_json::to_vec(&reader.state(&agg).await.unwrap().view).unwrap());
        }
        assert_eq!(views[0], views[1], "{language}: replay is deterministic");
        let view: Value = serde_json::from_slice(&views[0]).unwrap();
        assert_eq!(
            view["observations"].as_array().map(Vec::len),
            Some(2),
            "{language}: {view}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_environment_and_sockets_fail_inside_the_guest() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    for (language, path) in PROBES {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let runtime = probe_runtime(&store, path, language).await;
        let agg = stream("lang", "probe", "reacher");
        for (command, data, code) in [
            ("ReadFile", json!({"path": "/etc/passwd"}), "file-denied"),
            ("ReadFile", json!({"path": "Cargo.toml"}), "file-denied"),
            ("ReadEnv", json!({"name": "HOME"}), "env-empty"),
            ("ReadEnv", json!({"name": "PATH"}), "env-empty"),
            ("OpenSocket", json!({"address": address}), "socket-denied"),
        ] {
            match send(&runtime, &agg, command, data.clone()).await {
                Err(CommandError::Rejected(r)) => {
                    assert_eq!(r.code, code, "{language} {command} {data}: {r}")
                }
                other => {
                    panic!("{language} {command} {data} must fail inside the guest, got {other:?}")
                }
            }
        }
        // The guest and the host carry on.
        let outcome = send(&runtime, &agg, "Record", json!({"note": "still fine"}))
            .await
            .unwrap();
        assert_eq!(outcome.version, 1, "{language}: nothing else was stored");
    }
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
}
