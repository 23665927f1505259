//! [`EmbeddedStore`]: the durable default backend, one [redb] file on local
//! disk, with group commit.
//!
//! ```
//! use aether_store::{
//!     AppendRequest, EmbeddedStore, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId,
//! };
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let stream = StreamId::new("bank".parse()?, "bank-account".parse()?, "acc-1".parse()?);
//! let request = AppendRequest {
//!     stream: stream.clone(),
//!     expected: ExpectedVersion::Exact(0),
//!     events: vec![NewEvent::json("opened", br#"{"owner":"ada"}"#.to_vec())],
//!     metadata: EventMetadata::default(),
//!     timestamp_ms: 1_700_000_000_000,
//! };
//! {
//!     let store = EmbeddedStore::open(dir.path())?;
//!     store.append(request).await?; // fsync'd before this returns
//! } // dropping the store closes the file
//! let store = EmbeddedStore::open(dir.path())?;
//! assert_eq!(store.stream_version(&stream).await?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Lifecycle and durability
//!
//! [`EmbeddedStore::open`] creates the directory if needed, opens (or creates)
//! `<dir>/events.redb`, lets redb verify every page checksum (and roll back a
//! commit that a crash left half-written), checks the format version,
//! verifies every record and index (see [Corruption](#corruption)) and checks
//! the head against the watermark `<dir>/events.head` ([`watermark`]). Only
//! then does it start the writer thread. One store (in one process) at a time
//! may have the file open; a second open fails as [`StoreError::Unavailable`].
//!
//! **Group commit.** One writer thread owns the write side ([`writer`]).
//! `append` and `save_snapshot` send their job over a channel and wait for
//! the reply. The writer takes every job queued (up to 1 024 jobs or 16 MiB),
//! applies them in ONE write transaction (each checked on its own, against the
//! state including the earlier jobs of the batch, see [`apply`]), makes the
//! batch durable with one fsync (see **Commits** below), and only then
//! replies (then makes the batch visible and records the new head in the
//! watermark). An append's future
//! therefore resolves `Ok` only once its events are on disk, and concurrent
//! appends share the fsyncs: the more writers wait, the bigger the batch.
//! Namespace positions (and the internal log sequences) are assigned only
//! in [`apply`], which is what keeps them gapless (the invariant is stated
//! there).
//!
//! **Commits** (since 2026-12-05) go through the commit journal
//! `<dir>/events.journal` ([`journal`]): the batch's table writes
//! ([`ops`]) are appended to it as one checksummed entry and synced (ONE
//! `fdatasync` of one sequential write), and only then is the redb
//! transaction committed, without a sync of its own (`Durability::None`),
//! which makes it visible to readers. The batch's jobs are answered between
//! the two (the commit is off the answers' path); a read that begins after
//! an answer waits for that commit (see [`slot`]), so it never misses an
//! answered write. While more jobs are queued, later batches are applied
//! in the same transaction before it is committed (at most 10 ms, and at
//! once when a read waits: see [`writer`]). At least once a second, and whenever
//! the journal is half full, the writer makes redb durable with an ordinary
//! commit (a *checkpoint*: redb's default 1-phase commit with checksums,
//! one `fdatasync`) that records the number of the last batch it holds,
//! and the journal starts over. A batch too big for the journal, and every
//! batch of a store whose journal could not be created (a full disk), is
//! committed that way directly. `open` replays the journal's entries after
//! the last checkpoint. The guarantee, and what enforces each part:
//!
//! - **An acknowledged append survives `kill -9` and power loss.** A batch
//!   is acknowledged only after its journal entry's fsync returned (or its
//!   durable commit's), and the journal is started over only after a
//!   checkpoint made everything before it durable in the data file.
//!   `kill -9` loses nothing that was written (the page cache survives the
//!   process).
//! - **A torn commit is detected, and is never half there.** An entry cut
//!   by a crash fails its CRC-32 and ends the replay (it was never
//!   acknowledged: its sync had not returned); entries are numbered
//!   consecutively from the checkpoint's and carry the random generation
//!   drawn at it, so a stale entry from before the last start-over (or one
//!   forged inside event data) is never replayed. A checkpoint or direct commit cut
//!   by a crash fails redb's checksums and redb opens the commit before
//!   (the open always runs that check, see `set_check_integrity_on_open` in
//!   `open.rs`); the journal still holds everything since that one. Either
//!   a batch is there whole or not at all.
//! - **A damaged acknowledged commit is reported, not rolled back.** A
//!   damaged journal entry ends the replay early, and redb cannot tell bit
//!   rot in its newest commit from a torn one, so it falls back silently.
//!   The head watermark `events.head` ([`watermark`]) catches both: `open`
//!   refuses a store whose last log sequence, after the replay, is below
//!   the watermark. The watermark is written after the batch's fsync
//!   returned (never ahead of durable data) and synced at most a second
//!   later, so this holds except for damage to a batch of the last second
//!   before a power loss.
//! - **Nothing is visible before it is durable.** The redb transaction of a
//!   journaled batch commits after the entry's sync, so a reader never sees
//!   an event that a power loss could take back.
//!
//! redb's design notes one more difference: 1-phase commit trusts XXH3
//! page checksums to spot a torn commit, so an attacker who controls the
//! payloads, the order in which the disk flushes pages, and when the machine
//! crashes could in theory forge a partial commit that verifies. Here that
//! commit would also have to pass the store's own verification on open
//! (record checksums, gapless sequences, positions and versions,
//! indexes and heads that agree).
//!
//! Until 2026-12-03 the store used redb's 2-phase commit (two fsyncs per
//! commit: the pages and the new slot, then the header bit); until
//! 2026-12-05 every batch was a 1-phase redb commit (one fsync, but of the
//! ~14 pages a one-event append dirties, which costs two to three times
//! a one-page sync on the disks measured). `tests/power_loss.rs` rebuilds
//! what a power loss at every sync of either file can leave on disk
//! (including torn writes), through the journal, with a checkpoint after
//! every batch, and without the journal, and checks the first two points
//! and that the watermark never runs ahead; `tests/corruption.rs` flips
//! bits in the data file and the journal of a crashed store (the third
//! point); the `tests/crash` crate kills a writer process ≥ 100 times
//! mid-append.
//!
//! Reads run on Tokio's blocking pool, each in its own redb read transaction
//! (a consistent snapshot), and never wait for the writer. Dropping the store
//! lets the writer finish the jobs already queued, then closes the file; the
//! drop blocks until then (one commit, normally a few milliseconds), so
//! reopening the same directory right after the drop works.
//!
//! # On-disk format (format version 4)
//!
//! Events of all namespaces are stored once, in commit order, under an
//! internal *log sequence* (1, 2, 3… across the store, gapless); each
//! namespace's log is an index from (namespace, position) to that sequence,
//! so reading one namespace's log is a range scan of its index entries.
//! Reading a stream scans its index entries, then reads the records they
//! point at: a run of log sequences at most 3 records apart (one append's
//! events, an aggregate written alone, or interleaved with a few others)
//! with one range scan of the events table that steps over the records in
//! between, any other with a lookup each.
//!
//! Tables (all keys and integers are redb's own encoding of the key types):
//!
//! | Table | Key | Value |
//! |---|---|---|
//! | `events` | log sequence `u64` | event record (below) |
//! | `namespace_log` | (namespace `&str`, position `u64`) | log sequence `u64` |
//! | `stream_index` | (stream key `&str`, version `u64`) | log sequence `u64` |
//! | `stream_heads` | stream key `&str` | version `u64` |
//! | `commands` | (stream key `&str`, command id `&str`) | (first version, last version) `(u64, u64)` |
//! | `snapshots` | (stream key `&str`, component digest `&str`) | snapshot record (below) |
//! | `namespace_bytes` | namespace `&str` | its events' payload bytes `u64` |
//! | `meta` | name `&str` | `u64`; `format_version` → 4, `journal_lsn` → the last batch the file holds |
//!
//! A stream key is `namespace/aggregate-type/aggregate-id` ([`StreamId`]'s
//! display form, unambiguous because names never contain `/`).
//!
//! Next to the data file: `events.journal`, the commit journal (its format
//! is in [`journal`], its entries' payloads in [`ops`]), and `events.head`,
//! the watermark ([`watermark`]).
//!
//! Format version 1 (up to the change to per-namespace logs) had one global
//! log: no `namespace_log`, and the record's position was global. Format
//! version 2 had these tables and wrote event records of record version 2
//! (below); format version 3 wrote record version 3 and had no journal. A
//! file of format 2 or 3 is read as it is and stamped 4 when opened (one
//! small write; nothing is converted): a build that does not replay the
//! journal must not open a file whose newest batches may be only there. A
//! file of any other format version is refused on open ([`StoreError::Corrupt`] naming
//! the file, the version found and the version this build reads); it is
//! never converted or read as if it were the current format.
//!
//! An **event record**, integers little-endian, `str` = `u32` length + UTF-8
//! bytes, `opt` = one byte 0 (absent) or 1 followed by a `str`. Record
//! version 3 is written; version 2 records (written until 2026-12-03, by
//! format version 2) have the same fields and differ only in their
//! checksum, and are still read, so one file can hold both:
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 1 | record version, 3 (or 2) |
//! | 1 | 16 | event id (UUIDv7, RFC 9562 byte order) |
//! | 17 | 8 | stream version `u64` |
//! | 25 | 8 | log sequence `u64` (must equal the key) |
//! | 33 | 8 | position in the namespace's log `u64` |
//! | 41 | 8 | timestamp, Unix ms `u64` |
//! | 49 | … | `str` namespace, `str` aggregate type, `str` aggregate id, `str` event type, `str` content type |
//! | … | … | `opt` command id, `opt` correlation id, `opt` causation id, `opt` component digest |
//! | … | … | event data: `u32` length + bytes |
//! | end − 4 | 4 | version 3: checksum, CRC-32 (IEEE, zlib's) of key ‖ every preceding byte of the record, `u32` LE, where key = the log sequence as `u64` LE |
//! | end − 16 | 16 | version 2 instead: the first 16 bytes of blake3(key ‖ every preceding byte of the record) |
//!
//! A record of version 1 (no namespace position) or any other version is
//! refused as [`StoreError::Corrupt`]. The version byte is read before the
//! checksum is verified, because it says which checksum to verify, but the
//! checksum covers it: a damaged version byte names an unsupported version
//! or picks the other checksum, which fails.
//!
//! **Why CRC-32 is enough for event records.** The record checksum guards
//! against torn and damaged records (a bug, a bad disk, a crash), not
//! against someone who rewrites the file on purpose: they could recompute an
//! unkeyed blake3 as easily. CRC-32 detects every burst of damage up to 32
//! bits (every flipped bit, every damaged byte) and any other damage except
//! with probability 2⁻³², and it is the second line: redb verifies its page
//! checksums on open and for a torn commit (see **Commits**). Binding the key
//! into it, and repeating the log sequence in the record, still catches a
//! record that ended up under another key. Every read verifies every record
//! it returns, so the checksum is on the read path: blake3 cost about a
//! quarter of a stream read of small events, the CRC about 3 %. blake3
//! stays where a digest must resist collisions (component digests, which
//! also key snapshots) and in snapshot records, read once per activation.
//!
//! A build from before record version 3 reads only format version 2, so it
//! refuses a file this build has opened (stamped 4) by its format version,
//! before it reads a record (whose checksum it could not verify). Going back
//! to an older build after this one opened the store is not possible.
//!
//! A **snapshot record**: byte 0 record version (1), bytes 1..9 stream version
//! `u64`, 9..17 timestamp `u64`, then the state as `u32` length + bytes, then
//! 16 checksum bytes: blake3(`str` stream key ‖ `str` component digest ‖ every
//! preceding byte)[..16]. Binding the key into the checksum means a record
//! that ends up under another key does not verify.
//!
//! # Corruption
//!
//! Damaged data is never served. `open` fails with [`StoreError::Corrupt`],
//! naming the file and what is wrong, when redb's page checksums fail, the
//! file is truncated, empty or not a redb file, the format version differs,
//! the last log sequence is below the watermark (the file went back to an
//! older commit), or the store's own invariants do not hold: any record
//! checksum, log sequences gapless from 1, each namespace's positions and
//! each stream's versions gapless from 1 in log order, the namespace logs
//! and the stream index pointing at exactly those events, heads equal to each
//! stream's last version, command ids pointing at stored versions, snapshot
//! checksums ([`verify`]). Every read verifies the records it returns again, so damage
//! that appears while the store is open is reported as `Corrupt` too. A
//! format version mismatch is reported as `Corrupt` as well (there is no
//! better-fitting variant yet); its message says which version was found.
//!
//! Verifying everything on open costs one pass over the file, linear in its
//! size: about 160 ms per 100 000 small events in a release build (1.4 s in a
//! debug build) on the 2-core machine it was written on, and two `u64`s of
//! memory per event while it runs (measured when this was written; the
//! test that printed them is gone).
//!
//! [redb]: https://www.redb.org

