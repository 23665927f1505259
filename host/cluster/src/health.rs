//! Supervision of the cluster's background tasks (the coordinator, the
//! submit server, the shard servers).
//!
//! **Invariant:** a panic in any of them never leaves the node serving:
//! the gate fails at once (every shard closed, the ownership deadline in
//! the past, never renewed again), the failure is logged, `/readyz`
//! answers 503 and `aether serve` exits non-zero. A coordinator that died
//! would otherwise stop renewing the lease while the node went on
//! answering, and one that panicked half-way through a hand-off could
//! leave a shard open on two nodes.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gate::ShardGate;

/// Whether the cluster's tasks are all sound, and the first failure.
pub(crate) struct Health {
    gate: Arc<ShardGate>,
    failure: watch::Sender<Option<String>>,
}

impl Health {
    pub(crate) fn new(gate: Arc<ShardGate>) -> Arc<Self> {
        Arc::new(Self {
            gate,
            failure: watch::channel(None).0,
        })
    }

    /// Spawns `work` as `task`; a panic in it fails the node.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        task: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let health = self.clone();
        tokio::spawn(async move {
            if let Err(panic) = AssertUnwindSafe(work).catch_unwind().await {
                health.fail(task, &panic_message(panic.as_ref()));
            }
        })
    }

    /// Stops serving for good and records why (the first failure wins).
    pub(crate) fn fail(&self, task: &str, why: &str) {
        self.gate.fail();
        let message = format!("{task} panicked: {why}; this node serves nothing more");
        tracing::error!("{message}");
        self.failure.send_if_modified(|failure| {
            let first = failure.is_none();
            if first {
                *failure = Some(message);
            }
            first
        });
    }

    /// The first failure, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Returns the first failure once there is one.
    pub(crate) async fn failed(&self) -> String {
        let mut failure = self.failure.subscribe();
        loop {
            if let Some(failure) = failure.borrow_and_update().clone() {
                return failure;
            }
            if failure.changed().await.is_err() {
                // The sender lives as long as `self`.
                return std::future::pending().await;
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_closes_every_shard_and_reports_once() {
        let gate = ShardGate::new(4);
        gate.open(&[0, 1]);
        gate.renew(Instant::now() + Duration::from_secs(60));
        let health = Health::new(gate.clone());
        assert!(health.failure().is_none());
        let pass = gate.enter(0).expect("owned");

        let waiting = tokio::spawn({
            let health = health.clone();
            async move { health.failed().await }
        });
        let task = health.spawn("the coordinator", async {
            panic!("index out of bounds");
        });
        task.await.expect("the panic is caught by the supervisor");
        let reported = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the failure is announced")
            .unwrap();
        assert!(reported.contains("the coordinator panicked: index out of bounds"));
        assert!(gate.enter(1).is_none(), "nothing is served any more");
        assert!(!pass.still_owned(), "work in flight may not answer");

        health.fail("a shard server", "later");
        assert_eq!(health.failure(), Some(reported), "the first failure wins");
    }
}
