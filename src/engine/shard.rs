//! One shard of a table: up to 2^20 consecutive row ids, the unit of
//! parallel query work and of checkpointing.
//!
//! A shard is its base part (the last checkpoint's file, if any) plus the
//! overlay of rows changed since, plus the in-memory indexes (live rows and
//! one [`ColumnIndex`] per column) that always reflect the current state.
//!
//! Invariants: `live` holds exactly the rows that exist; a row's current image
//! is its overlay entry if it has one, else its base row; every index agrees
//! with the current images; all row ids are in `[first_row, first_row + len)`.

use super::base::BasePart;
use super::cell::{Cell, Overlay, OverlayEntry, RowImage};
use super::column::ColumnIndex;
use crate::storage::block::{encode_block, BlockValues, SetBlockBuilder, BLOCK_ROWS, NULL_ID};
use crate::storage::bsi::{add_rows, Bsi};
use crate::storage::codec::ByteWriter;
use crate::storage::dictionary::Dictionary;
use crate::storage::error::{Result, StorageError};
use crate::storage::keys::encode_keys;
use crate::storage::part::{PartHeader, PartWriter, SectionKind};
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;
use std::path::Path;
use std::sync::Arc;

/// log2 of the rows per shard.
pub const SHARD_BITS: u32 = 20;
/// Rows per shard.
pub const SHARD_ROWS: u32 = 1 << SHARD_BITS;

pub fn shard_of(row: u32) -> u32 {
    row >> SHARD_BITS
}
pub fn local_of(row: u32) -> u32 {
    row & (SHARD_ROWS - 1)
}

#[derive(Debug, Clone)]
pub struct ShardState {
    pub number: u32,
    /// Local row ids are below this.
    pub len: u32,
    pub base: Option<Arc<BasePart>>,
    pub overlay: Overlay,
    pub live: Arc<RoaringBitmap>,
    pub columns: Vec<ColumnIndex>,
}

impl ShardState {
    pub fn empty(number: u32, types: &[ColumnType]) -> Self {
        ShardState {
            number,
            len: 0,
            base: None,
            overlay: Overlay::default(),
            live: Arc::default(),
            columns: types.iter().map(|t| ColumnIndex::new(*t)).collect(),
        }
    }

    pub fn first_row(&self) -> u32 {
        self.number << SHARD_BITS
    }

    /// True when rows changed since the base part was written.
    pub fn is_dirty(&self) -> bool {
        !self.overlay.is_empty()
    }

    /// The current image of global row `row`, or `None` when it does not exist.
    pub fn image(&self, row: u32) -> Result<Option<Arc<RowImage>>> {
        let local = local_of(row);
        if let Some(entry) = self.overlay.get(local) {
            return Ok(entry.image.clone());
        }
        if !self.live.contains(row) {
            return Ok(None);
        }
        let Some(base) = &self.base else {
            return Ok(None);
        };
        let key = base.key(local).ok_or_else(|| {
            StorageError::corrupted(base.path(), 0, format!("live row {local} has no key"))
        })?;
        let mut cells = Vec::with_capacity(self.columns.len());
        for (c, index) in self.columns.iter().enumerate() {
            cells.push(base_cell(base, index, c, row)?);
        }
        Ok(Some(Arc::new(RowImage {
            key: key.into(),
            cells: cells.into_boxed_slice(),
        })))
    }

    /// The cell of column `c` at global row `row`; `None` when the row does not exist.
    pub fn cell(&self, c: usize, row: u32) -> Result<Option<Cell>> {
        let local = local_of(row);
        if let Some(entry) = self.overlay.get(local) {
            return Ok(entry.image.as_ref().map(|img| img.cells[c].clone()));
        }
        if !self.live.contains(row) {
            return Ok(None);
        }
        let (Some(base), Some(index)) = (&self.base, self.columns.get(c)) else {
            return Ok(None);
        };
        base_cell(base, index, c, row).map(Some)
    }