use crate::request::AppendRequestExt;
use std::path::Path;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableDatabase};
use tokio::sync::oneshot;

use super::{
    AppendError, AppendOutcome, AppendRequest, AppendStep, AppendThen, EventStore, RecordedEvent,
    ReplayBatch, Snapshot, StoreError, StreamId,
};
use aether_core::namespace::Namespace;
use errors::{InFile, unavailable};
use faults::WriteFaults;
use slot::DbSlot;
use tables::{
    COMMANDS, EVENTS, NAMESPACE_BYTES, NAMESPACE_LOG, SNAPSHOTS, STREAM_HEADS, STREAM_INDEX,
    stream_key,
};
use writer::{AppendReply, Continue, Job, Reopen, Then, Writer};

mod apply;
mod codec;
mod errors;
mod faults;
mod journal;
mod open;
mod ops;
mod read;
mod slot;
mod tables;
mod verify;
mod watermark;
mod writer;

#[cfg(test)]
mod tests;

/// A durable [`EventStore`] in one [redb](https://www.redb.org) file,
/// `<dir>/events.redb`.
///
/// An append resolves `Ok` only after its transaction is committed with fsync;
/// concurrent appends are committed together by one writer thread (group
/// commit), so they share fsyncs. Reads never wait for the writer. The whole
/// file is verified when it is opened, every record carries a checksum that
/// every read checks, and damaged data is reported as
/// [`StoreError::Corrupt`], never served. Dropping the store waits for the
/// writes already queued and closes the file.
pub struct EmbeddedStore {
    /// Dropped first: closes the queue and waits for the writer thread.
    writer: Writer,
    slot: Arc<DbSlot>,
    path: Arc<Path>,
    opened_with: verify::Verified,
}

