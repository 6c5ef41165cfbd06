//! One shard of a table: up to 2^20 consecutive row ids, the unit of
//! parallel query work and of checkpointing.
//!
//! A shard is its base part (the last checkpoint's file, if any) plus the
//! tail of rows new since (column-wise, see [`Tail`]), plus the overlay of
//! rows changed since (row images), plus the in-memory indexes (live rows
//! and one [`ColumnIndex`] per column) that always reflect the current state.
//!
//! Invariants: `live` holds exactly the rows that exist; a row's current image
//! is its overlay entry if it has one, else its tail row if the tail holds
//! it, else its base row; every index agrees with the current images; all
//! row ids are in `[first_row, first_row + len)`; the tail starts at or
//! after the base part's last row.

use super::base::BasePart;
use super::cell::{block_cell, Cell, CellRef, Overlay, OverlayEntry, RowImage};
use super::column::ColumnIndex;
use super::tail::{push_null, Tail};
use crate::storage::block::{
    block_is_compressed, encode_block, BlockValues, SetBlockBuilder, BLOCK_ROWS, NULL_ID,
};
use crate::storage::bsi::{add_rows, Bsi};
use crate::storage::codec::ByteWriter;
use crate::storage::columnar::{ColumnView, NO_CODE};
use crate::storage::dictionary::Dictionary;
use crate::storage::error::{Result, StorageError};
use crate::storage::keys::encode_keys;
use crate::storage::part::{PartHeader, PartWriter, SectionKind};
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;
use std::borrow::Cow;
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

/// Compact copies of a shard's bitmaps ([`ShardState::compact_bitmaps`]):
/// `(bitmap, copy)` pairs, in the order of [`ColumnIndex::bitmaps`].
pub struct CompactBitmaps {
    live: (Arc<RoaringBitmap>, Arc<RoaringBitmap>),
    columns: Vec<Vec<(Arc<RoaringBitmap>, Arc<RoaringBitmap>)>>,
}

#[derive(Debug, Clone)]
pub struct ShardState {
    pub number: u32,
    /// Local row ids are below this.
    pub len: u32,
    pub base: Option<Arc<BasePart>>,
    pub overlay: Overlay,
    pub tail: Tail,
    pub live: Arc<RoaringBitmap>,
    pub columns: Vec<ColumnIndex>,
    /// Content version: new whenever rows may have changed (see
    /// [`super::derived`]); a checkpoint install keeps it, as the rows stay
    /// the same.
    pub version: u64,
}

impl ShardState {
    pub fn empty(number: u32, types: &[ColumnType]) -> Self {
        ShardState {
            number,
            len: 0,
            base: None,
            overlay: Overlay::default(),
            tail: Tail::default(),
            live: Arc::default(),
            columns: types.iter().map(|t| ColumnIndex::new(*t)).collect(),
            version: super::derived::next_version(),
        }
    }

    pub fn first_row(&self) -> u32 {
        self.number << SHARD_BITS
    }

    /// True when rows changed since the base part was written.
    pub fn is_dirty(&self) -> bool {
        !self.overlay.is_empty() || !self.tail.is_empty()
    }

