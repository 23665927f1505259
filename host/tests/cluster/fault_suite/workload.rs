//! The client side of the fault suite: worker threads that send a mix of
//! deposits, withdrawals (sometimes beyond the balance, so some are
//! rejected) and state reads to random accounts on random nodes, and
//! record every attempt in the [`History`].
//!
//! A worker remembers the last version and balance it saw of each
//! account. Half its commands carry that version as `expected_version`;
//! three in four carry a command id. A command with an id is sent again,
//! with the same id, to another node after a retryable answer (503, 504)
//! or a lost connection, until it gets a definite answer or a minute has
//! passed; a command without one is never sent twice (its outcome stays
//! unknown). Conflicts and rejections are final: the worker reads again
//! through its next operations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::history::{History, Kind, Op, Outcome, account_path};

/// How long a command with an id is retried before the worker gives up on
/// it (its outcome then stays unknown).
const GIVE_UP: Duration = Duration::from_secs(60);

/// How long the client waits for one answer: about the lease TTL, so a
/// worker stuck on a paused node gives up (an indeterminate outcome) and
/// goes on elsewhere while the cluster fails over; were every worker stuck
/// on the paused node, nothing would be written meanwhile and a stale
/// answer after SIGCONT could not be told from a fresh one.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The nodes the workers send to: node index and base URL.
pub(crate) type Targets = Arc<RwLock<Vec<(usize, String)>>>;

/// The running workers.
pub(crate) struct Workload {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    pub(crate) history: History,
    targets: Targets,
    token: String,
    accounts: usize,
}

impl Workload {
    /// Opens `accounts` accounts through the first target, then starts
    /// `workers` threads over all of them.
    pub(crate) fn start(
        targets: Vec<(usize, String)>,
        token: &str,
        accounts: usize,
        workers: usize,
    ) -> Workload {
        let history = History::default();
        let targets: Targets = Arc::new(RwLock::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let client = |seed: u64| Client {
            agent: agent(),
            token: token.to_owned(),
            targets: targets.clone(),
            history: history.clone(),
            random: Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        };
        let mut opener = client(u64::MAX);
        for account in 0..accounts {
            let command =
                opener.command(account, Kind::Open, format!("open-{account}"), true, None);
            let outcome = opener.until_definite(command);
            assert!(
                matches!(outcome, Outcome::Acked { .. }),
                "opening acc-{account}: {outcome:?}"
            );
        }
        let workers = (0..workers)
            .map(|w| {
                let mut worker = Worker {
                    id: w,
                    client: client(w as u64),
                    seen: HashMap::new(),
                    accounts,
                };
                let stop = stop.clone();
                std::thread::spawn(move || worker.run(&stop))
            })
            .collect();
        Workload {
            stop,
            workers,
            history,
            targets,
            token: token.to_owned(),
            accounts,
        }
    }

    /// Sends a state read of every account to `target` at once, each from
    /// its own thread, and records them: aimed at a paused node, they wait
    /// in its socket and are the first it answers when it runs again.
    /// Join the handles to wait for the answers.
    pub(crate) fn read_every_account_via(&self, target: (usize, String)) -> Vec<JoinHandle<()>> {
        (0..self.accounts)
            .map(|account| {
                let mut client = Client {
                    agent: agent(),
                    token: self.token.clone(),
                    targets: Arc::new(RwLock::new(vec![target.clone()])),
                    history: self.history.clone(),
                    random: Random(account as u64 + 1),
                };
                std::thread::spawn(move || {
                    client.read(account);
                })
            })
            .collect()
    }

    /// Sends to these nodes from now on (a load balancer's view of the
    /// cluster: a restarted node has a new port).
    pub(crate) fn set_targets(&self, targets: Vec<(usize, String)>) {
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = targets;
    }

    /// Stops the workers; each finishes its operation in progress.
    pub(crate) fn stop(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.join().expect("a workload thread panicked");
        }
        self.history
    }
}

/// A small deterministic generator (xorshift64*), one per thread.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// One command as sent, retries included.
struct Command {
    account: usize,
    kind: Kind,
    correlation: String,
    command_id: Option<String>,
    expected_version: Option<u64>,
}

/// Sends operations and records them.
struct Client {
    agent: ureq::Agent,
    token: String,
    targets: Targets,
    history: History,
    random: Random,
}

impl Client {
    fn command(
        &self,
        account: usize,
        kind: Kind,
        correlation: String,
        with_id: bool,
        expected_version: Option<u64>,
    ) -> Command {
        Command {
            account,
            command_id: with_id.then(|| correlation.clone()),
            kind,
            correlation,
            expected_version,
        }
    }

    fn target(&mut self) -> (usize, String) {
        let targets = self
            .targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let i = self.random.below(targets.len() as u64) as usize;
        targets[i].clone()
    }

