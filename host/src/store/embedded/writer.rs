//! The writer thread: the only code that opens a write transaction (after
//! `open`), so the only place where versions and positions are assigned
//! (by [`super::apply`], on this thread).
//!
//! Lifecycle: [`Writer::spawn`] starts the thread when the store opens; it
//! takes every job queued on its channel (up to [`MAX_BATCH_JOBS`] jobs or
//! [`MAX_BATCH_BYTES`] of payload), applies them in ONE write transaction,
//! commits it with immediate durability (fsync, 2-phase), records the new
//! head in the [watermark](super::watermark), and only then replies to each
//! job. Dropping the [`Writer`] closes the channel; the thread
//! finishes the jobs already queued and exits, and the drop waits for it. If
//! the thread dies (redb panicked), every later write fails as unavailable.
//!
//! Each job is checked on its own against the state including the earlier
//! jobs of its batch: a conflict or a duplicate writes nothing and gets its
//! own reply while the rest of the batch commits. Any redb error while writing
//! aborts the whole transaction and fails every job of the batch, so a batch
//! is committed entirely or not at all.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use redb::Database;
use tokio::sync::{mpsc, oneshot};

use super::apply::{self, Answer, Work};
use super::errors::{InFile, unavailable};
use super::watermark::Watermark;
use crate::store::{AppendError, AppendOutcome, AppendRequest, Snapshot, StoreError};

/// Most jobs applied in one transaction.
pub(super) const MAX_BATCH_JOBS: usize = 1024;
/// Once a batch holds this many payload bytes, it is committed.
pub(super) const MAX_BATCH_BYTES: usize = 16 << 20;
/// Jobs that may wait for the writer; further appends wait to be queued.
const QUEUE: usize = 4096;

type AppendReply = oneshot::Sender<Result<AppendOutcome, AppendError>>;
type SnapshotReply = oneshot::Sender<Result<(), StoreError>>;

/// A write for the writer thread, with the channel its answer goes back on.
pub(super) enum Job {
    Append(AppendRequest, AppendReply),
    Snapshot(Snapshot, SnapshotReply),
}

/// The handle of the writer thread.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Transactions committed so far (each one fsync'd batch).
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread on `db`; it records each new head in
    /// `watermark` before acknowledging the batch that reached it.
    pub(super) fn spawn(
        db: Arc<Database>,
        path: Arc<Path>,
        watermark: Watermark,
    ) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let mut state = State {
            db,
            path: Arc::clone(&path),
            watermark,
            commits: Arc::clone(&commits),
        };
        let thread = std::thread::Builder::new()
            .name("aether-redb-writer".into())
            .spawn(move || state.run(queue))
            .map_err(|e| unavailable(&path, format_args!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            commits,
        })
    }

    /// Transactions committed so far; fewer than the writes when group
    /// commit is batching.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues a job; gives it back if the writer thread is gone.
    pub(super) async fn send(&self, job: Job) -> Result<(), Job> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).await.map_err(|error| error.0),
            None => Err(job),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // Waits for the queued jobs to commit, so that the file is closed
            // (and can be reopened) once the store is gone. A panic of the
            // thread was already reported to the jobs it dropped.
            let _ = thread.join();
        }
    }
}

/// What the writer thread owns.
struct State {
    db: Arc<Database>,
    path: Arc<Path>,
    watermark: Watermark,
    commits: Arc<AtomicU64>,
}

impl State {
    fn run(&mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(first) = queue.blocking_recv() {
            let mut bytes = payload_bytes(&first);
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_JOBS && bytes < MAX_BATCH_BYTES {
                let Ok(job) = queue.try_recv() else { break };
                bytes += payload_bytes(&job);
                batch.push(job);
            }
            self.commit_batch(batch);
        }
    }

    /// Applies and commits one batch, records the new head, then answers
    /// every job.
    fn commit_batch(&mut self, batch: Vec<Job>) {
        let (work, replies): (Vec<Work>, Vec<Reply>) = batch
            .into_iter()
            .map(|job| match job {
                Job::Append(request, reply) => (Work::Append(request), Reply::Append(reply)),
                Job::Snapshot(snapshot, reply) => {
                    (Work::Snapshot(snapshot), Reply::Snapshot(reply))
                }
            })
            .unzip();
        let path = &*self.path;
        let committed = (|| {
            let mut txn = self.db.begin_write().in_file(path)?;
            // 2-phase commit: the primary commit slot is then always valid,
            // so redb reports a damaged newest commit instead of silently
            // falling back to the one before (losing acknowledged events).
            txn.set_two_phase_commit(true);
            let answers = apply::apply_all(&txn, path, work)?;
            txn.commit().in_file(path)?;
            Ok(answers)
        })();
        match committed {
            Ok((answers, head)) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                if let Err(error) = self.watermark.record(head) {
                    // The batch is durable; only the rollback check of the
                    // next open is weaker.
                    let watermark = self.watermark.path().display();
                    tracing::warn!(%error, %watermark, head, "cannot record the head watermark");
                }
                let answered = replies.into_iter().zip(answers);
                answered.for_each(|(reply, answer)| reply.send(Ok(answer)));
            }
            Err(error) => {
                tracing::error!(%error, "the event store could not commit a batch of writes");
                // Nothing of this batch is stored: every job in it fails.
                replies
                    .into_iter()
                    .for_each(|reply| reply.send(Err(&error)));
            }
        }
    }
}

fn payload_bytes(job: &Job) -> usize {
    match job {
        Job::Append(request, _) => request.events.iter().map(|e| e.data.len() + 64).sum(),
        Job::Snapshot(snapshot, _) => snapshot.state.len() + 64,
    }
}

/// Where a job's answer goes.
enum Reply {
    Append(AppendReply),
    Snapshot(SnapshotReply),
}

impl Reply {
    /// Sends the answer of a committed batch, or the batch's failure. A caller
    /// that stopped waiting no longer needs it, so a closed channel is fine.
    fn send(self, answer: Result<Answer, &StoreError>) {
        let answer = answer.map_err(StoreError::clone);
        match (self, answer) {
            (Reply::Append(reply), Ok(Answer::Append(result))) => drop(reply.send(result)),
            (Reply::Snapshot(reply), Ok(Answer::Snapshot(result))) => drop(reply.send(result)),
            (Reply::Append(reply), other) => drop(reply.send(Err(failed(other).into()))),
            (Reply::Snapshot(reply), other) => drop(reply.send(Err(failed(other)))),
        }
    }
}

/// The batch's error, or (never expected) an answer of the wrong kind.
fn failed(answer: Result<Answer, StoreError>) -> StoreError {
    match answer {
        Err(error) => error,
        Ok(_) => StoreError::Unavailable {
            backend: super::errors::BACKEND,
            message: "the writer mixed up two answers; nothing was written".into(),
        },
    }
}