    /// The cell of column `c` at tail row `row` (global), if the tail holds it.
    fn tail_cell(&self, c: usize, row: u32) -> Option<CellRef<'_>> {
        let index = self.columns.get(c)?;
        self.tail
            .cell(c, local_of(row), || index.exists().contains(row))
    }

    /// The id of tail row `row` (the tail holds an id for every row it holds).
    fn tail_key(&self, row: u32) -> &str {
        let key = self.tail.key(local_of(row));
        debug_assert!(key.is_some(), "tail row without an id");
        key.unwrap_or_default()
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
        if self.tail.holds(local) {
            let key = self.tail_key(row);
            let cells = (0..self.columns.len())
                .map(|c| self.tail_cell(c, row).map_or(Cell::Null, CellRef::to_cell))
                .collect();
            return Ok(Some(Arc::new(RowImage {
                key: key.into(),
                cells,
            })));
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
        if self.tail.holds(local) {
            return Ok(Some(
                self.tail_cell(c, row).map_or(Cell::Null, CellRef::to_cell),
            ));
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
        if self.tail.holds(local) {
            return Ok(Some(self.tail_key(row).to_string()));
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
        if self.tail.holds(local) {
            return Ok(Some(self.tail_key(row).as_bytes()));
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

    /// Appends profiles new to the table as rows `first_row..` (consecutive,
    /// all in this shard) to the tail: view row `rows[j]` becomes row
    /// `first_row + j`, with id `ids[rows[j]]` and, in column `c`, its value
    /// in `columns[c]` (NULL where that is `None`). The indexes get one
    /// append per bitmap.
    pub fn append_new(
        &mut self,
        first_row: u32,
        rows: &[usize],
        ids: &[Option<&str>],
        columns: &[Option<&ColumnView<'_>>],
        types: &[ColumnType],
    ) {
        let mut done = 0;
        while done < rows.len() {
            let local = local_of(first_row) + done as u32;
            let block_end = (local / BLOCK_ROWS + 1) * BLOCK_ROWS;
            let n = ((block_end - local) as usize).min(rows.len() - done);
            let part = &rows[done..done + n];
            let part_first = first_row + done as u32;
            let chunk = self.tail.chunk_for(local, types);
            for &i in part {
                chunk.push_key(ids.get(i).copied().flatten().unwrap_or(""));
            }
            for (c, index) in self.columns.iter_mut().enumerate() {
                let view = columns.get(c).copied().flatten();
                let values = chunk.column_mut(c);
                let at = values.rows();
                push_view_values(values, index, view, part);
                let values = &*values;
                index.append_rows(part_first, part.len(), |j| {
                    let present = || view.is_some_and(|v| !v.is_null(part[j]));
                    block_cell(values, at + j, present).unwrap_or(CellRef::Null)
                });
            }
            self.tail.appended_to(local + n as u32);
            done += n;
        }
        let new_rows: Vec<u32> = (first_row..first_row + rows.len() as u32).collect();
        add_rows(Arc::make_mut(&mut self.live), &new_rows);
        self.len = self.len.max(local_of(first_row) + rows.len() as u32);
    }

    /// Run-optimised, tightly allocated copies of every bitmap of this shard
    /// (the live rows and each column index's), each beside the bitmap it
    /// copies. Bitmaps grown by appends during a load carry spare capacity
    /// and no run containers; queries over the copies run up to twice as
    /// fast (see docs/benchmarks.md).
    pub fn compact_bitmaps(&self) -> CompactBitmaps {
        let compact = |b: &Arc<RoaringBitmap>| {
            let mut copy = RoaringBitmap::clone(b);
            copy.optimize();
            (Arc::clone(b), Arc::new(copy))
        };
        CompactBitmaps {
            live: compact(&self.live),
            columns: self
                .columns
                .iter()
                .map(|c| c.bitmaps().into_iter().map(compact).collect())
                .collect(),
        }
    }

    /// Takes the copies of `compact` for the bitmaps that are still the ones
    /// copied (unchanged since); leaves the others.
    pub fn adopt_compact(&mut self, compact: CompactBitmaps) {
        let adopt = |slot: &mut Arc<RoaringBitmap>,
                     (old, new): (Arc<RoaringBitmap>, Arc<RoaringBitmap>)| {
            if Arc::ptr_eq(slot, &old) {
                *slot = new;
            }
        };
        adopt(&mut self.live, compact.live);
        for (index, pairs) in self.columns.iter_mut().zip(compact.columns) {
            for (slot, pair) in index.bitmaps_mut().into_iter().zip(pairs) {
                adopt(slot, pair);
            }
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
            tail: Tail::default(),
            live: Arc::new(live),
            columns,
            version: super::derived::next_version(),
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
    ) -> Result<WrittenPart> {
        let mut blocks_copied = 0;
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
                None if self.tail.holds(local) => self.tail_key(row),
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
        let key_table = encode_keys(self.len, &keys);
        drop(keys);
        w.section_of_pieces(SectionKind::Keys, 0, 0, &key_table.pieces())?;
        drop(key_table);
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
                if let Some(bytes) = self.unchanged_base_block(c, b, compress) {
                    w.section(SectionKind::Block, c16, b, bytes)?;
                    blocks_copied += 1;
                    continue;
                }
                let values = self.block_values(c, types[c], b)?;
                let values = values.as_ref();
                w.section(SectionKind::Block, c16, b, &encode_block(values, compress))?;
            }
        }
        Ok(WrittenPart {
            bytes: w.finish()?,
            blocks_copied,
        })
    }

    /// The base part's stored bytes for block `b` of column `c` when the
    /// new part's block would hold exactly the same values: the base holds
    /// every row of the block and no row of it changed since (no overlay
    /// entry: deletes and updates all leave one), and the stored encoding is
    /// one this checkpoint may write (compressed only when compressing).
    /// Copying them skips decompressing and recompressing the block, which
    /// a bulk load would otherwise do for every full block of the shard it
    /// grows at each checkpoint.
    fn unchanged_base_block(&self, c: usize, b: u32, compress: bool) -> Option<&[u8]> {
        let base = self.base.as_ref()?;
        let start = b * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS).min(self.len);
        if base.row_len() < end || self.overlay.has_entries_in(start, end) {
            return None;
        }
        let bytes = base.block_bytes(c, b)?;
        (compress || !block_is_compressed(bytes)).then_some(bytes)
    }

    /// The current values of block `b` of column `c`: overlay rows from their
    /// images, tail rows from the tail, the others copied from the base
    /// block. A block the tail holds whole and no overlay row touches is
    /// borrowed as it is.
    fn block_values(&self, c: usize, ty: ColumnType, b: u32) -> Result<Cow<'_, BlockValues>> {
        let start = b * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS).min(self.len);
        if !self.overlay.has_entries_in(start, end) {
            if let Some(values) = self.tail.whole_block(c, b, end) {
                return Ok(Cow::Borrowed(values));
            }
        }
        let old = match &self.base {
            Some(base) if base.row_len() > start => Some(base.block(c, b)?),
            _ => None,
        };
        let old_len = self.base.as_ref().map_or(0, |b| b.row_len());
        let first = self.first_row();
        // The cell of local row `l` if the overlay or the tail has it, else None (use the base).
        let current = |l: u32| -> Option<CellRef<'_>> {
            if let Some(e) = self.overlay.get(l) {
                return Some(match &e.image {
                    Some(img) => img.cells[c].as_ref(),
                    None => CellRef::Null,
                });
            }
            if self.tail.holds(l) {
                return Some(self.tail_cell(c, first + l).unwrap_or(CellRef::Null));
            }
            None
        };
        let from_base = |l: u32| l < old_len && old.is_some();
        let i = |l: u32| (l - start) as usize;
        Ok(Cow::Owned(match ty {
            ColumnType::Text => BlockValues::Text(
                (start..end)
                    .map(|l| match current(l) {
                        Some(CellRef::Text(id)) => id,
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
                        Some(CellRef::Set(ids)) => builder.push(Some(ids)),
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
                    CellRef::Int(v) => Some(v),
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
                    CellRef::Float(v) => Some(v),
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
                    CellRef::Bool(v) => Some(u8::from(v)),
                    _ => None,
                },
                |l| match old.as_deref() {
                    Some(BlockValues::Bool(vs)) if from_base(l) => vs.get(i(l)).copied(),
                    _ => None,
                },
                2,
            )),
        }))
    }
}

