//! A batch: one `INSERT INTO t (...) VALUES (...), (...)` statement being
//! built row by row straight into its text, with where each row sits in it,
//! its input line, and the rows rejected while reading it.
//!
//! Invariants: `text` is the layout's prefix followed by the accepted rows
//! separated by `,`, and `rows[i]` is the byte range of row `i`'s `( ... )`
//! in `text`, in input order; so any run of consecutive rows is the prefix
//! plus one contiguous slice (which is how a refused batch is split). Lines
//! increase through `rows` and through `rejects`. The text is valid UTF-8
//! because every value written into it came from a `&str`.

/// An accepted row.
#[derive(Debug, Clone, Copy)]
pub struct RowSpan {
    pub start: usize,
    pub end: usize,
    /// The input line the row starts on (1-based).
    pub line: u64,
}

/// A row rejected while reading.
#[derive(Debug, Clone)]
pub struct Reject {
    pub line: u64,
    pub reason: String,
}

/// One statement's worth of rows.
#[derive(Debug, Default)]
pub struct Batch {
    pub text: Vec<u8>,
    pub prefix_len: usize,
    pub rows: Vec<RowSpan>,
    pub rejects: Vec<Reject>,
    /// Input bytes read when the batch was closed (for progress).
    pub position: u64,
}

impl Batch {
    /// Empties the batch for reuse, keeping its buffers.
    pub fn reset(&mut self, prefix: &str) {
        self.text.clear();
        self.text.extend_from_slice(prefix.as_bytes());
        self.prefix_len = prefix.len();
        self.rows.clear();
        self.rejects.clear();
        self.position = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.rejects.is_empty()
    }

    /// The statement text of rows `lo..hi` (a slice of `text` when they
    /// start at the first row; otherwise built in `scratch`).
    pub fn statement<'a>(&'a self, lo: usize, hi: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let (Some(first), Some(last)) = (self.rows.get(lo), self.rows.get(hi.wrapping_sub(1)))
        else {
            return &[];
        };
        if lo == 0 {
            return &self.text[..last.end];
        }
        scratch.clear();
        scratch.extend_from_slice(&self.text[..self.prefix_len]);
        scratch.extend_from_slice(&self.text[first.start..last.end]);
        scratch
    }
}

/// What [`BatchBuilder::end_row`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum RowEnd {
    /// The row is in the batch; there is room for more.
    Open,
    /// The batch is full and should be sent.
    Full,
    /// The row did not fit: the batch should be sent, and the row (left in
    /// `spill`) starts the next one.
    Spilled,
}

/// Builds batches row by row with limits on rows and statement bytes.
pub struct BatchBuilder {
    prefix: String,
    max_rows: usize,
    max_bytes: usize,
    /// Where the row being written starts (before its separator).
    row_mark: usize,
    pub batch: Batch,
}

impl BatchBuilder {
    pub fn new(prefix: String, max_rows: usize, max_bytes: usize) -> BatchBuilder {
        let mut batch = Batch::default();
        batch.reset(&prefix);
        BatchBuilder {
            prefix,
            max_rows: max_rows.max(1),
            max_bytes,
            row_mark: 0,
            batch,
        }
    }

    /// Starts a new row: writes the separator and `(`, returns the buffer to
    /// write the values into.
    pub fn begin_row(&mut self) -> &mut Vec<u8> {
        let text = &mut self.batch.text;
        self.row_mark = text.len();
        if !self.batch.rows.is_empty() {
            text.push(b',');
        }
        text.push(b'(');
        text
    }

    /// Drops the row being written (a value was bad).
    pub fn abort_row(&mut self) {
        self.batch.text.truncate(self.row_mark);
    }

    /// Finishes the row being written (adds the `)`). A row that does not fit
    /// under the byte limit is moved to `spill` (it starts the next batch) and
    /// the batch is reported full; a row too large for any batch is rejected.
    pub fn end_row(&mut self, line: u64, spill: &mut Vec<u8>) -> RowEnd {
        let text = &mut self.batch.text;
        text.push(b')');
        let start = if self.batch.rows.is_empty() {
            self.row_mark
        } else {
            self.row_mark + 1
        };
        if text.len() > self.max_bytes {
            let size = text.len() - start + self.prefix.len();
            if size > self.max_bytes {
                text.truncate(self.row_mark);
                self.reject(
                    line,
                    format!(
                        "the row is {size} bytes as a CohortQL statement, more than --batch-bytes {}",
                        self.max_bytes
                    ),
                );
                return self.fullness();
            }
            spill.clear();
            spill.extend_from_slice(&text[start..]);
            text.truncate(self.row_mark);
            return RowEnd::Spilled;
        }
        self.batch.rows.push(RowSpan {
            start,
            end: text.len(),
            line,
        });
        self.fullness()
    }

