//! The commit journal `events.journal`: where a batch is made durable, with
//! one sequential write and one `fdatasync`, before its redb transaction
//! commits without a sync of its own.
//!
//! A redb commit writes every B-tree page the batch changed (a one-event
//! append dirties about 14 pages over the store's tables) and syncs them; the
//! sync's cost grows with the pages (see BENCHMARKS.md, 2026-12-05). The
//! journal instead holds each batch as the list of table writes it made
//! ([`super::ops`]), appended at the end of the entries since the last
//! checkpoint. Every second, or once the journal is half full, the writer
//! makes redb durable with one ordinary commit (a *checkpoint*), recording
//! in `META` the number of the last batch it covers
//! ([`super::tables::JOURNAL_LSN_KEY`]), and starts the journal over.
//!
//! # Format
//!
//! The file is a run of entries from offset 0, each a 32-byte header and a
//! payload, integers little-endian:
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | magic `AEJ1` |
//! | 4 | 4 | payload length |
//! | 8 | 8 | the batch's number (*lsn*), one more than the entry before |
//! | 16 | 8 | the journal's generation (below) |
//! | 24 | 4 | CRC-32 of bytes 4..24 ‖ the payload |
//! | 28 | 4 | zero |
//!
//! Bytes after the last entry are stale: zeros, or entries written before
//! the last checkpoint (whose numbers are at most the checkpoint's).
//!
//! The **generation** is a random number drawn at each checkpoint and
//! recorded with it ([`super::tables::JOURNAL_GENERATION_KEY`]); the entries
//! written after that checkpoint carry it, and reading accepts no other.
//! Stale bytes after the last entry may hold event data a tenant chose,
//! including a well-formed entry with the right number and checksum (CRC-32
//! is not a secret); it would still need a generation drawn after it was
//! written.
//!
//! # Invariants
//!
//! - **Entries after the checkpoint are consecutive from its number + 1**,
//!   starting at offset 0, and carry its generation: the journal is started
//!   over only right after a durable commit that recorded the number of the
//!   last batch and the new generation, and every batch gets the next
//!   number. So reading stops, without ambiguity, at the
//!   first entry whose header or checksum fails or whose number is not the
//!   next: a torn entry (its sync never returned, so it was never
//!   acknowledged) or a stale one.
//! - **A batch is acknowledged only after its entry's sync returned**, and
//!   it becomes visible to readers only after that (its redb transaction
//!   commits after the entry is durable).
//! - **Replaying is idempotent**: an entry holds the values the batch wrote,
//!   not deltas, so applying an entry whose writes redb already made durable
//!   (e.g. by a readiness probe's commit) changes nothing.
//!
//! # Writes
//!
//! Where the file system allows it (not on tmpfs), an entry is written with
//! `O_DIRECT | O_DSYNC`: whole 4 KiB pages from the page the entry starts in
//! (its earlier bytes rewritten as they are, the rest after the entry zeros),
//! durable when the write returns, without the page cache and without a
//! separate `fdatasync` (about 80 µs against 100–115 µs for a write and a
//! sync of the same bytes on the machine measured; BENCHMARKS.md,
//! 2026-12-05, "Answers before the commit"). Elsewhere it is a
//! plain write and an `fdatasync`. A page's bytes before the entry are
//! rewritten unchanged either way (the page cache writes whole pages too).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::errors::unavailable;
use super::faults::{FileKind, WriteFaults};
use crate::StoreError;

/// The journal inside the store's directory.
pub(super) const FILE_NAME: &str = "events.journal";

/// The most the journal grows to. A batch whose entry does not fit after
/// the entries since the last checkpoint is committed to redb durably
/// instead (and the journal starts over).
pub(super) const CAPACITY: u64 = 32 << 20;

/// A new journal's length: it grows (filled with zeros and synced, so that
/// an entry's sync never has to allocate) by doubling up to [`CAPACITY`].
const INITIAL: u64 = 1 << 20;

const MAGIC: &[u8; 4] = b"AEJ1";
const HEADER: usize = 32;

/// The unit of a direct write: offsets, lengths and the buffer's address
/// are multiples of it (4 KiB covers 512-byte and 4 KiB logical blocks).
const PAGE: usize = 4096;