/// Pushes the values view rows `rows` hold in one column (`None`: the batch
/// does not name the column, so NULL) to a tail column, interning text.
fn push_view_values(
    values: &mut BlockValues,
    index: &mut ColumnIndex,
    view: Option<&ColumnView<'_>>,
    rows: &[usize],
) {
    match (values, view) {
        (BlockValues::Text(out), Some(ColumnView::Text(src))) => out.extend(
            rows.iter()
                .map(|&i| src[i].map_or(NULL_ID, |s| index.intern(s))),
        ),
        (BlockValues::Text(out), Some(ColumnView::CodedText { dict, codes })) => {
            let mut code_ids = CodeIds::new(dict);
            out.extend(rows.iter().map(|&i| match codes[i] {
                NO_CODE => NULL_ID,
                code => code_ids.id(index, code),
            }))
        }
        (
            BlockValues::Set {
                counts,
                starts,
                ids,
            },
            Some(view @ (ColumnView::TextSet { .. } | ColumnView::CodedSet { .. })),
        ) => {
            let mut code_ids = match view {
                ColumnView::CodedSet { dict, .. } => CodeIds::new(dict),
                _ => CodeIds::new(&[]),
            };
            for &i in rows {
                starts.push(ids.len() as u32);
                if view.is_null(i) {
                    counts.push(NULL_ID);
                    continue;
                }
                let from = ids.len();
                match view {
                    ColumnView::CodedSet { sets, codes, .. } => {
                        let (a, b) = sets[i].unwrap_or((0, 0));
                        let row_codes = &codes[a as usize..b as usize];
                        ids.extend(row_codes.iter().map(|&c| code_ids.id(index, c)));
                    }
                    _ => ids.extend(view.tags(i).map(|t| index.intern(t))),
                }
                ids[from..].sort_unstable();
                let mut kept = from;
                for r in from..ids.len() {
                    if r == from || ids[r] != ids[kept - 1] {
                        ids[kept] = ids[r];
                        kept += 1;
                    }
                }
                ids.truncate(kept);
                counts.push((kept - from) as u32);
            }
        }
        (BlockValues::Int(out), Some(ColumnView::Int(src))) => {
            out.extend(rows.iter().map(|&i| src[i].unwrap_or(0)))
        }
        (BlockValues::Float(out), Some(ColumnView::Float(src))) => {
            out.extend(rows.iter().map(|&i| src[i].unwrap_or(0.0)))
        }
        (BlockValues::Bool(out), Some(ColumnView::Bool(src))) => {
            out.extend(rows.iter().map(|&i| src[i].map_or(2, u8::from)))
        }
        (values, view) => {
            // Records are resolved against the schema, so a named column always fits.
            debug_assert!(view.is_none(), "view column does not fit its tail column");
            rows.iter().for_each(|_| push_null(values));
        }
    }
}

