//! The index of one column in one shard: which rows hold which value.
//!
//! - TEXT / SET<TEXT>: a dictionary and one bitmap per value id.
//! - INT / TIMESTAMP: a bit-sliced index.
//! - FLOAT: only the existence bitmap (values are read from the column).
//! - BOOL: the bitmap of true rows.
//!
//! Invariants: every column has an existence bitmap (rows whose value is not
//! NULL), a subset of the shard's live rows; every value bitmap is a subset of
//! it; `bitmaps.len() == dict.slots()`. Bitmaps hold global row ids and sit
//! behind `Arc`s, so a writer copies only what a snapshot still shares.

use super::cell::{Cell, CellRef};
use super::value::Value;
use crate::storage::bsi::{add_rows, Bsi};
use crate::storage::dictionary::Dictionary;
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum ColumnIndex {
    Dict {
        exists: Arc<RoaringBitmap>,
        dict: Arc<Dictionary>,
        bitmaps: Vec<Arc<RoaringBitmap>>,
    },
    Int(Bsi),
    Float {
        exists: Arc<RoaringBitmap>,
    },
    Bool {
        exists: Arc<RoaringBitmap>,
        trues: Arc<RoaringBitmap>,
    },
}

fn set_bit(bitmap: &mut Arc<RoaringBitmap>, row: u32) {
    Arc::make_mut(bitmap).insert(row);
}

fn clear_bit(bitmap: &mut Arc<RoaringBitmap>, row: u32) {
    if bitmap.contains(row) {
        Arc::make_mut(bitmap).remove(row);
    }
}

