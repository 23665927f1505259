//! A shard owner (the leader, or another node) paused with SIGSTOP for
//! longer than the lease TTL while the others go on writing to its
//! aggregates: once it resumes (SIGCONT), no answer it gives is stale, and
//! it serves again only after it has released everything and the cluster
//! has settled on a new map.
//!
//! Staleness is judged against what the other nodes acknowledged: every
//! read, and every rejected `Withdraw` (whose message states the balance,
//! and so the version: one `Open`, then deposits of 1), answered after the
//! resume must show at least the highest version acknowledged for that
//! account before the probe was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aether_host::cluster::shard_of;
use aether_host::namespace::{AggregateId, AggregateType, Namespace};
use aether_host::store::StreamId;
use serde_json::{Value, json};

use crate::harness::{Cluster, SHARDS};
use crate::load::{Load, Record, check_exactly_once};

const ACCOUNTS: usize = 24;
const WORKERS: usize = 4;
const PROBES: usize = 4;
/// Longer than the harness's lease TTL (2 s), so the others take over.
const PAUSE: Duration = Duration::from_secs(5);
/// How long the probes go on after the resume.
const AFTER: Duration = Duration::from_secs(3);

/// One answer of the paused node.
struct Probe {
    account: usize,
    sent: Instant,
    answered: Instant,
    /// The version the answer shows, if it is a definite one (a state
    /// read, or an insufficient-funds rejection).
    version: Option<u64>,
    what: String,
}

fn shard(account: usize) -> usize {
    let stream = StreamId::new(
        Namespace::new("bank").unwrap(),
        AggregateType::new("bank-account").unwrap(),
        AggregateId::new(format!("acc-{account}")).unwrap(),
    );
    shard_of(&stream, SHARDS as u32) as usize
}

/// Reads and impossible withdrawals of `accounts` on `url` until `stop`.
fn probe(url: String, token: String, accounts: Vec<usize>, stop: Arc<AtomicBool>) -> Vec<Probe> {
    let http = crate::support::Http::new(&url, Some(&token));
    let mut probes = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let account = accounts[n % accounts.len()];
        let path = format!("/v1/namespaces/bank/aggregates/bank-account/acc-{account}");
        let sent = Instant::now();
        let (status, body) = if n % 2 == 0 {
            http.get(&path)
        } else {
            http.post_json(
                &format!("{path}/commands"),
                &json!({"type": "Withdraw", "data": {"amount": 1_000_000_000u64}}),
            )
        };
        let version = match (status, &body["error"]) {
            (200, _) if n % 2 == 0 => body["version"].as_u64(),
            (422, error) if error == "rejected" => balance_in(&body).map(|b| b + 1),
            _ => None,
        };
        assert!(
            !(status == 200 && n % 2 == 1),
            "an impossible withdrawal was accepted: {body}"
        );
        probes.push(Probe {
            account,
            sent,
            answered: Instant::now(),
            version,
            what: format!("{status} {body}"),
        });
        n += 1;
    }
    probes
}

/// The balance an insufficient-funds rejection states.
fn balance_in(body: &Value) -> Option<u64> {
    let message = body["message"].as_str()?;
    message
        .rsplit_once("the balance is ")
        .and_then(|(_, b)| b.trim().parse().ok())
}

/// The highest version acknowledged for `account` before `at`.
fn acknowledged_before(record: &Record, account: usize, at: Instant) -> u64 {
    record
        .acks
        .iter()
        .filter(|a| a.account == account && a.sent + a.latency < at)
        .map(|a| a.version)
        .max()
        .unwrap_or(0)
}

#[test]
fn a_paused_owner_gives_no_stale_answer_after_it_resumes() {
    paused_owner(false);
}

#[test]
fn a_paused_leader_gives_no_stale_answer_after_it_resumes() {
    paused_owner(true);
}