/// The column-dictionary ids of a coded view's entries, each interned on
/// its first use (so a batch costs one dictionary lookup per entry used,
/// not one per value).
struct CodeIds<'d, 'a> {
    dict: &'d [&'a str],
    ids: Vec<u32>,
}

impl<'d, 'a> CodeIds<'d, 'a> {
    /// Marks an entry not interned yet: no column dictionary holds 2^32 values.
    const UNSEEN: u32 = u32::MAX;

    fn new(dict: &'d [&'a str]) -> Self {
        CodeIds {
            dict,
            ids: vec![Self::UNSEEN; dict.len()],
        }
    }

    /// The id of entry `code` (below the dictionary's length: checked when parsed).
    fn id(&mut self, index: &mut ColumnIndex, code: u32) -> u32 {
        let slot = &mut self.ids[code as usize];
        if *slot == Self::UNSEEN {
            *slot = index.intern(self.dict[code as usize]);
        }
        *slot
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
fn merge_fixed<'a, T: Copy>(
    rows: std::ops::Range<u32>,
    current: &impl Fn(u32) -> Option<CellRef<'a>>,
    of_cell: impl Fn(CellRef<'a>) -> Option<T>,
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

/// What [`ShardState::write_part`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct WrittenPart {
    pub bytes: u64,
    /// Column blocks copied as stored from the base part (not re-encoded).
    pub blocks_copied: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard of one BOOL column with rows `0..n` live and true.
    fn shard_of_trues(n: u32) -> ShardState {
        let mut shard = ShardState::empty(0, &[ColumnType::Bool]);
        for row in 0..n {
            Arc::make_mut(&mut shard.live).insert(row);
            shard.columns[0].insert(row, &Cell::Bool(true));
        }
        shard
    }

    #[test]
    fn compact_copies_replace_only_the_bitmaps_unchanged_since() {
        let mut shard = shard_of_trues(5000);
        let compact = shard.compact_bitmaps();
        // A write after the copies were made: row 6000 joins live and exists.
        Arc::make_mut(&mut shard.live).insert(6000);
        shard.columns[0].insert(6000, &Cell::Bool(false));
        let trues_before = Arc::clone(shard.columns[0].bitmaps()[1]);
        shard.adopt_compact(compact);
        // Changed bitmaps keep the change; the unchanged one is the copy, equal.
        assert!(shard.live.contains(6000));
        assert!(shard.columns[0].exists().contains(6000));
        let trues = shard.columns[0].bitmaps()[1];
        assert!(!Arc::ptr_eq(trues, &trues_before));
        assert_eq!(**trues, *trues_before);
    }
}
