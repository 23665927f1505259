//! Writes that fail on demand: a redb storage backend over the data file
//! for the store's own tests. Reads always go through. Two kinds of fault:
//!
//! - [`WriteFaults::fail`]: every write, resize and sync fails (`EIO`), as
//!   a failing disk does;
//! - [`WriteFaults::full`]: whatever would grow the file fails (`ENOSPC`),
//!   as a full disk does; overwriting what the file already holds works.
//!
//! It can also keep a journal of every write, resize and sync
//! ([`WriteFaults::start_journal`]), from which a test rebuilds what a power
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
    refused: AtomicU64,
    journal: Mutex<Option<Journal>>,
}

/// What the data file went through, in order.
#[derive(Debug)]
struct Journal {
    ops: Vec<JournalOp>,
    /// The watermark file, read at every sync.
    watermark: PathBuf,
}

/// One operation on the data file, as the journal records it.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Debug)]
pub(super) enum JournalOp {
    /// A write that went through.
    Write { offset: u64, data: Vec<u8> },
    /// A resize that went through.
    SetLen(u64),
    /// A sync was asked for (recorded before it runs), with the bytes the
    /// watermark file held then (`None`: no watermark file yet).
    Sync { watermark: Option<Vec<u8>> },
}

#[cfg_attr(not(test), allow(dead_code))]
impl WriteFaults {
    pub(super) fn new() -> Arc<WriteFaults> {
        Arc::default()
    }

    /// From now on writes fail (`true`) or go through (`false`).
    pub(super) fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on the disk is full (`true`) or has room (`false`).
    pub(super) fn full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// How many writes were refused so far.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// From now on, records every write, resize and sync of the data file,
    /// and at each sync the bytes of the watermark file `watermark`.
    pub(super) fn start_journal(&self, watermark: PathBuf) {
        *self.lock_journal() = Some(Journal {
            ops: Vec::new(),
            watermark,
        });
    }

    /// How many operations the journal holds.
    pub(super) fn journal_len(&self) -> usize {
        self.lock_journal().as_ref().map_or(0, |j| j.ops.len())
    }

    /// The operations recorded so far.
    pub(super) fn journal_ops(&self) -> Vec<JournalOp> {
        self.lock_journal()
            .as_ref()
            .map_or_else(Vec::new, |j| j.ops.clone())
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Option<Journal>> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, op: impl FnOnce(&Journal) -> JournalOp) {
        if let Some(journal) = self.lock_journal().as_mut() {
            let op = op(journal);
            journal.ops.push(op);
        }
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
        self.faults.record(|_| JournalOp::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.record(|journal| JournalOp::Sync {
            watermark: std::fs::read(&journal.watermark).ok(),
        });
        self.faults.check(false)?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults
            .check(offset + data.len() as u64 > self.file.len()?)?;
        self.file.write(offset, data)?;
        self.faults.record(|_| JournalOp::Write {
            offset,
            data: data.to_vec(),
        });
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
