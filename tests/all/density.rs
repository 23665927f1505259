//! Many live aggregates in one partition.
//!
//! wasmtime caps the component-model handles of one `Store` at 100 000 by
//! default, and every live aggregate is one handle in its instance's store;
//! a partition must still keep its share of `max_live_aggregates` live.

use aether_host::runtime::{RuntimeConfig, SandboxLimits};
use aether_tests::{artifacts, deploy, memory_runtime, send, stream, test_config};
use serde_json::json;
use tokio::task::JoinSet;

const LIVE: usize = 100_100;
const CALLERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_keeps_more_than_100_000_aggregates_live() {
    let base = test_config();
    let runtime = memory_runtime(RuntimeConfig {
        partitions: 1,
        limits: SandboxLimits {
            max_live_aggregates: 2 * LIVE,
            ..base.limits.clone()
        },
        ..base
    });
    deploy(&runtime, "c", "counter", artifacts::COUNTER).await;

    // A state read activates the aggregate (one resource in the one
    // instance) without storing anything, so this is fast.
    let mut callers = JoinSet::new();
    for caller in 0..CALLERS {
        let runtime = runtime.clone();
        callers.spawn(async move {
            for i in (caller..LIVE).step_by(CALLERS) {
                let state = runtime
                    .state(&stream("c", "counter", &format!("n-{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("activating aggregate {i}: {e}"));
                assert_eq!(state.version, 0);
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    assert_eq!(runtime.live_aggregates().await, LIVE);

    // The first one activated is still live and still answers commands.
    let first = stream("c", "counter", "n-0");
    send(&runtime, &first, "Increment", json!({"by": 5}))
        .await
        .unwrap();
    let state = runtime.state(&first).await.unwrap();
    assert_eq!((state.version, &state.view["value"]), (1, &json!(5)));
    assert_eq!(runtime.live_aggregates().await, LIVE);
}

/// A command or read keeps its aggregate pinned while it holds the
/// aggregate's turn: with room for 2 live aggregates in the one partition
/// and 24 aggregates in use at once, every command lands exactly once and
/// every read sees it; once they are done, the partition is back within
/// its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_in_use_stay_pinned_past_the_lru_capacity() {
    const IN_USE: usize = 24;
    let base = test_config();
    let runtime = memory_runtime(RuntimeConfig {
        partitions: 1,
        limits: SandboxLimits {
            max_live_aggregates: 2,
            ..base.limits.clone()
        },
        ..base
    });
    deploy(&runtime, "c", "counter", artifacts::COUNTER).await;
    for round in 1..=3u64 {
        let mut callers = JoinSet::new();
        for i in 0..IN_USE {
            let runtime = runtime.clone();
            callers.spawn(async move {
                let counter = stream("c", "counter", &format!("p-{i}"));
                let outcome = send(&runtime, &counter, "Increment", json!({"by": 1}))
                    .await
                    .unwrap_or_else(|e| panic!("command on p-{i}, round {round}: {e}"));
                assert_eq!(outcome.version, round);
                let state = runtime.state(&counter).await.unwrap();
                assert_eq!(
                    (state.version, &state.view["value"]),
                    (round, &json!(round))
                );
            });
        }
        while let Some(done) = callers.join_next().await {
            done.unwrap();
        }
        let live = runtime.live_aggregates().await;
        assert!(live <= 2, "{live} aggregates live past a capacity of 2");
    }
}
