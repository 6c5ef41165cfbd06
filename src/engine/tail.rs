//! The tail of a shard: rows new to the table since the shard's part was
//! written, stored column by column in the form the part's blocks take
//! ([`BlockValues`]), so the bulk-load path builds no per-row image and a
//! checkpoint encodes whole tail blocks without merging row by row.
//!
//! Rows only ever join the tail at its end (new profiles get increasing row
//! ids); a tail row is never changed in place. A later upsert or delete of a
//! tail row goes to the shard's overlay, which shadows the tail.
//!
//! Layout: one chunk per [`BLOCK_ROWS`]-aligned block of local row ids, behind
//! an `Arc` so a snapshot shares it and a writer copies only the chunk it
//! appends to while a snapshot still holds it. Chunk `k` holds the rows
//! `first..first + rows` with `k * BLOCK_ROWS <= first`.
//!
//! Invariants: the tail covers local rows `start..end`; every chunk holds
//! its rows without gaps up to its end (rows created meanwhile through the
//! overlay are padded with NULLs and an empty key, and the overlay shadows
//! them); INT and FLOAT rows hold 0 where NULL (the column's existence
//! bitmap tells); every id in a TEXT or SET cell names a value of the
//! shard's dictionary for that column.

use super::cell::{block_cell, CellRef};
use crate::storage::block::{BlockValues, BLOCK_ROWS, NULL_ID};
use crate::storage::schema::ColumnType;
use std::sync::Arc;

/// The values of rows `first..` of one block, and their ids.
#[derive(Debug, Clone)]
pub struct TailChunk {
    first: u32,
    columns: Vec<BlockValues>,
    key_ends: Vec<u32>,
    key_text: String,
}

impl TailChunk {
    fn new(first: u32, types: &[ColumnType]) -> Self {
        TailChunk {
            first,
            columns: types.iter().map(|t| empty_values(*t)).collect(),
            key_ends: Vec::new(),
            key_text: String::new(),
        }
    }

    fn rows(&self) -> u32 {
        self.key_ends.len() as u32
    }

    fn end(&self) -> u32 {
        self.first + self.rows()
    }

    fn key(&self, i: usize) -> Option<&str> {
        let end = *self.key_ends.get(i)? as usize;
        let start = if i == 0 {
            0
        } else {
            self.key_ends[i - 1] as usize
        };
        self.key_text.get(start..end)
    }

    /// Appends one row's id; its cells are pushed column by column.
    pub fn push_key(&mut self, key: &str) {
        self.key_text.push_str(key);
        self.key_ends.push(self.key_text.len() as u32);
    }

    /// The values of column `c`, to push cells to.
    pub fn column_mut(&mut self, c: usize) -> &mut BlockValues {
        &mut self.columns[c]
    }

    /// Cell `i` of column `c` (chunk-relative row).
    pub fn cell(&self, c: usize, i: usize, present: impl FnOnce() -> bool) -> Option<CellRef<'_>> {
        block_cell(self.columns.get(c)?, i, present)
    }

    /// Pads with NULL rows (empty keys) up to local row `local`.
    fn pad_to(&mut self, local: u32) {
        while self.end() < local {
            self.push_key("");
            for values in &mut self.columns {
                push_null(values);
            }
        }
    }
}

/// The rows appended to a shard since its part was written.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    start: u32,
    end: u32,
    chunks: Vec<Option<Arc<TailChunk>>>,
}

impl Tail {
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// True when the tail holds local row `local`.
    pub fn holds(&self, local: u32) -> bool {
        local >= self.start && local < self.end
    }

    fn chunk_at(&self, local: u32) -> Option<(&TailChunk, usize)> {
        if !self.holds(local) {
            return None;
        }
        let chunk = self.chunks.get((local / BLOCK_ROWS) as usize)?.as_deref()?;
        let i = local.checked_sub(chunk.first)?;
        (i < chunk.rows()).then_some((chunk, i as usize))
    }

    /// The id of tail row `local`.
    pub fn key(&self, local: u32) -> Option<&str> {
        let (chunk, i) = self.chunk_at(local)?;
        chunk.key(i)
    }