    /// The external id of global row `row`; `None` when the row does not exist.
    pub fn key(&self, row: u32) -> Result<Option<String>> {
        let local = local_of(row);
        if let Some(entry) = self.overlay.get(local) {
            return Ok(entry.image.as_ref().map(|img| img.key.to_string()));
        }
        if !self.live.contains(row) {
            return Ok(None);
        }
        let Some(base) = &self.base else {
            return Ok(None);
        };
        match base.key(local) {
            Some(k) => Ok(Some(k.to_string())),
            None => Err(StorageError::corrupted(
                base.path(),
                0,
                format!("live row {local} has no key"),
            )),
        }
    }

    /// [`ShardState::key`] as borrowed UTF-8 bytes (no copy, no re-check).
    pub fn key_bytes(&self, row: u32) -> Result<Option<&[u8]>> {
        let local = local_of(row);
        if let Some(entry) = self.overlay.get(local) {
            return Ok(entry.image.as_ref().map(|img| img.key.as_bytes()));
        }
        if !self.live.contains(row) {
            return Ok(None);
        }
        let Some(base) = &self.base else {
            return Ok(None);
        };
        match base.id_bytes(local) {
            Some(k) => Ok(Some(k)),
            None => Err(StorageError::corrupted(
                base.path(),
                0,
                format!("live row {local} has no key"),
            )),
        }
    }

    /// Makes `new` the image of `row` (which was `old`), at `lsn`.
    pub fn put(&mut self, row: u32, old: Option<&RowImage>, new: Arc<RowImage>, lsn: u64) {
        for (c, index) in self.columns.iter_mut().enumerate() {
            let before = old.map(|o| &o.cells[c]).unwrap_or(&Cell::Null);
            let after = &new.cells[c];
            if before != after {
                index.remove(row, before);
                index.insert(row, after);
            }
        }
        if !self.live.contains(row) {
            Arc::make_mut(&mut self.live).insert(row);
        }
        self.len = self.len.max(local_of(row) + 1);
        self.overlay.set(
            local_of(row),
            OverlayEntry {
                lsn,
                image: Some(new),
            },
        );
    }

    /// Makes `images` the images of rows that did not exist (increasing),
    /// at `lsn`: [`ShardState::put`] for each, with the indexes updated in
    /// one pass per column.
    pub fn put_new(&mut self, images: &[(u32, Arc<RowImage>)], lsn: u64) {
        let Some(&(last, _)) = images.last() else {
            return;
        };
        let mut cells = Vec::with_capacity(images.len());
        for (c, index) in self.columns.iter_mut().enumerate() {
            cells.clear();
            cells.extend(images.iter().map(|(row, img)| (*row, &img.cells[c])));
            index.append_rows(&cells);
        }
        let rows: Vec<u32> = images.iter().map(|(row, _)| *row).collect();
        add_rows(Arc::make_mut(&mut self.live), &rows);
        self.len = self.len.max(local_of(last) + 1);
        for (row, img) in images {
            self.overlay.set(
                local_of(*row),
                OverlayEntry {
                    lsn,
                    image: Some(img.clone()),
                },
            );
        }
    }

    /// Deletes `row`, whose image was `old`, at `lsn`.
    pub fn delete(&mut self, row: u32, old: &RowImage, lsn: u64) {
        for (c, index) in self.columns.iter_mut().enumerate() {
            index.remove(row, &old.cells[c]);
        }
        Arc::make_mut(&mut self.live).remove(row);
        self.overlay
            .set(local_of(row), OverlayEntry { lsn, image: None });
    }

