//! The writer thread: the only code that opens a write transaction (after
//! `open`), so the only place where versions and positions are assigned
//! (by [`super::apply`], on this thread).
//!
//! Lifecycle: [`Writer::spawn`] starts the thread when the store opens; it
//! takes every job queued on its channel (up to [`MAX_BATCH_JOBS`] jobs or
//! [`MAX_BATCH_BYTES`] of payload), applies them in ONE write transaction,
//! makes the batch durable (its [journal](super::journal) entry written and
//! synced; or, when the entry does not fit, redb's durable 1-phase commit:
//! one fsync either way) and only then replies to each job. Then it
//! records the new head in the [watermark](super::watermark), checkpoints
//! when one is due (redb made durable, the journal started over: at least
//! once a second, and when the journal is half full) and syncs the
//! watermark at most once a second (see "Commits" in the module docs of
//! `embedded`).
//!
//! *One transaction across batches.* A journaled batch's transaction is
//! left open, and the next batch is applied in it, while more jobs are
//! queued; it is committed without a sync (which makes its batches
//! visible) before the writer waits for jobs, as soon as a read waits for
//! one of its answered batches (reads that began after a reply wait for
//! this: see [`super::slot`]), after [`OPEN_AT_MOST`], or by a checkpoint.
//! Under load that is one redb commit per several batches (a B-tree page a
//! transaction already copied is changed in place), which is the writer's
//! CPU, its bottleneck; a batch alone is still committed right after its
//! replies. If a batch fails while the transaction holds answered batches,
//! the transaction is aborted and the writer reopens at once: the reopen
//! replays the answered batches from the journal.
//! Dropping the [`Writer`] closes the channel; the thread finishes the jobs
//! already queued, checkpoints, and exits, and the drop waits for it. If
//! the thread dies (redb panicked), every later write fails as unavailable.
//!
//! Each job is checked on its own against the state including the earlier
//! jobs of its batch: a conflict or a duplicate writes nothing and gets its
//! own reply while the rest of the batch commits. Any redb error while writing
//! aborts the whole transaction and fails every job of the batch, so a batch
//! is committed entirely or not at all.
//!
//! Recovery: a batch that fails with an I/O error (a full disk, EIO) leaves
//! the writer *broken*: redb refuses everything on that database from then
//! on. A failed journal write or checkpoint leaves it broken too. Before
//! its next batch, or when readiness asks ([`Job::Probe`]), the writer
//! reopens the file ([`super::slot`]): closes it once the reads in flight
//! are done, opens it again (replaying the journal), verifies it, and checks
//! it against the watermark, so a recovered store continues exactly after
//! the last acknowledged commit. Until a commit succeeds again the store is not
//! [writable](super::slot::DbSlot::writable); every write in between fails
//! as [`StoreError::Unavailable`], and nothing acknowledged is lost or
//! reordered (a failed batch was never acknowledged). A batch whose journal
//! entry was written whole before the failure (e.g. its sync failed) may be
//! replayed by the reopen: its jobs were answered `Unavailable`, which
//! never says that nothing was stored (a retry with the same command id
//! finds it). A batch whose entry is durable but whose commit (after its
//! answers) failed is replayed by a reopen the writer attempts at once;
//! reads wait for it or answer `Unavailable`, never without the batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Durability, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::apply::{self, Answer, Work};
use super::errors::{InFile, unavailable};
use super::faults::{Commits, WriteFaults};
use super::journal::{self, Journal};
use super::open::record_checkpoint;
use super::slot::DbSlot;
use super::tables::META;
use super::watermark::Watermark;
use crate::{
    AppendError, AppendOutcome, AppendRequest, AppendStep, AppendThen, Snapshot, StoreError,
};

/// Most jobs applied in one transaction.
pub(super) const MAX_BATCH_JOBS: usize = 1024;
/// Once a batch holds this many payload bytes, it is committed.
pub(super) const MAX_BATCH_BYTES: usize = 16 << 20;
/// Jobs that may wait for the writer; further appends wait to be queued.
const QUEUE: usize = 4096;
/// The watermark is made durable (fsync) at most this often, after a reply,
/// and when the store closes; see [`super::watermark`].
const WATERMARK_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// The data file is made durable (a checkpoint, after which the journal
/// starts over) at least this often while batches are journaled, and
/// whenever the journal is half full.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// While more jobs are queued, journaled batches go on in one redb
/// transaction for at most this long before it is committed (see "One
/// transaction across batches" in the module docs).
const OPEN_AT_MOST: Duration = Duration::from_millis(10);

