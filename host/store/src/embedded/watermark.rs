//! The head watermark: a 16-byte file next to the data file recording the
//! highest log sequence ever committed (the store's event count, all
//! namespaces together; every commit that stores an event raises it), so
//! that a data file that silently went back to an older commit is refused
//! instead of served.
//!
//! redb keeps two commit slots and a header bit that picks the current one.
//! A damaged bit there (or an older copy of the file put in its place) makes
//! redb open the previous commit as if it were the newest, and every check
//! inside the file passes, because that commit is complete and consistent.
//! Only something outside the file can tell that acknowledged events are
//! missing: this watermark.
//!
//! Format of `events.head`: bytes 0..8 the last log sequence (`u64` LE), bytes
//! 8..16 the first 8 bytes of blake3(`"aether events.head v1"` ‖ bytes 0..8).
//!
//! Commits are redb's 1-phase commits (see "Commits" in the module docs of
//! `embedded`), so this file is also what turns a damaged *newest* commit
//! into an error: redb itself would fall back to the commit before it.
//!
//! **Invariant: the watermark never runs ahead of what is durable.** The
//! writer rewrites it after every commit, once the commit's fsync returned
//! and before it acknowledges the batch, without an fsync of its own (a
//! `write(2)`: it survives `kill -9`, which loses nothing of the page cache).
//! It makes it durable after a reply at most once a second, and when the
//! store closes (`open` syncs it too). So after a power loss the watermark may
//! lag behind by up to a second of commits, which only makes the check
//! weaker for that one open, and it can never claim a commit that the power
//! loss took (such a commit was not synced, so it was never recorded here).
//! `open` fails when the store's head is below the watermark, and then
//! records the head. Deleting the file accepts the data file as it is (e.g.
//! after restoring a backup on purpose).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::errors::{corrupt, unavailable};
use crate::StoreError;

/// The watermark file inside the store's directory.
pub(super) const FILE_NAME: &str = "events.head";

const DOMAIN: &[u8] = b"aether events.head v1";

/// The open watermark file.
pub(super) struct Watermark {
    file: File,
    path: PathBuf,
}

impl Watermark {
    /// Checks that a store whose data file `data` holds events up to `head`
    /// has lost none that were acknowledged, then records `head` durably.
    pub(super) fn check(dir: &Path, data: &Path, head: u64) -> Result<Watermark, StoreError> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| unavailable(&path, format_args!("cannot open the watermark: {e}")))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| unavailable(&path, format_args!("cannot read the watermark: {e}")))?;
        if !bytes.is_empty() {
            let recorded =
                decode(&bytes).map_err(|message| corrupt(&path, "watermark", message))?;
            if head < recorded {
                let message = format!(
                    "the data file holds events up to log sequence {head}, but events up to \
                     log sequence {recorded} were acknowledged (recorded in {}): the file went back \
                     to an older state and lost committed events; restore it from a backup, or \
                     delete {} to accept it as it is",
                    path.display(),
                    path.display()
                );
                return Err(corrupt(data, "last log sequence", message));
            }
        }
        let mut watermark = Watermark { file, path };
        watermark
            .record(head)
            .and_then(|()| watermark.file.sync_all())
            .map_err(|e| {
                unavailable(
                    &watermark.path,
                    format_args!("cannot write the watermark: {e}"),
                )
            })?;
        Ok(watermark)
    }

    /// Records a new head after a commit's fsync returned (no fsync of its
    /// own, see the module docs).
    pub(super) fn record(&mut self, head: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&encode(head))
    }

    /// Makes the recorded head durable.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The watermark file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

fn checksum(head: [u8; 8]) -> [u8; 8] {
    let hash = blake3::Hasher::new()
        .update(DOMAIN)
        .update(&head)
        .finalize();
    let mut sum = [0; 8];
    sum.copy_from_slice(&hash.as_bytes()[..8]);
    sum
}

fn encode(head: u64) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&head.to_le_bytes());
    out[8..].copy_from_slice(&checksum(head.to_le_bytes()));
    out
}

fn decode(bytes: &[u8]) -> Result<u64, String> {
    let Ok(bytes) = <[u8; 16]>::try_from(bytes) else {
        return Err(format!(
            "the watermark is {} bytes long, expected 16",
            bytes.len()
        ));
    };
    let head: [u8; 8] = bytes[..8].try_into().unwrap_or_default();
    if checksum(head) != bytes[8..] {
        return Err("the watermark's checksum does not match its bytes".to_owned());
    }
    Ok(u64::from_le_bytes(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_round_trips_and_detects_damage() {
        assert_eq!(decode(&encode(12_345)), Ok(12_345));
        let mut damaged = encode(7);
        damaged[0] ^= 1;
        assert!(decode(&damaged).is_err());
        assert!(decode(&encode(7)[..15]).is_err());
    }

    #[test]
    fn a_head_below_the_watermark_is_refused_and_a_higher_one_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("events.redb");
        drop(Watermark::check(dir.path(), &data, 10).unwrap());
        let error = Watermark::check(dir.path(), &data, 9).err().unwrap();
        assert!(
            error.to_string().contains("up to log sequence 9"),
            "{error}"
        );
        assert!(error.to_string().contains("events.redb"), "{error}");
        drop(Watermark::check(dir.path(), &data, 11).unwrap());
        assert!(Watermark::check(dir.path(), &data, 10).is_err());
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            Watermark::check(dir.path(), &data, 10).is_ok(),
            "deleting accepts the file"
        );
    }
}