    /// Loads a shard from its verified base part.
    pub fn load(base: Arc<BasePart>, types: &[ColumnType]) -> Result<Self> {
        let part = base.reader();
        let path = part.path().to_path_buf();
        let header = *part.header();
        let first = header.shard << SHARD_BITS;
        let d = |e: crate::storage::error::DecodeError| e.in_file(&path);
        let live = part
            .required(SectionKind::Live, 0, 0)?
            .bitmap("live rows")
            .map_err(d)?;
        if live
            .max()
            .is_some_and(|m| m < first || m - first >= header.row_len)
            || live.min().is_some_and(|m| m < first)
        {
            return Err(StorageError::corrupted(
                &path,
                0,
                "live rows lie outside the shard",
            ));
        }
        for row in live.iter() {
            if !base.has_key(row - first) {
                return Err(StorageError::corrupted(
                    &path,
                    0,
                    format!("live row {} has no key", row - first),
                ));
            }
        }
        let mut columns = Vec::with_capacity(types.len());
        for (c, ty) in types.iter().enumerate() {
            let c16 = c as u16;
            let mut r = part.required(SectionKind::Exists, c16, 0)?;
            let at = r.offset();
            let exists = r.bitmap("existence bitmap").map_err(d)?;
            if !exists.is_subset(&live) {
                return Err(StorageError::corrupted(
                    &path,
                    at,
                    format!("column {c} has values for rows that do not exist"),
                ));
            }
            let index = match ty {
                ColumnType::Text | ColumnType::TextSet => {
                    let dict = Dictionary::decode(&mut part.required(SectionKind::Dict, c16, 0)?)
                        .map_err(d)?;
                    let mut r = part.required(SectionKind::Values, c16, 0)?;
                    let at = r.offset();
                    let n = r.count(4, "value bitmap count").map_err(d)?;
                    if n != dict.slots() {
                        return Err(StorageError::corrupted(
                            &path,
                            at,
                            "value bitmap count differs from the dictionary",
                        ));
                    }
                    let mut bitmaps = Vec::with_capacity(n);
                    for id in 0..n {
                        let at = r.offset();
                        let b = r.bitmap("value bitmap").map_err(d)?;
                        if !b.is_subset(&exists)
                            || (dict.value(id as u32).is_none() && !b.is_empty())
                        {
                            return Err(StorageError::corrupted(
                                &path,
                                at,
                                format!("bitmap of value {id} of column {c} is inconsistent"),
                            ));
                        }
                        bitmaps.push(Arc::new(b));
                    }
                    ColumnIndex::Dict {
                        exists: Arc::new(exists),
                        dict: Arc::new(dict),
                        bitmaps,
                    }
                }
                ColumnType::Int | ColumnType::Timestamp => {
                    let mut r = part.required(SectionKind::Bsi, c16, 0)?;
                    let at = r.offset();
                    let bsi_base = r.i64("BSI base").map_err(d)?;
                    let depth = r.count(4, "BSI depth").map_err(d)?;
                    let mut slices = Vec::with_capacity(depth);
                    for _ in 0..depth {
                        slices.push(r.bitmap("BSI slice").map_err(d)?);
                    }
                    let bsi = Bsi::from_parts(exists, bsi_base, slices)
                        .map_err(|e| StorageError::corrupted(&path, at, e))?;
                    ColumnIndex::Int(bsi)
                }
                ColumnType::Float => ColumnIndex::Float {
                    exists: Arc::new(exists),
                },
                ColumnType::Bool => {
                    let mut r = part.required(SectionKind::BoolTrue, c16, 0)?;
                    let at = r.offset();
                    let trues = r.bitmap("true rows").map_err(d)?;
                    if !trues.is_subset(&exists) {
                        return Err(StorageError::corrupted(
                            &path,
                            at,
                            "true rows without a value",
                        ));
                    }
                    ColumnIndex::Bool {
                        exists: Arc::new(exists),
                        trues: Arc::new(trues),
                    }
                }
            };
            columns.push(index);
        }
        Ok(ShardState {
            number: header.shard,
            len: header.row_len,
            base: Some(base),
            overlay: Overlay::default(),
            live: Arc::new(live),
            columns,
        })
    }