    /// Cell of column `c` at tail row `local`; `present` as for [`block_cell`].
    pub fn cell(
        &self,
        c: usize,
        local: u32,
        present: impl FnOnce() -> bool,
    ) -> Option<CellRef<'_>> {
        let (chunk, i) = self.chunk_at(local)?;
        chunk.cell(c, i, present)
    }

    /// The values of block `block` of column `c` when the tail holds every
    /// row of it from `block * BLOCK_ROWS` up to `block_end`.
    pub fn whole_block(&self, c: usize, block: u32, block_end: u32) -> Option<&BlockValues> {
        let start = block * BLOCK_ROWS;
        if start < self.start || block_end > self.end {
            return None;
        }
        let chunk = self.chunks.get(block as usize)?.as_deref()?;
        (chunk.first == start && chunk.end() == block_end)
            .then(|| chunk.columns.get(c))
            .flatten()
    }

    /// The chunk that row `local` (the next new row) goes to, padded up to
    /// it, ready to take rows up to the end of its block. `local` is at or
    /// past the end of the tail.
    pub fn chunk_for(&mut self, local: u32, types: &[ColumnType]) -> &mut TailChunk {
        if self.is_empty() {
            self.start = local;
            self.end = local;
        }
        let k = (local / BLOCK_ROWS) as usize;
        if self.chunks.len() <= k {
            self.chunks.resize(k + 1, None);
        }
        let first = self.end.max(k as u32 * BLOCK_ROWS);
        let chunk = self.chunks[k].get_or_insert_with(|| Arc::new(TailChunk::new(first, types)));
        let chunk = Arc::make_mut(chunk);
        chunk.pad_to(local);
        chunk
    }

    /// Records that rows up to `end` (exclusive) were appended.
    pub fn appended_to(&mut self, end: u32) {
        self.end = self.end.max(end);
    }

    /// Forgets the rows below `local` (a new part holds them).
    pub fn drop_below(&mut self, local: u32) {
        if local >= self.end {
            *self = Tail::default();
            return;
        }
        self.start = self.start.max(local);
        let first_kept = (self.start / BLOCK_ROWS) as usize;
        for chunk in self.chunks.iter_mut().take(first_kept) {
            *chunk = None;
        }
    }
}

fn empty_values(ty: ColumnType) -> BlockValues {
    match ty {
        ColumnType::Text => BlockValues::Text(Vec::new()),
        ColumnType::TextSet => BlockValues::Set {
            counts: Vec::new(),
            starts: Vec::new(),
            ids: Vec::new(),
        },
        ColumnType::Int | ColumnType::Timestamp => BlockValues::Int(Vec::new()),
        ColumnType::Float => BlockValues::Float(Vec::new()),
        ColumnType::Bool => BlockValues::Bool(Vec::new()),
    }
}

/// Appends a NULL row to `values`.
pub fn push_null(values: &mut BlockValues) {
    match values {
        BlockValues::Text(v) => v.push(NULL_ID),
        BlockValues::Set {
            counts,
            starts,
            ids,
        } => {
            starts.push(ids.len() as u32);
            counts.push(NULL_ID);
        }
        BlockValues::Int(v) => v.push(0),
        BlockValues::Float(v) => v.push(0.0),
        BlockValues::Bool(v) => v.push(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: [ColumnType; 2] = [ColumnType::Text, ColumnType::Int];

    fn append(tail: &mut Tail, local: u32, key: &str, text: u32, int: i64) {
        let chunk = tail.chunk_for(local, &TYPES);
        chunk.push_key(key);
        if let BlockValues::Text(v) = chunk.column_mut(0) {
            v.push(text);
        }
        if let BlockValues::Int(v) = chunk.column_mut(1) {
            v.push(int);
        }
        tail.appended_to(local + 1);
    }

    #[test]
    fn rows_are_found_across_blocks_and_gaps_are_padded() {
        let mut tail = Tail::default();
        append(&mut tail, 5, "a", 1, 10);
        append(&mut tail, 7, "b", 2, 20); // row 6 came through the overlay
        append(&mut tail, BLOCK_ROWS + 1, "c", 3, 30);
        assert!(!tail.holds(4));
        assert_eq!(tail.key(5), Some("a"));
        assert_eq!(tail.key(6), Some(""));
        assert_eq!(tail.cell(0, 6, || true), Some(CellRef::Null));
        assert_eq!(tail.cell(1, 7, || true), Some(CellRef::Int(20)));
        assert_eq!(tail.cell(1, 7, || false), Some(CellRef::Null));
        assert_eq!(tail.key(BLOCK_ROWS + 1), Some("c"));
        assert_eq!(tail.key(BLOCK_ROWS), Some(""));
        assert_eq!(
            tail.cell(0, BLOCK_ROWS + 1, || true),
            Some(CellRef::Text(3))
        );
        assert!(tail.whole_block(0, 0, BLOCK_ROWS).is_none());
    }

    #[test]
    fn a_snapshot_keeps_its_rows_and_dropping_moves_the_start() {
        let mut tail = Tail::default();
        for i in 0..10 {
            append(&mut tail, i, &format!("k{i}"), i, i64::from(i));
        }
        assert!(tail.whole_block(1, 0, 10).is_some());
        let snapshot = tail.clone();
        append(&mut tail, 10, "k10", 10, 10);
        assert!(!snapshot.holds(10));
        assert_eq!(tail.key(10), Some("k10"));
        tail.drop_below(8);
        assert!(!tail.holds(7));
        assert_eq!(tail.key(8), Some("k8"));
        assert!(tail.whole_block(0, 0, 11).is_none());
        assert_eq!(snapshot.key(7), Some("k7"));
        tail.drop_below(11);
        assert!(tail.is_empty());
    }
}
