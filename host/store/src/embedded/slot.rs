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
//!
//! **Invariant: a read sees every batch answered before it began.** The
//! writer answers a journaled batch as soon as its journal entry is durable
//! and commits the redb transaction (which makes it visible) later: right
//! after when nothing else is queued, else after the batch it is on once a
//! read waits, or within the writer's `OPEN_AT_MOST` ([`super::writer`]).
//! It records the batch's number as [acknowledged](DbSlot::acknowledge)
//! before the first answer and as [visible](DbSlot::show) after the
//! commit; a read waits until every batch acknowledged when it began is
//! visible (telling the writer it waits), or, if that commit failed and the
//! reopen that replays it is slow, answers [`StoreError::Unavailable`]
//! after [`REOPEN_WAIT`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The number of the last batch answered (see the module docs).
    acknowledged: AtomicU64,
    /// The number of the last batch committed to the database in the slot.
    visible: AtomicU64,
    /// A read waits for an answered batch to become visible: the writer
    /// commits its open transaction after the batch it is on.
    read_waiting: AtomicBool,
}

impl DbSlot {
    pub(super) fn new(db: Database) -> Arc<DbSlot> {
        Arc::new(DbSlot {
            db: RwLock::new(Some(Arc::new(db))),
            writable: AtomicBool::new(true),
            acknowledged: AtomicU64::new(0),
            visible: AtomicU64::new(0),
            read_waiting: AtomicBool::new(false),
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

    /// The database for a read, once every batch answered so far is
    /// visible in it: waits up to [`REOPEN_WAIT`] for that and for a reopen
    /// in progress, so that reads go on across the reopens a full disk
    /// causes. Blocks: call it on a blocking thread.
    pub(super) fn get_for_read(&self, path: &Path) -> Result<Arc<Database>, StoreError> {
        let acknowledged = self.acknowledged.load(Ordering::Acquire);
        let deadline = Instant::now() + REOPEN_WAIT;
        let mut tries = 0u32;
        loop {
            let visible = self.visible.load(Ordering::Acquire) >= acknowledged;
            let late = Instant::now() >= deadline;
            match (visible, late) {
                (true, _) => match self.get(path) {
                    Err(_) if !late => {}
                    answer => return answer,
                },
                (false, true) => {
                    return Err(unavailable(
                        path,
                        "a write already answered is not readable yet (its commit failed \
                         and the file is being reopened): retry",
                    ));
                }
                (false, false) => self.read_waiting.store(true, Ordering::Release),
            }
            // The usual wait is one redb commit: yield at first.
            tries += 1;
            if tries < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Batch `lsn` is durable and about to be answered (its commit to the
    /// database may follow): reads that begin from now on wait for it.
    pub(super) fn acknowledge(&self, lsn: u64) {
        self.acknowledged.fetch_max(lsn, Ordering::Release);
    }

    /// Batches up to `lsn` are committed to the database in the slot.
    pub(super) fn show(&self, lsn: u64) {
        self.visible.fetch_max(lsn, Ordering::Release);
    }

    /// Whether a batch was answered that is not visible yet.
    pub(super) fn answered_unseen(&self) -> bool {
        self.visible.load(Ordering::Acquire) < self.acknowledged.load(Ordering::Acquire)
    }

    /// Whether a read has been waiting for an answered batch to become
    /// visible since the last call (which clears it).
    pub(super) fn take_read_waiting(&self) -> bool {
        self.read_waiting.load(Ordering::Relaxed) && self.read_waiting.swap(false, Ordering::AcqRel)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn slot(dir: &Path) -> Arc<DbSlot> {
        DbSlot::new(Database::create(dir.join("slot.redb")).unwrap())
    }

    #[test]
    fn a_read_waits_until_every_answered_batch_is_visible() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot(dir.path());
        slot.acknowledge(7);
        slot.show(6);
        let shown = Arc::new(AtomicBool::new(false));
        let writer = {
            let (slot, shown) = (Arc::clone(&slot), Arc::clone(&shown));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                shown.store(true, Ordering::SeqCst);
                slot.show(7);
            })
        };
        slot.get_for_read(dir.path()).expect("readable once shown");
        assert!(shown.load(Ordering::SeqCst), "the read waited for batch 7");
        writer.join().unwrap();
        // Numbers only go up.
        slot.show(3);
        slot.acknowledge(2);
        slot.get_for_read(dir.path()).unwrap();
    }

    #[test]
    fn a_read_answers_unavailable_if_an_answered_batch_never_becomes_visible() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot(dir.path());
        slot.acknowledge(1);
        let error = slot.get_for_read(dir.path()).unwrap_err();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
        assert!(error.to_string().contains("retry"), "{error}");
    }
}
