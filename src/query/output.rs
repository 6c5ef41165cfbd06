//! Results of statements: rows with named, typed columns, streamed one at a
//! time (a row query never builds its whole result in memory), or a
//! completion tag with the number of profiles affected.

use super::bind::OutColumn;
use super::error::QueryResult;
use crate::engine::Value;

/// A stream of result rows.
pub struct Rows {
    pub columns: Vec<OutColumn>,
    iter: Box<dyn Iterator<Item = QueryResult<Vec<Value>>> + Send>,
}

impl Rows {
    pub fn new(
        columns: Vec<OutColumn>,
        iter: impl Iterator<Item = QueryResult<Vec<Value>>> + Send + 'static,
    ) -> Self {
        Rows {
            columns,
            iter: Box::new(iter),
        }
    }

    /// Rows already in memory.
    pub fn from_vec(columns: Vec<OutColumn>, rows: Vec<Vec<Value>>) -> Self {
        Rows::new(columns, rows.into_iter().map(Ok))
    }

    /// Reads every remaining row.
    pub fn collect_all(self) -> QueryResult<Vec<Vec<Value>>> {
        self.iter.collect()
    }
}

impl Iterator for Rows {
    type Item = QueryResult<Vec<Value>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next()
    }
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("columns", &self.columns)
            .finish()
    }
}

/// The result of one statement.
#[derive(Debug)]
pub enum Output {
    Rows(Rows),
    /// A statement that returns no rows: its tag (`INSERT`, `CREATE TABLE`...) and
    /// how many profiles it affected.
    Done {
        tag: &'static str,
        affected: u64,
    },
}

impl Output {
    /// The rows of a row result (an empty list for `Done`).
    pub fn into_rows(self) -> QueryResult<Vec<Vec<Value>>> {
        match self {
            Output::Rows(rows) => rows.collect_all(),
            Output::Done { .. } => Ok(Vec::new()),
        }
    }
}
