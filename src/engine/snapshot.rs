//! Read snapshots: a consistent view of the whole database as of the moment
//! it was taken, for the query executor and embedders.
//!
//! A snapshot sees every write acknowledged before it was taken and nothing
//! after; it costs one `Arc` clone and holds no lock, so readers never wait
//! for writers or checkpoints. Table and shard handles own `Arc`s of their
//! state, so a streaming reader can keep one as long as it needs. Shards are
//! exposed one by one ([`ShardSnapshot`]) so a query can evaluate a predicate
//! per shard in parallel (`crate::parallel`) and merge.
//!
//! Bitmaps hold global row ids; a shard's rows are
//! `[first_row, first_row + 2^20)`.

use super::column::ColumnIndex;
use super::derived::DerivedBitmaps;
use super::error::{Error, Result};
use super::shard::{shard_of, ShardState};
use super::state::DbState;
use super::table::TableState;
use super::value::{Row, Value};
use crate::storage::bsi::Bsi;
use crate::storage::schema::{ColumnType, TableSchema};
use roaring::RoaringBitmap;
use std::sync::Arc;

/// A consistent view of the database.
#[derive(Debug, Clone)]
pub struct Snapshot {
    state: Arc<DbState>,
    derived: Arc<DerivedBitmaps>,
}

impl Snapshot {
    pub(crate) fn new(state: Arc<DbState>, derived: Arc<DerivedBitmaps>) -> Self {
        Snapshot { state, derived }
    }

    /// The database's cache of derived per-shard bitmaps.
    pub fn derived(&self) -> &Arc<DerivedBitmaps> {
        &self.derived
    }

    /// The LSN of the last write this snapshot includes.
    pub fn lsn(&self) -> u64 {
        self.state.last_lsn
    }

    /// Schemas of every table, ordered by name.
    pub fn tables(&self) -> Vec<&TableSchema> {
        self.state
            .tables
            .values()
            .map(|t| t.schema.as_ref())
            .collect()
    }

    pub fn table(&self, name: &str) -> Result<TableSnapshot> {
        self.state
            .table(name)
            .map(|t| TableSnapshot {
                table: t.clone(),
                derived: self.derived.clone(),
            })
            .ok_or_else(|| Error::TableNotFound(name.to_string()))
    }
}

/// One table of a snapshot.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    table: Arc<TableState>,
    derived: Arc<DerivedBitmaps>,
}

impl TableSnapshot {
    /// The database's cache of derived per-shard bitmaps.
    pub fn derived(&self) -> &Arc<DerivedBitmaps> {
        &self.derived
    }

    pub fn schema(&self) -> &TableSchema {
        &self.table.schema
    }

    /// Number of profiles.
    pub fn row_count(&self) -> u64 {
        self.table.row_count()
    }

    /// The shards, in row order.
    pub fn shards(&self) -> impl Iterator<Item = ShardSnapshot> + '_ {
        (0..self.table.shards.len()).filter_map(|i| self.shard(i))
    }

    pub fn shard_count(&self) -> usize {
        self.table.shards.len()
    }

    /// Shard number `i`.
    pub fn shard(&self, i: usize) -> Option<ShardSnapshot> {
        Some(ShardSnapshot {
            shard: self.table.shards.get(i)?.clone(),
            schema: self.table.schema.clone(),
        })
    }

    /// The row id of profile `id`, if it exists in this snapshot.
    pub fn lookup(&self, id: &str) -> Option<u32> {
        self.table.live_row(id)
    }

    /// Profile `id`, if it exists.
    pub fn get(&self, id: &str) -> Result<Option<Row>> {
        match self.lookup(id) {
            Some(row) => self.row(row),
            None => Ok(None),
        }
    }

    /// The profile at row id `row`, if it exists.
    pub fn row(&self, row: u32) -> Result<Option<Row>> {
        match self.shard(shard_of(row) as usize) {
            Some(shard) => shard.row(row),
            None => Ok(None),
        }
    }

    /// Live rows of the whole table (materialised; prefer per-shard work).
    pub fn live(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        for s in &self.table.shards {
            all |= s.live.as_ref();
        }
        all
    }
}

/// One shard of a table in a snapshot.
#[derive(Debug, Clone)]
pub struct ShardSnapshot {
    shard: Arc<ShardState>,
    schema: Arc<TableSchema>,
}

