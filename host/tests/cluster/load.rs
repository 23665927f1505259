//! A steady command load that records every acknowledged command, and the
//! check that each one's event is stored exactly once.
//!
//! Workers send `Deposit`s with unique command ids to the running nodes in
//! turn. A failed attempt (an error answer or a lost connection) is
//! recorded and sent again, with the same command id, to the next node
//! until it is acknowledged: the command id makes the retry harmless.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// An acknowledged command.
#[derive(Clone, Debug)]
pub(crate) struct Ack {
    pub(crate) command_id: String,
    pub(crate) account: usize,
    pub(crate) version: u64,
    pub(crate) sent: Instant,
    pub(crate) latency: Duration,
}

/// A failed attempt.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) at: Instant,
    pub(crate) what: String,
}

#[derive(Default)]
pub(crate) struct Record {
    pub(crate) acks: Vec<Ack>,
    pub(crate) failures: Vec<Failure>,
}

/// The running load.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    pub(crate) record: Arc<Mutex<Record>>,
    /// The nodes the load sends to (the test removes a node before
    /// stopping it, as a load balancer's health check would).
    pub(crate) targets: Arc<RwLock<Vec<String>>>,
}

/// How long one command may keep failing before the load gives up on it.
const GIVE_UP: Duration = Duration::from_secs(90);

impl Load {
    /// `workers` threads over `accounts` accounts (each worker its own).
    pub(crate) fn start(
        targets: Vec<String>,
        token: &str,
        accounts: usize,
        workers: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let targets = Arc::new(RwLock::new(targets));
        let workers = (0..workers)
            .map(|w| {
                let worker = Worker {
                    id: w,
                    agent: agent(),
                    token: token.to_owned(),
                    targets: targets.clone(),
                    record: record.clone(),
                    next_target: w,
                };
                let (stop, mine) = (stop.clone(), (w..accounts).step_by(workers).collect());
                std::thread::spawn(move || worker.run(mine, &stop))
            })
            .collect();
        Load {
            stop,
            workers,
            record,
            targets,
        }
    }

    /// Stops sending to `url`; returns once no request to it is in flight.
    pub(crate) fn remove_target(&self, url: &str) {
        self.targets.write().unwrap().retain(|t| t != url);
    }

    /// Sends to `url` too.
    pub(crate) fn add_target(&self, url: &str) {
        self.targets.write().unwrap().push(url.to_owned());
    }

    /// How many commands were acknowledged so far.
    pub(crate) fn acked(&self) -> usize {
        self.record.lock().unwrap().acks.len()
    }

