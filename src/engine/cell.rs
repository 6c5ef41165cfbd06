//! The in-memory form of one row: cells holding dictionary ids instead of
//! strings, and the copy-on-write overlay of rows changed since the last
//! checkpoint.
//!
//! Invariants: a `Cell::Set` holds sorted, distinct value ids; every id in a
//! cell names a non-hole slot of its shard's dictionary; an overlay entry with
//! `image: None` is a row deleted since the checkpoint. The overlay is split
//! into chunks of 4096 rows behind `Arc`s so that a writer copies only the
//! chunks a live snapshot still shares.

use crate::storage::block::{BlockValues, NULL_ID};
use std::sync::Arc;

/// One stored value, as the shard keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(u32),
    Set(Box<[u32]>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Cell {
    pub fn as_ref(&self) -> CellRef<'_> {
        match self {
            Cell::Null => CellRef::Null,
            Cell::Text(id) => CellRef::Text(*id),
            Cell::Set(ids) => CellRef::Set(ids),
            Cell::Int(v) => CellRef::Int(*v),
            Cell::Float(v) => CellRef::Float(*v),
            Cell::Bool(v) => CellRef::Bool(*v),
        }
    }
}

/// A [`Cell`] borrowed from where it is stored (an image, a tail or a base block).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellRef<'a> {
    Null,
    Text(u32),
    Set(&'a [u32]),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl CellRef<'_> {
    pub fn to_cell(self) -> Cell {
        match self {
            CellRef::Null => Cell::Null,
            CellRef::Text(id) => Cell::Text(id),
            CellRef::Set(ids) => Cell::Set(ids.into()),
            CellRef::Int(v) => Cell::Int(v),
            CellRef::Float(v) => Cell::Float(v),
            CellRef::Bool(v) => Cell::Bool(v),
        }
    }

    pub fn is_null(self) -> bool {
        matches!(self, CellRef::Null)
    }
}

/// Row `i` of a column block as a cell, or `None` when the block has no row
/// `i`. INT and FLOAT blocks do not mark NULLs: `present` tells (the row is
/// in the column's existence bitmap).
pub fn block_cell(
    values: &BlockValues,
    i: usize,
    present: impl FnOnce() -> bool,
) -> Option<CellRef<'_>> {
    Some(match values {
        BlockValues::Text(ids) => match *ids.get(i)? {
            NULL_ID => CellRef::Null,
            id => CellRef::Text(id),
        },
        BlockValues::Set { counts, .. } => {
            counts.get(i)?;
            values.set_at(i).map_or(CellRef::Null, CellRef::Set)
        }
        BlockValues::Int(vs) => {
            let v = *vs.get(i)?;
            if present() {
                CellRef::Int(v)
            } else {
                CellRef::Null
            }
        }
        BlockValues::Float(vs) => {
            let v = *vs.get(i)?;
            if present() {
                CellRef::Float(v)
            } else {
                CellRef::Null
            }
        }
        BlockValues::Bool(vs) => match *vs.get(i)? {
            0 => CellRef::Bool(false),
            1 => CellRef::Bool(true),
            _ => CellRef::Null,
        },
    })
}

/// A whole row: its external id and one cell per non-key column.
#[derive(Debug, Clone, PartialEq)]
pub struct RowImage {
    pub key: Box<str>,
    pub cells: Box<[Cell]>,
}

/// The state of one changed row: the LSN of the change and the row after it.
#[derive(Debug, Clone)]
pub struct OverlayEntry {
    pub lsn: u64,
    /// `None`: deleted.
    pub image: Option<Arc<RowImage>>,
}

const CHUNK_BITS: u32 = 12;
const CHUNK_ROWS: usize = 1 << CHUNK_BITS;
type Chunk = Vec<Option<OverlayEntry>>;

/// Rows of one shard changed since its part was written, by local row id.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    chunks: Vec<Option<Arc<Chunk>>>,
    entries: usize,
}

