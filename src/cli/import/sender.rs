//! Sending batches to the server and keeping the books: rows imported, rows
//! rejected, and where the import stopped.
//!
//! The error budget (`--max-errors N`) is applied in input order, so the
//! outcome does not depend on batch sizes: the import stops at the row that
//! makes the rejected count exceed N, every accepted row before it is
//! imported, and nothing after it is. Rows rejected while reading come with
//! the batch; before sending, the batch is cut at the rejected row that would
//! exceed the budget.
//!
//! Each batch goes as one InsertRows message, its rows transposed into the
//! columnar payload ([`super::cells::transpose`]). A batch the server refuses
//! because of its rows (a write error) is split in two and each half sent
//! again, left half first, down to single rows; a single row the server
//! refuses is a rejected row with the server's reason. Rows are therefore
//! committed in input order even while splitting. An error that is not about
//! the rows (the connection, permissions, a read-only database, an unknown
//! table or column, a type the table does not have) ends the import.

use super::batch::{Batch, Reject};
use super::cells::transpose;
use super::table::Layout;
use crate::client::{Client, ClientError};
use crate::protocol::codes;
use crate::storage::columnar::RowsEncoder;

/// Where the import is after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The rejected count exceeded the budget at this line.
    Stopped {
        line: u64,
    },
}

/// An error that ends the import.
#[derive(Debug)]
pub struct Fatal(pub String);

/// Sends batches over one connection and counts.
pub struct Sender<'a> {
    client: &'a mut Client,
    layout: &'a Layout,
    max_errors: u64,
    pub imported: u64,
    pub rejected: u64,
    /// Prints one rejected row.
    report: &'a mut dyn FnMut(u64, &str),
}

impl<'a> Sender<'a> {
    pub fn new(
        client: &'a mut Client,
        layout: &'a Layout,
        max_errors: u64,
        report: &'a mut dyn FnMut(u64, &str),
    ) -> Sender<'a> {
        Sender {
            client,
            layout,
            max_errors,
            imported: 0,
            rejected: 0,
            report,
        }
    }

    /// Counts and prints one rejected row; says whether the budget is exceeded.
    fn reject(&mut self, line: u64, reason: &str) -> Flow {
        (self.report)(line, reason);
        self.rejected += 1;
        if self.rejected > self.max_errors {
            Flow::Stopped { line }
        } else {
            Flow::Continue
        }
    }

    /// Counts the read-side rejects before `line` (all of them for `None`).
    fn flush_rejects(
        &mut self,
        rejects: &mut std::iter::Peekable<std::slice::Iter<'_, Reject>>,
        before: Option<u64>,
    ) -> Flow {
        while let Some(r) = rejects.next_if(|r| before.is_none_or(|l| r.line < l)) {
            if let stop @ Flow::Stopped { .. } = self.reject(r.line, &r.reason) {
                return stop;
            }
        }
        Flow::Continue
    }

    /// Sends one batch and counts its rows.
    pub fn send(&mut self, batch: &mut Batch) -> Result<Flow, Fatal> {
        // The read-side reject that would exceed the budget, if any: rows
        // after it must not be sent.
        let allowed = self.max_errors.saturating_sub(self.rejected);
        let cut = usize::try_from(allowed)
            .ok()
            .and_then(|a| batch.rejects.get(a))
            .map(|r| r.line);
        let rows = match cut {
            Some(line) => batch.rows.partition_point(|r| r.line < line),
            None => batch.rows.len(),
        };
        // The payload encoded ahead holds every row: usable unless cut.
        let whole = batch.payload.take().filter(|_| rows == batch.rows.len());
        let batch = &*batch;
        let mut rejects = batch.rejects.iter().peekable();
        if let stop @ Flow::Stopped { .. } = self.send_range(batch, 0, rows, whole, &mut rejects)? {
            return Ok(stop);
        }
        Ok(self.flush_rejects(&mut rejects, None))
    }

    /// Sends rows `lo..hi` (whose payload is `encoded`, if given), splitting
    /// on refusal.
    fn send_range(
        &mut self,
        batch: &Batch,
        lo: usize,
        hi: usize,
        encoded: Option<Vec<u8>>,
        rejects: &mut std::iter::Peekable<std::slice::Iter<'_, Reject>>,
    ) -> Result<Flow, Fatal> {
        if lo >= hi {
            return Ok(Flow::Continue);
        }
        let payload = match encoded {
            Some(payload) => payload,
            None => {
                let mut payload = RowsEncoder::new(self.layout.columns.len());
                transpose(batch.cells(lo, hi), &self.layout.order, &mut payload)
                    .map_err(|e| Fatal(format!("internal error: {e}")))?;
                payload.finish()
            }
        };
        let sent = self
            .client
            .insert_rows(&self.layout.table, &self.layout.columns, payload);
        let error = match sent {
            Ok(_) => {
                self.imported += (hi - lo) as u64;
                return Ok(Flow::Continue);
            }
            Err(e) => e,
        };
        if !is_row_error(&error) {
            return Err(Fatal(error.to_string()));
        }
        if hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if let stop @ Flow::Stopped { .. } = self.send_range(batch, lo, mid, None, rejects)? {
                return Ok(stop);
            }
            return self.send_range(batch, mid, hi, None, rejects);
        }
        let line = batch.rows[lo].line;
        if let stop @ Flow::Stopped { .. } = self.flush_rejects(rejects, Some(line)) {
            return Ok(stop);
        }
        let reason = format!("the server refused the row: {error}");
        Ok(self.reject(line, &reason))
    }
}

/// Whether a refused batch may be about some of its rows (and so worth
/// splitting), rather than about the import as a whole.
fn is_row_error(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Server {
            code: codes::WRITE_REFUSED,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_write_errors_are_row_errors() {
        let e = |code| ClientError::Server {
            code,
            message: String::new(),
            line: 0,
            column: 0,
        };
        assert!(is_row_error(&e(codes::WRITE_REFUSED)));
        assert!(!is_row_error(&e(codes::BIND)));
        assert!(!is_row_error(&e(codes::READ_ONLY)));
        assert!(!is_row_error(&e(codes::PERMISSION_DENIED)));
        assert!(!is_row_error(&ClientError::Closed));
    }
}
