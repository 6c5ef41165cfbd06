//! A shard's base part: the part file written by the last checkpoint that
//! included the shard, opened and verified, with a small cache of decoded
//! column blocks so that reading rows in order decodes each block once.
//!
//! Invariants: the keys view was validated at open; a block decode failure
//! is reported as corruption of this file with its offset.

use super::cell::{block_cell, Cell, CellRef};
use crate::storage::block::{decode_block, BlockValues, BLOCK_ROWS};
use crate::storage::error::{Result, StorageError};
use crate::storage::keys::KeyTableView;
use crate::storage::part::{PartReader, SectionKind};
use crate::storage::schema::ColumnType;
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// Decoded blocks kept per part.
const CACHED_BLOCKS: usize = 32;

/// Recently decoded blocks, keyed by (column, block), oldest first.
type BlockCache = VecDeque<((u16, u32), Arc<BlockValues>)>;

#[derive(Debug)]
pub struct BasePart {
    reader: PartReader,
    keys: KeyTableView,
    keys_at: usize,
    keys_len: usize,
    types: Vec<ColumnType>,
    cache: Mutex<BlockCache>,
}

impl BasePart {
    /// Opens and verifies `path`, which must hold shard `shard` of table `table_id`.
    pub fn open(path: &Path, table_id: u32, shard: u32, types: &[ColumnType]) -> Result<Self> {
        let reader = PartReader::open(path)?;
        let header = *reader.header();
        if header.table_id != table_id || header.shard != shard {
            return Err(StorageError::corrupted(
                path,
                12,
                format!(
                    "part holds table {} shard {}, the manifest expects table {table_id} shard {shard}",
                    header.table_id, header.shard
                ),
            ));
        }
        let (bytes, offset) = reader
            .section(SectionKind::Keys, 0, 0)
            .ok_or_else(|| StorageError::corrupted(path, 0, "keys section is missing"))?;
        let keys = KeyTableView::parse(bytes, offset).map_err(|e| e.in_file(path))?;
        if keys.row_len() != header.row_len {
            return Err(StorageError::corrupted(
                path,
                offset,
                "keys section row count differs from the header",
            ));
        }
        Ok(BasePart {
            keys,
            keys_at: offset as usize,
            keys_len: bytes.len(),
            types: types.to_vec(),
            cache: Mutex::new(VecDeque::with_capacity(CACHED_BLOCKS)),
            reader,
        })
    }

    pub fn reader(&self) -> &PartReader {
        &self.reader
    }
    pub fn path(&self) -> &Path {
        self.reader.path()
    }
    /// Local row ids in this part are below this.
    pub fn row_len(&self) -> u32 {
        self.reader.header().row_len
    }

    fn key_bytes(&self) -> &[u8] {
        &self.reader.data()[self.keys_at..self.keys_at + self.keys_len]
    }

    /// The external id of local row `local`, if it was live when written.
    pub fn key(&self, local: u32) -> Option<&str> {
        self.keys.key_of(self.key_bytes(), local)
    }

    /// The bytes of local row `local`'s id (UTF-8, checked at open).
    pub fn id_bytes(&self, local: u32) -> Option<&[u8]> {
        self.keys.key_bytes(self.key_bytes(), local)
    }

    /// Number of keys in the part.
    pub fn key_count(&self) -> usize {
        self.fingerprints().count()
    }

    /// The fingerprints of this part's keys (see [`KeyTableView::fingerprints`]).
    pub fn fingerprints(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.fingerprints(self.key_bytes())
    }

    /// True when row `local` has an id in this part.
    pub fn has_key(&self, local: u32) -> bool {
        self.keys.key_bytes(self.key_bytes(), local).is_some()
    }

    /// The local row of external id `key`, if it was live when written.
    pub fn find(&self, key: &str, hash: u64) -> Option<u32> {
        self.keys.find(self.key_bytes(), key, hash)
    }

    /// Decoded block `block` of column `column`.
    /// The stored bytes of block `block` of `column`, as `encode_block`
    /// wrote them (their checksum was verified at open), if present.
    pub fn block_bytes(&self, column: usize, block: u32) -> Option<&[u8]> {
        self.reader
            .section(SectionKind::Block, column as u16, block)
            .map(|(bytes, _)| bytes)
    }

    pub fn block(&self, column: usize, block: u32) -> Result<Arc<BlockValues>> {
        let key = (column as u16, block);
        if let Some((_, hit)) = self.cache.lock().iter().find(|(k, _)| *k == key) {
            return Ok(hit.clone());
        }
        let rows = self
            .row_len()
            .saturating_sub(block * BLOCK_ROWS)
            .min(BLOCK_ROWS) as usize;
        let (bytes, offset) = self
            .reader
            .section(SectionKind::Block, column as u16, block)
            .ok_or_else(|| {
                StorageError::corrupted(
                    self.path(),
                    0,
                    format!("block {block} of column {column} is missing"),
                )
            })?;
        let ty = self.types.get(column).copied().ok_or_else(|| {
            StorageError::corrupted(self.path(), offset, format!("no column {column}"))
        })?;
        let decoded =
            Arc::new(decode_block(bytes, offset, ty, rows).map_err(|e| e.in_file(self.path()))?);
        let mut cache = self.cache.lock();
        if cache.len() == CACHED_BLOCKS {
            cache.pop_front();
        }
        cache.push_back((key, decoded.clone()));
        Ok(decoded)
    }

    /// The cell of `local` in column `column`, as written. `exists` is the
    /// column's existence bitmap (INT/FLOAT blocks do not mark NULLs).
    pub fn cell(
        &self,
        column: usize,
        local: u32,
        row: u32,
        exists: &RoaringBitmap,
    ) -> Result<Cell> {
        let block = self.block(column, local / BLOCK_ROWS)?;
        let i = (local % BLOCK_ROWS) as usize;
        block_cell(&block, i, || exists.contains(row))
            .map(CellRef::to_cell)
            .ok_or_else(|| {
                StorageError::corrupted(
                    self.path(),
                    0,
                    format!("row {local} of column {column} is outside its block"),
                )
            })
    }

    /// Decodes every block of every column (used by `cohortdb check`).
    pub fn verify_blocks(&self) -> Result<()> {
        let blocks = self.row_len().div_ceil(BLOCK_ROWS);
        for column in 0..self.types.len() {
            for block in 0..blocks {
                self.block(column, block)?;
            }
        }
        Ok(())
    }
}
