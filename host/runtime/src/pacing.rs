//! A namespace's compiles take at most its `compile_share_percent` of a
//! runtime's wall time.
//!
//! Compiling a component takes from a tenth of a second to seconds of CPU
//! on every core wasmtime's compile pool has. It runs at a lower priority
//! than commands (`background.rs`), but a tenant that deploys nonstop would
//! still keep compile threads on every core, each one a thread that other
//! tenants' commands wait behind when they wake (in `tenant_abuse`, one
//! tenant redeploying nonstop took another's p99 from ~1 ms to 3.7–4.3 ms;
//! paced to a quarter, 1.6–3.4 ms; BENCHMARKS.md). So a namespace compiles
//! one component at a time on a runtime, and after a compile that took `t`
//! its next one starts no sooner than `t × (100 − share) / share` later:
//! 0.75 s after a 0.25 s compile at the default 25 %. A deploy that comes
//! sooner waits for its turn. A component compiled before (same digest)
//! costs almost nothing, so it earns almost no rest.
//!
//! **Invariant:** a [`Turn`] is held until the compile ends on its own
//! thread, even if the deploy that asked for it was abandoned meanwhile: a
//! client that disconnects cannot start compiles that are not paced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aether_core::namespace::Namespace;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};
use tokio::time::Instant;

/// When each namespace may start its next compile. A namespace's entry is
/// dropped once it is in nobody's hands and its rest is over.
#[derive(Default)]
pub(crate) struct CompilePacing {
    next_start: Mutex<HashMap<Namespace, Arc<TurnLock<Instant>>>>,
}

/// A namespace's turn to compile: no other compile of the namespace starts
/// until it ends ([`Turn::end`]) or is dropped.
pub(crate) struct Turn {
    next_start: OwnedMutexGuard<Instant>,
    share_percent: usize,
    started: Instant,
}

impl CompilePacing {
    /// Waits for the namespace's compile before this one to end and for
    /// the rest it earned to pass.
    pub(crate) async fn turn(&self, namespace: &Namespace, share_percent: usize) -> Turn {
        let lock = {
            let mut next_start = self
                .next_start
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            next_start.retain(|_, lock| {
                Arc::strong_count(lock) > 1 || lock.try_lock().map_or(true, |at| *at > now)
            });
            next_start
                .entry(namespace.clone())
                .or_insert_with(|| Arc::new(TurnLock::new(now)))
                .clone()
        };
        let next_start = lock.lock_owned().await;
        tokio::time::sleep_until(*next_start).await;
        Turn {
            next_start,
            share_percent,
            started: Instant::now(),
        }
    }

    /// Namespaces with an entry (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.next_start.lock().unwrap().len()
    }
}

impl Turn {
    /// Ends the turn: the namespace's next compile starts no sooner than
    /// [`rest_after`] the time since the turn began.
    pub(crate) fn end(mut self) {
        let took = self.started.elapsed();
        *self.next_start = Instant::now() + rest_after(took, self.share_percent);
    }
}

/// The rest that work which took `took` earns at `share_percent` (at
/// least 1; 100 or more: none): a compile's wall time here, a busy
/// partition thread's CPU time in `busy.rs`.
pub(crate) fn rest_after(took: Duration, share_percent: usize) -> Duration {
    let share = share_percent.clamp(1, 100) as u32;
    took * (100 - share) / share
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    #[test]
    fn the_rest_keeps_the_share() {
        let second = Duration::from_secs(1);
        assert_eq!(rest_after(second, 25), Duration::from_secs(3));
        assert_eq!(rest_after(second, 50), second);
        assert_eq!(rest_after(second, 100), Duration::ZERO);
        assert_eq!(rest_after(second, 400), Duration::ZERO);
        assert_eq!(rest_after(second, 0), Duration::from_secs(99));
    }

    #[tokio::test(start_paused = true)]
    async fn a_namespace_waits_out_its_rest_and_others_do_not() {
        let pacing = CompilePacing::default();
        let begin = Instant::now();
        let turn = pacing.turn(&ns("busy"), 25).await;
        assert_eq!(Instant::now(), begin, "the first compile starts at once");
        tokio::time::advance(Duration::from_millis(200)).await;
        turn.end();

        let other = pacing.turn(&ns("quiet"), 25).await;
        assert_eq!(Instant::now() - begin, Duration::from_millis(200));
        other.end();

        let next = pacing.turn(&ns("busy"), 25).await;
        assert_eq!(
            Instant::now() - begin,
            Duration::from_millis(800),
            "three times the 200 ms compile after it ended"
        );
        next.end();
    }

    #[tokio::test(start_paused = true)]
    async fn one_compile_of_a_namespace_at_a_time_even_if_its_deploy_is_abandoned() {
        let pacing = Arc::new(CompilePacing::default());
        let begin = Instant::now();
        let turn = pacing.turn(&ns("busy"), 50).await;
        // A second deploy waits while the first compiles ...
        let waiting = tokio::spawn({
            let pacing = pacing.clone();
            async move {
                let turn = pacing.turn(&ns("busy"), 50).await;
                let started = Instant::now();
                turn.end();
                started
            }
        });
        // ... on a thread of its own, which ends the turn after its deploy
        // was abandoned.
        tokio::time::advance(Duration::from_millis(300)).await;
        tokio::task::spawn_blocking(move || turn.end())
            .await
            .unwrap();
        let second_started = waiting.await.unwrap();
        assert_eq!(second_started - begin, Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn namespaces_whose_rest_is_over_are_forgotten() {
        let pacing = CompilePacing::default();
        for name in ["a", "b", "c"] {
            let turn = pacing.turn(&ns(name), 10).await;
            tokio::time::advance(Duration::from_millis(10)).await;
            turn.end();
        }
        assert_eq!(pacing.tracked(), 3, "each rests 90 ms");
        tokio::time::advance(Duration::from_millis(100)).await;
        pacing.turn(&ns("d"), 10).await.end();
        assert_eq!(pacing.tracked(), 1, "only the one just compiled");
    }
}
