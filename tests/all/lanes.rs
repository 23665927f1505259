//! Lanes start on a namespace's first command or read, not when it is
//! created or given limits, and stop when idle: the threads a node runs
//! follow the namespaces in use, not the namespaces that exist.

use std::time::{Duration, Instant};

use aether_host::namespace::Namespace;
use aether_host::runtime::{CommandError, Runtime, RuntimeConfig, SandboxLimits};
use aether_tests::{artifacts, deploy, memory_runtime, send, stream, test_config};
use serde_json::json;

/// The threads of this process, from `/proc/self/status`.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads line in /proc/self/status")
}

/// Waits until `runtime` has `running` lanes; panics after 30 s (a lane
/// that never stops is the failure this catches, not a slow one).
async fn until_running_lanes(runtime: &Runtime, running: usize) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while runtime.running_lanes() != running {
        assert!(
            Instant::now() < give_up,
            "{} lanes running, expected {running}",
            runtime.running_lanes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn namespaces_given_limits_and_components_start_no_threads() {
    let config = RuntimeConfig {
        partitions: 4,
        ..test_config()
    };
    let runtime = memory_runtime(config);
    let before = threads();
    let namespaces = 200;
    for n in 0..namespaces {
        let name = format!("idle-{n}");
        let namespace = Namespace::new(&name).unwrap();
        let limits = SandboxLimits {
            max_pending_commands: 10,
            ..runtime.config().limits.clone()
        };
        runtime
            .set_namespace_limits(&namespace, limits)
            .await
            .unwrap();
        assert_eq!(
            runtime
                .namespace_limits(&namespace)
                .unwrap()
                .max_pending_commands,
            10
        );
        deploy(&runtime, &name, "bank-account", artifacts::BANK_ACCOUNT).await;
    }
    assert_eq!(runtime.running_lanes(), 0);
    // Started at once, 200 namespaces of 4 partitions would be 800 threads.
    let grown = threads().saturating_sub(before);
    assert!(
        grown < namespaces,
        "{grown} threads more after creating {namespaces} idle namespaces"
    );

    let acc = stream("idle-7", "bank-account", "acc-1");
    send(&runtime, &acc, "Open", json!({"owner": "Ada"}))
        .await
        .unwrap();
    assert_eq!(runtime.running_lanes(), 1);
}

#[tokio::test]
async fn an_idle_lane_stops_and_serves_again_with_the_same_state_and_limits() {
    let config = RuntimeConfig {
        // Long enough that the lane does not stop between the steps that
        // expect it running.
        lane_idle_timeout: Duration::from_secs(1),
        ..test_config()
    };
    let runtime = memory_runtime(config);
    let namespace = Namespace::new("sleepy").unwrap();
    let limits = SandboxLimits {
        max_command_bytes: 64,
        ..runtime.config().limits.clone()
    };
    runtime
        .set_namespace_limits(&namespace, limits.clone())
        .await
        .unwrap();
    deploy(&runtime, "sleepy", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("sleepy", "bank-account", "acc-1");
    send(&runtime, &acc, "Open", json!({"owner": "Ada"}))
        .await
        .unwrap();
    send(&runtime, &acc, "Deposit", json!({"amount": 100}))
        .await
        .unwrap();
    assert_eq!(runtime.live_aggregates().await, 1);

    until_running_lanes(&runtime, 0).await;
    // Stopped: its instances and live aggregates are gone, its limits are not.
    assert_eq!(runtime.live_aggregates().await, 0);
    assert_eq!(runtime.namespace_limits(&namespace).unwrap(), limits);

    // A read starts it again, from the store.
    let state = runtime.state(&acc).await.unwrap();
    assert_eq!((state.version, &state.view["balance"]), (2, &json!(100)));
    assert_eq!(runtime.running_lanes(), 1);

    until_running_lanes(&runtime, 0).await;
    let withdrawn = send(&runtime, &acc, "Withdraw", json!({"amount": 30}))
        .await
        .unwrap();
    assert_eq!(withdrawn.version, 3);
    let large = json!({"amount": 1, "note": "x".repeat(100)});
    match send(&runtime, &acc, "Deposit", large).await {
        Err(CommandError::CommandTooLarge { limit: 64, .. }) => {}
        other => panic!("the namespace's limit still holds after a restart: {other:?}"),
    }
    assert_eq!(
        runtime.state(&acc).await.unwrap().view["balance"],
        json!(70)
    );
}

/// The nice value of this process's thread named `name` (`None` if there
/// is none), from `/proc/self/task/*/stat`.
fn nice_of_thread(name: &str) -> Option<i32> {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        if &stat[open + 1..close] != name {
            continue;
        }
        // After the name: state is the 3rd field of the line, nice the 19th.
        return stat[close + 2..].split(' ').nth(16)?.parse().ok();
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_kept_busy_gives_way_to_lighter_ones_until_it_stops() {
    let config = RuntimeConfig {
        partitions: 1,
        lane_idle_timeout: Duration::from_secs(1),
        limits: SandboxLimits {
            call_deadline: Duration::from_millis(100),
            ..test_config().limits
        },
        ..test_config()
    };
    let runtime = memory_runtime(config);
    deploy(&runtime, "hogx", "hostile", artifacts::HOSTILE).await;
    deploy(&runtime, "calmx", "bank-account", artifacts::BANK_ACCOUNT).await;
    let calm = stream("calmx", "bank-account", "acc");
    send(&runtime, &calm, "Open", json!({"owner": "Ada"}))
        .await
        .unwrap();
    let normal = nice_of_thread("aether-calmx-0").expect("calmx's partition thread");

    // The hog's guest loops to its deadline on every call: its thread is
    // busy nearly all the time.
    let hog = stream("hogx", "hostile", "spin");
    let until = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < until {
        match send(&runtime, &hog, "Loop", json!(null)).await {
            Err(CommandError::Guest(_)) => {}
            other => panic!("a loop must hit its deadline: {other:?}"),
        }
        send(&runtime, &calm, "Deposit", json!({"amount": 1}))
            .await
            .unwrap();
    }
    assert_eq!(
        nice_of_thread("aether-hogx-0"),
        Some((normal + 5).min(19)),
        "the busy lane's thread lowered its priority"
    );
    assert_eq!(
        nice_of_thread("aether-calmx-0"),
        Some(normal),
        "the light lane's thread kept its priority"
    );

    // Once the hog's lane has stopped for being idle, its next use starts
    // a thread at the normal priority again.
    until_running_lanes(&runtime, 0).await;
    send(&runtime, &hog, "Record", json!({"note": "calm now"}))
        .await
        .unwrap();
    assert_eq!(nice_of_thread("aether-hogx-0"), Some(normal));
}
