//! A partition thread's queue of jobs: the tenant's run in the order they
//! were sent; the node's own work runs ahead of them and during a rest
//! (see `partition.rs`'s invariant).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::partition::Partition;

/// Work for a partition thread. A tenant's jobs (its commands and reads)
/// run in the order they were sent. The node's own (passivating moving
/// shards' aggregates in a hand-off, new limits) run ahead of the
/// tenant jobs queued before them (after at most a millisecond of them,
/// [`LOOK_AHEAD_EVERY`], and the one running), and while the thread rests
/// (`busy.rs`): a busy tenant's backlog or rest does not hold up the
/// node's work for others.
pub(crate) struct Job {
    pub(crate) run: Box<dyn FnOnce(&mut Partition) + Send>,
    pub(crate) node_work: bool,
}

impl Job {
    pub(crate) fn tenant(run: impl FnOnce(&mut Partition) + Send + 'static) -> Self {
        Self {
            run: Box::new(run),
            node_work: false,
        }
    }

    /// Runs the job. A bug in a job must not take the partition down: the
    /// caller sees its reply channel closed, others carry on.
    pub(crate) fn run_on(self, partition: &mut Partition, index: usize) {
        let run = self.run;
        if std::panic::catch_unwind(AssertUnwindSafe(|| run(partition))).is_err() {
            tracing::error!(partition = index, "a partition job panicked");
        }
    }
}

/// Where a partition job's answer goes, given to the job
/// ([`super::partition::PartitionHandle::replying`]): the caller
/// waiting for it may have gone, which is no concern of the job's.
pub(crate) struct Reply<R>(pub(crate) tokio::sync::oneshot::Sender<R>);

impl<R> Reply<R> {
    pub(crate) fn send(self, answer: R) {
        let _ = self.0.send(answer);
    }
}

/// A partition thread's side of its queue.
pub(crate) struct Jobs {
    queue: mpsc::Receiver<Job>,
    /// Tenant jobs taken off the queue but not yet run, in order.
    held: VecDeque<Job>,
    /// When the queue was last looked through for the node's work.
    looked_ahead: Instant,
    index: usize,
}

/// How often a partition thread with tenant jobs queued looks through them
/// for the node's own work: each look takes every queued job off the
/// queue. Not before every job, which cost `commands_memory_many` ~10 %
/// (a `try_recv` on the queue its senders keep writing, per job).
const LOOK_AHEAD_EVERY: Duration = Duration::from_millis(1);

impl Jobs {
    /// The thread side of partition `index`'s queue.
    pub(crate) fn new(queue: mpsc::Receiver<Job>, index: usize) -> Self {
        Self {
            queue,
            held: VecDeque::new(),
            looked_ahead: Instant::now(),
            index,
        }
    }

    /// The tenant's next job; the node's own work queued meanwhile runs
    /// first, or waits at most [`LOOK_AHEAD_EVERY`] of tenant jobs queued
    /// before it (and the one running); `None` once the partition is
    /// stopping and no tenant job is left.
    pub(crate) fn next_tenant_job(&mut self, partition: &mut Partition) -> Option<Job> {
        loop {
            let now = Instant::now();
            if now.duration_since(self.looked_ahead) >= LOOK_AHEAD_EVERY {
                self.looked_ahead = now;
                while let Ok(job) = self.queue.try_recv() {
                    self.take(job, partition);
                }
            }
            if let Some(job) = self.held.pop_front() {
                return Some(job);
            }
            let job = self.queue.recv().ok()?;
            if !job.node_work {
                return Some(job);
            }
            job.run_on(partition, self.index);
        }
    }

    /// Rests for `rest` (the thread used more than its share of CPU time,
    /// `busy.rs`): tenant jobs that come meanwhile are held, the node's own
    /// run at once. Ends early once the partition is stopping (the held
    /// jobs still run, without rests).
    pub(crate) fn rest(&mut self, rest: Duration, partition: &mut Partition) {
        let until = Instant::now() + rest;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.queue.recv_timeout(left) {
                Ok(job) => self.take(job, partition),
                Err(_) => return,
            }
        }
    }

    /// Runs the node's own work now; holds a tenant's job for its turn.
    fn take(&mut self, job: Job, partition: &mut Partition) {
        if job.node_work {
            job.run_on(partition, self.index);
        } else {
            self.held.push_back(job);
        }
    }
}
