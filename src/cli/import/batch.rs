//! A batch: the rows of one InsertRows message being built row by row into
//! a buffer of cells (see [`super::cells`]), with where each row sits in it,
//! its input line, and the rows rejected while reading it.
//!
//! Invariants: `bytes` is the accepted rows back to back, and `rows[i]` is
//! the byte range of row `i` in `bytes`, in input order; so any run of
//! consecutive rows is one contiguous slice (which is how a refused batch is
//! split). Lines increase through `rows` and through `rejects`.

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

/// One message's worth of rows.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub rows: Vec<RowSpan>,
    pub rejects: Vec<Reject>,
    /// Input bytes read when the batch was closed (for progress).
    pub position: u64,
    /// The InsertRows payload of all its rows, encoded by the reader thread
    /// while the previous batch was being sent ([`super::cells::transpose`]).
    pub payload: Option<Vec<u8>>,
}

impl Batch {
    /// Empties the batch for reuse, keeping its buffers.
    pub fn reset(&mut self) {
        self.bytes.clear();
        self.rows.clear();
        self.rejects.clear();
        self.position = 0;
        self.payload = None;
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.rejects.is_empty()
    }

    /// The cells of rows `lo..hi`.
    pub fn cells(&self, lo: usize, hi: usize) -> &[u8] {
        match (self.rows.get(lo), self.rows.get(hi.wrapping_sub(1))) {
            (Some(first), Some(last)) if lo < hi => &self.bytes[first.start..last.end],
            _ => &[],
        }
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

/// Builds batches row by row with limits on rows and bytes.
pub struct BatchBuilder {
    max_rows: usize,
    max_bytes: usize,
    /// Where the row being written starts.
    row_mark: usize,
    pub batch: Batch,
}

impl BatchBuilder {
    pub fn new(max_rows: usize, max_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            max_rows: max_rows.max(1),
            max_bytes,
            row_mark: 0,
            batch: Batch::default(),
        }
    }

    /// Starts a new row; returns the buffer to write its cells into.
    pub fn begin_row(&mut self) -> &mut Vec<u8> {
        self.row_mark = self.batch.bytes.len();
        &mut self.batch.bytes
    }

    /// Drops the row being written (a value was bad).
    pub fn abort_row(&mut self) {
        self.batch.bytes.truncate(self.row_mark);
    }

    /// Finishes the row being written. A row that does not fit under the
    /// byte limit is moved to `spill` (it starts the next batch) and the
    /// batch is reported full; a row too large for any batch is rejected.
    pub fn end_row(&mut self, line: u64, spill: &mut Vec<u8>) -> RowEnd {
        let bytes = &mut self.batch.bytes;
        let start = self.row_mark;
        if bytes.len() > self.max_bytes {
            let size = bytes.len() - start;
            if size > self.max_bytes {
                bytes.truncate(start);
                self.reject(
                    line,
                    format!(
                        "the row takes {size} bytes, more than --batch-bytes {}",
                        self.max_bytes
                    ),
                );
                return self.fullness();
            }
            spill.clear();
            spill.extend_from_slice(&bytes[start..]);
            bytes.truncate(start);
            return RowEnd::Spilled;
        }
        self.batch.rows.push(RowSpan {
            start,
            end: bytes.len(),
            line,
        });
        self.fullness()
    }

    /// Starts the next batch with a row spilled by [`BatchBuilder::end_row`].
    pub fn push_spilled(&mut self, row: &[u8], line: u64) {
        let bytes = &mut self.batch.bytes;
        let start = bytes.len();
        bytes.extend_from_slice(row);
        self.batch.rows.push(RowSpan {
            start,
            end: bytes.len(),
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
        fresh.reset();
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
    fn rows_are_contiguous_and_any_run_is_one_slice() {
        let mut b = BatchBuilder::new(10, 1 << 20);
        let mut spill = Vec::new();
        row(&mut b, "1", 2, &mut spill);
        b.begin_row().extend_from_slice(b"bad");
        b.abort_row();
        b.reject(3, "no".into());
        row(&mut b, "22", 4, &mut spill);
        row(&mut b, "333", 5, &mut spill);
        let batch = b.take(Batch::default(), 9);
        assert_eq!(batch.bytes, b"122333");
        assert_eq!(batch.cells(0, 2), b"122");
        assert_eq!(batch.cells(1, 3), b"22333");
        assert_eq!(batch.cells(2, 3), b"333");
        assert_eq!(batch.cells(2, 2), b"");
        assert_eq!(batch.rejects.len(), 1);
        assert_eq!(batch.position, 9);
        assert!(b.batch.bytes.is_empty());
    }

    #[test]
    fn byte_limit_spills_the_last_row() {
        let mut b = BatchBuilder::new(10, 5);
        let mut spill = Vec::new();
        assert_eq!(row(&mut b, "11", 2, &mut spill), RowEnd::Open);
        assert_eq!(row(&mut b, "22", 3, &mut spill), RowEnd::Open);
        assert_eq!(row(&mut b, "33", 4, &mut spill), RowEnd::Spilled);
        assert_eq!(spill, b"33");
        let batch = b.take(Batch::default(), 0);
        assert_eq!(batch.bytes, b"1122");
        b.push_spilled(&spill, 4);
        assert_eq!(b.batch.bytes, b"33");
        assert_eq!(row(&mut b, "too long a row", 5, &mut spill), RowEnd::Open);
        assert_eq!(b.batch.bytes, b"33");
        assert!(b.batch.rejects[0].reason.contains("--batch-bytes 5"));
    }

    #[test]
    fn row_limit() {
        let mut b = BatchBuilder::new(2, 1 << 20);
        let mut spill = Vec::new();
        assert_eq!(row(&mut b, "1", 1, &mut spill), RowEnd::Open);
        assert_eq!(row(&mut b, "2", 2, &mut spill), RowEnd::Full);
    }
}
