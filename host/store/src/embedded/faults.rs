//! Writes that fail on demand: a redb storage backend over the data file
//! for the store's own tests. Reads always go through. Two kinds of fault:
//!
//! - [`WriteFaults::fail`]: every write, resize and sync fails (`EIO`), as
//!   a failing disk does;
//! - [`WriteFaults::full`]: whatever would grow the file fails (`ENOSPC`),
//!   as a full disk does; overwriting what the file already holds works.
//!
//! The same faults apply to the commit journal `events.journal`
//! ([`super::journal`], which calls [`WriteFaults::before_write`],
//! [`WriteFaults::wrote`] and [`WriteFaults::syncing`]).
//!
//! It can also keep a record of every write, resize and sync of both files
//! ([`WriteFaults::start_recording`]), from which a test rebuilds what a power
//! loss at any sync could leave on disk (`tests/power_loss.rs`).

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The switch a test turns to make the disk "full".
#[derive(Debug, Default)]
pub(super) struct WriteFaults {
    failing: AtomicBool,
    full: AtomicBool,
    /// The next commit that makes a journaled (and answered) batch visible
    /// fails, as an I/O error would.
    visible_commit_fails: AtomicBool,
    /// How many visible commits failed so.
    visible_commits_failed: AtomicU64,
    /// The writer leaves its open transaction (answered batches not yet
    /// visible) open until a batch fails or a checkpoint commits it.
    hold_open: AtomicBool,
    /// How the store commits (a test's choice; see [`Commits`]).
    commits: Mutex<Commits>,
    refused: AtomicU64,
    recording: Mutex<Option<Recording>>,
}

/// What the data file went through, in order.
#[derive(Debug)]
struct Recording {
    ops: Vec<FileOp>,
    /// The watermark file, read at every sync.
    watermark: PathBuf,
}

/// How a store under test commits its batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Commits {
    /// As in production: through the journal, checkpoints when due.
    #[default]
    Journaled,
    /// Through the journal, with a checkpoint after every batch.
    CheckpointEachBatch,
    /// No journal: every batch is a durable redb commit.
    Direct,
}

/// Which of the store's files an operation was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileKind {
    /// `events.redb`.
    Data,
    /// `events.journal`.
    Journal,
}

/// One operation on a file of the store, as the record keeps it.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Debug)]
pub(super) enum FileOp {
    /// A write that went through.
    Write {
        file: FileKind,
        offset: u64,
        data: Vec<u8>,
    },
    /// A resize of the data file that went through.
    SetLen(u64),
    /// A sync was asked for (recorded before it runs), with the bytes the
    /// watermark file held then (`None`: no watermark file yet).
    Sync {
        file: FileKind,
        watermark: Option<Vec<u8>>,
    },
}

#[cfg_attr(not(test), allow(dead_code))]
impl WriteFaults {
    pub(super) fn new() -> Arc<WriteFaults> {
        Arc::default()
    }

    /// How the store commits (set before it opens).
    pub(super) fn set_commits(&self, commits: Commits) {
        *self.commits.lock().unwrap_or_else(|e| e.into_inner()) = commits;
    }

    pub(super) fn commits(&self) -> Commits {
        *self.commits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on writes fail (`true`) or go through (`false`).
    pub(super) fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on the disk is full (`true`) or has room (`false`).
    pub(super) fn full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// The next redb commit that makes a journaled batch visible (after
    /// its jobs were answered) fails.
    pub(super) fn fail_next_visible_commit(&self) {
        self.visible_commit_fails.store(true, Ordering::SeqCst);
    }

    /// From now on the writer keeps answered batches in its open
    /// transaction (`true`) or commits it as usual (`false`).
    pub(super) fn hold_open(&self, hold: bool) {
        self.hold_open.store(hold, Ordering::SeqCst);
    }

    /// Whether the writer is to keep its transaction open.
    pub(super) fn holds_open(&self) -> bool {
        self.hold_open.load(Ordering::SeqCst)
    }

    /// Whether this visible commit is to fail (once).
    pub(super) fn take_visible_commit_failure(&self) -> bool {
        let fails = self.visible_commit_fails.swap(false, Ordering::SeqCst);
        if fails {
            self.visible_commits_failed.fetch_add(1, Ordering::SeqCst);
        }
        fails
    }

    /// How many visible commits were made to fail.
    pub(super) fn visible_commits_failed(&self) -> u64 {
        self.visible_commits_failed.load(Ordering::SeqCst)
    }

    /// How many writes were refused so far.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// From now on, records every write, resize and sync of the data file,
    /// and at each sync the bytes of the watermark file `watermark`.
    pub(super) fn start_recording(&self, watermark: PathBuf) {
        *self.lock_recording() = Some(Recording {
            ops: Vec::new(),
            watermark,
        });
    }

    /// How many operations were recorded so far.
    pub(super) fn recorded_len(&self) -> usize {
        self.lock_recording().as_ref().map_or(0, |r| r.ops.len())
    }

    /// The operations recorded so far.
    pub(super) fn recorded_ops(&self) -> Vec<FileOp> {
        self.lock_recording()
            .as_ref()
            .map_or_else(Vec::new, |j| j.ops.clone())
    }

    fn lock_recording(&self) -> std::sync::MutexGuard<'_, Option<Recording>> {
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, op: impl FnOnce(&Recording) -> FileOp) {
        if let Some(recording) = self.lock_recording().as_mut() {
            let op = op(recording);
            recording.ops.push(op);
        }
    }

    /// Before a write to either file: refused if the faults say so
    /// (`grows`: it needs more space than the file has).
    pub(super) fn before_write(&self, grows: bool) -> io::Result<()> {
        self.check(grows)
    }

    /// After a write to `file` went through.
    pub(super) fn wrote(&self, file: FileKind, offset: u64, data: &[u8]) {
        self.record(|_| FileOp::Write {
            file,
            offset,
            data: data.to_vec(),
        });
    }

    /// Before a sync of `file`: recorded, then refused if the faults say so.
    pub(super) fn syncing(&self, file: FileKind) -> io::Result<()> {
        self.record(|recording| FileOp::Sync {
            file,
            watermark: std::fs::read(&recording.watermark).ok(),
        });
        self.check(false)
    }

    /// Refuses the operation if the faults say so; `grows`: it needs more
    /// space than the file has.
    fn check(&self, grows: bool) -> io::Result<()> {
        let errno = if self.failing.load(Ordering::SeqCst) {
            5 // EIO
        } else if grows && self.full.load(Ordering::SeqCst) {
            28 // ENOSPC
        } else {
            return Ok(());
        };
        self.refused.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(errno))
    }
}

/// redb's file backend, with writes refused while the faults say so.
#[derive(Debug)]
pub(super) struct FaultyFile {
    file: FileBackend,
    faults: Arc<WriteFaults>,
}

impl FaultyFile {
    pub(super) fn new(file: File, faults: Arc<WriteFaults>) -> io::Result<FaultyFile> {
        let file = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(FaultyFile { file, faults })
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check(len > self.file.len()?)?;
        self.file.set_len(len)?;
        self.faults.record(|_| FileOp::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.syncing(FileKind::Data)?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let grows = offset + data.len() as u64 > self.file.len()?;
        self.faults.before_write(grows)?;
        self.file.write(offset, data)?;
        self.faults.wrote(FileKind::Data, offset, data);
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}