type SnapshotReply = oneshot::Sender<Result<(), StoreError>>;

/// Where an append's outcome goes: to a caller awaiting it, or to the
/// continuation it was started with ([`crate::EventStore::start_append`]).
pub(super) enum AppendReply {
    Await(oneshot::Sender<Result<AppendOutcome, AppendError>>),
    /// Called on the writer thread. Dropped uncalled (the writer stopped
    /// with the job queued), it reports the writer gone.
    Then(Then),
}

impl AppendReply {
    fn send(self, outcome: Result<AppendOutcome, AppendError>) {
        match self {
            AppendReply::Await(reply) => drop(reply.send(outcome)),
            AppendReply::Then(then) => then.call(outcome),
        }
    }
}

/// A started append's continuation, called exactly once: with the outcome,
/// or, if dropped uncalled, with the error of a stopped writer.
pub(super) struct Then {
    then: Option<AppendThen>,
    path: Arc<Path>,
}

impl Then {
    pub(super) fn new(then: AppendThen, path: Arc<Path>) -> Self {
        Self {
            then: Some(then),
            path,
        }
    }

    fn call(mut self, outcome: Result<AppendOutcome, AppendError>) {
        if let Some(then) = self.then.take() {
            then(AppendStep::Done(outcome));
        }
    }

    /// The continuation, uncalled (the append was not started after all).
    pub(super) fn into_inner(mut self) -> AppendThen {
        self.then.take().expect("a continuation is taken once")
    }
}

impl Drop for Then {
    fn drop(&mut self) {
        if let Some(then) = self.then.take() {
            then(AppendStep::Done(Err(super::writer_gone(&self.path).into())));
        }
    }
}

/// A write for the writer thread, with the channel its answer goes back on.
pub(super) enum Job {
    Append(AppendRequest, AppendReply),
    Snapshot(Snapshot, SnapshotReply),
    /// Are writes going through? If they were failing, the writer reopens
    /// the file and tries a small commit first.
    Probe(SnapshotReply),
}

