//! The faults, each on a fresh cluster of 3 NATS servers and 3 nodes
//! (heartbeat 300 ms, lease TTL 2 s): pauses longer than the lease of the
//! leader, of another shard owner and of a NATS server; the loss of NATS
//! quorum; kill/restart churn of nodes; a node whose clock is 5 s behind.
//! Each prints what it cost and the checker's counts, and fails on any
//! anomaly.

use std::time::Duration;

use super::run::run;
use super::workload::Workload;
use crate::harness::{Cluster, signal};

/// How long a paused process stays paused: four times the test cluster's
/// lease TTL (2 s), so its membership (and the leader's lease) expires and
/// the new owners serve its shards a while before it wakes (the takeover
/// itself takes one to four seconds of it).
const PAUSE: Duration = Duration::from_secs(8);

/// How long a killed node or a quorum stays down.
const DOWN: Duration = Duration::from_secs(4);

fn non_leader(cluster: &Cluster) -> usize {
    let leader = cluster.leader();
    *cluster.running().iter().find(|&&i| i != leader).unwrap()
}

/// How long before waking a paused node the suite sends it a read of
/// every account (less than the client timeout, so they wait for it).
const PROBE: Duration = Duration::from_millis(500);

/// Pauses node `index` for [`PAUSE`], twice, with the cluster settled in
/// between (whether a stale answer is caught depends on which accounts the
/// new owners wrote to meanwhile: twice makes a miss much less likely).
fn pause_node_twice(cluster: &mut Cluster, workload: &Workload, index: usize) {
    pause_node(cluster, workload, index);
    cluster.wait_stable(3);
    std::thread::sleep(Duration::from_secs(2));
    pause_node(cluster, workload, index);
}

/// Pauses node `index` for [`PAUSE`]. The workload keeps sending to it, as
/// a load balancer that has not noticed would, and just before it
/// wakes every account is read through it: by then the new owners have
/// acknowledged writes, so the first answers it gives after SIGCONT must
/// not come from the state it had before the pause.
fn pause_node(cluster: &Cluster, workload: &Workload, index: usize) {
    let target = cluster
        .targets()
        .into_iter()
        .find(|(i, _)| *i == index)
        .expect("running");
    cluster.pause(index);
    std::thread::sleep(PAUSE - PROBE);
    let probes = workload.read_every_account_via(target);
    std::thread::sleep(PROBE);
    cluster.resume(index);
    for probe in probes {
        probe.join().expect("a probe read panicked");
    }
}

#[test]
fn pause_the_leader_past_its_lease() {
    let _serial = crate::serial();
    run(
        "SIGSTOP the leader",
        Cluster::start(3),
        |cluster, workload| {
            let leader = cluster.leader();
            pause_node_twice(cluster, workload, leader);
        },
    );
}

#[test]
fn pause_a_shard_owner_past_its_lease() {
    let _serial = crate::serial();
    run(
        "SIGSTOP a shard owner (not the leader)",
        Cluster::start(3),
        |cluster, workload| {
            let owner = non_leader(cluster);
            pause_node_twice(cluster, workload, owner);
        },
    );
}

/// Pauses the JetStream meta leader for [`PAUSE`]. It answers the
/// JetStream API (stream and consumer info, KV bucket lookups): pausing it
/// forces an election on top of the stalled connections of the nodes that
/// use it.
fn pause_the_meta_leader(cluster: &mut Cluster) {
    let server = cluster.nats.meta_leader().unwrap_or(0);
    let pid = cluster.nats.server(server).pid().expect("running");
    signal("STOP", pid);
    std::thread::sleep(PAUSE);
    signal("CONT", pid);
    cluster.nats.wait_until_ready();
}

#[test]
fn pause_a_nats_server_past_the_lease() {
    let _serial = crate::serial();
    run(
        "SIGSTOP the JetStream meta leader, twice",
        Cluster::start(3),
        |cluster, _| {
            pause_the_meta_leader(cluster);
            cluster.wait_stable(3);
            std::thread::sleep(Duration::from_secs(2));
            pause_the_meta_leader(cluster);
        },
    );
}

/// Stops NATS servers 1 and 2 for `down`, then starts them again (the
/// first one back restores the quorum, so it can become ready).
fn lose_the_quorum(cluster: &mut Cluster, down: Duration) {
    cluster.nats.server(1).stop();
    cluster.nats.server(2).stop();
    std::thread::sleep(down);
    cluster.nats.server(1).restart();
    cluster.nats.server(2).restart();
    cluster.nats.wait_until_ready();
}

#[test]
fn lose_the_nats_quorum_and_recover() {
    let _serial = crate::serial();
    run(
        "stop 2 of 3 NATS servers, for less and for more than the lease",
        Cluster::start(3),
        |cluster, workload| {
            // Shorter than the lease: the nodes keep serving while the
            // store fails under them (appends fail, aggregates are
            // passivated and activated again against a store that does not
            // answer).
            lose_the_quorum(cluster, Duration::from_millis(1_500));
            cluster.wait_stable(3);
            workload.set_targets(cluster.targets());
            std::thread::sleep(Duration::from_secs(3));
            // Longer than the lease: memberships and the leader's lease
            // expire too.
            lose_the_quorum(cluster, DOWN);
        },
    );
}

/// Kills node `index`, keeps the load on the others for [`DOWN`], starts
/// it again and sends to it again once the cluster has settled.
fn kill_and_restart(cluster: &mut Cluster, workload: &Workload, index: usize) {
    cluster.kill(index);
    workload.set_targets(cluster.targets());
    std::thread::sleep(DOWN);
    cluster.restart(index);
    cluster.wait_stable(3);
    workload.set_targets(cluster.targets());
}

#[test]
fn churn_nodes_with_kill_and_restart() {
    let _serial = crate::serial();
    run(
        "kill -9 and restart a node, then the leader",
        Cluster::start(3),
        |cluster, workload| {
            let owner = non_leader(cluster);
            kill_and_restart(cluster, workload, owner);
            let leader = cluster.leader();
            kill_and_restart(cluster, workload, leader);
        },
    );
}

/// The node whose clock is behind in [`one_node_with_a_slow_clock`].
const SLOW: usize = 2;

#[test]
fn one_node_with_a_slow_clock() {
    let _serial = crate::serial();
    let cluster = Cluster::start_with_clock_skews(3, &[(SLOW, -5_000)]);
    run(
        "node-3's clock 5 s behind, another node leaves and comes back",
        cluster,
        |cluster, workload| {
            // The leaving node hands its shards off at once, about half of
            // them to the slow node, whose next event on each of their
            // streams is stamped up to 5 s before the last one; then they
            // move back.
            let other = cluster.running().into_iter().find(|&i| i != SLOW).unwrap();
            let others = cluster
                .targets()
                .into_iter()
                .filter(|(i, _)| *i != other)
                .collect();
            workload.set_targets(others);
            cluster.terminate(other);
            cluster.wait_stable(2);
            std::thread::sleep(DOWN);
            cluster.restart(other);
            cluster.wait_stable(3);
            workload.set_targets(cluster.targets());
        },
    );
}
