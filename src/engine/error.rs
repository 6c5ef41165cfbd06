//! Errors of the engine layer, grouped by who is at fault: the caller (a bad
//! table, column, value or schema), the data on disk (wrapped storage errors),
//! the state of the database (read-only after a failed fsync, locked by
//! another process), or CohortDB itself (`Internal`: a bug).

use crate::storage::schema::ColumnType;
use crate::storage::StorageError;
use std::path::PathBuf;

/// Result type of the engine and of the public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written, or is damaged.
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("table {0} does not exist")]
    TableNotFound(String),
    #[error("table {0} already exists")]
    TableExists(String),
    #[error("table {table} has no column {column}")]
    ColumnNotFound { table: String, column: String },
    #[error("column {column} is {expected}; {found} does not fit it")]
    TypeMismatch {
        column: String,
        expected: ColumnType,
        found: String,
    },
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A write that can never succeed as given (empty id, set operation on a scalar...).
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// Every row id of the table is used.
    #[error("table {0} has no free row ids left (2^32 rows)")]
    TableFull(String),
    /// An earlier write or fsync failed; nothing more is written until the database is reopened.
    #[error("the database is read-only after an earlier failure ({0}); reopen it to recover")]
    ReadOnly(String),
    #[error("{} is in use by another process (its LOCK file is held)", dir.display())]
    Locked { dir: PathBuf },
    #[error("the data directory {} is not a CohortDB database: {reason}", dir.display())]
    NotADatabase { dir: PathBuf, reason: String },
    /// A bug in CohortDB: an invariant did not hold.
    #[error("internal error (a bug in CohortDB, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// True when the error reports damaged files.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_corruption())
    }
}