    /// Writes this shard (as of this snapshot) to a new part file at `path`
    /// and fsyncs it. Returns the file size.
    pub fn write_part(
        &self,
        path: &Path,
        table_id: u32,
        generation: u64,
        types: &[ColumnType],
        compress: bool,
    ) -> Result<u64> {
        let first = self.first_row();
        let header = PartHeader {
            table_id,
            shard: self.number,
            row_len: self.len,
            generation,
        };
        let mut w = PartWriter::create(path, header)?;
        // Current images of the overlay rows, and keys of every live row.
        let mut keys: Vec<(u32, &str)> = Vec::with_capacity(self.live.len() as usize);
        for row in self.live.iter() {
            let local = row - first;
            let key = match self.overlay.get(local) {
                Some(OverlayEntry {
                    image: Some(img), ..
                }) => &*img.key,
                Some(OverlayEntry { image: None, .. }) => continue,
                None => match self.base.as_ref().and_then(|b| b.key(local)) {
                    Some(k) => k,
                    None => {
                        return Err(StorageError::corrupted(
                            self.base.as_ref().map(|b| b.path()).unwrap_or(path),
                            0,
                            format!("live row {local} has no key in the base part"),
                        ))
                    }
                },
            };
            keys.push((local, key));
        }
        w.section(
            SectionKind::Keys,
            0,
            0,
            &encode_keys(self.len, keys.into_iter()),
        )?;
        w.section(SectionKind::Live, 0, 0, &optimized(&self.live))?;
        let blocks = self.len.div_ceil(BLOCK_ROWS);
        for (c, index) in self.columns.iter().enumerate() {
            let c16 = c as u16;
            w.section(SectionKind::Exists, c16, 0, &optimized(index.exists()))?;
            match index {
                ColumnIndex::Dict { dict, bitmaps, .. } => {
                    let keep = |id: u32| bitmaps.get(id as usize).is_some_and(|b| !b.is_empty());
                    let mut out = ByteWriter::new();
                    dict.encode(&mut out, keep);
                    w.section(SectionKind::Dict, c16, 0, out.as_slice())?;
                    let mut out = ByteWriter::new();
                    out.u32(bitmaps.len() as u32);
                    for b in bitmaps {
                        out.bitmap(b);
                    }
                    w.section(SectionKind::Values, c16, 0, out.as_slice())?;
                }
                ColumnIndex::Int(bsi) => {
                    // A normalised copy: no trace of values only deleted rows held.
                    let mut bsi = bsi.clone();
                    bsi.normalize();
                    let mut out = ByteWriter::new();
                    out.i64(bsi.base());
                    out.u32(bsi.depth() as u32);
                    for s in bsi.slices() {
                        out.bitmap(s);
                    }
                    w.section(SectionKind::Bsi, c16, 0, out.as_slice())?;
                }
                ColumnIndex::Float { .. } => {}
                ColumnIndex::Bool { trues, .. } => {
                    w.section(SectionKind::BoolTrue, c16, 0, &optimized(trues))?;
                }
            }
            for b in 0..blocks {
                let values = self.block_values(c, types[c], b)?;
                w.section(SectionKind::Block, c16, b, &encode_block(&values, compress))?;
            }
        }
        w.finish()
    }

