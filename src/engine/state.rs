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
use super::column::ColumnIndex;
use super::error::{Error, Result};
use super::record::{check_resolved, Record, ResolvedOp};
use super::rows::{check_view, payload_types};
use super::shard::{shard_of, ShardState};
use super::table::{IdHash, TableState};
use super::value::Change;
use crate::storage::columnar::{parse_coded_rows, ColumnView, RowsView};
use crate::storage::hash::FastMap;
use std::collections::BTreeMap;
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
            Record::Rows {
                table_id,
                positions,
                coded,
                payload,
            } => {
                let table = self
                    .tables
                    .values_mut()
                    .find(|t| t.id == *table_id)
                    .ok_or_else(|| Error::TableNotFound(format!("#{table_id}")))?;
                let table = Arc::make_mut(table);
                let view = parse_logged_rows(table, positions, coded, payload)?;
                apply_rows(table, lsn, positions, &view)?
            }
        };
        self.last_lsn = lsn;
        Ok(WriteSummary { lsn, ..summary })
    }

    /// Applies a rows record at `lsn` from its parsed and checked payload
    /// (the commit path, which parsed it to check it before logging it).
    /// Each table's id and the shard its next new row goes to: when that
    /// changes, the shard before has just filled up.
    pub fn last_shards(&self) -> Vec<(u32, u32)> {
        self.tables
            .values()
            .map(|t| (t.id, shard_of(t.next_row)))
            .collect()
    }

    /// Whether a table of `before` (from [`DbState::last_shards`]) has
    /// since moved on to a new shard.
    pub fn filled_since(&self, before: &[(u32, u32)]) -> bool {
        self.last_shards()
            .iter()
            .any(|now| before.iter().any(|b| b.0 == now.0 && b.1 != now.1))
    }

    pub fn apply_rows(
        &mut self,
        lsn: u64,
        table_id: u32,
        positions: &[u16],
        view: &RowsView<'_>,
    ) -> Result<WriteSummary> {
        let table = self
            .tables
            .values_mut()
            .find(|t| t.id == table_id)
            .ok_or_else(|| Error::TableNotFound(format!("#{table_id}")))?;
        let summary = apply_rows(Arc::make_mut(table), lsn, positions, view)?;
        self.last_lsn = lsn;
        Ok(WriteSummary { lsn, ..summary })
    }
}

/// The rows of a write's ids as they stand before it, and their current images.
struct Before {
    /// The row each id was given, if any (it may have been deleted since).
    rows: Vec<Option<u32>>,
    /// The key-index hash of each id.
    hashes: Vec<IdHash>,
    /// Current images of those rows (`None`: deleted), updated as the write goes.
    images: FastMap<u32, Option<Arc<RowImage>>>,
}

/// Phase 1 of a write, fallible and changing nothing: checks room for up to
/// `new_rows` new rows and reads the images of the rows `ids` name.
fn read_before<'a>(
    table: &TableState,
    ids: impl Iterator<Item = &'a str>,
    new_rows: u64,
) -> Result<Before> {
    if u64::from(table.next_row) + new_rows > u64::from(u32::MAX) {
        return Err(Error::TableFull(table.schema.name.clone()));
    }
    let ids: Vec<&str> = ids.collect();
    let hashes: Vec<IdHash> = ids.iter().map(|id| table.keys.hash(id)).collect();
    let rows = table.keys.lookup_batch(&ids, &hashes);
    let mut images: FastMap<u32, Option<Arc<RowImage>>> = FastMap::default();
    for row in rows.iter().flatten() {
        if let std::collections::hash_map::Entry::Vacant(slot) = images.entry(*row) {
            let image = match table.shards.get(shard_of(*row) as usize) {
                Some(shard) => shard.image(*row)?,
                None => None,
            };
            slot.insert(image);
        }
    }
    Ok(Before {
        rows,
        hashes,
        images,
    })
}

