//! Hand-off: a node that leaves (SIGTERM) finishes its in-flight commands
//! and hands its shards over; one that joins takes about 1/N of them.
//! Under load, no command fails and none is lost or applied twice.

use std::time::Instant;

use crate::harness::{Cluster, SHARDS};
use crate::load::{Impact, Load, check_exactly_once};

const ACCOUNTS: usize = 24;
const WORKERS: usize = 4;

#[test]
fn shards_move_on_leave_and_join_without_a_failed_or_repeated_command() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.urls(), &cluster.token, ACCOUNTS, WORKERS);
    load.wait_for(200);

    // Leave: node 3 is taken out of the load balancer, then stopped.
    let since = Instant::now();
    let before = cluster.status(0);
    load.remove_target(&cluster.urls()[2]);
    let log = cluster.terminate(2);
    assert!(log.contains("left the cluster"), "{log}");
    let after = cluster.wait_stable(2);
    assert!(after["epoch"].as_u64() > before["epoch"].as_u64());
    // Only node 3's shards moved.
    let left = moved(&before, &after);
    assert_eq!(
        left,
        before["shards_per_node"]["node-3"].as_u64().unwrap() as usize
    );
    load.wait_for(200);
    let record = load.record.lock().unwrap();
    let impact = Impact::of(&record, since);
    println!("{}", impact.report("graceful leave", &record, since));
    assert_eq!(impact.failed_attempts, 0, "{:?}", &record.failures);
    drop(record);

    // Join: node 3 comes back and takes back about a third.
    let since = Instant::now();
    cluster.restart(2);
    load.add_target(&cluster.urls()[2]);
    let rejoined = cluster.wait_stable(3);
    let joined = moved(&after, &rejoined);
    assert!(
        (SHARDS / 3 / 2..=SHARDS / 3 * 3 / 2).contains(&joined),
        "{joined} shards moved when one node joined two"
    );
    load.wait_for(200);
    let record = load.stop();
    let impact = Impact::of(&record, since);
    println!("{}", impact.report("join", &record, since));
    assert_eq!(impact.failed_attempts, 0, "{:?}", record.failures);
    let checked = check_exactly_once(&cluster.client(0), &record, ACCOUNTS);
    assert!(checked >= record.acks.len());
}

/// How many shards have another owner in `after`.
fn moved(before: &serde_json::Value, after: &serde_json::Value) -> usize {
    let owners = |s: &serde_json::Value| s["owners"].as_array().unwrap().clone();
    owners(before)
        .iter()
        .zip(owners(after).iter())
        .filter(|(a, b)| a != b)
        .count()
}
