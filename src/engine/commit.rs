//! The write path: requests are checked, logged to the WAL, made durable
//! (per the durability setting) and only then applied and acknowledged.
//!
//! Group commit: writers queue their requests; whoever finds no leader
//! becomes it, takes everything queued, writes it with one WAL write and one
//! fsync, steps down, then applies it and posts every result. Writers that
//! arrive meanwhile wait and are served by the next leader, which may log
//! its group while the one before is still applying: with two connections
//! loading, one batch's parse, WAL write and fsync overlap the other's
//! apply.
//!
//! Invariants: records get consecutive LSNs in queue order; groups apply in
//! LSN order (a group waits for [`super::Applied`] to reach the LSN before
//! its first); a request is acknowledged only after its record is durable
//! (with `always`) and applied; requests are checked against the catalog as
//! of the last logged record ([`Catalog`], kept with the WAL), and a group
//! that changes the catalog keeps the WAL locked until it has applied; a
//! failed WAL write or fsync puts the database in read-only mode (we never
//! retry an fsync and pretend it worked) and no later write is accepted
//! until reopen.

use super::error::{Error, Result};
use super::record::{encode_rows, resolve_batch, resolve_rows, Record};
use super::rows::RowsBatch;
use super::state::{table_key, DbState, WriteSummary};
use super::value::Batch;
use super::{Durability, Inner};
use crate::storage::columnar::RowsView;
use crate::storage::schema::TableSchema;
use crate::storage::wal::{MAX_RECORD_BYTES, RECORD_HEADER_LEN};
use parking_lot::MutexGuard;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A change waiting to be committed.
pub enum Request {
    CreateTable(TableSchema),
    DropTable(String),
    Write { table: String, batch: Batch },
    Rows { table: String, batch: RowsBatch },
}

/// A request resolved against the catalog, ready to be logged.
enum Prepared {
    Record(Record),
    /// A rows batch is logged from its own payload, not moved into a record.
    Rows {
        table_id: u32,
        positions: Vec<u16>,
        batch: RowsBatch,
        /// The payload columns that fill EVENTS columns, with their names.
        events: Vec<(usize, String)>,
    },
}

/// The tables new requests are checked against: by lower-cased name, their
/// id and schema; and the id the next new table gets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    tables: BTreeMap<String, (u32, Arc<TableSchema>)>,
    next_table_id: u32,
}

impl Catalog {
    /// The catalog of a state.
    pub(crate) fn of(state: &DbState) -> Catalog {
        Catalog {
            tables: state
                .tables
                .iter()
                .map(|(k, t)| (k.clone(), (t.id, t.schema.clone())))
                .collect(),
            next_table_id: state.next_table_id,
        }
    }
}

/// The queue of requests and their results.
#[derive(Default)]
pub struct Queue {
    pending: Vec<(u64, Request)>,
    results: HashMap<u64, Result<WriteSummary>>,
    next_ticket: u64,
    leader: bool,
}

impl Inner {
    /// Commits one request, as leader or follower of a group.
    pub(crate) fn submit(&self, request: Request) -> Result<WriteSummary> {
        let mut queue = self.queue.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push((ticket, request));
        loop {
            if let Some(result) = queue.results.remove(&ticket) {
                return result;
            }
            if !queue.leader {
                queue.leader = true;
                let group = std::mem::take(&mut queue.pending);
                let results = MutexGuard::unlocked(&mut queue, || {
                    let mut stepped_down = false;
                    let results = self.commit_group(group, &mut || {
                        let mut queue = self.queue.lock();
                        queue.leader = false;
                        stepped_down = true;
                        self.queue_ready.notify_all();
                    });
                    (results, stepped_down)
                });
                let (results, stepped_down) = results;
                queue.results.extend(results);
                if !stepped_down {
                    queue.leader = false;
                }
                self.queue_ready.notify_all();
                continue;
            }
            self.queue_ready.wait(&mut queue);
        }
    }