/// Pauses the leader or another node, as `leader` says.
fn paused_owner(leader: bool) {
    let _serial = crate::serial();
    let cluster = Cluster::start(3);
    let leader_index = cluster.leader();
    let victim = if leader {
        leader_index
    } else {
        *cluster
            .running()
            .iter()
            .find(|&&i| i != leader_index)
            .unwrap()
    };
    let reader = *cluster.running().iter().find(|&&i| i != victim).unwrap();
    let victim_id = Cluster::node_id(victim);
    let owners = cluster.status(reader)["owners"].clone();
    let theirs: Vec<usize> = (0..ACCOUNTS)
        .filter(|&a| owners[shard(a)] == victim_id.as_str())
        .collect();
    assert!(theirs.len() >= 3, "{victim_id} owns accounts {theirs:?}");
    let victim_url = cluster.node(victim).url.clone();
    let others: Vec<String> = cluster
        .urls()
        .into_iter()
        .filter(|u| *u != victim_url)
        .collect();
    let load = Load::start(others, &cluster.token, ACCOUNTS, WORKERS);
    load.wait_for(300);
    // The paused node caches these aggregates at their current versions.
    for &account in &theirs {
        let (status, body) = cluster
            .node(victim)
            .client(Some(&cluster.token))
            .get(&format!(
                "/v1/namespaces/bank/aggregates/bank-account/acc-{account}"
            ));
        assert_eq!(status, 200, "{body}");
    }

    cluster.pause(victim);
    let paused = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let probes: Vec<_> = (0..PROBES)
        .map(|p| {
            let (url, token, stop) = (victim_url.clone(), cluster.token.clone(), stop.clone());
            let mine: Vec<usize> = theirs.iter().copied().skip(p).step_by(PROBES).collect();
            let mine = if mine.is_empty() {
                theirs.clone()
            } else {
                mine
            };
            std::thread::spawn(move || probe(url, token, mine, stop))
        })
        .collect();
    std::thread::sleep(PAUSE);
    load.wait_for(100);
    cluster.resume(victim);
    let resumed = Instant::now();
    std::thread::sleep(AFTER);
    stop.store(true, Ordering::SeqCst);
    let probes: Vec<Probe> = probes
        .into_iter()
        .flat_map(|p| p.join().expect("a probe panicked"))
        .collect();

    // It comes back, as a new incarnation, and serves its share again.
    cluster.wait_stable(3);
    load.wait_for(100);
    let record = load.stop();

    let after: Vec<&Probe> = probes.iter().filter(|p| p.answered >= resumed).collect();
    let definite: Vec<&Probe> = after
        .iter()
        .copied()
        .filter(|p| p.version.is_some())
        .collect();
    let mut could_be_stale = 0;
    let mut stale = Vec::new();
    for probe in &definite {
        let floor = acknowledged_before(&record, probe.account, probe.sent);
        if floor > acknowledged_before(&record, probe.account, paused) {
            could_be_stale += 1;
        }
        if probe.version < Some(floor) {
            stale.push(format!(
                "acc-{}: answered version {:?} {:.3} s after the resume, {floor} was acknowledged before it was sent: {}",
                probe.account,
                probe.version,
                (probe.answered - resumed).as_secs_f64(),
                probe.what
            ));
        }
    }
    println!(
        "paused {}: {} answers after the resume, {} definite ({could_be_stale} about accounts written during the pause), {} stale",
        if leader { "leader" } else { "owner" },
        after.len(),
        definite.len(),
        stale.len()
    );
    assert!(stale.is_empty(), "stale answers:\n{}", stale.join("\n"));
    // It noticed its ownership lapsed and came back as a new incarnation
    // (the shards it held are released either by the first reconcile
    // after the resume or by the comeback itself, whichever runs first).
    let log = cluster.node(victim).log();
    assert!(
        log.matches("beating as a new incarnation").count() >= 2,
        "{log}"
    );
    assert!(
        definite.len() >= 20,
        "too few definite answers after the resume to judge: {}",
        after
            .iter()
            .map(|p| p.what.as_str())
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        could_be_stale >= 10,
        "the others wrote too little during the pause for a stale answer to show"
    );
    let checked = check_exactly_once(&cluster.client(reader), &record, ACCOUNTS);
    assert!(checked >= record.acks.len());
}
