//! Lanes start on a namespace's first command or read, not when it is
//! created or given limits, and stop when idle: the threads a node runs
//! follow the namespaces in use, not the namespaces that exist.

use std::time::{Duration, Instant};

use aether_host::namespace::Namespace;
use aether_host::runtime::{CommandError, GuestFailureKind, Runtime, RuntimeConfig, SandboxLimits};
use aether_host::store::StreamId;
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

/// Field `n` (numbered from 1, as in proc(5), from the 3rd on) of the
/// `stat` of this process's thread named `name`, with its thread id
/// (`None` if there is no such thread).
fn stat_of_thread(name: &str, n: usize) -> Option<(i32, i32)> {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        if &stat[open + 1..close] != name {
            continue;
        }
        // After the name comes the 3rd field (the state).
        let field = stat[close + 2..].split(' ').nth(n - 3)?.parse().ok()?;
        let tid = stat[..open].trim().parse().ok()?;
        return Some((tid, field));
    }
    None
}

/// Waits until no thread of this process is named `name` (panics after
/// 30 s).
async fn until_no_thread(name: &str) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while tid_of_thread(name).is_some() {
        assert!(Instant::now() < give_up, "the thread {name} never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The nice value (the 19th field) of the thread named `name`.
fn nice_of_thread(name: &str) -> Option<i32> {
    stat_of_thread(name, 19).map(|(_, nice)| nice)
}

/// The thread id of the thread named `name`.
fn tid_of_thread(name: &str) -> Option<i32> {
    stat_of_thread(name, 19).map(|(tid, _)| tid)
}

/// The nice value of a thread that gave way.
const GAVE_WAY_NICE: i32 = 19;

/// Keeps the hostile guest of `hog` looping to its deadline, and the calm
/// aggregate `calm` busy with deposits, until the hog's partition thread
/// `thread` has given way (panics after 10 s).
async fn until_the_hog_gives_way(runtime: &Runtime, hog: &StreamId, calm: &StreamId, thread: &str) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while nice_of_thread(thread) != Some(GAVE_WAY_NICE) {
        assert!(Instant::now() < give_up, "the hog never gave way");
        match send(runtime, hog, "Loop", json!(null)).await {
            Err(CommandError::Guest(_)) => {}
            other => panic!("a loop must hit its deadline: {other:?}"),
        }
        send(runtime, calm, "Deposit", json!({"amount": 1}))
            .await
            .unwrap();
    }
}

/// A runtime with one partition thread per lane (which never rest after
/// giving way: `cpu_share_percent` 100), the hostile guest in namespace
/// `hog<suffix>` (its aggregate `spin`) and an opened bank account in
/// `calm<suffix>`; returns the runtime and both streams.
async fn hog_beside_calm(
    suffix: &str,
    call_deadline: Duration,
    lane_idle_timeout: Duration,
) -> (Runtime, StreamId, StreamId) {
    let config = RuntimeConfig {
        partitions: 1,
        lane_idle_timeout,
        limits: SandboxLimits {
            call_deadline,
            // No rests after giving way, so that the tests' timings show
            // only the priority; the rest's own test sets a share.
            cpu_share_percent: 100,
            ..test_config().limits
        },
        ..test_config()
    };
    let runtime = memory_runtime(config);
    let (hog, calm) = (format!("hog{suffix}"), format!("calm{suffix}"));
    deploy(&runtime, &hog, "hostile", artifacts::HOSTILE).await;
    deploy(&runtime, &calm, "bank-account", artifacts::BANK_ACCOUNT).await;
    let calm = stream(&calm, "bank-account", "acc");
    send(&runtime, &calm, "Open", json!({"owner": "Ada"}))
        .await
        .unwrap();
    (runtime, stream(&hog, "hostile", "spin"), calm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_kept_busy_gives_way_to_lighter_ones_until_it_stops() {
    let (runtime, hog, calm) =
        hog_beside_calm("x", Duration::from_millis(100), Duration::from_secs(1)).await;
    let normal = nice_of_thread("aether-calmx-0").expect("calmx's partition thread");

    // The hog's guest loops to its deadline on every call: its thread is
    // busy nearly all the time, and gives way.
    until_the_hog_gives_way(&runtime, &hog, &calm, "aether-hogx-0").await;
    assert_eq!(
        nice_of_thread("aether-calmx-0"),
        Some(normal),
        "the light lane's thread kept its priority"
    );
    // A loop is still stopped at its deadline (now counted in CPU time).
    match send(&runtime, &hog, "Loop", json!(null)).await {
        Err(CommandError::Guest(failure)) => {
            assert_eq!(failure.kind, GuestFailureKind::DeadlineExceeded)
        }
        other => panic!("a loop must hit its deadline: {other:?}"),
    }

    // Once the hog's lane has stopped for being idle, its next use starts
    // a thread at the normal priority again. (The stopped lane's thread
    // ends once it has dropped its partition, which may take a moment:
    // until then two threads have its name.)
    until_running_lanes(&runtime, 0).await;
    until_no_thread("aether-hogx-0").await;
    send(&runtime, &hog, "Record", json!({"note": "calm now"}))
        .await
        .unwrap();
    assert_eq!(nice_of_thread("aether-hogx-0"), Some(normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_that_gave_way_rests_for_the_cpu_it_used_beyond_its_share() {
    // At a share of 10 %, a loop to the deadline earns nine times that in
    // rest: the hog's next command waits it out.
    let (runtime, hog, calm, deadline) = a_hog_resting("z", 10).await;
    let started = Instant::now();
    send(&runtime, &hog, "Record", json!({"note": "after the loop"}))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= deadline * 7,
        "the hog's lane rested {waited:?} after a loop of {deadline:?} at a 10 % share"
    );
    // The calm lane was never made to rest.
    send(&runtime, &calm, "Deposit", json!({"amount": 1}))
        .await
        .unwrap();
}

/// [`hog_beside_calm`] (100 ms deadline) with a hog that gave way, at a
/// CPU share of `share`, whose loop to its deadline, just answered, earns
/// it a rest (the calm lane worked meanwhile); returns the runtime, the
/// streams and the deadline.
async fn a_hog_resting(suffix: &str, share: usize) -> (Runtime, StreamId, StreamId, Duration) {
    let deadline = Duration::from_millis(100);
    let (runtime, hog, calm) = hog_beside_calm(suffix, deadline, Duration::from_secs(30)).await;
    until_the_hog_gives_way(&runtime, &hog, &calm, &format!("aether-hog{suffix}-0")).await;
    let limits = SandboxLimits {
        cpu_share_percent: share,
        ..runtime.namespace_limits(&hog.namespace).unwrap()
    };
    runtime
        .set_namespace_limits(&hog.namespace, limits)
        .await
        .unwrap();
    // The loop runs until it has used its deadline in CPU time (the
    // thread gave way); the calm lane does a job meanwhile, before the
    // loop ends even on a loaded machine (the loop's thread is lowered),
    // so the hog's lane owes a rest for it.
    let looping = tokio::spawn({
        let (runtime, hog) = (runtime.clone(), hog.clone());
        async move { send(&runtime, &hog, "Loop", json!(null)).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    send(&runtime, &calm, "Deposit", json!({"amount": 1}))
        .await
        .unwrap();
    match looping.await.unwrap() {
        Err(CommandError::Guest(failure)) => {
            assert_eq!(failure.kind, GuestFailureKind::DeadlineExceeded)
        }
        other => panic!("a loop must hit its deadline: {other:?}"),
    }
    (runtime, hog, calm, deadline)
}

/// A busy tenant's rest holds back its own jobs only: the node's work on
/// its partition (here passivating every aggregate, as a cluster hand-off
/// does) runs at once, ahead of the tenant's command that waits out the
/// rest, and that command is answered after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_work_on_a_resting_lane_does_not_wait_out_the_rest() {
    // At 2 %, a loop to the deadline earns a rest of ~4.9 s.
    let (runtime, hog, _calm, _) = a_hog_resting("w", 2).await;
    let rest_began = Instant::now();
    let held = tokio::spawn({
        let (runtime, hog) = (runtime.clone(), hog.clone());
        async move { send(&runtime, &hog, "Record", json!({"note": "after the loop"})).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let passivated = runtime
        .passivate_where(std::sync::Arc::new(|_: &StreamId| true))
        .await;
    let node_work_done = rest_began.elapsed();
    assert!(
        node_work_done < Duration::from_secs(2),
        "the node's work waited {node_work_done:?} on a resting lane"
    );
    assert!(passivated >= 1, "the calm account was live: {passivated}");
    assert!(
        !held.is_finished(),
        "the hog's command did not wait for its rest"
    );
    held.await.unwrap().unwrap();
    let answered = rest_began.elapsed();
    assert!(
        answered >= Duration::from_secs(3),
        "the hog's command was answered {answered:?} into a rest of ~4.9 s"
    );
}

/// Pins the thread `tid` (0: the calling thread) to `cpu`.
fn pin_to_cpu(tid: i32, cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data that `CPU_ZERO`/`CPU_SET` fill;
    // `sched_setaffinity` reads it and changes only thread `tid`'s
    // affinity, a thread of this process.
    #[allow(unsafe_code)]
    unsafe {
        let mut cpus: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut cpus);
        libc::CPU_SET(cpu, &mut cpus);
        let status = libc::sched_setaffinity(tid, std::mem::size_of_val(&cpus), &cpus);
        assert_eq!(status, 0, "{}", std::io::Error::last_os_error());
    }
}

/// The first CPU this process may run on.
fn first_allowed_cpu() -> usize {
    // SAFETY: as in `pin_to_cpu`; `sched_getaffinity` fills the set.
    #[allow(unsafe_code)]
    unsafe {
        let mut cpus: libc::cpu_set_t = std::mem::zeroed();
        let status = libc::sched_getaffinity(0, std::mem::size_of_val(&cpus), &mut cpus);
        assert_eq!(status, 0, "{}", std::io::Error::last_os_error());
        (0..libc::CPU_SETSIZE as usize)
            .find(|&cpu| libc::CPU_ISSET(cpu, &cpus))
            .expect("a CPU to run on")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_that_gave_way_is_slowed_down_not_failed() {
    let deadline = Duration::from_millis(200);
    let (runtime, hog, calm) = hog_beside_calm("y", deadline, Duration::from_secs(30)).await;
    until_the_hog_gives_way(&runtime, &hog, &calm, "aether-hogy-0").await;

    // A command whose work takes about a fifth of the deadline, measured
    // on the hog's thread while no one competes with it.
    let probe = 20_000_000u64;
    let started = Instant::now();
    send(&runtime, &hog, "Spin", json!({"iterations": probe}))
        .await
        .unwrap();
    let per_iteration = started.elapsed().as_secs_f64() / probe as f64;
    let iterations = (deadline.as_secs_f64() / 5.0 / per_iteration) as u64;

    // The hog's thread and a spinning thread at the normal priority share
    // one CPU for three deadlines of wall-clock time; the call starts once
    // the spinner runs, and the hog, at nice 19, mostly waits.
    let cpu = first_allowed_cpu();
    let tid = tid_of_thread("aether-hogy-0").expect("the hog's thread");
    pin_to_cpu(tid, cpu);
    let spinner = std::thread::spawn(move || {
        pin_to_cpu(0, cpu);
        let until = Instant::now() + deadline * 3;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let spin = {
        let (runtime, hog) = (runtime.clone(), hog.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = send(&runtime, &hog, "Spin", json!({"iterations": iterations})).await;
            (outcome, started.elapsed())
        })
    };
    let (outcome, took) = spin.await.unwrap();
    spinner.join().unwrap();
    assert!(
        took > deadline,
        "the call waited past its wall-clock deadline ({took:?}), or this test shows nothing"
    );
    let outcome = outcome.expect("the call used a fifth of its deadline in CPU time: not failed");
    assert_eq!(outcome.version, 2, "after the probe's event");
}
