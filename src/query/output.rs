//! Results of statements: rows with named, typed columns, streamed one at a
//! time (a row query never builds its whole result in memory), or a
//! completion tag with the number of profiles affected.

use super::bind::OutColumn;
use super::error::QueryResult;
use crate::engine::{write_cell, Value};
use crate::storage::columnar::RowsEncoder;

/// Where result rows come from: one at a time as values, or a batch at a
/// time written straight into the columnar encoding.
pub trait RowSource: Iterator<Item = QueryResult<Vec<Value>>> + Send {
    /// Writes up to `max` rows into `out` (columns of `types`); returns how
    /// many (0 when the rows are exhausted). Same rows as `next`.
    fn encode_next(
        &mut self,
        max: usize,
        types: &[crate::storage::schema::ColumnType],
        out: &mut RowsEncoder,
    ) -> QueryResult<usize> {
        let mut n = 0;
        while n < max {
            let Some(row) = self.next() else { break };
            let row = row?;
            for (c, ty) in types.iter().enumerate() {
                write_cell(out, c, *ty, row.get(c));
            }
            n += 1;
        }
        Ok(n)
    }
}

/// Rows already in memory.
struct InMemory(std::vec::IntoIter<Vec<Value>>);

impl Iterator for InMemory {
    type Item = QueryResult<Vec<Value>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(Ok)
    }
}

impl RowSource for InMemory {}

/// A stream of result rows.
pub struct Rows {
    pub columns: Vec<OutColumn>,
    iter: Box<dyn RowSource>,
}

impl Rows {
    pub fn new(columns: Vec<OutColumn>, iter: impl RowSource + 'static) -> Self {
        Rows {
            columns,
            iter: Box::new(iter),
        }
    }

    /// Rows already in memory.
    pub fn from_vec(columns: Vec<OutColumn>, rows: Vec<Vec<Value>>) -> Self {
        Rows::new(columns, InMemory(rows.into_iter()))
    }

    /// See [`RowSource::encode_next`].
    pub fn encode_next(&mut self, max: usize, out: &mut RowsEncoder) -> QueryResult<usize> {
        let types: Vec<_> = self.columns.iter().map(|c| c.ty).collect();
        self.iter.encode_next(max, &types, out)
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