/// Phase 2 for one upsert (cannot fail): finds or gives `id` its row, builds
/// the new image from the old one (or NULLs) with `fill`, and installs it.
/// `known` is the row phase 1 found for `id`. Returns false when
/// `only_existing` and the profile does not exist.
fn upsert_row(
    table: &mut TableState,
    before: &mut Before,
    lsn: u64,
    id: &str,
    known: Option<u32>,
    only_existing: bool,
    fill: impl FnOnce(&mut ShardState, &mut [Cell]),
) -> bool {
    // An id new in phase 1 may have been given a row by an earlier op of this write.
    let row = known.or_else(|| table.keys.lookup_recent(id));
    let old = row.and_then(|r| before.images.get(&r).cloned().flatten());
    if only_existing && old.is_none() {
        return false;
    }
    let row = match row {
        Some(row) => row,
        None => {
            let row = table.next_row;
            table.next_row += 1;
            table.keys.insert(id, row);
            row
        }
    };
    let mut cells: Vec<Cell> = match &old {
        Some(img) => img.cells.to_vec(),
        None => vec![Cell::Null; table.types.len()],
    };
    let shard = table.shard_mut(row);
    fill(shard, &mut cells);
    let new = Arc::new(RowImage {
        key: id.into(),
        cells: cells.into_boxed_slice(),
    });
    shard.put(row, old.as_deref(), new.clone(), lsn);
    before.images.insert(row, Some(new));
    true
}

fn apply_write(table: &mut TableState, lsn: u64, ops: &[ResolvedOp]) -> Result<WriteSummary> {
    fn op_id(op: &ResolvedOp) -> &str {
        match op {
            ResolvedOp::Upsert { id, .. } | ResolvedOp::Delete { id } => id,
        }
    }
    let new_rows = ops
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
    let mut before = read_before(table, ops.iter().map(op_id), new_rows)?;
    // Phase 2 cannot fail.
    let mut summary = WriteSummary::default();
    for (i, op) in ops.iter().enumerate() {
        let known = before.rows[i];
        match op {
            ResolvedOp::Upsert {
                id,
                changes,
                only_existing,
            } => {
                let fill = |shard: &mut ShardState, cells: &mut [Cell]| {
                    for (column, change) in changes {
                        let c = *column as usize;
                        cells[c] = apply_change(&mut shard.columns[c], &cells[c], change);
                    }
                };
                if upsert_row(table, &mut before, lsn, id, known, *only_existing, fill) {
                    summary.upserted += 1;
                }
            }
            ResolvedOp::Delete { id } => {
                let Some(row) = known.or_else(|| table.keys.lookup_recent(id)) else {
                    continue;
                };
                if let Some(Some(old)) = before.images.get(&row).cloned() {
                    table.shard_mut(row).delete(row, &old, lsn);
                    before.images.insert(row, None);
                    summary.deleted += 1;
                }
            }
        }
    }
    Ok(summary)
}

/// Parses and checks the payload of a logged rows record (WAL replay).
fn parse_logged_rows<'a>(
    table: &TableState,
    positions: &[u16],
    coded: &[bool],
    payload: &'a [u8],
) -> Result<RowsView<'a>> {
    let mut types = Vec::with_capacity(positions.len());
    for p in positions {
        let ty = table
            .types
            .get(*p as usize)
            .ok_or_else(|| Error::Internal(format!("column position {p} is out of range")))?;
        types.push(*ty);
    }
    let types = payload_types(types.into_iter());
    let view = parse_coded_rows(&types, coded, payload, 0).map_err(|e| {
        Error::Internal(format!(
            "rows record does not parse at byte {}: {}",
            e.offset, e.reason
        ))
    })?;
    let schema = table.schema.clone();
    check_view(&view, |c| {
        schema.columns[positions[c] as usize].name.as_str()
    })?;
    Ok(view)
}