    /// Waits until every record up to `lsn` is applied, and returns the
    /// lock that keeps further groups from applying. Called with the WAL
    /// locked (so no record is logged meanwhile) by whatever needs the
    /// state to hold every logged record: a checkpoint's snapshot, its
    /// install. A group whose WAL write or fsync failed is never applied;
    /// the database is read-only then, and nothing waits for it.
    pub(crate) fn wait_applied(&self, lsn: u64) -> MutexGuard<'_, super::Applied> {
        let mut applied = self.applied.lock();
        while applied.lsn < lsn && self.failure.lock().is_none() {
            self.applied_changed.wait(&mut applied);
        }
        applied
    }

    /// Logs, syncs and applies one group. `step_down` is called once the
    /// group is durable (or has failed), when the next leader may start
    /// logging; a group that changes the catalog calls it only after it
    /// has applied.
    fn commit_group(
        &self,
        group: Vec<(u64, Request)>,
        step_down: &mut dyn FnMut(),
    ) -> Vec<(u64, Result<WriteSummary>)> {
        let mut results = Vec::with_capacity(group.len());
        let mut wal = self.wal.lock();
        if let Some(reason) = self.failure.lock().clone() {
            return group
                .into_iter()
                .map(|(t, _)| (t, Err(Error::ReadOnly(reason.clone()))))
                .collect();
        }
        // Check every request against the catalog as the earlier ones in the group leave it.
        let Catalog {
            tables: mut catalog,
            mut next_table_id,
        } = wal.catalog.clone();
        let mut changes_catalog = false;
        // Resolve every request as the earlier ones leave the catalog.
        let mut prepared: Vec<(u64, Prepared)> = Vec::with_capacity(group.len());
        for (ticket, request) in group {
            let resolved = match request {
                Request::CreateTable(schema) => {
                    let key = table_key(&schema.name);
                    match catalog.entry(key) {
                        Entry::Occupied(_) => Err(Error::TableExists(schema.name)),
                        Entry::Vacant(slot) => match schema.validate() {
                            Err(e) => Err(Error::InvalidSchema(e)),
                            Ok(()) => {
                                let id = next_table_id;
                                next_table_id += 1;
                                slot.insert((id, Arc::new(schema.clone())));
                                changes_catalog = true;
                                Ok(Prepared::Record(Record::CreateTable { id, schema }))
                            }
                        },
                    }
                }
                Request::DropTable(name) => match catalog.remove(&table_key(&name)) {
                    Some((id, _)) => {
                        changes_catalog = true;
                        Ok(Prepared::Record(Record::DropTable { id }))
                    }
                    None => Err(Error::TableNotFound(name)),
                },
                Request::Write { table, batch } => match catalog.get(&table_key(&table)) {
                    Some((id, schema)) => resolve_batch(schema, batch)
                        .map(|ops| Prepared::Record(Record::Write { table_id: *id, ops })),
                    None => Err(Error::TableNotFound(table)),
                },
                Request::Rows { table, batch } => match catalog.get(&table_key(&table)) {
                    Some((id, schema)) => resolve_rows(schema, &batch).map(|positions| {
                        let events = positions
                            .iter()
                            .enumerate()
                            .filter_map(|(k, p)| {
                                let column = &schema.columns[*p as usize];
                                column.events.then(|| (k + 1, column.name.clone()))
                            })
                            .collect();
                        Prepared::Rows {
                            table_id: *id,
                            positions,
                            batch,
                            events,
                        }
                    }),
                    None => Err(Error::TableNotFound(table)),
                },
            };
            match resolved {
                Ok(p) => prepared.push((ticket, p)),
                Err(e) => results.push((ticket, Err(e))),
            }
        }
        // Parse and check each rows batch once: the same parse is applied below.
        let mut views: Vec<Option<RowsView<'_>>> = Vec::with_capacity(prepared.len());
        let mut refused = vec![false; prepared.len()];
        for (i, (ticket, p)) in prepared.iter().enumerate() {
            let Prepared::Rows { batch, events, .. } = p else {
                views.push(None);
                continue;
            };
            let checked = batch.view().and_then(|view| {
                super::events::check_rows_tags(&view, events)?;
                Ok(view)
            });
            match checked {
                Ok(view) => views.push(Some(view)),
                Err(e) => {
                    results.push((*ticket, Err(e)));
                    refused[i] = true;
                    views.push(None);
                }
            }
        }
        let mut logged = Vec::with_capacity(prepared.len());
        for (i, (ticket, p)) in prepared.iter().enumerate() {
            if refused[i] {
                continue;
            }
            let payload = match p {
                Prepared::Record(record) => record.encode(),
                Prepared::Rows {
                    table_id,
                    positions,
                    batch,
                    ..
                } => encode_rows(*table_id, positions, batch.coded(), batch.payload()),
            };
            if payload.len() > MAX_RECORD_BYTES {
                results.push((
                    *ticket,
                    Err(Error::InvalidWrite(format!(
                        "the batch encodes to {} bytes; split it below {MAX_RECORD_BYTES}",
                        payload.len()
                    ))),
                ));
                continue;
            }
            let lsn = wal.last_lsn + 1;
            wal.writer.append(lsn, &payload);
            wal.last_lsn = lsn;
            wal.since_checkpoint += (payload.len() + RECORD_HEADER_LEN) as u64;
            logged.push((i, lsn));
        }
        if logged.is_empty() {
            return results;
        }
        let logged_before = logged.first().map_or(wal.last_lsn, |(_, lsn)| lsn - 1);
        let durable = wal
            .writer
            .flush()
            .and_then(|()| match self.options.durability {
                Durability::Always => wal.writer.sync(),
                _ => {
                    wal.unsynced = true;
                    Ok(())
                }
            });
        if let Err(e) = durable {
            let reason = e.to_string();
            *self.failure.lock() = Some(reason.clone());
            results.extend(
                logged
                    .into_iter()
                    .map(|(i, _)| (prepared[i].0, Err(Error::ReadOnly(reason.clone())))),
            );
            return results;
        }
        let wal_full = wal.since_checkpoint >= self.options.checkpoint_wal_bytes;
        // The next leader may log while this group applies, unless this group
        // changes what the next one is checked against.
        let wal = if changes_catalog {
            Some(wal)
        } else {
            drop(wal);
            step_down();
            None
        };
        let mut applied = self.applied.lock();
        while applied.lsn < logged_before {
            self.applied_changed.wait(&mut applied);
        }
        let filled_shard;
        {
            let mut state = self.state.write();
            let state = Arc::make_mut(&mut state);
            let shards_before = state.last_shards();
            for (i, lsn) in logged {
                let (ticket, p) = &prepared[i];
                let result = match (p, &views[i]) {
                    (Prepared::Record(record), _) => state.apply(lsn, record),
                    (
                        Prepared::Rows {
                            table_id,
                            positions,
                            ..
                        },
                        Some(view),
                    ) => state.apply_rows(lsn, *table_id, positions, view),
                    (Prepared::Rows { .. }, None) => {
                        Err(Error::Internal("a logged rows batch has no parse".into()))
                    }
                };
                state.last_lsn = lsn;
                results.push((*ticket, result));
            }
            filled_shard = state.filled_since(&shards_before);
            applied.lsn = state.last_lsn;
            if let Some(mut wal) = wal {
                wal.catalog = Catalog::of(state);
            }
        }
        drop(applied);
        self.applied_changed.notify_all();
        // A shard that has just filled up is written once, whole: a bulk
        // load then writes each shard's part once instead of at every WAL
        // threshold it straddles.
        if filled_shard || wal_full {
            self.request_checkpoint();
        }
        results
    }
}
