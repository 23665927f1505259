//! Tenant A of `tenant_abuse`: closed-loop clients depositing 1 over
//! HTTP, each timing its commands and counting the ones not answered 200.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;
use tokio::task::JoinSet;

use super::node::{self, Conn};

/// Tenant A's load: closed-loop clients depositing 1 over HTTP, client `c`
/// of `n` into accounts `c`, `c + n`, … in turn, each on a connection of
/// its own opened at the start of the stretch.
pub(super) struct Load {
    pub(super) addr: SocketAddr,
    pub(super) token: String,
    /// The accounts' paths (`/v1/namespaces/…/acc-<i>`).
    pub(super) accounts: Arc<Vec<String>>,
    pub(super) clients: usize,
}

/// What one timed stretch of A's load achieved.
pub(super) struct Stretch {
    /// Latency of each successful command, in µs.
    pub(super) latencies: Vec<f64>,
    pub(super) per_second: f64,
    /// Commands not answered 200, each attempt counted (a client whose
    /// connection failed opens another 10 ms later and sends again).
    failed: u64,
    /// The first few failures, as `<status> <answer>` or the connection's
    /// error.
    first: Vec<String>,
}

impl Stretch {
    fn new() -> Self {
        Self {
            latencies: Vec::new(),
            per_second: 0.0,
            failed: 0,
            first: Vec::new(),
        }
    }

    fn note(&mut self, failure: String) {
        self.failed += 1;
        if self.first.len() < 5 {
            self.first.push(failure);
        }
    }
}

/// Tenant A's failed commands, by phase.
#[derive(Default)]
pub(super) struct Failures {
    pub(super) warmup: u64,
    pub(super) baseline: u64,
    pub(super) attack: u64,
    /// The first few.
    pub(super) first: Vec<String>,
}

impl Failures {
    pub(super) fn total(&self) -> u64 {
        self.warmup + self.baseline + self.attack
    }

    pub(super) fn add(&mut self, phase: &str, stretch: &Stretch) {
        match phase {
            "warmup" => self.warmup += stretch.failed,
            "baseline" => self.baseline += stretch.failed,
            _ => self.attack += stretch.failed,
        }
        for failure in &stretch.first {
            if self.first.len() < 5 {
                self.first.push(format!("{phase}: {failure}"));
            }
        }
    }
}

impl Load {
    /// Runs the clients for `duration`; each finishes the command it is in.
    pub(super) async fn run(&self, duration: Duration) -> Stretch {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = JoinSet::new();
        for client in 0..self.clients.min(self.accounts.len()) {
            let (addr, token, accounts, clients) = (
                self.addr,
                self.token.clone(),
                self.accounts.clone(),
                self.clients,
            );
            tasks.spawn(async move {
                let deposit = json!({"type": "Deposit", "data": {"amount": 1}});
                let mut stretch = Stretch::new();
                let mut conn: Option<Conn> = None;
                for account in accounts.iter().skip(client).step_by(clients).cycle() {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    let path = format!("{account}/commands");
                    let answer = match &mut conn {
                        Some(open) => open.call("POST", &path, Some(&token), Some(&deposit)).await,
                        None => match Conn::open(addr, node::FROM_A).await {
                            Ok(mut open) => {
                                let answer =
                                    open.call("POST", &path, Some(&token), Some(&deposit)).await;
                                conn = Some(open);
                                answer
                            }
                            Err(e) => Err(e),
                        },
                    };
                    match answer {
                        Ok(answer) => {
                            if answer.status == 200 {
                                stretch.latencies.push(sent.elapsed().as_secs_f64() * 1e6);
                            } else {
                                stretch.note(format!("{} {}", answer.status, answer.json()));
                            }
                            if answer.closes {
                                conn = None;
                            }
                        }
                        Err(e) => {
                            stretch.note(format!("no answer: {e}"));
                            conn = None;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                stretch
            });
        }
        let mut all = Stretch::new();
        while let Some(done) = tasks.join_next().await {
            let stretch = done.expect("a tenant-A client panicked");
            all.latencies.extend(stretch.latencies);
            all.failed += stretch.failed;
            let room = 5usize.saturating_sub(all.first.len());
            all.first.extend(stretch.first.into_iter().take(room));
        }
        all.per_second = all.latencies.len() as f64 / start.elapsed().as_secs_f64();
        all
    }

    /// The sum of the accounts' balances.
    pub(super) async fn total_balance(&self) -> anyhow::Result<u64> {
        let mut conn = Conn::open(self.addr, node::FROM_A).await?;
        let mut total = 0;
        for account in self.accounts.iter() {
            let answer = conn.call("GET", account, Some(&self.token), None).await?;
            let view = answer.json();
            ensure!(answer.status == 200, "reading {account}: {view}");
            total += view["state"]["balance"]
                .as_u64()
                .with_context(|| format!("no balance in {view}"))?;
        }
        Ok(total)
    }
}
