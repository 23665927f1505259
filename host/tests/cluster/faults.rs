//! Five faults under a steady load, each on a fresh cluster of 3 NATS
//! servers and 3 nodes: after each, the cluster serves again, every
//! acknowledged command's event is stored exactly once and versions are
//! gapless. Each test prints what the fault cost (failed attempts, the
//! window they span, the longest wait for an acknowledgement); BENCHMARKS.md
//! quotes them.

use std::time::{Duration, Instant};

use crate::harness::Cluster;
use crate::load::{Impact, Load, check_exactly_once};

const ACCOUNTS: usize = 24;
const WORKERS: usize = 4;

/// Runs `fault` on a loaded 3-node cluster, lets the load go on until
/// `settled` nodes agree on a map and 300 more commands are acknowledged,
/// then checks every acknowledged command.
fn under_load(name: &str, settled: usize, fault: impl FnOnce(&mut Cluster, &Load)) {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(3);
    let load = Load::start(cluster.urls(), &cluster.token, ACCOUNTS, WORKERS);
    load.wait_for(200);
    let since = Instant::now();
    fault(&mut cluster, &load);
    cluster.wait_stable(settled);
    load.wait_for(300);
    let record = load.stop();
    let impact = Impact::of(&record, since);
    println!("{}", impact.report(name, &record, since));
    let reader = cluster.client(cluster.running()[0]);
    let checked = check_exactly_once(&reader, &record, ACCOUNTS);
    assert!(
        checked >= record.acks.len(),
        "{checked} events for {} acks",
        record.acks.len()
    );
    assert!(impact.acked >= 300);
}

/// Takes node `index` out of the load and kills it with SIGKILL.
fn kill(cluster: &mut Cluster, load: &Load, index: usize) {
    load.remove_target(
        &cluster.urls()[cluster.running().iter().position(|&i| i == index).unwrap()],
    );
    cluster.kill(index);
}

fn non_leader(cluster: &Cluster) -> usize {
    let leader = cluster.leader();
    *cluster.running().iter().find(|&&i| i != leader).unwrap()
}

#[test]
fn kill_9_a_non_leader_node() {
    under_load("kill -9 a non-leader node", 2, |cluster, load| {
        let victim = non_leader(cluster);
        kill(cluster, load, victim);
    });
}

#[test]
fn kill_9_the_leader() {
    under_load("kill -9 the leader", 2, |cluster, load| {
        let leader = cluster.leader();
        kill(cluster, load, leader);
        let settled = cluster.wait_stable(2);
        assert_ne!(settled["leader"], Cluster::node_id(leader).as_str());
    });
}

#[test]
fn restart_a_killed_node() {
    under_load("restart a killed node", 3, |cluster, load| {
        let victim = non_leader(cluster);
        kill(cluster, load, victim);
        cluster.wait_stable(2);
        load.wait_for(100);
        cluster.restart(victim);
        let url =
            cluster.urls()[cluster.running().iter().position(|&i| i == victim).unwrap()].clone();
        load.add_target(&url);
    });
}

#[test]
fn kill_one_nats_server() {
    under_load("kill one NATS server", 3, |cluster, load| {
        cluster.nats.server(0).kill();
        // Commands keep being acknowledged on the two servers left.
        load.wait_for(100);
        std::thread::sleep(Duration::from_millis(500));
    });
}

#[test]
fn add_a_fourth_node() {
    under_load("add a fourth node", 4, |cluster, load| {
        let index = cluster.add_node();
        let url =
            cluster.urls()[cluster.running().iter().position(|&i| i == index).unwrap()].clone();
        load.add_target(&url);
        let status = cluster.wait_stable(4);
        let owned = status["shards_per_node"]["node-4"].as_u64().unwrap();
        assert!(
            (32..=100).contains(&owned),
            "the fourth node owns {owned} shards"
        );
    });
}
