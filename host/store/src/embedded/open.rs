//! Opening the data file: redb's integrity check, the format version, and the
//! full verification of the store's own invariants.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Builder, Database, Durability, ReadableDatabase, ReadableTable, TableHandle};

use super::errors::{InFile, corrupt, unavailable};
use super::faults::{Commits, FaultyFile, WriteFaults};
use super::journal::{self, Journal};
use super::ops::{self, Tables};
use super::tables::{
    COMMANDS, EVENTS, FORMAT_VERSION, FORMAT_VERSION_KEY, FORMAT_VERSIONS_READ, META,
    NAMESPACE_BYTES, NAMESPACE_LOG, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX, TABLE_NAMES,
};
use super::tables::{JOURNAL_GENERATION_KEY, JOURNAL_LSN_KEY};
use super::verify::{self, Verified};
use super::watermark::Watermark;
use super::{codec, read};
use crate::StoreError;

/// The data file inside the store's directory.
pub(super) const FILE_NAME: &str = "events.redb";

/// redb's page cache. Reads of recent events hit it; older ones go to disk.
const CACHE_BYTES: usize = 256 << 20;

/// An opened and verified store, ready for the writer thread.
pub(super) struct Opened {
    pub(super) db: Database,
    pub(super) path: PathBuf,
    pub(super) verified: Verified,
    pub(super) watermark: Watermark,
    /// The commit journal, positioned after the entries replayed (which
    /// the writer's next checkpoint makes durable in the data file); `None`
    /// if it could not be created (a full disk): the writer then commits
    /// every batch to redb durably.
    pub(super) journal: Option<Journal>,
    /// The number of the last batch the data file holds.
    pub(super) lsn: u64,
}

/// Creates `dir` if needed, opens (or creates) its data file, replays the
/// journal's batches since the last checkpoint into it, verifies it and
/// checks it against the head watermark. With `faults`, the files' writes
/// fail on demand (the store's tests).
pub(super) fn open(dir: &Path, faults: Option<&Arc<WriteFaults>>) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(dir).map_err(|error| {
        unavailable(
            dir,
            format_args!("cannot create the store directory: {error}"),
        )
    })?;
    let path = dir.join(FILE_NAME);
    if faults.is_none() && !path.exists() {
        create_new(dir, &path)?;
    }
    // redb would initialise an empty file as a new database, silently
    // turning a store truncated to nothing into an empty one.
    if std::fs::metadata(&path).is_ok_and(|file| file.len() == 0) {
        let message = "the data file is empty (truncated?); restore it from a backup, or delete \
                       it to start an empty store"
            .to_owned();
        return Err(corrupt(&path, "length", message));
    }
    // redb reports a damaged file as an error when it checks integrity on
    // open, but it is a large codebase reading hostile bytes: a panic on some
    // damage it did not foresee must still become "corrupt", not a crash.
    let mut journal = open_journal(dir, faults)?;
    let opened = catch_unwind(AssertUnwindSafe(|| {
        open_file(&path, faults, journal.as_mut())
    }));
    let (db, verified, lsn) = opened.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(StoreError::Corrupt {
            location: path.display().to_string(),
            message: format!("redb panicked while opening the file: {message}"),
        })
    })?;
    let watermark = Watermark::check(dir, &path, verified.events)?;
    Ok(Opened {
        db,
        path,
        verified,
        watermark,
        journal,
        lsn,
    })
}