impl Overlay {
    pub fn get(&self, local: u32) -> Option<&OverlayEntry> {
        let chunk = self.chunks.get((local >> CHUNK_BITS) as usize)?.as_ref()?;
        chunk[local as usize & (CHUNK_ROWS - 1)].as_ref()
    }

    pub fn set(&mut self, local: u32, entry: OverlayEntry) {
        let c = (local >> CHUNK_BITS) as usize;
        if self.chunks.len() <= c {
            self.chunks.resize(c + 1, None);
        }
        let chunk = self.chunks[c].get_or_insert_with(|| Arc::new(vec![None; CHUNK_ROWS]));
        let slot = &mut Arc::make_mut(chunk)[local as usize & (CHUNK_ROWS - 1)];
        if slot.is_none() {
            self.entries += 1;
        }
        *slot = Some(entry);
    }

    /// True when a row in `start..end` (local ids) may have an entry.
    pub fn has_entries_in(&self, start: u32, end: u32) -> bool {
        if start >= end {
            return false;
        }
        let first = (start >> CHUNK_BITS) as usize;
        let last = ((end - 1) >> CHUNK_BITS) as usize;
        self.chunks
            .iter()
            .take(last + 1)
            .skip(first)
            .any(Option::is_some)
    }

    /// Number of changed rows.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The changes made after `lsn`, as (local row, entry).
    pub fn newer_than(&self, lsn: u64) -> impl Iterator<Item = (u32, &OverlayEntry)> {
        self.chunks.iter().enumerate().flat_map(move |(c, chunk)| {
            chunk.iter().flat_map(move |chunk| {
                chunk.iter().enumerate().filter_map(move |(i, e)| {
                    let e = e.as_ref().filter(|e| e.lsn > lsn)?;
                    Some((((c as u32) << CHUNK_BITS) | i as u32, e))
                })
            })
        })
    }

    /// Forgets every change at or below `lsn` (it is now in the part).
    pub fn retain_newer_than(&mut self, lsn: u64) {
        let mut entries = 0;
        for slot in self.chunks.iter_mut() {
            let Some(chunk) = slot else { continue };
            let keep = chunk.iter().flatten().filter(|e| e.lsn > lsn).count();
            if keep == 0 {
                *slot = None;
                continue;
            }
            if keep != chunk.iter().flatten().count() {
                for e in Arc::make_mut(chunk).iter_mut() {
                    if e.as_ref().is_some_and(|e| e.lsn <= lsn) {
                        *e = None;
                    }
                }
            }
            entries += keep;
        }
        self.entries = entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lsn: u64) -> OverlayEntry {
        OverlayEntry { lsn, image: None }
    }

    #[test]
    fn set_get_and_retain() {
        let mut o = Overlay::default();
        o.set(5, entry(1));
        o.set(5000, entry(2));
        o.set(5001, entry(3));
        o.set(5, entry(4));
        assert_eq!(o.len(), 3);
        assert_eq!(o.get(5).unwrap().lsn, 4);
        assert!(o.get(6).is_none());
        assert!(o.get(1 << 19).is_none());
        o.retain_newer_than(2);
        assert_eq!(o.len(), 2);
        assert!(o.get(5000).is_none());
        assert_eq!(o.get(5001).unwrap().lsn, 3);
        o.retain_newer_than(10);
        assert!(o.is_empty());
    }

    #[test]
    fn a_snapshot_keeps_its_view_while_the_writer_changes_the_copy() {
        let mut o = Overlay::default();
        o.set(1, entry(1));
        let snapshot = o.clone();
        o.set(1, entry(2));
        o.set(2, entry(3));
        assert_eq!(snapshot.get(1).unwrap().lsn, 1);
        assert!(snapshot.get(2).is_none());
        assert_eq!(o.get(1).unwrap().lsn, 2);
    }
}
