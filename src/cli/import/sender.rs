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
//! A batch the server refuses as a whole because of its rows (syntax, type or
//! write errors, or a statement over `--max-statement-bytes`) is split in two
//! and each half sent again, left half first, down to single rows; a single
//! row the server refuses is a rejected row with the server's reason. Rows
//! are therefore committed in input order even while splitting. An error that
//! is not about the rows (the connection, permissions, a read-only database,
//! an error located in the statement head) ends the import.

use super::batch::{Batch, Reject};
use crate::client::{Client, ClientError};
use crate::protocol::codes;

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
    max_errors: u64,
    pub imported: u64,
    pub rejected: u64,
    scratch: Vec<u8>,
    /// Prints one rejected row.
    report: &'a mut dyn FnMut(u64, &str),
}

impl<'a> Sender<'a> {
    pub fn new(
        client: &'a mut Client,
        max_errors: u64,
        report: &'a mut dyn FnMut(u64, &str),
    ) -> Sender<'a> {
        Sender {
            client,
            max_errors,
            imported: 0,
            rejected: 0,
            scratch: Vec::new(),
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
    pub fn send(&mut self, batch: &Batch) -> Result<Flow, Fatal> {
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
        let mut rejects = batch.rejects.iter().peekable();
        if let stop @ Flow::Stopped { .. } = self.send_range(batch, 0, rows, &mut rejects)? {
            return Ok(stop);
        }
        Ok(self.flush_rejects(&mut rejects, None))
    }

    /// Sends rows `lo..hi`, splitting on refusal.
    fn send_range(
        &mut self,
        batch: &Batch,
        lo: usize,
        hi: usize,
        rejects: &mut std::iter::Peekable<std::slice::Iter<'_, Reject>>,
    ) -> Result<Flow, Fatal> {
        if lo >= hi {
            return Ok(Flow::Continue);
        }
        let text = batch.statement(lo, hi, &mut self.scratch);
        let text = std::str::from_utf8(text)
            .map_err(|_| Fatal("internal error: a batch statement is not UTF-8".into()))?;
        let error = match self.client.execute(text) {
            Ok(_) => {
                self.imported += (hi - lo) as u64;
                return Ok(Flow::Continue);
            }
            Err(e) => e,
        };
        if !is_row_error(&error, batch.prefix_len) {
            return Err(Fatal(error.to_string()));
        }
        if hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if let stop @ Flow::Stopped { .. } = self.send_range(batch, lo, mid, rejects)? {
                return Ok(stop);
            }
            return self.send_range(batch, mid, hi, rejects);
        }
        let line = batch.rows[lo].line;
        if let stop @ Flow::Stopped { .. } = self.flush_rejects(rejects, Some(line)) {
            return Ok(stop);
        }
        let reason = match &error {
            ClientError::Server {
                code: codes::STATEMENT_TOO_LARGE,
                message,
                ..
            } => format!("the server refused the row as too large: {message}"),
            other => format!("the server refused the row: {other}"),
        };
        Ok(self.reject(line, &reason))
    }
}

/// Whether a refused statement may be about some of its rows (and so worth
/// splitting), rather than about the import as a whole.
fn is_row_error(error: &ClientError, prefix_len: usize) -> bool {
    let ClientError::Server {
        code, line, column, ..
    } = error
    else {
        return false;
    };
    match *code {
        codes::STATEMENT_TOO_LARGE => true,
        codes::SYNTAX | codes::BIND | codes::WRITE_REFUSED => {
            // An error located in `INSERT INTO t (...) VALUES ` (an unknown
            // table or column) is about every row. The statement is one line,
            // and a column in characters is at most the byte offset.
            !(*line == 1 && *column >= 1 && (*column as usize) <= prefix_len)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_errors_are_not_row_errors() {
        let e = |code, line, column| ClientError::Server {
            code,
            message: String::new(),
            line,
            column,
        };
        assert!(!is_row_error(&e(codes::BIND, 1, 13), 40));
        assert!(is_row_error(&e(codes::BIND, 1, 55), 40));
        assert!(is_row_error(&e(codes::WRITE_REFUSED, 0, 0), 40));
        assert!(is_row_error(&e(codes::STATEMENT_TOO_LARGE, 0, 0), 40));
        assert!(!is_row_error(&e(codes::READ_ONLY, 0, 0), 40));
        assert!(!is_row_error(&e(codes::PERMISSION_DENIED, 0, 0), 40));
        assert!(!is_row_error(&ClientError::Closed, 40));
    }
}