impl ColumnIndex {
    /// An empty index for a column of type `ty`.
    pub fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Text | ColumnType::TextSet => ColumnIndex::Dict {
                exists: Arc::default(),
                dict: Arc::default(),
                bitmaps: Vec::new(),
            },
            ColumnType::Int | ColumnType::Timestamp => ColumnIndex::Int(Bsi::new()),
            ColumnType::Float => ColumnIndex::Float {
                exists: Arc::default(),
            },
            ColumnType::Bool => ColumnIndex::Bool {
                exists: Arc::default(),
                trues: Arc::default(),
            },
        }
    }

    /// Rows whose value is not NULL.
    pub fn exists(&self) -> &RoaringBitmap {
        match self {
            ColumnIndex::Dict { exists, .. }
            | ColumnIndex::Float { exists }
            | ColumnIndex::Bool { exists, .. } => exists,
            ColumnIndex::Int(bsi) => bsi.exists(),
        }
    }

    /// Indexes `row` as holding `cell`.
    pub fn insert(&mut self, row: u32, cell: &Cell) {
        match (self, cell) {
            (_, Cell::Null) => {}
            (
                ColumnIndex::Dict {
                    exists, bitmaps, ..
                },
                Cell::Text(id),
            ) => {
                set_bit(exists, row);
                set_bit(&mut bitmaps[*id as usize], row);
            }
            (
                ColumnIndex::Dict {
                    exists, bitmaps, ..
                },
                Cell::Set(ids),
            ) => {
                set_bit(exists, row);
                for id in ids.iter() {
                    set_bit(&mut bitmaps[*id as usize], row);
                }
            }
            (ColumnIndex::Int(bsi), Cell::Int(v)) => bsi.set(row, *v),
            (ColumnIndex::Float { exists }, Cell::Float(_)) => set_bit(exists, row),
            (ColumnIndex::Bool { exists, trues }, Cell::Bool(v)) => {
                set_bit(exists, row);
                if *v {
                    set_bit(trues, row);
                }
            }
            // Cells are built for their column's type (see `cell_of`), so no other pairing occurs.
            _ => debug_assert!(false, "cell does not fit its column index"),
        }
    }

    /// Indexes `n` rows new to the shard, `first_row` onwards, row
    /// `first_row + j` holding `cell(j)` (called more than once per row):
    /// one append per bitmap when the rows lie above every indexed row
    /// (bulk loading), inserts otherwise. Same result as
    /// [`ColumnIndex::insert`] per row. No list of cells is built.
    pub fn append_rows<'c>(
        &mut self,
        first_row: u32,
        n: usize,
        cell: impl Fn(usize) -> CellRef<'c>,
    ) {
        fn ids_of<'a>(cell: &'a CellRef<'_>) -> &'a [u32] {
            match cell {
                CellRef::Text(id) => std::slice::from_ref(id),
                CellRef::Set(ids) => ids,
                _ => &[],
            }
        }
        let rows_where = |keep: &dyn Fn(&CellRef<'_>) -> bool| -> Vec<u32> {
            (0..n)
                .filter(|&j| keep(&cell(j)))
                .map(|j| first_row + j as u32)
                .collect()
        };
        match self {
            ColumnIndex::Dict {
                exists, bitmaps, ..
            } => {
                // The rows of each value, in row order, by a counting sort
                // into one flat list: no list per value (a SET column has
                // hundreds of values, and a list each cost more in
                // allocations than the appends themselves).
                let values = bitmaps.len();
                let mut ends = vec![0usize; values + 1];
                for j in 0..n {
                    for id in ids_of(&cell(j)) {
                        if let Some(end) = ends.get_mut(*id as usize + 1) {
                            *end += 1;
                        }
                    }
                }
                for v in 0..values {
                    ends[v + 1] += ends[v];
                }
                let mut next = ends.clone();
                let mut rows = vec![0u32; ends[values]];
                let mut present = Vec::with_capacity(n);
                for j in 0..n {
                    let cell = cell(j);
                    let row = first_row + j as u32;
                    if !cell.is_null() {
                        present.push(row);
                    }
                    for id in ids_of(&cell) {
                        if let Some(at) = next.get_mut(*id as usize) {
                            rows[*at] = row;
                            *at += 1;
                        }
                    }
                }
                for (id, bitmap) in bitmaps.iter_mut().enumerate() {
                    if ends[id] < ends[id + 1] {
                        add_rows(Arc::make_mut(bitmap), &rows[ends[id]..ends[id + 1]]);
                    }
                }
                add_rows(Arc::make_mut(exists), &present);
            }
            ColumnIndex::Int(bsi) => {
                let values: Vec<(u32, i64)> = (0..n)
                    .filter_map(|j| match cell(j) {
                        CellRef::Int(v) => Some((first_row + j as u32, v)),
                        _ => None,
                    })
                    .collect();
                bsi.append(&values);
            }
            ColumnIndex::Float { exists } => {
                add_rows(
                    Arc::make_mut(exists),
                    &rows_where(&|c| matches!(c, CellRef::Float(_))),
                );
            }
            ColumnIndex::Bool { exists, trues } => {
                add_rows(
                    Arc::make_mut(exists),
                    &rows_where(&|c| matches!(c, CellRef::Bool(_))),
                );
                add_rows(
                    Arc::make_mut(trues),
                    &rows_where(&|c| matches!(c, CellRef::Bool(true))),
                );
            }
        }
    }

    /// Every bitmap of the index, in a fixed order per column type.
    pub fn bitmaps(&self) -> Vec<&Arc<RoaringBitmap>> {
        match self {
            ColumnIndex::Dict {
                exists, bitmaps, ..
            } => std::iter::once(exists).chain(bitmaps.iter()).collect(),
            ColumnIndex::Int(bsi) => bsi.bitmaps().collect(),
            ColumnIndex::Float { exists } => vec![exists],
            ColumnIndex::Bool { exists, trues } => vec![exists, trues],
        }
    }

    /// [`ColumnIndex::bitmaps`], to replace one by an equal bitmap.
    pub fn bitmaps_mut(&mut self) -> Vec<&mut Arc<RoaringBitmap>> {
        match self {
            ColumnIndex::Dict {
                exists, bitmaps, ..
            } => std::iter::once(exists).chain(bitmaps.iter_mut()).collect(),
            ColumnIndex::Int(bsi) => bsi.bitmaps_mut().collect(),
            ColumnIndex::Float { exists } => vec![exists],
            ColumnIndex::Bool { exists, trues } => vec![exists, trues],
        }
    }

    /// Removes `row`, which held `cell`, from the index.
    pub fn remove(&mut self, row: u32, cell: &Cell) {
        match (self, cell) {
            (_, Cell::Null) => {}
            (
                ColumnIndex::Dict {
                    exists, bitmaps, ..
                },
                Cell::Text(id),
            ) => {
                clear_bit(exists, row);
                if let Some(b) = bitmaps.get_mut(*id as usize) {
                    clear_bit(b, row);
                }
            }
            (
                ColumnIndex::Dict {
                    exists, bitmaps, ..
                },
                Cell::Set(ids),
            ) => {
                clear_bit(exists, row);
                for id in ids.iter() {
                    if let Some(b) = bitmaps.get_mut(*id as usize) {
                        clear_bit(b, row);
                    }
                }
            }
            (ColumnIndex::Int(bsi), Cell::Int(_)) => bsi.clear(row),
            (ColumnIndex::Float { exists }, Cell::Float(_)) => clear_bit(exists, row),
            (ColumnIndex::Bool { exists, trues }, Cell::Bool(_)) => {
                clear_bit(exists, row);
                clear_bit(trues, row);
            }
            _ => debug_assert!(false, "cell does not fit its column index"),
        }
    }

    /// The id of `value` in this column's dictionary, adding it if needed.
    pub fn intern(&mut self, value: &str) -> u32 {
        match self {
            ColumnIndex::Dict { dict, bitmaps, .. } => {
                if let Some(id) = dict.get(value) {
                    return id;
                }
                let id = Arc::make_mut(dict).get_or_insert(value);
                bitmaps.push(Arc::default());
                id
            }
            _ => u32::MAX,
        }
    }

    /// The id of `value`, if this column's dictionary holds it.
    pub fn lookup(&self, value: &str) -> Option<u32> {
        match self {
            ColumnIndex::Dict { dict, .. } => dict.get(value),
            _ => None,
        }
    }

    /// The cell for a (type-checked) value.
    pub fn cell_of(&mut self, value: &Value) -> Cell {
        match value {
            Value::Null => Cell::Null,
            Value::Text(s) => Cell::Text(self.intern(s)),
            Value::Set(tags) => {
                let mut ids: Vec<u32> = tags.iter().map(|t| self.intern(t)).collect();
                ids.sort_unstable();
                ids.dedup();
                Cell::Set(ids.into_boxed_slice())
            }
            Value::Int(v) | Value::Timestamp(v) => Cell::Int(*v),
            Value::Float(v) => Cell::Float(*v),
            Value::Bool(v) => Cell::Bool(*v),
        }
    }

    /// The value a cell stands for, in a column of type `ty`.
    pub fn value_of(&self, ty: ColumnType, cell: &Cell) -> Value {
        let text = |id: u32| match self {
            ColumnIndex::Dict { dict, .. } => dict.value(id).unwrap_or_default().to_string(),
            _ => String::new(),
        };
        match cell {
            Cell::Null => Value::Null,
            Cell::Text(id) => Value::Text(text(*id)),
            Cell::Set(ids) => {
                let mut tags: Vec<String> = ids.iter().map(|id| text(*id)).collect();
                tags.sort();
                Value::Set(tags)
            }
            Cell::Int(v) if ty == ColumnType::Timestamp => Value::Timestamp(*v),
            Cell::Int(v) => Value::Int(*v),
            Cell::Float(v) => Value::Float(*v),
            Cell::Bool(v) => Value::Bool(*v),
        }
    }

    /// The dictionary of a TEXT / SET<TEXT> column.
    pub fn dictionary(&self) -> Option<&Dictionary> {
        match self {
            ColumnIndex::Dict { dict, .. } => Some(dict),
            _ => None,
        }
    }

    /// The bitmap of value id `id` of a TEXT / SET<TEXT> column.
    pub fn value_bitmap(&self, id: u32) -> Option<&RoaringBitmap> {
        match self {
            ColumnIndex::Dict { bitmaps, .. } => bitmaps.get(id as usize).map(|b| b.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_remove_keep_bitmaps_exact() {
        let mut c = ColumnIndex::new(ColumnType::TextSet);
        let cell = c.cell_of(&Value::Set(vec!["b".into(), "a".into(), "b".into()]));
        assert_eq!(cell, Cell::Set(vec![0, 1].into_boxed_slice()));
        c.insert(7, &cell);
        assert!(c.exists().contains(7));
        assert!(c.value_bitmap(c.lookup("a").unwrap()).unwrap().contains(7));
        assert_eq!(
            c.value_of(ColumnType::TextSet, &cell),
            Value::Set(vec!["a".into(), "b".into()])
        );
        c.remove(7, &cell);
        assert!(c.exists().is_empty());
        assert!(c.value_bitmap(0).unwrap().is_empty());
    }

    #[test]
    fn bool_and_int_columns() {
        let mut b = ColumnIndex::new(ColumnType::Bool);
        b.insert(1, &Cell::Bool(true));
        b.insert(2, &Cell::Bool(false));
        assert_eq!(b.exists().len(), 2);
        b.remove(1, &Cell::Bool(true));
        assert_eq!(b.exists().len(), 1);
        let mut i = ColumnIndex::new(ColumnType::Timestamp);
        let cell = i.cell_of(&Value::Timestamp(-5));
        i.insert(3, &cell);
        assert_eq!(
            i.value_of(ColumnType::Timestamp, &cell),
            Value::Timestamp(-5)
        );
        match &i {
            ColumnIndex::Int(bsi) => assert_eq!(bsi.get(3), Some(-5)),
            _ => unreachable!(),
        }
    }
}