impl EmbeddedStore {
    /// Opens the store in `dir` (creating the directory and the data file
    /// `events.redb` if missing), after verifying the whole file; the writer
    /// continues from what is stored.
    ///
    /// Errors: [`StoreError::Corrupt`] when the file is damaged, not a redb
    /// file, of another format version, or older than the head recorded in
    /// `events.head` (the message names the file and what is wrong);
    /// [`StoreError::Unavailable`] when the directory cannot be created or the
    /// file is already open elsewhere.
    ///
    /// Verification reads every record, so this takes time linear in the
    /// size of the store (about 160 ms per 100 000 small events in a release
    /// build). Call it from a blocking context or `spawn_blocking` if that
    /// matters.
    pub fn open(dir: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(dir.as_ref(), None)
    }

    /// [`EmbeddedStore::open`], with writes that fail on demand.
    fn open_with(
        dir: &Path,
        faults: Option<Arc<WriteFaults>>,
    ) -> Result<EmbeddedStore, StoreError> {
        let opened = open::open(dir, faults.as_ref())?;
        let (slot, path) = (DbSlot::new(opened.db), Arc::<Path>::from(opened.path));
        let reopen = Reopen {
            dir: dir.to_path_buf(),
            faults,
        };
        let opened_at = Continue {
            watermark: opened.watermark,
            journal: opened.journal,
            lsn: opened.lsn,
        };
        let writer = Writer::spawn(Arc::clone(&slot), Arc::clone(&path), reopen, opened_at)?;
        Ok(EmbeddedStore {
            writer,
            slot,
            path,
            opened_with: opened.verified,
        })
    }

