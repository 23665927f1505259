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
