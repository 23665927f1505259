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

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::component::Digest;

const MAGIC: &[u8; 8] = b"AETHCWv1";
const HEADER: usize = 8 + 32;

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
}

impl CompileCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir: dir.to_path_buf(),
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.to_hex(), self.engine_hash))
    }

    /// The cached component for `digest`, if a sound entry exists.
    pub(crate) fn get(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).ok()?;
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

    /// Stores a compiled component; failures are logged, never fatal.
    pub(crate) fn put(&self, digest: &Digest, component: &Component) {
        let path = self.path(digest);
        let result = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|payload| {
                let mut file = Vec::with_capacity(HEADER + payload.len());
                file.extend_from_slice(MAGIC);
                file.extend_from_slice(blake3::hash(&payload).as_bytes());
                file.extend_from_slice(&payload);
                std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
                // Write then rename, so a crash never leaves a half-written entry
                // under the final name.
                let partial = path.with_extension(format!("partial-{}", std::process::id()));
                std::fs::write(&partial, &file).map_err(|e| e.to_string())?;
                std::fs::rename(&partial, &path).map_err(|e| e.to_string())
            });
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "cannot write the compile cache entry");
        }
    }
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return None;
    }
    let payload = &bytes[HEADER..];
    (blake3::hash(payload).as_bytes() == &bytes[8..HEADER]).then_some(payload)
}
