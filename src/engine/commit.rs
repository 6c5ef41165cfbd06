//! The write path: requests are checked, logged to the WAL, made durable
//! (per the durability setting) and only then applied and acknowledged.
//!
//! Group commit: writers queue their requests; whoever finds no leader
//! becomes it, takes everything queued, writes it with one WAL write and one
//! fsync, applies it, posts every result and steps down. Writers that arrive
//! meanwhile wait and are served by the next leader.
//!
//! Invariants: records get consecutive LSNs in queue order; a request is
//! acknowledged only after its record is durable (with `always`); a failed
//! WAL write or fsync puts the database in read-only mode (we never retry an
//! fsync and pretend it worked) and no later write is accepted until reopen.

use super::error::{Error, Result};
use super::record::{resolve_batch, resolve_rows, Record};
use super::rows::RowsBatch;
use super::state::{table_key, WriteSummary};
use super::value::Batch;
use super::{Durability, Inner};
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
                let results = MutexGuard::unlocked(&mut queue, || self.commit_group(group));
                queue.results.extend(results);
                queue.leader = false;
                self.queue_ready.notify_all();
                continue;
            }
            self.queue_ready.wait(&mut queue);
        }
    }

    fn commit_group(&self, group: Vec<(u64, Request)>) -> Vec<(u64, Result<WriteSummary>)> {
        let mut results = Vec::with_capacity(group.len());
        let mut wal = self.wal.lock();
        if let Some(reason) = self.failure.lock().clone() {
            return group
                .into_iter()
                .map(|(t, _)| (t, Err(Error::ReadOnly(reason.clone()))))
                .collect();
        }
        // Check every request against the catalog as the earlier ones in the group leave it.
        let mut catalog: BTreeMap<String, (u32, Arc<TableSchema>)>;
        let mut next_table_id;
        {
            let state = self.state.read();
            catalog = state
                .tables
                .iter()
                .map(|(k, t)| (k.clone(), (t.id, t.schema.clone())))
                .collect();
            next_table_id = state.next_table_id;
        }
        let mut logged = Vec::with_capacity(group.len());
        for (ticket, request) in group {
            let record = match request {
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
                                Ok(Record::CreateTable { id, schema })
                            }
                        },
                    }
                }
                Request::DropTable(name) => match catalog.remove(&table_key(&name)) {
                    Some((id, _)) => Ok(Record::DropTable { id }),
                    None => Err(Error::TableNotFound(name)),
                },
                Request::Write { table, batch } => match catalog.get(&table_key(&table)) {
                    Some((id, schema)) => {
                        resolve_batch(schema, batch).map(|ops| Record::Write { table_id: *id, ops })
                    }
                    None => Err(Error::TableNotFound(table)),
                },
                Request::Rows { table, batch } => match catalog.get(&table_key(&table)) {
                    Some((id, schema)) => {
                        resolve_rows(schema, &batch).map(|positions| Record::Rows {
                            table_id: *id,
                            positions,
                            payload: batch.into_payload(),
                        })
                    }
                    None => Err(Error::TableNotFound(table)),
                },
            };
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    results.push((ticket, Err(e)));
                    continue;
                }
            };
            let payload = record.encode();
            if payload.len() > MAX_RECORD_BYTES {
                results.push((
                    ticket,
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
            logged.push((ticket, lsn, record));
        }
        if logged.is_empty() {
            return results;
        }
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
                    .map(|(t, _, _)| (t, Err(Error::ReadOnly(reason.clone())))),
            );
            return results;
        }
        {
            let mut state = self.state.write();
            let state = Arc::make_mut(&mut state);
            for (ticket, lsn, record) in logged {
                let result = state.apply(lsn, &record);
                state.last_lsn = lsn;
                results.push((ticket, result));
            }
        }
        if wal.since_checkpoint >= self.options.checkpoint_wal_bytes {
            self.request_checkpoint();
        }
        results
    }
}
