//! Turning redb's errors into [`StoreError`]s that name the data file.
//!
//! Damage (redb's checksums or ours, a table of the wrong shape, a file that
//! is too short) becomes [`StoreError::Corrupt`]; everything that may pass
//! (I/O errors, a file locked by another process) becomes
//! [`StoreError::Unavailable`].

use std::io::ErrorKind;
use std::path::Path;

use crate::StoreError;

/// The backend name in [`StoreError::Unavailable`].
pub(super) const BACKEND: &str = "redb";

/// Damage found at `what` (a table entry, a position) inside the file at `path`.
pub(super) fn corrupt(path: &Path, what: impl std::fmt::Display, message: String) -> StoreError {
    StoreError::Corrupt {
        location: format!("{} ({what})", path.display()),
        message,
    }
}

/// A failure that may pass, on the file at `path`.
pub(super) fn unavailable(path: &Path, message: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        message: format!("{}: {message}", path.display()),
    }
}

/// Classifies any redb error on the file at `path`.
fn from_redb(path: &Path, error: impl Into<redb::Error>) -> StoreError {
    let location = || path.display().to_string();
    match error.into() {
        redb::Error::Corrupted(message) => StoreError::Corrupt {
            location: location(),
            message: format!("redb found the file damaged: {message}"),
        },
        redb::Error::Io(error) if error.kind() == ErrorKind::UnexpectedEof => StoreError::Corrupt {
            location: location(),
            message: format!("the file ends early (truncated?): {error}"),
        },
        // redb's way of saying "this is not a redb file" (bad magic number).
        redb::Error::Io(error) if error.kind() == ErrorKind::InvalidData => StoreError::Corrupt {
            location: location(),
            message: format!("the file is not a redb database: {error}"),
        },
        redb::Error::DatabaseAlreadyOpen => unavailable(
            path,
            "the file is already open, by another process or another EmbeddedStore in this one: \
             close that one first or use another directory",
        ),
        error @ (redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => StoreError::Corrupt {
            location: location(),
            message: format!(
                "the file is not an Aether event store of format version {}: {error}",
                super::tables::FORMAT_VERSION
            ),
        },
        error => unavailable(path, error),
    }
}

/// `.in_file(path)` on any redb result: classifies its error with
/// [`from_redb`].
pub(super) trait InFile<T> {
    /// The result, with a redb error turned into a [`StoreError`] naming `path`.
    fn in_file(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> InFile<T> for Result<T, E> {
    fn in_file(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|error| from_redb(path, error))
    }
}
