//! A namespace's component uploads are read at most its
//! `upload_bytes_per_sec`, all of them on this node together.
//!
//! Reading an upload costs the node's shared async workers: the copy of
//! every frame, and fresh pages for a buffer of up to the component size
//! limit. Paced per upload, a tenant that kept `max_concurrent_uploads`
//! uploads going multiplied its rate by them, and in `tenant_abuse`
//! tenant B's junk uploads at 2 × 32 MiB/s stalled tenant A's commands
//! (BENCHMARKS.md, 2026-12-07). So the rate is the namespace's.
//!
//! **Invariant:** each namespace has the instant up to which its uploads'
//! bytes so far are due ([`UploadPacing::read`]): reading `n` bytes moves
//! it `n / rate` on from itself or from now, whichever is later (a tenant
//! that was slow earns no burst later), and an upload whose bytes are due
//! more than [`AHEAD`] from now waits until they are, before it reads more.
//! A namespace's entry is dropped once its bytes are due in the past.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aether_core::namespace::Namespace;

/// How far ahead of its rate a namespace's uploads may read before one
/// waits (so a frame of a few KiB does not cost a timer).
const AHEAD: Duration = Duration::from_millis(5);

/// When each namespace's uploads' bytes so far are due.
#[derive(Default)]
pub(crate) struct UploadPacing {
    due: Mutex<HashMap<Namespace, Instant>>,
}

impl UploadPacing {
    /// Accounts `bytes` just read by one of `namespace`'s uploads at
    /// `rate` bytes a second; how long that upload waits before it reads
    /// more (zero unless the namespace is more than [`AHEAD`] ahead).
    pub(crate) fn read(&self, namespace: &Namespace, bytes: usize, rate: u64) -> Duration {
        let now = Instant::now();
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.retain(|_, at| *at > now);
        let at = due.entry(namespace.clone()).or_insert(now);
        *at = (*at).max(now) + Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        let ahead = at.saturating_duration_since(now);
        if ahead > AHEAD { ahead } else { Duration::ZERO }
    }

    /// Namespaces with an entry (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.due.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn near(wait: Duration, seconds: f64) -> bool {
        (wait.as_secs_f64() - seconds).abs() < 0.05
    }

    #[test]
    fn a_namespaces_uploads_share_its_rate() {
        let pacing = UploadPacing::default();
        let (a, b) = ("a".parse().unwrap(), "b".parse().unwrap());
        // Two of a's uploads read 1 MiB each at 1 MiB/s: the second is
        // due a second after the first, not beside it.
        let first = pacing.read(&a, MIB, MIB as u64);
        let second = pacing.read(&a, MIB, MIB as u64);
        assert!(near(first, 1.0), "{first:?}");
        assert!(near(second, 2.0), "{second:?}");
        // Another namespace's upload is paced on its own.
        let other = pacing.read(&b, MIB, MIB as u64);
        assert!(near(other, 1.0), "{other:?}");
    }

    #[test]
    fn reading_within_the_rate_does_not_wait() {
        let pacing = UploadPacing::default();
        let a = "a".parse().unwrap();
        // 16 KiB at 16 MiB/s is due in 1 ms: within `AHEAD`.
        assert_eq!(pacing.read(&a, 16 << 10, 16 << 20), Duration::ZERO);
    }

    #[test]
    fn a_namespace_whose_bytes_are_due_leaves_no_entry() {
        let pacing = UploadPacing::default();
        let (a, b) = ("a".parse().unwrap(), "b".parse().unwrap());
        pacing.read(&a, 1, 1 << 20);
        std::thread::sleep(Duration::from_millis(10));
        pacing.read(&b, 1, 1 << 20);
        assert_eq!(pacing.tracked(), 1, "a's entry, long due, was dropped");
    }
}