    /// The current values of block `b` of column `c`: overlay rows from their
    /// images, the others copied from the base block.
    fn block_values(&self, c: usize, ty: ColumnType, b: u32) -> Result<BlockValues> {
        let start = b * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS).min(self.len);
        let old = match &self.base {
            Some(base) if base.row_len() > start => Some(base.block(c, b)?),
            _ => None,
        };
        let old_len = self.base.as_ref().map_or(0, |b| b.row_len());
        // The cell of local row `l` if it is in the overlay, else None (use the base).
        let current = |l: u32| -> Option<Cell> {
            self.overlay.get(l).map(|e| match &e.image {
                Some(img) => img.cells[c].clone(),
                None => Cell::Null,
            })
        };
        let from_base = |l: u32| l < old_len && old.is_some();
        let i = |l: u32| (l - start) as usize;
        Ok(match ty {
            ColumnType::Text => BlockValues::Text(
                (start..end)
                    .map(|l| match current(l) {
                        Some(Cell::Text(id)) => id,
                        Some(_) => NULL_ID,
                        None if from_base(l) => match old.as_deref() {
                            Some(BlockValues::Text(ids)) => {
                                ids.get(i(l)).copied().unwrap_or(NULL_ID)
                            }
                            _ => NULL_ID,
                        },
                        None => NULL_ID,
                    })
                    .collect(),
            ),
            ColumnType::TextSet => {
                let mut builder = SetBlockBuilder::default();
                for l in start..end {
                    match current(l) {
                        Some(Cell::Set(ids)) => builder.push(Some(&ids)),
                        Some(_) => builder.push(None),
                        None if from_base(l) => {
                            builder.push(old.as_deref().and_then(|o| o.set_at(i(l))))
                        }
                        None => builder.push(None),
                    }
                }
                builder.finish()
            }
            ColumnType::Int | ColumnType::Timestamp => BlockValues::Int(merge_fixed(
                start..end,
                &current,
                |cell| match cell {
                    Cell::Int(v) => Some(v),
                    _ => None,
                },
                |l| match old.as_deref() {
                    Some(BlockValues::Int(vs)) if from_base(l) => vs.get(i(l)).copied(),
                    _ => None,
                },
                0,
            )),
            ColumnType::Float => BlockValues::Float(merge_fixed(
                start..end,
                &current,
                |cell| match cell {
                    Cell::Float(v) => Some(v),
                    _ => None,
                },
                |l| match old.as_deref() {
                    Some(BlockValues::Float(vs)) if from_base(l) => vs.get(i(l)).copied(),
                    _ => None,
                },
                0.0,
            )),
            ColumnType::Bool => BlockValues::Bool(merge_fixed(
                start..end,
                &current,
                |cell| match cell {
                    Cell::Bool(v) => Some(u8::from(v)),
                    _ => None,
                },
                |l| match old.as_deref() {
                    Some(BlockValues::Bool(vs)) if from_base(l) => vs.get(i(l)).copied(),
                    _ => None,
                },
                2,
            )),
        })
    }
}

/// The cell of column `c` at global `row` as the base part holds it, checked
/// against the column's dictionary (an id it does not hold is corruption).
fn base_cell(base: &BasePart, index: &ColumnIndex, c: usize, row: u32) -> Result<Cell> {
    let local = local_of(row);
    let cell = base.cell(c, local, row, index.exists())?;
    let valid = match (&cell, index.dictionary()) {
        (Cell::Text(id), Some(d)) => d.value(*id).is_some(),
        (Cell::Set(ids), Some(d)) => ids.iter().all(|id| d.value(*id).is_some()),
        _ => true,
    };
    if !valid {
        return Err(StorageError::corrupted(
            base.path(),
            0,
            format!("row {local} of column {c} names a value its dictionary does not hold"),
        ));
    }
    Ok(cell)
}

/// One fixed-width block: each row's value from its overlay cell (`current`),
/// else from the base block (`from_base`), else `null`.
fn merge_fixed<T: Copy>(
    rows: std::ops::Range<u32>,
    current: &impl Fn(u32) -> Option<Cell>,
    of_cell: impl Fn(Cell) -> Option<T>,
    from_base: impl Fn(u32) -> Option<T>,
    null: T,
) -> Vec<T> {
    rows.map(|l| match current(l) {
        Some(cell) => of_cell(cell).unwrap_or(null),
        None => from_base(l).unwrap_or(null),
    })
    .collect()
}

/// The portable serialization of `bitmap` after run-length optimisation.
fn optimized(bitmap: &RoaringBitmap) -> Vec<u8> {
    let mut copy = bitmap.clone();
    copy.optimize();
    let mut out = ByteWriter::with_capacity(copy.serialized_size() + 4);
    out.bitmap(&copy);
    out.into_inner()
}