/// The open journal.
pub(super) struct Journal {
    /// Read at open and grown through the page cache.
    file: File,
    /// Where entries are written, if direct writes are possible here.
    direct: Option<Direct>,
    path: PathBuf,
    faults: Option<Arc<WriteFaults>>,
    /// The file's length (zeros beyond the entries).
    len: u64,
    /// Where the next entry goes.
    end: u64,
    /// The generation the entries since the last checkpoint carry.
    generation: u64,
}

/// A new generation for the journal: unpredictable outside this process
/// (SipHash under the keys std draws from the OS for `RandomState`, of the
/// time and a counter).
pub(super) fn new_generation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(DRAWN.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

impl Journal {
    /// Opens the journal in `dir`, creating it (zeros, synced, and the
    /// directory synced) if it is missing.
    pub(super) fn open(
        dir: &Path,
        faults: Option<Arc<WriteFaults>>,
    ) -> Result<Journal, StoreError> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| unavailable(&path, error))?;
        let len = file
            .metadata()
            .map_err(|error| unavailable(&path, error))?
            .len();
        let direct = Direct::open(&path);
        let mut journal = Journal {
            file,
            direct,
            path,
            faults,
            len,
            end: 0,
            generation: 0,
        };
        if journal.len < INITIAL {
            journal
                .grow_to(INITIAL)
                .map_err(|error| unavailable(&journal.path, error))?;
            File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| {
                    unavailable(dir, format_args!("cannot sync the directory: {error}"))
                })?;
        }
        Ok(journal)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The entries of `generation` numbered `after + 1`, `after + 2`… from
    /// the start of the file, up to the first that is missing, torn or
    /// stale; the next entry goes after them, in that generation.
    pub(super) fn entries_after(
        &mut self,
        after: u64,
        generation: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.generation = generation;
        let mut bytes = vec![0; self.len as usize];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|error| unavailable(&self.path, error))?;
        let mut entries = Vec::new();
        let mut at = 0;
        let mut next = after + 1;
        while let Some((lsn, payload)) = entry_at(&bytes, at, self.generation) {
            if lsn != next {
                break;
            }
            at += HEADER + payload.len();
            entries.push((lsn, payload.to_vec()));
            next += 1;
        }
        self.end = at as u64;
        if let Some(direct) = &mut self.direct {
            direct.tail.clear();
            direct.tail.extend_from_slice(&bytes[at / PAGE * PAGE..at]);
        }
        Ok(entries)
    }

    /// Whether an entry of `payload` bytes fits after those written since
    /// the journal last started over.
    pub(super) fn fits(&self, payload: usize) -> bool {
        self.end + (HEADER + payload) as u64 <= CAPACITY
    }

    /// How many bytes the entries since the last start over take.
    pub(super) fn used(&self) -> u64 {
        self.end
    }

    /// Writes the entry numbered `lsn` after the others and syncs it: once
    /// this returns `Ok`, the entry survives a power loss. The caller
    /// checked that it [`fits`](Journal::fits).
    pub(super) fn append(&mut self, lsn: u64, payload: &[u8]) -> io::Result<()> {
        let header = self.header(lsn, payload);
        let end = self.end + (HEADER + payload.len()) as u64;
        // A direct write ends at a page boundary.
        let written = end.next_multiple_of(PAGE as u64);
        if written > self.len {
            let mut len = self.len.max(INITIAL);
            while len < written {
                len *= 2;
            }
            self.grow_to(len.min(CAPACITY).max(written))?;
        }
        let faults = self.faults.as_deref();
        let direct =
            (self.direct.as_mut()).map(|direct| direct.write(self.end, &header, payload, faults));
        match direct {
            Some(Ok(())) => {}
            Some(Err(error)) if error.raw_os_error() != Some(libc::EINVAL) => return Err(error),
            // No direct writes here, or the file system refused one although
            // the open succeeded (plain writes from now on): a write and a sync.
            refused => {
                if refused.is_some() {
                    self.direct = None;
                }
                self.write_at(&[&header[..], payload].concat(), self.end)?;
                self.sync()?;
            }
        }
        self.end = end;
        Ok(())
    }

    /// The header of the entry numbered `lsn` holding `payload`.
    fn header(&self, lsn: u64, payload: &[u8]) -> [u8; HEADER] {
        let mut header = [0; HEADER];
        header[..4].copy_from_slice(MAGIC);
        header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[8..16].copy_from_slice(&lsn.to_le_bytes());
        header[16..24].copy_from_slice(&self.generation.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[4..24]);
        crc.update(payload);
        header[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
        header
    }

    /// Starts over at offset 0 in `generation`: only after a durable redb
    /// commit that recorded the number of the last entry and `generation`.
    pub(super) fn start_over(&mut self, generation: u64) {
        self.end = 0;
        self.generation = generation;
        if let Some(direct) = &mut self.direct {
            direct.tail.clear();
        }
    }

    /// Fills the file with zeros up to `len` and syncs it.
    fn grow_to(&mut self, len: u64) -> io::Result<()> {
        let zeros = vec![0; 1 << 20];
        let mut at = self.len;
        while at < len {
            let chunk = (len - at).min(zeros.len() as u64) as usize;
            self.write_at(&zeros[..chunk], at)?;
            at += chunk as u64;
        }
        self.sync()?;
        self.len = len.max(self.len);
        Ok(())
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_write(offset + bytes.len() as u64 > self.len)?;
        }
        self.file.write_all_at(bytes, offset)?;
        if let Some(faults) = &self.faults {
            faults.wrote(FileKind::Journal, offset, bytes);
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.syncing(FileKind::Journal)?;
        }
        self.file.sync_data()
    }
}

