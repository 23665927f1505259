//! Hand-off: a node that leaves (SIGTERM) finishes its in-flight commands
//! and hands its shards over; one that joins takes about 1/N of them.
//! Under load, no command fails and none is lost or applied twice. A node
//! whose hand-off waits longer than its ownership window (slow commands in
//! flight) stays a member meanwhile. A command its owner took, but had not
//! answered when the shard moved, is never answered as one no node served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aether_host::cluster::placement::assign;
use aether_host::cluster::shard_of;
use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::store::StreamId;
use serde_json::{Value, json};

use crate::harness::{Cluster, SHARDS};
use crate::load::{Impact, Load, check_exactly_once};
use crate::support::HOSTILE;

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

/// The cluster's lease TTL in the harness (`--lease-ttl-ms`): a node that
/// has not beaten for about this long loses its shards.
const LEASE_TTL: Duration = Duration::from_millis(2000);

#[test]
fn a_hand_off_slower_than_the_lease_keeps_the_node_a_member() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(1);
    let token = cluster
        .admin(0)
        .create_namespace("slow", json!({"call_deadline_ms": 60_000}));
    let slow = cluster.node(0).client(Some(&token));
    slow.deploy("slow", "hostile", HOSTILE);
    let incarnation = |status: &Value| {
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["node_id"] == "node-1")
            .map(|m| m["incarnation"].clone())
    };
    let before = incarnation(&cluster.status(0));
    assert!(before.is_some(), "{}", cluster.status(0));

    // Slow but well-behaved commands (~0.8 s each), one client per
    // aggregate on 10 aggregates, nonstop: all on node 1 and run one after
    // another in its lane, so when a second node joins, about half of the
    // commands queued there are on shards that move, and node 1's hand-off
    // waits seconds for them. (Only for them: its passivations run ahead
    // of the lane's queue, so the commands must be slow enough that those
    // on moving shards alone outlast the lease.)
    // ~0.8 s a command on this host (see `spin_iterations`).
    let iterations = spin_iterations(&slow, "slow/hostile/probe", 0.8);
    let stop = Arc::new(AtomicBool::new(false));
    let spins: Vec<_> = (0..10)
        .map(|i| {
            let (slow, stop) = (slow.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answers.push(slow.send(
                        &format!("slow/hostile/spin-{i}"),
                        json!({"type": "Spin", "data": {"iterations": iterations}}),
                    ));
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    cluster.add_node();
    cluster.wait_stable(2);
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<(u16, Value)> = spins
        .into_iter()
        .flat_map(|spin| spin.join().unwrap())
        .collect();
    // Each carried out, or (a command that waited in node 1's queue and
    // then for the hand-off longer than the route timeout) the retryable
    // "may or may not have been carried out", which is true; or, on a host
    // slow enough that the queued spins outlast the route timeout while
    // the shard moves, the retryable "no node served the shard" (seen on
    // 2026-12-07's slower host), which claims no outcome either.
    for (status, answer) in &answers {
        let timed_out = *status == 504 && answer["error"] == "owner_timeout";
        let moving = *status == 503 && answer["error"] == "shard_unavailable";
        assert!(*status == 200 || timed_out || moving, "{status} {answer}");
    }
    let done = answers.iter().filter(|(status, _)| *status == 200).count();
    println!("{done} of {} spins carried out", answers.len());
    assert!(
        done >= 10,
        "{done} of {} commands carried out",
        answers.len()
    );

    // The hand-off outlasted the lease: from the map that moved the shards
    // to node 1 releasing them.
    let log = strip_ansi(&cluster.node(0).log());
    let waited = hand_off_wait(&log).expect("node 1 released shards for the join");
    println!("node 1's hand-off for the join took {waited:?}");
    assert!(
        waited >= LEASE_TTL,
        "the hand-off took only {waited:?}, not longer than the lease: the test proves nothing\n{log}"
    );
    // Node 1 kept beating meanwhile: its ownership never lapsed, and it is
    // the same incarnation.
    assert!(!log.contains("ownership lapsed"), "{log}");
    assert!(
        !log.contains("confirmed only after ownership lapsed"),
        "{log}"
    );
    assert_eq!(incarnation(&cluster.status(0)), before, "{log}");
}

/// A command with a `command_id` that reached its shard's owner, which did
/// not answer within one attempt (it queued the command behind a slow one)
/// and then closed the shard (a node joined and the shard moves to it), is
/// answered "may or may not have been carried out" (`504 owner_timeout`),
/// never "no node served the shard" (`503 shard_unavailable`): the owner
/// carries it out after that answer, once the slow command ends, as its
/// hand-off finishes what it took. A retry with the same id changes
/// nothing.
#[test]
fn a_command_its_owner_took_is_never_answered_as_unserved() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(2);
    let token = cluster
        .admin(0)
        .create_namespace("slow", json!({"call_deadline_ms": 60_000}));
    let (entry, owner) = (
        cluster.node(0).client(Some(&token)),
        cluster.node(1).client(Some(&token)),
    );
    entry.deploy("slow", "hostile", HOSTILE);
    // An aggregate on node 2 that moves to node 3 when it joins (the
    // placement is a function of the member ids).
    let members = |n: usize| (0..n).map(Cluster::node_id).collect::<Vec<_>>();
    let (now, then) = (
        assign(SHARDS as u32, &members(2)),
        assign(SHARDS as u32, &members(3)),
    );
    let id = (0..)
        .map(|n| format!("x-{n}"))
        .find(|id| now[shard(id)] == Cluster::node_id(1) && then[shard(id)] == Cluster::node_id(2))
        .unwrap();
    assert_eq!(cluster.status(0)["owners"][shard(&id)], now[shard(&id)]);
    let path = format!("slow/hostile/{id}");
    let since = Instant::now();
    loop {
        let spin = json!({"type": "Spin", "data": {"iterations": 1_000}});
        let (status, answer) = owner.send(&path, spin);
        if status == 200 {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "{status} {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Node 2 spins on the aggregate for ~14 s: the command below, sent
    // through node 1 just after, waits behind it for longer than its route
    // timeout (10 s).
    let iterations = spin_iterations(&owner, &path, 14.0);
    let spinning = {
        let (owner, path) = (owner.clone(), path.clone());
        let spin = json!({"type": "Spin", "data": {"iterations": iterations}});
        std::thread::spawn(move || owner.send(&path, spin))
    };
    std::thread::sleep(Duration::from_millis(300));
    let command = json!({"type": "Record", "data": {"note": "late"}, "command_id": "late-1"});
    let answering = {
        let (entry, path, command) = (entry.clone(), path.clone(), command.clone());
        std::thread::spawn(move || {
            let sent = Instant::now();
            let answer = entry.send(&path, command);
            (answer, sent.elapsed())
        })
    };
    // Once the first attempt has timed out (one lease TTL, with node 2
    // holding the command), node 3 joins: node 2 closes the shard at once
    // and hands it over once what it took is done.
    std::thread::sleep(LEASE_TTL + Duration::from_millis(700));
    cluster.add_node();
    let ((status, answer), took) = answering.join().unwrap();
    println!("node 1 answered after {took:?}: {status} {answer}");
    let _ = spinning.join().unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (504, Some("owner_timeout")),
        "{answer}"
    );

    // It was carried out, after that answer, once.
    cluster.wait_stable(3);
    let late = |client: &crate::support::Http| {
        let (status, page) = client.get(&format!(
            "/v1/namespaces/slow/aggregates/hostile/{id}/events?from=1"
        ));
        assert_eq!(status, 200, "{page}");
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["metadata"]["command_id"] == "late-1")
            .count()
    };
    assert_eq!(late(&entry), 1, "the command was carried out by node 2");
    let (status, answer) = entry.send(&path, command);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(late(&entry), 1, "a retry with the same id changes nothing");
}

/// The shard of `slow/hostile/{id}`.
fn shard(id: &str) -> usize {
    let stream = StreamId::new(
        Namespace::new("slow").unwrap(),
        AggregateType::new("hostile").unwrap(),
        AggregateId::new(id).unwrap(),
    );
    shard_of(&stream, SHARDS as u32) as usize
}

/// The `Spin` iterations that take about `seconds` on this host, timed on
/// `stream` through `client`. They vary several-fold between the hosts the
/// suite runs on (2.4 G for 0.8 s on the Xeon of 2026-12-06; on a slower
/// one spins of that many outlasted the route timeout and the settling),
/// so they are timed first: once the aggregate is live, a spin that takes
/// at least 0.3 s, the fastest of three. A short one (80 ms) left the request's own cost and
/// the host's noise in the figure (and the first command also activates
/// the aggregate): CI's spins came out so short that a hand-off meant to
/// outlast the lease took 1.97 s.
fn spin_iterations(client: &crate::support::Http, stream: &str, seconds: f64) -> u64 {
    let spin = |iterations: u64| {
        let started = Instant::now();
        let (status, answer) = client.send(
            stream,
            json!({"type": "Spin", "data": {"iterations": iterations}}),
        );
        assert_eq!(status, 200, "{answer}");
        started.elapsed()
    };
    spin(1_000);
    let mut probe = 100_000_000u64;
    let mut took = spin(probe);
    while took < Duration::from_millis(300) {
        probe *= 2;
        took = spin(probe);
    }
    // The fastest of three: a probe slowed by a noisy neighbour would make
    // every spin short.
    took = took.min(spin(probe)).min(spin(probe));
    let iterations = (probe as f64 * seconds / took.as_secs_f64()) as u64;
    println!("{probe} iterations took {took:?}: {iterations} for {seconds} s");
    iterations
}

/// How long node 1 took from publishing the map of the join to releasing
/// the shards it lost in it (from its log's timestamps).
fn hand_off_wait(log: &str) -> Option<Duration> {
    let released = log.lines().find(|l| l.contains("released shards"))?;
    let epoch = released.split("epoch=").nth(1)?.split_whitespace().next()?;
    let published = log
        .lines()
        .find(|l| l.contains("shard map") && l.contains(&format!("epoch={epoch} ")))?;
    let seconds = |line: &str| -> Option<f64> {
        // `2026-12-05T13:36:43.130750Z …`: the time of day is enough.
        let time = line.split_whitespace().next()?.split('T').nth(1)?;
        let mut parts = time.trim_end_matches('Z').split(':');
        let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
        Some(
            h.parse::<f64>().ok()? * 3600.0
                + m.parse::<f64>().ok()? * 60.0
                + s.parse::<f64>().ok()?,
        )
    };
    let took = (seconds(released)? - seconds(published)?).rem_euclid(86_400.0);
    Some(Duration::from_secs_f64(took))
}

/// `text` without its terminal colour codes (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