/// Applies column-wise upserts: `view` holds the ids, then the columns at `positions`.
fn apply_rows(
    table: &mut TableState,
    lsn: u64,
    positions: &[u16],
    view: &RowsView<'_>,
) -> Result<WriteSummary> {
    if view.columns.len() != positions.len() + 1 {
        return Err(Error::Internal(
            "rows batch columns differ from its positions".into(),
        ));
    }
    let Some(ColumnView::Text(ids)) = view.columns.first() else {
        return Err(Error::Internal("rows record without ids".into()));
    };
    let mut before = read_before(table, ids.iter().flatten().copied(), view.rows as u64)?;
    // The view column of each table column, if the batch names it.
    let mut by_column: Vec<Option<&ColumnView<'_>>> = vec![None; table.types.len()];
    for (k, p) in positions.iter().enumerate() {
        by_column[*p as usize] = view.columns.get(k + 1);
    }
    // Phase 2 cannot fail. Profiles new to the table get the next row ids,
    // so runs of them go to the shard's tail together (`append_new`); any
    // other row first flushes the run, so every row sees the indexes as of
    // the rows before it.
    let types = table.types.clone();
    // EVENTS columns accumulate: a row adds its events to the profile's.
    let events: Vec<bool> = table.schema.columns.iter().map(|c| c.events).collect();
    let mut fresh: Vec<usize> = Vec::new();
    let mut fresh_first = 0u32;
    let flush = |table: &mut TableState, fresh: &mut Vec<usize>, first: u32| {
        if !fresh.is_empty() {
            table
                .shard_mut(first)
                .append_new(first, fresh, ids, &by_column, &types);
            fresh.clear();
        }
    };
    for (i, id) in ids.iter().flatten().enumerate() {
        // An id new in phase 1 may have been given a row earlier in this batch.
        let known = before.rows[i].or_else(|| {
            table
                .keys
                .find_or_insert(id, before.hashes[i], table.next_row)
                .err()
        });
        if let Some(row) = known {
            flush(table, &mut fresh, fresh_first);
            if let std::collections::hash_map::Entry::Vacant(slot) = before.images.entry(row) {
                // Given its row earlier in this batch: it is in the tail now.
                let shard = table.shards.get(shard_of(row) as usize);
                slot.insert(shard.and_then(|s| s.image(row).ok().flatten()));
            }
            let fill = |shard: &mut ShardState, cells: &mut [Cell]| {
                for (k, p) in positions.iter().enumerate() {
                    let c = *p as usize;
                    let cell = view_cell(&mut shard.columns[c], &view.columns[k + 1], i);
                    cells[c] = if events[c] {
                        add_events(&cells[c], cell)
                    } else {
                        cell
                    };
                }
            };
            upsert_row(table, &mut before, lsn, id, known, false, fill);
            continue;
        }
        // `find_or_insert` gave the id this row.
        let row = table.next_row;
        table.next_row += 1;
        if !fresh.is_empty() && shard_of(fresh_first) != shard_of(row) {
            flush(table, &mut fresh, fresh_first);
        }
        if fresh.is_empty() {
            fresh_first = row;
        }
        fresh.push(i);
    }
    flush(table, &mut fresh, fresh_first);
    Ok(WriteSummary {
        upserted: view.rows as u64,
        ..WriteSummary::default()
    })
}

/// An EVENTS cell after `added` events arrive: the union of both sets
/// (NULL clears, like an INSERT of NULL).
fn add_events(current: &Cell, added: Cell) -> Cell {
    match (current, added) {
        (Cell::Set(old), Cell::Set(new)) => {
            let mut ids: Vec<u32> = old.iter().chain(new.iter()).copied().collect();
            ids.sort_unstable();
            ids.dedup();
            Cell::Set(ids.into_boxed_slice())
        }
        (_, added) => added,
    }
}

/// The cell row `i` of `view` sets in a column indexed by `index`.
fn view_cell(index: &mut ColumnIndex, view: &ColumnView<'_>, i: usize) -> Cell {
    match view {
        ColumnView::Text(_) | ColumnView::CodedText { .. } => view
            .text(i)
            .map_or(Cell::Null, |s| Cell::Text(index.intern(s))),
        ColumnView::TextSet { .. } | ColumnView::CodedSet { .. } => {
            if view.is_null(i) {
                return Cell::Null;
            }
            let mut ids: Vec<u32> = view.tags(i).map(|t| index.intern(t)).collect();
            ids.sort_unstable();
            ids.dedup();
            Cell::Set(ids.into_boxed_slice())
        }
        ColumnView::Int(v) => v[i].map_or(Cell::Null, Cell::Int),
        ColumnView::Float(v) => v[i].map_or(Cell::Null, Cell::Float),
        ColumnView::Bool(v) => v[i].map_or(Cell::Null, Cell::Bool),
    }
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