    /// Sends `command` once, or, if it has an id, until the answer is
    /// definite or [`GIVE_UP`]; the last outcome.
    fn until_definite(&mut self, command: Command) -> Outcome {
        let first = Instant::now();
        loop {
            let outcome = self.send(&command);
            let retry = command.command_id.is_some()
                && matches!(
                    outcome,
                    Outcome::Failed {
                        status: None | Some(503 | 504),
                        ..
                    }
                )
                && first.elapsed() < GIVE_UP;
            if !retry {
                return outcome;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, command: &Command) -> Outcome {
        let (node, url) = self.target();
        let (type_, data) = match command.kind {
            Kind::Open => ("Open", json!({"owner": "fault-suite"})),
            Kind::Deposit(amount) => ("Deposit", json!({ "amount": amount })),
            Kind::Withdraw(amount) => ("Withdraw", json!({ "amount": amount })),
            Kind::Read => unreachable!("reads are not commands"),
        };
        let mut body = json!({"type": type_, "data": data, "correlation_id": command.correlation});
        if let Some(id) = &command.command_id {
            body["command_id"] = json!(id);
        }
        if let Some(version) = command.expected_version {
            body["expected_version"] = json!(version);
        }
        let invoked = Instant::now();
        let answer = self.call(
            &format!("{url}{}/commands", account_path(command.account)),
            Some(&body),
        );
        let outcome = command_outcome(answer);
        self.history.record(Op {
            account: command.account,
            node,
            kind: command.kind.clone(),
            correlation: Some(command.correlation.clone()),
            command_id: command.command_id.clone(),
            expected_version: command.expected_version,
            invoked,
            completed: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }

    fn read(&mut self, account: usize) -> Outcome {
        let (node, url) = self.target();
        let invoked = Instant::now();
        let outcome = match self.call(&format!("{url}{}", account_path(account)), None) {
            Ok((200, body)) => Outcome::Read {
                version: body["version"].as_u64().unwrap_or(0),
                balance: body["state"]["balance"].as_u64().unwrap_or(0),
            },
            other => failure(other),
        };
        self.history.record(Op {
            account,
            node,
            kind: Kind::Read,
            correlation: None,
            command_id: None,
            expected_version: None,
            invoked,
            completed: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }

    /// A GET (no body) or a POST of `body`: the status and JSON answer, or
    /// why there was none.
    fn call(&self, url: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {}", self.token);
        let response = match body {
            None => self.agent.get(url).header("Authorization", &auth).call(),
            Some(body) => self
                .agent
                .post(url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(body.to_string()),
        };
        let mut response = response.map_err(|e| format!("transport: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn command_outcome(answer: Result<(u16, Value), String>) -> Outcome {
    match answer {
        Ok((200, body)) => Outcome::Acked {
            versions: body["events"]
                .as_array()
                .map(|events| {
                    events
                        .iter()
                        .filter_map(|e| e["version"].as_u64())
                        .collect()
                })
                .unwrap_or_default(),
            duplicate: body["duplicate"] == json!(true),
        },
        Ok((422, body)) if body["error"] == json!("rejected") => Outcome::Rejected {
            code: body["rejection"]["code"].as_str().unwrap_or("").to_owned(),
        },
        Ok((409, body)) if body["error"] == json!("version_conflict") => Outcome::Conflict {
            expected: body["expected"].as_u64().unwrap_or(u64::MAX),
            actual: body["actual"].as_u64().unwrap_or(u64::MAX),
        },
        other => failure(other),
    }
}

fn failure(answer: Result<(u16, Value), String>) -> Outcome {
    match answer {
        Ok((status, body)) => Outcome::Failed {
            status: Some(status),
            error: body["error"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned),
        },
        Err(error) => Outcome::Failed {
            status: None,
            error,
        },
    }
}

/// One workload thread.
struct Worker {
    id: usize,
    client: Client,
    /// The last version and balance this worker saw of each account.
    seen: HashMap<usize, (u64, u64)>,
    accounts: usize,
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool) {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let account = self.client.random.below(self.accounts as u64) as usize;
            let roll = self.client.random.below(100);
            let outcome = if roll < 30 {
                self.client.read(account)
            } else {
                let (version, balance) = self.seen.get(&account).copied().unwrap_or((0, 0));
                let kind = if roll < 65 {
                    Kind::Deposit(1 + self.client.random.below(20))
                } else {
                    // Up to half again the balance last seen: some are rejected.
                    Kind::Withdraw(1 + self.client.random.below(balance + balance / 2 + 1))
                };
                let with_id = self.client.random.percent(75);
                let expected = (version > 0 && self.client.random.percent(50)).then_some(version);
                let command = self.client.command(
                    account,
                    kind,
                    format!("w{}-{n}", self.id),
                    with_id,
                    expected,
                );
                n += 1;
                self.client.until_definite(command)
            };
            self.learn(account, &outcome);
        }
    }

    /// Remembers what `outcome` says of the account.
    fn learn(&mut self, account: usize, outcome: &Outcome) {
        match outcome {
            Outcome::Read { version, balance } => {
                self.seen.insert(account, (*version, *balance));
            }
            Outcome::Acked { versions, .. } => {
                // The balance after is unknown without a read: keep the old one.
                let balance = self.seen.get(&account).map_or(0, |s| s.1);
                if let Some(&version) = versions.iter().max() {
                    self.seen.insert(account, (version, balance));
                }
            }
            Outcome::Conflict { actual, .. } => {
                let balance = self.seen.get(&account).map_or(0, |s| s.1);
                self.seen.insert(account, (*actual, balance));
            }
            Outcome::Rejected { .. } | Outcome::Failed { .. } => {}
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(CLIENT_TIMEOUT))
        .build()
        .into()
}
