//! Writes that fail on demand: a redb storage backend over the data file
//! for the store's own tests. Reads always go through. Two kinds of fault:
//!
//! - [`WriteFaults::fail`]: every write, resize and sync fails (`EIO`), as
//!   a failing disk does;
//! - [`WriteFaults::full`]: whatever would grow the file fails (`ENOSPC`),
//!   as a full disk does; overwriting what the file already holds works.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The switch a test turns to make the disk "full".
#[derive(Debug, Default)]
pub(super) struct WriteFaults {
    failing: AtomicBool,
    full: AtomicBool,
    refused: AtomicU64,
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
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.check(false)?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults
            .check(offset + data.len() as u64 > self.file.len()?)?;
        self.file.write(offset, data)
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
