//! The open database, shared by the readers and the writer thread, and
//! whether writes are going through.
//!
//! redb latches its first I/O error (a full disk, EIO): every later
//! operation on that `Database` fails with "Previous I/O error occurred"
//! until it is closed and opened again. The writer thread is the one place
//! that reopens it ([`super::writer`]): it takes the database out of the
//! slot, waits for the reads still using it, closes it, opens and verifies
//! the file again and puts the new one in. Meanwhile reads wait for it
//! (up to [`REOPEN_WAIT`]) and then answer [`StoreError::Unavailable`],
//! never stale or partial data.
//!
//! **Invariant:** [`DbSlot::writable`] is true only after a commit
//! succeeded on the database in the slot and no write has failed since;
//! readiness (`/readyz`) reports it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use super::errors::unavailable;
use crate::StoreError;

/// How long a reopen waits for the reads still holding the old database.
const READS_DRAIN: Duration = Duration::from_secs(5);

/// How long a read waits for a reopen in progress before it answers
/// [`StoreError::Unavailable`] (a reopen takes milliseconds to a verify of
/// the whole file).
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// The database in use, or none while it is being reopened.
pub(super) struct DbSlot {
    db: RwLock<Option<Arc<Database>>>,
    writable: AtomicBool,
}

impl DbSlot {
    pub(super) fn new(db: Database) -> Arc<DbSlot> {
        Arc::new(DbSlot {
            db: RwLock::new(Some(Arc::new(db))),
            writable: AtomicBool::new(true),
        })
    }

    /// The database, unless it is being reopened.
    pub(super) fn get(&self, path: &Path) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                unavailable(
                    path,
                    "the file is being reopened after an I/O error (a full disk?): retry",
                )
            })
    }

    /// The database for a read: waits up to [`REOPEN_WAIT`] for a reopen
    /// in progress, so that reads go on across the reopens a full disk
    /// causes. Blocks: call it on a blocking thread.
    pub(super) fn get_for_read(&self, path: &Path) -> Result<Arc<Database>, StoreError> {
        let deadline = Instant::now() + REOPEN_WAIT;
        loop {
            match self.get(path) {
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                answer => return answer,
            }
        }
    }

    /// Whether the last write went through.
    pub(super) fn writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    pub(super) fn set_writable(&self, writable: bool) {
        self.writable.store(writable, Ordering::Release);
    }

    /// Takes the database out and closes it once the reads using it are
    /// done. Errors (and leaves it in place) if they are not done in time.
    pub(super) fn close(&self, path: &Path) -> Result<(), StoreError> {
        let Some(mut db) = self.db.write().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let deadline = Instant::now() + READS_DRAIN;
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    // Closing a database that failed an I/O reports that
                    // failure again; it is closed either way.
                    let _ = db.close();
                    return Ok(());
                }
                Err(still_read) if Instant::now() >= deadline => {
                    *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(still_read);
                    return Err(unavailable(
                        path,
                        "reads kept the file open while it was to be reopened: retry",
                    ));
                }
                Err(still_read) => {
                    db = still_read;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    /// Puts a freshly opened database in.
    pub(super) fn put(&self, db: Database) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
    }
}