    /// Waits until `more` further commands are acknowledged.
    pub(crate) fn wait_for(&self, more: usize) {
        let target = self.acked() + more;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked() < target {
            assert!(
                Instant::now() < deadline,
                "the load stalled at {}",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the workers (each finishes its command in progress).
    pub(crate) fn stop(self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.join().expect("a load worker panicked");
        }
        std::mem::take(&mut *self.record.lock().unwrap())
    }
}

struct Worker {
    id: usize,
    agent: ureq::Agent,
    token: String,
    targets: Arc<RwLock<Vec<String>>>,
    record: Arc<Mutex<Record>>,
    next_target: usize,
}

impl Worker {
    fn run(mut self, accounts: Vec<usize>, stop: &AtomicBool) {
        for &account in &accounts {
            self.until_acked(
                account,
                "Open",
                json!({"owner": "load"}),
                format!("open-{account}"),
            );
        }
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let account = accounts[n % accounts.len()];
            let id = format!("w{}-{n}", self.id);
            self.until_acked(account, "Deposit", json!({"amount": 1}), id);
            n += 1;
        }
    }

    fn until_acked(&mut self, account: usize, kind: &str, data: Value, command_id: String) {
        let body = json!({"type": kind, "data": data, "command_id": command_id});
        let first = Instant::now();
        loop {
            // The target list stays read-locked while the request is out,
            // so `remove_target` returns only once no request to the
            // removed node is in flight (the test may stop it then).
            let targets = self.targets.clone();
            let targets = targets.read().unwrap();
            self.next_target = (self.next_target + 1) % targets.len();
            let target = targets[self.next_target].clone();
            let sent = Instant::now();
            let result = self.send(&target, account, &body);
            drop(targets);
            match result {
                Ok(version) => {
                    // From the first attempt: what the client waited in all.
                    self.record.lock().unwrap().acks.push(Ack {
                        command_id,
                        account,
                        version,
                        sent: first,
                        latency: first.elapsed(),
                    });
                    return;
                }
                Err(what) => {
                    self.record.lock().unwrap().failures.push(Failure {
                        at: Instant::now(),
                        what: format!(
                            "{command_id} via {target} after {:.2} s: {what}",
                            sent.elapsed().as_secs_f64()
                        ),
                    });
                    assert!(
                        first.elapsed() < GIVE_UP,
                        "{command_id} failed for {GIVE_UP:?}: {what}"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// The aggregate's version after the command, or why it failed.
    fn send(&self, target: &str, account: usize, body: &Value) -> Result<u64, String> {
        let url =
            format!("{target}/v1/namespaces/bank/aggregates/bank-account/acc-{account}/commands");
        let mut response = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .content_type("application/json")
            .send(body.to_string())
            .map_err(|e| format!("transport: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        match status {
            200 => answer["version"]
                .as_u64()
                .ok_or_else(|| format!("no version in {answer}")),
            _ => Err(format!("{status} {}", answer["error"])),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Checks the stored events against the acknowledgements: every
/// acknowledged command's event is present exactly once at the version it
/// was acknowledged with, no command id is stored twice, and every
/// account's versions are gapless. Returns how many events were checked.
pub(crate) fn check_exactly_once(
    read_from: &crate::support::Http,
    record: &Record,
    accounts: usize,
) -> usize {
    let mut stored: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
    let mut total = 0;
    for account in 0..accounts {
        let mut from = 1;
        loop {
            let (status, page) = read_from.get(&format!(
                "/v1/namespaces/bank/aggregates/bank-account/acc-{account}/events?from={from}"
            ));
            assert_eq!(status, 200, "{page}");
            let events = page["events"].as_array().unwrap();
            for event in events {
                let version = event["version"].as_u64().unwrap();
                assert_eq!(version, from, "acc-{account}: versions must be gapless");
                from += 1;
                total += 1;
                let id = event["metadata"]["command_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                stored.entry(id).or_default().push((account, version));
            }
            if events.is_empty() || from > page["version"].as_u64().unwrap() {
                break;
            }
        }
    }
    for (id, places) in &stored {
        assert_eq!(
            places.len(),
            1,
            "command {id} is stored {} times: {places:?}",
            places.len()
        );
    }
    for ack in &record.acks {
        let places = stored
            .get(&ack.command_id)
            .unwrap_or_else(|| panic!("acknowledged command {} is not stored", ack.command_id));
        assert_eq!(
            places[0],
            (ack.account, ack.version),
            "{} is stored elsewhere than acknowledged",
            ack.command_id
        );
    }
    total
}

/// What a fault cost: failed attempts, the window from the first to the
/// last failure, and the longest a command waited for its acknowledgement
/// (from its first attempt, retries included), from `since` on.
pub(crate) struct Impact {
    pub(crate) failed_attempts: usize,
    pub(crate) failure_window: Duration,
    pub(crate) longest_wait: Duration,
    pub(crate) acked: usize,
}

impl Impact {
    pub(crate) fn of(record: &Record, since: Instant) -> Impact {
        let failures: Vec<&Failure> = record.failures.iter().filter(|f| f.at >= since).collect();
        let failure_window = match (failures.first(), failures.last()) {
            (Some(first), Some(last)) => last.at - first.at,
            _ => Duration::ZERO,
        };
        let acks = record.acks.iter().filter(|a| a.sent >= since);
        Impact {
            failed_attempts: failures.len(),
            failure_window,
            longest_wait: acks.clone().map(|a| a.latency).max().unwrap_or_default(),
            acked: acks.count(),
        }
    }

    /// One line for the test log (and BENCHMARKS.md).
    pub(crate) fn report(&self, fault: &str, record: &Record, since: Instant) -> String {
        let examples: Vec<&str> = record
            .failures
            .iter()
            .filter(|f| f.at >= since)
            .take(3)
            .map(|f| f.what.as_str())
            .collect();
        format!(
            "cluster fault `{fault}`: {} commands acknowledged after the fault, {} failed attempts over {:.2} s, longest wait for an acknowledgement (with retries) {:.2} s; first failures: {examples:?}",
            self.acked,
            self.failed_attempts,
            self.failure_window.as_secs_f64(),
            self.longest_wait.as_secs_f64(),
        )
    }
}