/// The META key the probe commit writes (a counter; nothing reads it).
const PROBE_KEY: &str = "write_probe";

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
        slot: Arc<DbSlot>,
        path: Arc<Path>,
        reopen: Reopen,
        opened: Continue,
    ) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let mut state = State {
            slot,
            path: Arc::clone(&path),
            reopen,
            broken: false,
            probes: Vec::new(),
            watermark: opened.watermark,
            watermark_synced: Instant::now(),
            journal: opened.journal,
            lsn: opened.lsn,
            open: None,
            checkpointed: Instant::now(),
            commits: Arc::clone(&commits),
        };
        let thread = std::thread::Builder::new()
            .name("aether-redb-writer".into())
            .spawn(move || {
                // Every append waits for this thread (`aether_core::thread`).
                aether_core::thread::answer_promptly();
                state.run(queue)
            })
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

    /// Queues `job` if there is room now (`None`); else gives it back.
    pub(super) fn try_send(&self, job: Job) -> Option<Job> {
        match &self.jobs {
            Some(jobs) => match jobs.try_send(job) {
                Ok(()) => None,
                Err(
                    mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job),
                ) => Some(job),
            },
            None => Some(job),
        }
    }

    /// Asks the writer to try recovering, without waiting for it (a read
    /// failed while writes were failing: the file may need reopening).
    pub(super) fn nudge(&self) {
        if let Some(jobs) = &self.jobs {
            let (reply, _) = oneshot::channel();
            let _ = jobs.try_send(Job::Probe(reply));
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

/// How the writer opens the file again after an I/O error.
pub(super) struct Reopen {
    /// The store's directory.
    pub(super) dir: PathBuf,
    /// Writes that fail on demand (the store's tests).
    pub(super) faults: Option<Arc<WriteFaults>>,
}

/// Where an opened store's writer continues from.
pub(super) struct Continue {
    pub(super) watermark: Watermark,
    pub(super) journal: Option<Journal>,
    /// The number of the last batch stored.
    pub(super) lsn: u64,
}

/// What the writer thread owns.
struct State {
    slot: Arc<DbSlot>,
    path: Arc<Path>,
    reopen: Reopen,
    /// A write failed on the database in the slot: reopen before writing.
    broken: bool,
    /// Probes that arrived with a batch, answered after it.
    probes: Vec<SnapshotReply>,
    watermark: Watermark,
    /// When the watermark was last made durable.
    watermark_synced: Instant,
    /// Where batches are made durable first (`None`: straight to redb).
    journal: Option<Journal>,
    /// The number of the last batch committed (see [`super::journal`]).
    lsn: u64,
    /// The transaction holding the journaled batches not yet visible,
    /// and when its first batch was applied.
    open: Option<(redb::WriteTransaction, Instant)>,
    /// When the data file was last made durable.
    checkpointed: Instant,
    commits: Arc<AtomicU64>,
}

impl State {
    fn run(&mut self, mut queue: mpsc::Receiver<Job>) {
        self.serve(&mut queue);
        // The store closes: the data file gets every batch (so it is whole
        // without the journal), and the last head reaches the disk.
        if !self.broken {
            self.checkpoint(true);
        }
        self.sync_watermark(true);
    }

    /// Makes the data file durable and starts the journal over, if batches
    /// were journaled since the last checkpoint and one is due (or `now`);
    /// the open transaction, if any, is the one committed. On failure the
    /// writer reopens the file (which replays the journal): at once if
    /// answered batches were in that transaction, else before its next batch.
    fn checkpoint(&mut self, now: bool) {
        let Some(journal) = &self.journal else { return };
        let each_batch = (self.reopen.faults.as_ref())
            .is_some_and(|faults| faults.commits() == Commits::CheckpointEachBatch);
        let due = self.checkpointed.elapsed() >= CHECKPOINT_INTERVAL
            || journal.used() >= journal::CAPACITY / 2
            || each_batch;
        if journal.used() == 0 || !(now || due) {
            return;
        }
        let open = self.open.take().map(|(txn, _)| txn);
        let held_answers = open.is_some();
        let txn = match open {
            Some(txn) => Ok(txn),
            None => (self.slot.get(&self.path)).and_then(|db| db.begin_write().in_file(&self.path)),
        };
        match txn.and_then(|txn| self.commit_durably(txn, self.lsn)) {
            Ok(()) => {}
            Err(error) if held_answers => self.commit_failed_after_answers(error),
            Err(error) => {
                tracing::error!(%error, "the event store could not make its data file durable");
                self.broken = true;
                self.slot.set_writable(false);
            }
        }
    }

    /// Makes the watermark durable if it was last synced more than
    /// [`WATERMARK_SYNC_INTERVAL`] ago (or `now`). A failure is logged: the
    /// data is durable, only the rollback check of an open after a power
    /// loss is weaker.
    fn sync_watermark(&mut self, now: bool) {
        if !now && self.watermark_synced.elapsed() < WATERMARK_SYNC_INTERVAL {
            return;
        }
        self.watermark_synced = Instant::now();
        if let Err(error) = self.watermark.sync() {
            let watermark = self.watermark.path().display();
            tracing::warn!(%error, %watermark, "cannot sync the head watermark");
        }
    }

    fn serve(&mut self, queue: &mut mpsc::Receiver<Job>) {
        loop {
            if queue.is_empty() {
                // Nothing to batch with: the answered batches become
                // visible before the writer waits.
                self.make_visible();
            }
            let Some(first) = queue.blocking_recv() else {
                return;
            };
            if let Job::Probe(reply) = first {
                let _ = reply.send(self.probe());
                continue;
            }
            let mut bytes = payload_bytes(&first);
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_JOBS && bytes < MAX_BATCH_BYTES {
                let Ok(job) = queue.try_recv() else { break };
                if let Job::Probe(reply) = job {
                    // The batch's commit answers the question.
                    self.probes.push(reply);
                    continue;
                }
                bytes += payload_bytes(&job);
                batch.push(job);
            }
            self.commit_batch(batch);
            self.after_batch();
            let answer = self.probe();
            self.probes
                .drain(..)
                .for_each(|reply| drop(reply.send(answer.clone())));
        }
    }

    /// After a batch that did not break the writer: a checkpoint if one is
    /// due; else the open transaction committed (without a sync) if a read
    /// waits for it or it has been open for [`OPEN_AT_MOST`] (and before the
    /// writer waits for jobs: [`State::serve`]).
    fn after_batch(&mut self) {
        if self.broken {
            // The next batch (or a probe) reopens first.
            return;
        }
        self.checkpoint(false);
        let open_long =
            (self.open.as_ref()).is_some_and(|(_, since)| since.elapsed() >= OPEN_AT_MOST);
        if open_long || (self.open.is_some() && self.slot.take_read_waiting()) {
            self.make_visible();
        }
        self.sync_watermark(false);
    }

    /// Commits the open transaction without a sync: its batches (durable
    /// in the journal and answered) become visible.
    fn make_visible(&mut self) {
        let held = (self.reopen.faults.as_ref()).is_some_and(|faults| faults.holds_open());
        let Some((txn, _)) = self.open.take_if(|_| !held) else {
            return;
        };
        match self.commit_visible(txn) {
            Ok(()) => self.slot.show(self.lsn),
            Err(error) => self.commit_failed_after_answers(error),
        }
    }

    /// Reopens the file if a write failed on it. On failure the slot may be
    /// left empty (reads answer "unavailable"); the next job tries again.
    fn recover(&mut self) -> Result<(), StoreError> {
        if !self.broken {
            return Ok(());
        }
        // Its batches are in the journal: the reopen replays them.
        self.open = None;
        self.slot.close(&self.path)?;
        // Drops the journal first: the open reads it again (and replays
        // what a failed batch may have left in it).
        self.journal = None;
        let opened = super::open::open(&self.reopen.dir, self.reopen.faults.as_ref())?;
        self.watermark = opened.watermark;
        self.journal = opened.journal;
        self.lsn = opened.lsn;
        self.checkpointed = Instant::now();
        self.slot.put(opened.db);
        // The reopened file holds every batch the journal replayed, so
        // every batch answered (each durable first).
        self.slot.show(self.lsn);
        self.broken = false;
        tracing::info!(path = %self.path.display(), "reopened the event store after an I/O error");
        Ok(())
    }

    /// Whether writes go through: if they were failing, reopen and commit
    /// a one-key transaction to find out.
    fn probe(&mut self) -> Result<(), StoreError> {
        if self.slot.writable() {
            return Ok(());
        }
        self.recover()?;
        let path = &*self.path;
        let db = self.slot.get(path)?;
        let committed = (|| {
            let txn = db.begin_write().in_file(path)?;
            {
                let mut meta = txn.open_table(META).in_file(path)?;
                let count = meta.get(PROBE_KEY).in_file(path)?.map_or(0, |v| v.value());
                meta.insert(PROBE_KEY, count + 1).in_file(path)?;
            }
            txn.commit().in_file(path)
        })();
        match committed {
            Ok(()) => {
                tracing::info!(path = %path.display(), "the event store accepts writes again");
                self.slot.set_writable(true);
                Ok(())
            }
            Err(error) => {
                self.broken = true;
                Err(error)
            }
        }
    }

    /// Applies one batch and makes it durable, records the new head, then
    /// answers every job.
    fn commit_batch(&mut self, batch: Vec<Job>) {
        let (mut work, mut replies) = (Vec::new(), Vec::new());
        for job in batch {
            match job {
                Job::Append(request, reply) => {
                    work.push(Work::Append(request));
                    replies.push(Reply::Append(reply));
                }
                Job::Snapshot(snapshot, reply) => {
                    work.push(Work::Snapshot(snapshot));
                    replies.push(Reply::Snapshot(reply));
                }
                Job::Probe(reply) => self.probes.push(reply),
            }
        }
        if let Err(error) = self.recover() {
            replies
                .into_iter()
                .for_each(|reply| reply.send(Err(&error)));
            return;
        }
        let committed = self.commit(work);
        match committed {
            Ok((answers, head)) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                // Reads that begin once a job is answered wait until the
                // batch is visible (see `super::slot`).
                self.slot.acknowledge(self.lsn);
                let answered = replies.into_iter().zip(answers);
                answered.for_each(|(reply, answer)| reply.send(Ok(answer)));
                self.slot.set_writable(true);
                // After the batch's entry (or commit) is durable: the
                // watermark never runs ahead of what is durable.
                if let Err(error) = self.watermark.record(head) {
                    // The batch is durable; only the rollback check of the
                    // next open is weaker.
                    let watermark = self.watermark.path().display();
                    tracing::warn!(%error, %watermark, head, "cannot record the head watermark");
                }
            }
            Err(error) => {
                tracing::error!(%error, "the event store could not commit a batch of writes");
                if matches!(error, StoreError::Unavailable { .. }) {
                    // redb latched the I/O error: reopen before the next write.
                    self.broken = true;
                    self.slot.set_writable(false);
                }
                // Nothing of this batch is stored: every job in it fails.
                replies
                    .into_iter()
                    .for_each(|reply| reply.send(Err(&error)));
                if self.slot.answered_unseen() {
                    // The aborted transaction held answered batches too.
                    self.commit_failed_after_answers(error);
                }
            }
        }
    }

    /// Commits the open transaction, whose batches are journaled and
    /// answered, without a sync (or fails, when a test injects that
    /// failure).
    fn commit_visible(&self, mut txn: redb::WriteTransaction) -> Result<(), StoreError> {
        let faults = self.reopen.faults.as_ref();
        if faults.is_some_and(|faults| faults.take_visible_commit_failure()) {
            drop(txn);
            return Err(unavailable(&self.path, "injected: the commit failed"));
        }
        txn.set_durability(Durability::None)
            .map_err(|error| unavailable(&self.path, error))?;
        txn.commit().in_file(&self.path)
    }

    /// The redb commit of batches already durable in the journal and
    /// answered failed (or their transaction was aborted): reopening the
    /// file replays them from the journal, which makes them visible; reads
    /// wait for that (or answer unavailable) meanwhile.
    fn commit_failed_after_answers(&mut self, error: StoreError) {
        tracing::error!(%error, "the event store could not make journaled batches visible; reopening");
        self.broken = true;
        self.slot.set_writable(false);
        if let Err(error) = self.recover() {
            tracing::error!(%error, "the event store could not reopen its file; retrying before the next write");
        }
    }
}

impl State {
    /// Commits `txn` (holding batches up to `lsn`) with redb's durable
    /// commit (write transactions are durable unless `commit_visible` says
    /// otherwise), recording `lsn` and a new generation as the checkpoint;
    /// then the journal starts over and the batches are visible.
    fn commit_durably(&mut self, txn: redb::WriteTransaction, lsn: u64) -> Result<(), StoreError> {
        let generation = journal::new_generation();
        record_checkpoint(&txn, &self.path, lsn, generation)?;
        txn.commit().in_file(&self.path)?;
        if let Some(journal) = &mut self.journal {
            journal.start_over(generation);
        }
        self.checkpointed = Instant::now();
        self.slot.show(lsn);
        Ok(())
    }

    /// Applies the batch in the open write transaction (or a new one) and
    /// makes it durable: its journal entry written and synced, leaving the
    /// transaction open, to be committed without a sync (which makes it
    /// visible) once the jobs are answered (see [`State::after_batch`]);
    /// or, when the entry does not fit in the journal (or there is none),
    /// the transaction committed with redb's durable commit (one fsync,
    /// 1-phase; a commit cut by a crash fails its checksums and redb opens
    /// the one before: see "Commits" in the module docs of `embedded`).
    /// Either way the batch is durable before it is visible to a reader,
    /// and before any job is answered.
    fn commit(&mut self, work: Vec<Work>) -> Result<(Vec<Answer>, u64), StoreError> {
        let path = &*self.path;
        let (txn, since) = match self.open.take() {
            Some(open) => open,
            None => (
                self.slot.get(path)?.begin_write().in_file(path)?,
                Instant::now(),
            ),
        };
        let applied = apply::apply_all(&txn, path, work)?;
        let lsn = self.lsn + 1;
        match (self.journal.as_mut()).filter(|journal| journal.fits(applied.entry.len())) {
            Some(journal) => {
                journal
                    .append(lsn, &applied.entry)
                    .map_err(|error| unavailable(journal.path(), error))?;
                self.open = Some((txn, since));
            }
            None => self.commit_durably(txn, lsn)?,
        }
        self.lsn = lsn;
        Ok((applied.answers, applied.head))
    }
}

fn payload_bytes(job: &Job) -> usize {
    match job {
        Job::Append(request, _) => request.events.iter().map(|e| e.data.len() + 64).sum(),
        Job::Snapshot(snapshot, _) => snapshot.state.len() + 64,
        Job::Probe(_) => 0,
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
            (Reply::Append(reply), Ok(Answer::Append(result))) => reply.send(result),
            (Reply::Snapshot(reply), Ok(Answer::Snapshot(result))) => drop(reply.send(result)),
            (Reply::Append(reply), other) => reply.send(Err(failed(other).into())),
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
