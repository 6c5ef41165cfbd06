//! Read snapshots: a consistent view of the whole database as of the moment
//! it was taken, for the query executor and embedders.
//!
//! A snapshot sees every write acknowledged before it was taken and nothing
//! after; it costs one `Arc` clone and holds no lock, so readers never wait
//! for writers or checkpoints. Shards are exposed one by one
//! ([`ShardSnapshot`]) so a query can evaluate a predicate per shard in
//! parallel (crossbeam) and merge.
//!
//! Bitmaps hold global row ids; a shard's rows are
//! `[first_row, first_row + 2^20)`.

use super::column::ColumnIndex;
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
}

impl Snapshot {
    pub(crate) fn new(state: Arc<DbState>) -> Self {
        Snapshot { state }
    }

    /// The LSN of the last write this snapshot includes.
    pub fn lsn(&self) -> u64 {
        self.state.last_lsn
    }

    /// Schemas of every table, by name.
    pub fn tables(&self) -> Vec<&TableSchema> {
        self.state
            .tables
            .values()
            .map(|t| t.schema.as_ref())
            .collect()
    }

    pub fn table(&self, name: &str) -> Result<TableSnapshot<'_>> {
        self.state
            .table(name)
            .map(|t| TableSnapshot { table: t })
            .ok_or_else(|| Error::TableNotFound(name.to_string()))
    }
}

/// One table of a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct TableSnapshot<'a> {
    table: &'a TableState,
}

impl<'a> TableSnapshot<'a> {
    pub fn schema(&self) -> &'a TableSchema {
        &self.table.schema
    }

    /// Number of profiles.
    pub fn row_count(&self) -> u64 {
        self.table.row_count()
    }

    /// The shards, in row order.
    pub fn shards(&self) -> impl Iterator<Item = ShardSnapshot<'a>> + 'a {
        let schema = &self.table.schema;
        self.table
            .shards
            .iter()
            .map(move |s| ShardSnapshot { shard: s, schema })
    }

    pub fn shard_count(&self) -> usize {
        self.table.shards.len()
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
        match self.table.shards.get(shard_of(row) as usize) {
            Some(shard) => ShardSnapshot {
                shard,
                schema: &self.table.schema,
            }
            .row(row),
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
#[derive(Debug, Clone, Copy)]
pub struct ShardSnapshot<'a> {
    shard: &'a ShardState,
    schema: &'a TableSchema,
}

impl<'a> ShardSnapshot<'a> {
    /// The shard's number (its rows start at `number << 20`).
    pub fn number(&self) -> u32 {
        self.shard.number
    }
    pub fn first_row(&self) -> u32 {
        self.shard.first_row()
    }
    /// Rows that exist.
    pub fn live(&self) -> &'a RoaringBitmap {
        &self.shard.live
    }

    fn column(&self, column: usize) -> Option<&'a ColumnIndex> {
        self.shard.columns.get(column)
    }

    /// Rows where `column` is not NULL (empty for an unknown column).
    pub fn exists(&self, column: usize) -> Option<&'a RoaringBitmap> {
        self.column(column).map(|c| c.exists())
    }

    /// Rows of a TEXT column equal to `value`, or of a SET<TEXT> column holding it.
    /// `None` when no row ever held it here.
    pub fn value_bitmap(&self, column: usize, value: &str) -> Option<&'a RoaringBitmap> {
        let index = self.column(column)?;
        index.value_bitmap(index.lookup(value)?)
    }

    /// Every value of a TEXT / SET<TEXT> column with its (non-empty) bitmap.
    pub fn values(&self, column: usize) -> Vec<(&'a str, &'a RoaringBitmap)> {
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

    /// The bit-sliced index of an INT / TIMESTAMP column.
    pub fn bsi(&self, column: usize) -> Option<&'a Bsi> {
        match self.column(column)? {
            ColumnIndex::Int(bsi) => Some(bsi),
            _ => None,
        }
    }

    /// The value of `column` at global row `row` (NULL when the row does not exist).
    pub fn value(&self, column: usize, row: u32) -> Result<Value> {
        let ty = self.column_type(column)?;
        let Some(image) = self.shard.image(row)? else {
            return Ok(Value::Null);
        };
        Ok(self.shard.columns[column].value_of(ty, &image.cells[column]))
    }

    /// The external id of global row `row`, if it exists.
    pub fn id(&self, row: u32) -> Result<Option<String>> {
        Ok(self.shard.image(row)?.map(|img| img.key.to_string()))
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