    /// Starts the next batch with a row spilled by [`BatchBuilder::end_row`].
    pub fn push_spilled(&mut self, row: &[u8], line: u64) {
        let text = &mut self.batch.text;
        if !self.batch.rows.is_empty() {
            text.push(b',');
        }
        let start = text.len();
        text.extend_from_slice(row);
        self.batch.rows.push(RowSpan {
            start,
            end: text.len(),
            line,
        });
    }

    /// Records a rejected row.
    pub fn reject(&mut self, line: u64, reason: String) {
        self.batch.rejects.push(Reject { line, reason });
    }

    /// Whether the batch should be sent now (rows, or many rejects, piled up).
    pub fn fullness(&self) -> RowEnd {
        if self.batch.rows.len() >= self.max_rows || self.batch.rejects.len() >= self.max_rows {
            RowEnd::Full
        } else {
            RowEnd::Open
        }
    }

    /// Takes the batch out, leaving `fresh` (reset) in its place.
    pub fn take(&mut self, mut fresh: Batch, position: u64) -> Batch {
        fresh.reset(&self.prefix);
        let mut done = std::mem::replace(&mut self.batch, fresh);
        done.position = position;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(b: &mut BatchBuilder, v: &str, line: u64, spill: &mut Vec<u8>) -> RowEnd {
        b.begin_row().extend_from_slice(v.as_bytes());
        b.end_row(line, spill)
    }

    #[test]
    fn rows_are_contiguous_and_sub_statements_are_valid() {
        let mut b = BatchBuilder::new("P ".into(), 10, 1 << 20);
        let mut spill = Vec::new();
        row(&mut b, "1", 2, &mut spill);
        b.begin_row().extend_from_slice(b"bad");
        b.abort_row();
        b.reject(3, "no".into());
        row(&mut b, "2", 4, &mut spill);
        row(&mut b, "3", 5, &mut spill);
        let batch = b.take(Batch::default(), 9);
        assert_eq!(batch.text, b"P (1),(2),(3)");
        let mut scratch = Vec::new();
        assert_eq!(batch.statement(0, 2, &mut scratch), b"P (1),(2)");
        assert_eq!(batch.statement(1, 3, &mut scratch), b"P (2),(3)");
        assert_eq!(batch.statement(2, 3, &mut scratch), b"P (3)");
        assert_eq!(batch.rejects.len(), 1);
        assert_eq!(batch.position, 9);
        assert_eq!(b.batch.text, b"P ");
    }

    #[test]
    fn byte_limit_spills_the_last_row() {
        let mut b = BatchBuilder::new("P ".into(), 10, 12);
        let mut spill = Vec::new();
        assert_eq!(row(&mut b, "11", 2, &mut spill), RowEnd::Open);
        assert_eq!(row(&mut b, "22", 3, &mut spill), RowEnd::Open);
        assert_eq!(row(&mut b, "33", 4, &mut spill), RowEnd::Spilled);
        assert_eq!(spill, b"(33)");
        let batch = b.take(Batch::default(), 0);
        assert_eq!(batch.text, b"P (11),(22)");
        b.push_spilled(&spill, 4);
        assert_eq!(b.batch.text, b"P (33)");
        assert_eq!(row(&mut b, "too long a row", 5, &mut spill), RowEnd::Open);
        assert_eq!(b.batch.text, b"P (33)");
        assert!(b.batch.rejects[0].reason.contains("--batch-bytes 12"));
    }

    #[test]
    fn row_limit() {
        let mut b = BatchBuilder::new("P ".into(), 2, 1 << 20);
        let mut spill = Vec::new();
        assert_eq!(row(&mut b, "1", 1, &mut spill), RowEnd::Open);
        assert_eq!(row(&mut b, "2", 2, &mut spill), RowEnd::Full);
    }
}
