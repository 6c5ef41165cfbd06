//! Errors of the storage layer: what went wrong with a file, where, and why.
//!
//! Invariant: every failure that comes from damaged bytes on disk is a
//! [`StorageError::Corrupted`] naming the file and the byte offset, so that a
//! user (or `cohortdb check`) can point at the damage; I/O failures keep the
//! path they happened on.

use std::path::{Path, PathBuf};

/// Result type of the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An error of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused an operation on a file.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk do not decode: a checksum mismatch, a bad magic number,
    /// a length that runs past the end of its section.
    #[error("{path} is damaged at byte offset {offset}: {reason}")]
    Corrupted {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The file was written by a format version this build cannot read.
    #[error("{path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A damaged-file error at `offset` of `path`.
    pub fn corrupted(path: impl AsRef<Path>, offset: u64, reason: impl Into<String>) -> Self {
        StorageError::Corrupted {
            path: path.as_ref().to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// True when the error reports damaged bytes (as opposed to an I/O failure).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StorageError::Corrupted { .. } | StorageError::UnsupportedVersion { .. }
        )
    }
}

/// A decoding failure inside a buffer, before it is attached to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the failure, relative to the start of the file the buffer came from.
    pub offset: u64,
    pub reason: String,
}

impl DecodeError {
    pub fn new(offset: u64, reason: impl Into<String>) -> Self {
        DecodeError {
            offset,
            reason: reason.into(),
        }
    }

    /// Attaches the file the buffer came from.
    pub fn in_file(self, path: impl AsRef<Path>) -> StorageError {
        StorageError::corrupted(path, self.offset, self.reason)
    }
}