/// The store's journal. One that exists must be opened and read (it may
/// hold acknowledged batches); one that cannot be created (a full disk) is
/// done without until the next open.
fn open_journal(
    dir: &Path,
    faults: Option<&Arc<WriteFaults>>,
) -> Result<Option<Journal>, StoreError> {
    if faults.is_some_and(|faults| faults.commits() == Commits::Direct) {
        return Ok(None);
    }
    let exists = dir.join(journal::FILE_NAME).exists();
    match Journal::open(dir, faults.cloned()) {
        Ok(journal) => Ok(Some(journal)),
        Err(error) if !exists => {
            tracing::warn!(%error, "no commit journal: every batch is committed to the data file");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Applies the journal's batches after the last one the data file holds,
/// in one transaction committed without a sync (they are durable in the
/// journal, which goes on after them until the writer's next checkpoint);
/// returns the number of the last batch stored. Nothing here needs the
/// disk to have room, so a store opens, and serves reads, on a full disk.
fn replay(db: &Database, path: &Path, journal: &mut Journal) -> Result<u64, StoreError> {
    let (last, generation) = stored_checkpoint(db, path)?;
    let entries = journal.entries_after(last, generation)?;
    let Some((newest, _)) = entries.last() else {
        return Ok(last);
    };
    let newest = *newest;
    let mut txn = db.begin_write().in_file(path)?;
    txn.set_durability(Durability::None)
        .map_err(|error| unavailable(path, error))?;
    {
        let mut tables = Tables::open(&txn, path)?;
        for (lsn, payload) in &entries {
            let writes = ops::decode(payload)
                .map_err(|message| corrupt(journal.path(), format!("entry {lsn}"), message))?;
            for write in writes {
                write.write(&mut tables, path)?;
            }
        }
    }
    txn.commit().in_file(path)?;
    tracing::info!(
        path = %journal.path().display(),
        batches = entries.len(),
        "replayed the commit journal"
    );
    Ok(newest)
}

/// The number of the last batch the data file holds and the journal's
/// generation since (0 and 0: none recorded).
fn stored_checkpoint(db: &Database, path: &Path) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_read().in_file(path)?;
    let meta = txn.open_table(META).in_file(path)?;
    let get = |key| -> Result<u64, StoreError> {
        Ok(meta.get(key).in_file(path)?.map_or(0, |v| v.value()))
    };
    Ok((get(JOURNAL_LSN_KEY)?, get(JOURNAL_GENERATION_KEY)?))
}

/// Records in `META` that the data file holds the batches up to `lsn`, and
/// that the journal's entries after it are of `generation`.
pub(super) fn record_checkpoint(
    txn: &redb::WriteTransaction,
    path: &Path,
    lsn: u64,
    generation: u64,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).in_file(path)?;
    meta.insert(JOURNAL_LSN_KEY, lsn).in_file(path)?;
    meta.insert(JOURNAL_GENERATION_KEY, generation)
        .in_file(path)?;
    Ok(())
}

/// Creates a new, empty store as one step: built and committed under a
/// temporary name, then renamed into place and the directory synced.
///
/// **Invariant:** a crash while a store is created leaves no data file,
/// only the temporary one (which the next open replaces), so a store that
/// never acknowledged anything never opens as corrupt.
fn create_new(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let fresh = path.with_extension("redb.new");
    // What a crashed creation left behind.
    match std::fs::remove_file(&fresh) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(unavailable(&fresh, error)),
    }
    {
        let db = Builder::new().create(&fresh).in_file(&fresh)?;
        init_format(&db, &fresh)?;
    }
    std::fs::rename(&fresh, path).map_err(|error| unavailable(path, error))?;
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| unavailable(dir, format_args!("cannot sync the directory: {error}")))
}

fn open_file(
    path: &Path,
    faults: Option<&Arc<WriteFaults>>,
    journal: Option<&mut Journal>,
) -> Result<(Database, Verified, u64), StoreError> {
    let mut builder = Builder::new();
    // Verifies the checksum of every page redb wrote (and repairs what a
    // crash left half-written) before anything is read.
    builder
        .set_check_integrity_on_open(true)
        .set_cache_size(CACHE_BYTES);
    let db = match faults {
        None => builder.create(path).in_file(path)?,
        Some(faults) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|error| unavailable(path, error))?;
            let backend = FaultyFile::new(file, Arc::clone(faults))
                .map_err(|error| unavailable(path, error))?;
            builder.create_with_backend(backend).in_file(path)?
        }
    };
    init_format(&db, path)?;
    let lsn = match journal {
        Some(journal) => replay(&db, path, journal)?,
        None => stored_checkpoint(&db, path)?.0,
    };
    let txn = db.begin_read().in_file(path)?;
    let verified = verify::verify(path, &txn)?;
    drop(txn);
    Ok((db, verified, lsn))
}