    /// Whether writes go through now. After a write failed (a full disk,
    /// an I/O error), this reopens the file and tries a small commit, so a
    /// store whose disk has room again recovers without a restart.
    async fn writable(&self) -> Result<(), StoreError> {
        if self.slot.writable() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        if self.writer.send(Job::Probe(reply)).await.is_err() {
            return Err(self.writer_gone());
        }
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer_gone(&self) -> StoreError {
        writer_gone(&self.path)
    }

    /// Runs `read` in a read transaction on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (slot, path) = (Arc::clone(&self.slot), Arc::clone(&self.path));
        let task = tokio::task::spawn_blocking(move || {
            let db = slot.get_for_read(&path)?;
            let txn = db.begin_read().in_file(&path)?;
            read(&path, &txn)
        });
        let result = task
            .await
            .map_err(|error| unavailable(&self.path, format_args!("a read failed: {error}")))?;
        if matches!(result, Err(StoreError::Unavailable { .. })) && !self.slot.writable() {
            // redb latched a write's I/O error on this database: reopening
            // it serves reads again.
            self.writer.nudge();
        }
        result
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("events_at_open", &self.opened_with.events)
            .field("streams_at_open", &self.opened_with.streams)
            .field("commits", &self.writer.commits())
            .finish()
    }
}

/// The error once the writer thread of the store at `path` has stopped.
fn writer_gone(path: &Path) -> StoreError {
    unavailable(
        path,
        "the writer thread has stopped (see the log for why): reopen the store",
    )
}