impl ShardSnapshot {
    /// The shard's number (its rows start at `number << 20`).
    pub fn number(&self) -> u32 {
        self.shard.number
    }
    pub fn first_row(&self) -> u32 {
        self.shard.first_row()
    }
    /// The shard's content version: equal versions mean equal rows
    /// (see [`crate::engine::derived`]).
    pub fn version(&self) -> u64 {
        self.shard.version
    }
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }
    /// Rows that exist.
    pub fn live(&self) -> &RoaringBitmap {
        &self.shard.live
    }

    fn column(&self, column: usize) -> Option<&ColumnIndex> {
        self.shard.columns.get(column)
    }

    /// Rows where `column` is not NULL (`None` for an unknown column).
    pub fn exists(&self, column: usize) -> Option<&RoaringBitmap> {
        self.column(column).map(|c| c.exists())
    }

    /// Rows of a TEXT column equal to `value`, or of a SET<TEXT> column holding it.
    /// `None` when no row ever held it here.
    pub fn value_bitmap(&self, column: usize, value: &str) -> Option<&RoaringBitmap> {
        let index = self.column(column)?;
        index.value_bitmap(index.lookup(value)?)
    }

    /// Every value of a TEXT / SET<TEXT> column with its (non-empty) bitmap.
    pub fn values(&self, column: usize) -> Vec<(&str, &RoaringBitmap)> {
        let Some(index) = self.column(column) else {
            return Vec::new();
        };
        let Some(dict) = index.dictionary() else {
            return Vec::new();
        };
        dict.iter()
            .filter_map(|(id, v)| {
                let b = index.value_bitmap(id)?;
                (!b.is_empty()).then_some((v, b))
            })
            .collect()
    }

    /// Rows of a BOOL column holding `value`.
    pub fn bool_bitmap(&self, column: usize, value: bool) -> Option<RoaringBitmap> {
        match self.column(column)? {
            ColumnIndex::Bool { exists, trues } => Some(if value {
                trues.as_ref().clone()
            } else {
                exists.as_ref() - trues.as_ref()
            }),
            _ => None,
        }
    }

    /// The bitmap of true rows of a BOOL column.
    pub fn true_bitmap(&self, column: usize) -> Option<&RoaringBitmap> {
        match self.column(column)? {
            ColumnIndex::Bool { trues, .. } => Some(trues),
            _ => None,
        }
    }

    /// The bit-sliced index of an INT / TIMESTAMP column.
    pub fn bsi(&self, column: usize) -> Option<&Bsi> {
        match self.column(column)? {
            ColumnIndex::Int(bsi) => Some(bsi),
            _ => None,
        }
    }

    /// The value of `column` at global row `row` (NULL when the row does not exist).
    pub fn value(&self, column: usize, row: u32) -> Result<Value> {
        let ty = self.column_type(column)?;
        Ok(match self.shard.cell(column, row)? {
            Some(cell) => self.shard.columns[column].value_of(ty, &cell),
            None => Value::Null,
        })
    }

    /// The external id of global row `row`, if it exists.
    pub fn id(&self, row: u32) -> Result<Option<String>> {
        Ok(self.shard.key(row)?)
    }

    /// The id of `row` as borrowed UTF-8 bytes, if it exists (no copy).
    pub fn id_bytes(&self, row: u32) -> Result<Option<&[u8]>> {
        Ok(self.shard.key_bytes(row)?)
    }

    /// The whole profile at global row `row`, if it exists.
    pub fn row(&self, row: u32) -> Result<Option<Row>> {
        let Some(image) = self.shard.image(row)? else {
            return Ok(None);
        };
        let values = self
            .schema
            .columns
            .iter()
            .zip(self.shard.columns.iter())
            .zip(image.cells.iter())
            .map(|((def, index), cell)| index.value_of(def.ty, cell))
            .collect();
        Ok(Some(Row {
            id: image.key.to_string(),
            values,
        }))
    }

    fn column_type(&self, column: usize) -> Result<ColumnType> {
        self.schema
            .columns
            .get(column)
            .map(|c| c.ty)
            .ok_or_else(|| Error::ColumnNotFound {
                table: self.schema.name.clone(),
                column: format!("#{column}"),
            })
    }
}