/// Checks the format version, or stamps it (and creates every table) in a
/// new file, or stamps the current version over [`FORMAT_VERSIONS_READ`].
/// Refuses a redb file that is some other application's. A file that is
/// already a complete store of this format is only read, so a store opens
/// (and serves reads) on a full disk; a file of the older format needs one
/// write to be stamped.
fn init_format(db: &Database, path: &Path) -> Result<(), StoreError> {
    if is_complete(db, path)? {
        return Ok(());
    }
    let txn = db.begin_write().in_file(path)?;
    let existing: Vec<String> = txn
        .list_tables()
        .in_file(path)?
        .map(|table| table.name().to_owned())
        .collect();
    let refused = {
        let mut meta = txn.open_table(META).in_file(path)?;
        let stamped = meta
            .get(FORMAT_VERSION_KEY)
            .in_file(path)?
            .map(|v| v.value());
        match stamped {
            Some(FORMAT_VERSION) => None,
            // Its records stay as they are (record versions 2 and 3 are
            // read); the stamp keeps builds that read only older formats
            // away once version 3 records and journaled batches may be
            // written (see `FORMAT_VERSION`).
            Some(older) if FORMAT_VERSIONS_READ.contains(&older) => {
                meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)
                    .in_file(path)?;
                None
            }
            Some(1) => Some(format!(
                "the store has on-disk format version 1 (one log for all namespaces), this \
                 build reads only versions {} (a log per namespace) and does not convert it: \
                 open it with the Aether version that wrote it, or start an empty store in \
                 another directory",
                readable_versions()
            )),
            Some(other) => Some(format!(
                "the store has on-disk format version {other}, this build reads only versions \
                 {}: open it with the Aether version that wrote it",
                readable_versions()
            )),
            None if existing.is_empty() => {
                meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)
                    .in_file(path)?;
                None
            }
            None => Some(format!(
                "the file is a redb database but not an Aether event store (it has the tables \
                 {existing:?} and no format version): use another directory"
            )),
        }
    };
    if let Some(message) = refused {
        txn.abort().in_file(path)?;
        return Err(corrupt(path, "meta table", message));
    }
    if let Some(foreign) = existing
        .iter()
        .find(|name| !TABLE_NAMES.contains(&name.as_str()))
    {
        txn.abort().in_file(path)?;
        let message = format!("the file has a table {foreign:?} that Aether never writes");
        return Err(corrupt(path, "table list", message));
    }
    txn.open_table(EVENTS).in_file(path)?;
    txn.open_table(NAMESPACE_LOG).in_file(path)?;
    txn.open_table(STREAM_INDEX).in_file(path)?;
    txn.open_table(STREAM_HEADS).in_file(path)?;
    txn.open_table(COMMANDS).in_file(path)?;
    txn.open_table(SNAPSHOTS).in_file(path)?;
    if !existing.iter().any(|name| name == "namespace_bytes") {
        count_namespace_bytes(&txn, path)?;
    }
    txn.commit().in_file(path)
}

/// "2, 3 and 4": the format versions this build opens.
fn readable_versions() -> String {
    let older: Vec<String> = FORMAT_VERSIONS_READ.iter().map(u64::to_string).collect();
    format!("{} and {FORMAT_VERSION}", older.join(", "))
}

/// Creates [`NAMESPACE_BYTES`] from the stored events (a store written
/// before the table existed; empty for a new store).
fn count_namespace_bytes(txn: &redb::WriteTransaction, path: &Path) -> Result<(), StoreError> {
    let mut totals = std::collections::HashMap::<String, u64>::new();
    {
        let events = txn.open_table(EVENTS).in_file(path)?;
        for entry in events.iter().in_file(path)? {
            let (sequence, record) = entry.in_file(path)?;
            let event = codec::decode_event(sequence.value(), record.value())
                .map_err(|message| corrupt(path, read::at_sequence(sequence.value()), message))?;
            *totals
                .entry(event.stream.namespace.as_str().to_owned())
                .or_default() += event.data.len() as u64;
        }
    }
    let mut bytes = txn.open_table(NAMESPACE_BYTES).in_file(path)?;
    for (namespace, total) in &totals {
        bytes.insert(namespace.as_str(), *total).in_file(path)?;
    }
    Ok(())
}

/// Whether the file is stamped with this format version and has exactly
/// the store's tables (nothing to create or refuse).
fn is_complete(db: &Database, path: &Path) -> Result<bool, StoreError> {
    let txn = db.begin_read().in_file(path)?;
    let tables: Vec<String> = txn
        .list_tables()
        .in_file(path)?
        .map(|table| table.name().to_owned())
        .collect();
    if tables.len() != TABLE_NAMES.len()
        || !TABLE_NAMES
            .iter()
            .all(|name| tables.iter().any(|t| t == name))
    {
        return Ok(false);
    }
    let meta = txn.open_table(META).in_file(path)?;
    let stamped = meta
        .get(FORMAT_VERSION_KEY)
        .in_file(path)?
        .map(|v| v.value());
    Ok(stamped == Some(FORMAT_VERSION))
}
