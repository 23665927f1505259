//! The compile cache: compiled components on disk, keyed by the
//! component's digest and the engine's compatibility hash.
//!
//! Large components (a Python or JavaScript runtime is 10–40 MB) take
//! seconds to compile; a node restart should not pay that again. Entries
//! live only in the node's own cache directory and are only ever written by
//! this module; bytes a user supplies are always compiled, never
//! deserialized.
//!
//! File format of `<cache dir>/<digest hex>-<engine hash hex>.cwasm`:
//!
//! | bytes   | content                                               |
//! |---------|-------------------------------------------------------|
//! | 0..8    | magic `AETHCWv1`                                      |
//! | 8..40   | blake3 hash of bytes 40..                             |
//! | 40..    | wasmtime's serialized component (`Component::serialize`) |
//!
//! A missing, truncated, damaged (hash mismatch) or incompatible entry is
//! recompiled and rewritten, never trusted.
//!
//! **Bound.** The directory holds at most `max_bytes` (every file counted,
//! entries of other engine versions included): after each write, and when
//! the runtime starts, the entries used longest ago go first (a read hit
//! sets an entry's modification time, so the order is by last use). An
//! entry bigger than the whole bound is not written. The cache is shared by
//! every tenant (one entry per digest, whoever deployed it), so a tenant
//! that deploys version after version pushes out older entries, its own
//! and others': what that costs them is a compile the next time one of
//! those versions is loaded (a restart, a rollback), never an answer.
//! Before the bound, 0.75 MiB per distinct version of a 250 KB component
//! piled up without limit.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::component::Digest;

const MAGIC: &[u8; 8] = b"AETHCWv1";
const HEADER: usize = 8 + 32;

/// A half-written entry (`*.partial-<pid>-<n>`) left by a process that died
/// while writing it is removed once it is this old.
const STALE_PARTIAL: Duration = Duration::from_secs(3_600);

/// Where a component's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Compiled from its bytes just now.
    Compiled,
    /// Read from the compile cache.
    Cache,
}

pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_hash: String,
    /// The most bytes the directory holds (see the module's head).
    max_bytes: u64,
    /// One prune at a time, so two compiles that finish together do not
    /// both remove the oldest entry for the same excess.
    pruning: Mutex<()>,
    /// Bytes in the directory as the last prune left it (after the last
    /// write, or on start): the `aether_compile_cache_bytes` gauge.
    held: AtomicU64,
}

impl CompileCache {
    /// The cache in `dir`, brought within `max_bytes` at once (a node
    /// restarted with a lower bound sheds the excess on start).
    pub(crate) fn new(dir: &Path, engine: &Engine, max_bytes: u64) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = Self {
            dir: dir.to_path_buf(),
            engine_hash: format!("{:016x}", hasher.finish()),
            max_bytes,
            pruning: Mutex::new(()),
            held: AtomicU64::new(0),
        };
        cache.prune(None);
        cache
    }

    /// Bytes the cache holds on disk, as of its last write (or start).
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.to_hex(), self.engine_hash))
    }

    /// The cached component for `digest`, if a sound entry exists.
    pub(crate) fn get(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).ok()?;
        // Used now: the last to be pushed out (see `prune`). A failure
        // only makes the entry look older than it is.
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(SystemTime::now()));
        let Some(payload) = verified_payload(&bytes) else {
            tracing::warn!(path = %path.display(), "compile cache entry is damaged; recompiling");
            return None;
        };
        // SAFETY: `Component::deserialize` runs the machine code it is given.
        // The payload comes only from this node's own cache directory, was
        // written by `put` below from wasmtime's own `serialize`, and its
        // blake3 hash has just been checked, so it is the code this engine
        // compiled. Bytes from users never reach this call.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        match component {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "compile cache entry is incompatible; recompiling");
                None
            }
        }
    }

    /// Stores a compiled component, then brings the cache within its
    /// bound; failures are logged, never fatal.
    pub(crate) fn put(&self, digest: &Digest, component: &Component) {
        if self.max_bytes == 0 {
            return; // A cache that keeps nothing.
        }
        let path = self.path(digest);
        let payload = match component.serialize() {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot serialize a compiled component");
                return;
            }
        };
        let size = (HEADER + payload.len()) as u64;
        if size > self.max_bytes {
            tracing::info!(
                path = %path.display(),
                size,
                max_bytes = self.max_bytes,
                "compiled component bigger than the whole compile cache may be; not kept"
            );
            return;
        }
        match self.write(&path, &payload) {
            Ok(()) => self.prune(Some(&path)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot write the compile cache entry")
            }
        }
    }

    /// Writes the entry at `path` (header, then `payload`) under a name of
    /// its own, then renames it, so a crash never leaves a half-written
    /// entry under the final name. The name is unique per write: two
    /// namespaces that deploy the same bytes at once compile them twice
    /// and must not write one file.
    fn write(&self, path: &Path, payload: &[u8]) -> std::io::Result<()> {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let mut file = Vec::with_capacity(HEADER + payload.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(blake3::hash(payload).as_bytes());
        file.extend_from_slice(payload);
        std::fs::create_dir_all(&self.dir)?;
        let partial = path.with_extension(format!(
            "partial-{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&partial, &file)?;
        std::fs::rename(&partial, path)
    }

    /// Removes the entries used longest ago (oldest modification time
    /// first) until the directory holds at most `max_bytes`, never `keep`
    /// (the entry just written) nor an entry being written; removes
    /// half-written entries older than [`STALE_PARTIAL`].
    fn prune(&self, keep: Option<&Path>) {
        let _one_at_a_time = self.pruning.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return; // No directory yet: nothing is cached.
        };
        let now = SystemTime::now();
        let mut files = Vec::new();
        let mut total = 0u64;
        for entry in listing.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let path = entry.path();
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let partial = is_partial(&path);
            let age = now.duration_since(modified).unwrap_or_default();
            if partial && age > STALE_PARTIAL && std::fs::remove_file(&path).is_ok() {
                continue;
            }
            total += meta.len();
            if !partial && Some(path.as_path()) != keep {
                files.push((modified, path, meta.len()));
            }
        }
        let over = total > self.max_bytes;
        // Oldest first; nothing to remove when within the bound.
        files.sort();
        let (mut removed, mut freed) = (0usize, 0u64);
        for (_, path, len) in files {
            if total <= self.max_bytes {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    removed += 1;
                    freed += len;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a compile cache entry")
                }
            }
        }
        self.held.store(total, Ordering::Relaxed);
        if over {
            tracing::info!(
                removed,
                freed_bytes = freed,
                held_bytes = total,
                max_bytes = self.max_bytes,
                "compile cache brought within its bound (the entries used longest ago removed)"
            );
        }
    }
}

/// Whether `path` is an entry being written (or left half-written).
fn is_partial(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.starts_with("partial-"))
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return None;
    }
    let payload = &bytes[HEADER..];
    (blake3::hash(payload).as_bytes() == &bytes[8..HEADER]).then_some(payload)
}