/// The journal opened a second time for direct, synchronous writes, with a
/// page-aligned buffer to write from.
struct Direct {
    file: File,
    /// Over-allocated by a page so that an aligned run of pages fits in it.
    buffer: Vec<u8>,
    /// The bytes of the last entries in the page the next entry starts in
    /// (fewer than a page).
    tail: Vec<u8>,
}

impl Direct {
    /// `None` where the file system has no direct I/O (tmpfs) or the open
    /// fails otherwise: the journal then writes through the page cache.
    fn open(path: &Path) -> Option<Direct> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
            .ok()?;
        Some(Direct {
            file,
            buffer: Vec::new(),
            tail: Vec::with_capacity(PAGE),
        })
    }

    /// Writes the entry (`header` and `payload`) that starts at `at` with
    /// one synchronous write of the pages it touches (see "Writes" above),
    /// and keeps the new last page's bytes ([`Direct::tail`] holds the
    /// bytes of `at`'s page before `at`).
    fn write(
        &mut self,
        at: u64,
        header: &[u8],
        payload: &[u8],
        faults: Option<&WriteFaults>,
    ) -> io::Result<()> {
        let Direct { file, buffer, tail } = self;
        let start = at / PAGE as u64 * PAGE as u64;
        let used = tail.len() + header.len() + payload.len();
        let pages = aligned(buffer, used.next_multiple_of(PAGE));
        let (before, rest) = pages.split_at_mut(tail.len());
        before.copy_from_slice(tail);
        let (head, rest) = rest.split_at_mut(header.len());
        head.copy_from_slice(header);
        let (body, after) = rest.split_at_mut(payload.len());
        body.copy_from_slice(payload);
        after.fill(0);
        if let Some(faults) = faults {
            faults.before_write(false)?;
        }
        file.write_all_at(pages, start)?;
        if let Some(faults) = faults {
            faults.wrote(FileKind::Journal, start, pages);
            faults.syncing(FileKind::Journal)?;
        }
        tail.clear();
        tail.extend_from_slice(&pages[used / PAGE * PAGE..used]);
        Ok(())
    }
}

/// A page-aligned slice of `len` bytes of `buffer`, which grows to hold it.
fn aligned(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buffer.len() < len + PAGE {
        *buffer = vec![0; (len + PAGE).next_power_of_two()];
    }
    let at = buffer.as_ptr().align_offset(PAGE);
    &mut buffer[at..at + len]
}