#[async_trait::async_trait]
impl EventStore for EmbeddedStore {
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.writable().await
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        request.check()?;
        let (reply, answer) = oneshot::channel();
        let reply = AppendReply::Await(reply);
        if self.writer.send(Job::Append(request, reply)).await.is_err() {
            return Err(self.writer_gone().into());
        }
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// Queues the append for the writer now, if its queue has room: the
    /// caller's thread hands it straight to the writer (the runtime's
    /// partition thread that decided it, rather than an async worker
    /// after a wake-up), and the writer hands the outcome to `then`. A
    /// full queue, or a stopped writer, defers it to
    /// [`EventStore::append`], which waits for room or reports the writer gone.
    fn start_append(&self, request: AppendRequest, then: AppendThen) {
        if let Err(invalid) = request.check() {
            return then(AppendStep::Done(Err(invalid)));
        }
        let reply = AppendReply::Then(Then::new(then, Arc::clone(&self.path)));
        match self.writer.try_send(Job::Append(request, reply)) {
            None => {}
            Some(Job::Append(request, AppendReply::Then(then))) => {
                then.into_inner()(AppendStep::Deferred(request))
            }
            Some(_) => unreachable!("the writer gives back the job it was given"),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.clone();
        self.read(move |path, txn| {
            let index = txn.open_table(STREAM_INDEX).in_file(path)?;
            let events = txn.open_table(EVENTS).in_file(path)?;
            let key = stream_key(&stream);
            read::stream_events(path, &index, &events, &stream, &key, from_version, limit)
        })
        .await
    }

    /// Written straight from the records into the batch (see `read`).
    async fn read_replay_batch(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<ReplayBatch, StoreError> {
        let stream = stream.clone();
        self.read(move |path, txn| {
            let index = txn.open_table(STREAM_INDEX).in_file(path)?;
            let events = txn.open_table(EVENTS).in_file(path)?;
            let key = stream_key(&stream);
            read::stream_events(path, &index, &events, &stream, &key, from_version, limit)
        })
        .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let key = stream_key(stream);
        self.read(move |path, txn| {
            let heads = txn.open_table(STREAM_HEADS).in_file(path)?;
            let head = heads.get(key.as_str()).in_file(path)?;
            Ok(head.map_or(0, |version| version.value()))
        })
        .await
    }

    async fn command_events(
        &self,
        stream: &StreamId,
        command_id: &str,
    ) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let (stream, command_id) = (stream.clone(), command_id.to_owned());
        self.read(move |path, txn| {
            let commands = txn.open_table(COMMANDS).in_file(path)?;
            let index = txn.open_table(STREAM_INDEX).in_file(path)?;
            let events = txn.open_table(EVENTS).in_file(path)?;
            let key = stream_key(&stream);
            read::command_events(path, &commands, &index, &events, &stream, &key, &command_id)
        })
        .await
    }

    async fn read_log(
        &self,
        namespace: &Namespace,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let namespace = namespace.clone();
        self.read(move |path, txn| {
            let log = txn.open_table(NAMESPACE_LOG).in_file(path)?;
            let events = txn.open_table(EVENTS).in_file(path)?;
            read::log_events(
                path,
                &log,
                &events,
                namespace.as_str(),
                from_position,
                limit,
            )
        })
        .await
    }

    async fn head_position(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        let namespace = namespace.clone();
        self.read(move |path, txn| {
            let log = txn.open_table(NAMESPACE_LOG).in_file(path)?;
            read::namespace_head(path, &log, namespace.as_str())
        })
        .await
    }

    async fn stored_bytes(&self, namespace: &Namespace) -> Result<u64, StoreError> {
        let namespace = namespace.clone();
        self.read(move |path, txn| {
            let bytes = txn.open_table(NAMESPACE_BYTES).in_file(path)?;
            let stored = bytes.get(namespace.as_str()).in_file(path)?;
            Ok(stored.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self
            .writer
            .send(Job::Snapshot(snapshot, reply))
            .await
            .is_err()
        {
            return Err(self.writer_gone());
        }
        answer.await.map_err(|_| self.writer_gone())?
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_key: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let (stream, digest) = (stream.clone(), snapshot_key.to_owned());
        self.read(move |path, txn| {
            let snapshots = txn.open_table(SNAPSHOTS).in_file(path)?;
            read::snapshot(path, &snapshots, &stream, &stream_key(&stream), &digest)
        })
        .await
    }
}
