//! The database state as of one LSN, and the one function that moves it
//! forward: [`DbState::apply`], used both by the live write path (after the
//! record is in the WAL) and by recovery (replaying the WAL).
//!
//! Invariants: `apply` is deterministic; it either applies a whole record or,
//! having changed nothing, returns an error (all fallible reads happen before
//! the first change). Every part of the state sits behind an `Arc`, and
//! changes go through `Arc::make_mut`, so a snapshot (a clone of the
//! top-level `Arc`) never sees a later change.

use super::cell::{Cell, RowImage};
use super::error::{Error, Result};
use super::record::{check_resolved, Record, ResolvedOp};
use super::shard::shard_of;
use super::table::TableState;
use super::value::Change;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What an applied write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// The LSN of the batch's WAL record.
    pub lsn: u64,
    /// Upsert operations applied.
    pub upserted: u64,
    /// Profiles that existed and were deleted.
    pub deleted: u64,
}

#[derive(Debug, Clone, Default)]
pub struct DbState {
    /// Tables by lower-cased name.
    pub tables: BTreeMap<String, Arc<TableState>>,
    pub next_table_id: u32,
    /// LSN of the last applied record.
    pub last_lsn: u64,
}

/// The key tables are filed under.
pub fn table_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl DbState {
    pub fn table(&self, name: &str) -> Option<&Arc<TableState>> {
        self.tables.get(&table_key(name))
    }

    /// Applies one record at `lsn`.
    pub fn apply(&mut self, lsn: u64, record: &Record) -> Result<WriteSummary> {
        let summary = match record {
            Record::CreateTable { id, schema } => {
                let key = table_key(&schema.name);
                if self.tables.contains_key(&key) {
                    return Err(Error::TableExists(schema.name.clone()));
                }
                schema.validate().map_err(Error::InvalidSchema)?;
                self.tables
                    .insert(key, Arc::new(TableState::new(*id, schema.clone())));
                self.next_table_id = self.next_table_id.max(id + 1);
                WriteSummary::default()
            }
            Record::DropTable { id } => {
                let key = self
                    .tables
                    .iter()
                    .find(|(_, t)| t.id == *id)
                    .map(|(k, _)| k.clone())
                    .ok_or_else(|| Error::TableNotFound(format!("#{id}")))?;
                self.tables.remove(&key);
                WriteSummary::default()
            }
            Record::Write { table_id, ops } => {
                let table = self
                    .tables
                    .values_mut()
                    .find(|t| t.id == *table_id)
                    .ok_or_else(|| Error::TableNotFound(format!("#{table_id}")))?;
                check_resolved(&table.schema, ops).map_err(Error::Internal)?;
                apply_write(Arc::make_mut(table), lsn, ops)?
            }
        };
        self.last_lsn = lsn;
        Ok(WriteSummary { lsn, ..summary })
    }
}

fn apply_write(table: &mut TableState, lsn: u64, ops: &[ResolvedOp]) -> Result<WriteSummary> {
    // Phase 1, fallible, changes nothing: room for new rows, current images.
    let upserts = ops
        .iter()
        .filter(|op| {
            matches!(
                op,
                ResolvedOp::Upsert {
                    only_existing: false,
                    ..
                }
            )
        })
        .count() as u64;
    if u64::from(table.next_row) + upserts > u64::from(u32::MAX) {
        return Err(Error::TableFull(table.schema.name.clone()));
    }
    let mut images: HashMap<u32, Option<Arc<RowImage>>> = HashMap::new();
    for op in ops {
        let id = match op {
            ResolvedOp::Upsert { id, .. } | ResolvedOp::Delete { id } => id,
        };
        if let Some(row) = table.live_row(id) {
            if let std::collections::hash_map::Entry::Vacant(slot) = images.entry(row) {
                let shard = &table.shards[shard_of(row) as usize];
                slot.insert(shard.image(row)?);
            }
        }
    }
    // Phase 2 cannot fail.
    let mut summary = WriteSummary::default();
    let width = table.types.len();
    for op in ops {
        match op {
            ResolvedOp::Upsert {
                id,
                changes,
                only_existing,
            } => {
                let exists = table
                    .keys
                    .lookup(id)
                    .is_some_and(|row| matches!(images.get(&row), Some(Some(_))));
                if *only_existing && !exists {
                    continue;
                }
                let row = match table.keys.lookup(id) {
                    Some(row) => row,
                    None => {
                        let row = table.next_row;
                        table.next_row += 1;
                        table.keys.insert(id, row);
                        row
                    }
                };
                let old = images.get(&row).cloned().flatten();
                let mut cells: Vec<Cell> = match &old {
                    Some(img) => img.cells.to_vec(),
                    None => vec![Cell::Null; width],
                };
                let shard = table.shard_mut(row);
                for (column, change) in changes {
                    let c = *column as usize;
                    cells[c] = apply_change(&mut shard.columns[c], &cells[c], change);
                }
                let new = Arc::new(RowImage {
                    key: id.as_str().into(),
                    cells: cells.into_boxed_slice(),
                });
                shard.put(row, old.as_deref(), new.clone(), lsn);
                images.insert(row, Some(new));
                summary.upserted += 1;
            }
            ResolvedOp::Delete { id } => {
                let Some(row) = table.keys.lookup(id) else {
                    continue;
                };
                if let Some(Some(old)) = images.get(&row).cloned() {
                    table.shard_mut(row).delete(row, &old, lsn);
                    images.insert(row, None);
                    summary.deleted += 1;
                }
            }
        }
    }
    Ok(summary)
}

fn apply_change(index: &mut super::column::ColumnIndex, current: &Cell, change: &Change) -> Cell {
    match change {
        Change::Set(value) => index.cell_of(value),
        Change::Add(tags) => {
            let mut ids: Vec<u32> = match current {
                Cell::Set(ids) => ids.to_vec(),
                _ => Vec::new(),
            };
            ids.extend(tags.iter().map(|t| index.intern(t)));
            ids.sort_unstable();
            ids.dedup();
            Cell::Set(ids.into_boxed_slice())
        }
        Change::Remove(tags) => match current {
            Cell::Set(ids) => {
                let drop: Vec<u32> = tags.iter().filter_map(|t| index.lookup(t)).collect();
                Cell::Set(
                    ids.iter()
                        .copied()
                        .filter(|id| !drop.contains(id))
                        .collect(),
                )
            }
            other => other.clone(),
        },
    }
}
