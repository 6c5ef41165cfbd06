//! Errors of the query layer. Each says what went wrong and where: syntax
//! and binding errors carry the line and column (1-based, in characters) of
//! the offending token; engine errors (damaged files, read-only database)
//! pass through unchanged. A failed statement changes nothing.

use crate::engine;
use std::fmt;

/// A line and column in the source, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `source`.
    pub fn of(source: &str, offset: usize) -> Position {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The text is not CohortQL.
    #[error("{position}: {message}")]
    Syntax { position: Position, message: String },
    /// The text parses but does not fit the catalog (unknown table or column, type mismatch...).
    #[error("{position}: {message}")]
    Bind { position: Position, message: String },
    /// The engine refused or failed (damaged files, read-only database, lock...).
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// A limit of the query layer was reached.
    #[error("{0}")]
    Limit(String),
    /// The user's role may not run the statement (src/query/access.rs).
    #[error("{0}")]
    Denied(String),
}

impl QueryError {
    /// Where the error is, if it has a position.
    pub fn position(&self) -> Option<Position> {
        match self {
            QueryError::Syntax { position, .. } | QueryError::Bind { position, .. } => {
                Some(*position)
            }
            _ => None,
        }
    }
}

pub type QueryResult<T> = std::result::Result<T, QueryError>;