/// The entry at `at`, if a whole one of `generation` with a valid header
/// and checksum is there: its number and payload.
fn entry_at(bytes: &[u8], at: usize, generation: u64) -> Option<(u64, &[u8])> {
    let header = bytes.get(at..at + HEADER)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let lsn = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if u64::from_le_bytes(header[16..24].try_into().ok()?) != generation {
        return None;
    }
    let crc = u32::from_le_bytes(header[24..28].try_into().ok()?);
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[4..24]);
    hasher.update(payload);
    (hasher.finalize() == crc).then_some((lsn, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsns(journal: &mut Journal, after: u64) -> Vec<u64> {
        let entries = journal.entries_after(after, journal.generation).unwrap();
        entries.into_iter().map(|(lsn, _)| lsn).collect()
    }

    #[test]
    fn reading_stops_at_a_torn_or_stale_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), None).unwrap();
        assert_eq!(
            lsns(&mut journal, 0),
            Vec::<u64>::new(),
            "a new journal is empty"
        );
        for lsn in 1..=5 {
            journal
                .append(lsn, &vec![lsn as u8; 100 * lsn as usize])
                .unwrap();
        }
        assert_eq!(lsns(&mut journal, 0), [1, 2, 3, 4, 5]);
        let entries = journal.entries_after(0, 0).unwrap();
        assert_eq!(entries[2].1, vec![3; 300], "payloads read back");
        // Numbers must continue from the checkpoint's.
        assert_eq!(lsns(&mut journal, 1), Vec::<u64>::new());

        // After a checkpoint at 5, two new entries over the old ones: the
        // stale ones after them (numbers 3…5) are not read.
        journal.start_over(42);
        journal.append(6, b"six").unwrap();
        journal.append(7, b"seven").unwrap();
        assert_eq!(lsns(&mut journal, 5), [6, 7]);
        // Entries of another generation are not read, whatever their number.
        assert!(journal.entries_after(5, 41).unwrap().is_empty());

        // A damaged byte in entry 7's payload ends the run before it.
        let path = journal.path().to_owned();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = HEADER + 3 + HEADER + 2;
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let mut reopened = Journal::open(dir.path(), None).unwrap();
        reopened.generation = 42;
        assert_eq!(lsns(&mut reopened, 5), [6]);
    }

    /// Entries written directly (whole pages, the last page's earlier bytes
    /// rewritten) and through the page cache read back the same, across
    /// page boundaries, growth and a start over.
    #[test]
    fn direct_and_buffered_writes_leave_the_same_entries() {
        let write = |direct: bool| {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = Journal::open(dir.path(), None).unwrap();
            if !direct {
                journal.direct = None;
            }
            let used_direct = journal.direct.is_some();
            let sizes = [10, PAGE - HEADER - 10, 3 * PAGE + 5, 1, 700, 2 * PAGE];
            for (i, size) in sizes.iter().enumerate() {
                journal
                    .append(i as u64 + 1, &vec![i as u8 + 1; *size])
                    .unwrap();
            }
            let first = journal.entries_after(0, 0).unwrap();
            journal.start_over(9);
            journal.append(7, b"after the checkpoint").unwrap();
            let end = journal.used();
            // Reopened: the tail page is read back, then appended to.
            let mut reopened = Journal::open(dir.path(), None).unwrap();
            assert_eq!(reopened.entries_after(6, 9).unwrap().len(), 1);
            reopened.append(8, &vec![8; 5000]).unwrap();
            let second = reopened.entries_after(6, 9).unwrap();
            let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
            (used_direct, first, second, bytes[..end as usize].to_vec())
        };
        let (used_direct, direct_first, direct_second, direct_bytes) = write(true);
        let (buffered, first, second, bytes) = write(false);
        assert!(!buffered);
        assert_eq!(first.len(), 6);
        assert_eq!(first[2].1, vec![3; 3 * PAGE + 5]);
        assert_eq!(second.iter().map(|e| e.0).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(direct_first, first);
        assert_eq!(direct_second, second);
        assert_eq!(direct_bytes, bytes);
        println!("direct writes used: {used_direct}");
    }

    #[test]
    fn it_grows_past_its_first_length_up_to_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), None).unwrap();
        let big = vec![7; (INITIAL as usize) * 3 / 2];
        assert!(journal.fits(big.len()));
        journal.append(1, &big).unwrap();
        journal.append(2, &big).unwrap();
        assert!(journal.len >= 2 * big.len() as u64);
        assert_eq!(lsns(&mut journal, 0), [1, 2]);
        assert!(
            !journal.fits(CAPACITY as usize),
            "an entry bigger than the journal"
        );
    }
}
