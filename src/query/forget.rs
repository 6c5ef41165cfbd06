//! `FORGET 'id' [FROM t]`: the right to be forgotten, enforced. The
//! profile is deleted from the table (or every user table), then a
//! checkpoint runs, and the statement returns only after it: the
//! checkpoint rewrites the parts that held the profile and deletes the old
//! parts and every WAL segment that held its writes (docs/storage.md §9.6),
//! so no byte of it is left in any file of the data directory. The request
//! is recorded in `_forgotten` under a BLAKE2b-256 hash of the id, never
//! the id itself.
//!
//! Invariants: the audit row is written after the checkpoint, so it is the
//! only trace of the request and holds no byte of the id; text an admin
//! typed into a segment or export definition is not profile data and is
//! not searched (docs/privacy.md).

use super::access::Principal;
use super::error::{QueryError, QueryResult};
use super::output::Output;
use crate::engine::{Batch, Database, Error as EngineError, Value};
use crate::storage::schema::{ColumnType, TableSchema};
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

/// The audit log of erasure requests.
pub const FORGOTTEN_TABLE: &str = "_forgotten";

/// The hex BLAKE2b-256 of `id`: how an erased id is recorded.
pub fn id_hash(id: &str) -> String {
    let digest = Blake2b::<U32>::digest(id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Erases profile `id` from `table` (or every user table) and from every
/// file; the number of tables it was in.
pub fn forget(
    db: &Database,
    principal: &Principal,
    id: &str,
    table: Option<&str>,
) -> QueryResult<Output> {
    let snapshot = db.snapshot();
    let tables: Vec<String> = match table {
        Some(t) => vec![snapshot.table(t)?.schema().name.clone()],
        None => snapshot
            .tables()
            .into_iter()
            .filter(|t| !t.name.starts_with('_'))
            .map(|t| t.name.clone())
            .collect(),
    };
    let mut held = 0u64;
    for name in &tables {
        let t = snapshot.table(name)?;
        if t.lookup(id).is_none() {
            continue;
        }
        let mut batch = Batch::new();
        batch.delete(id);
        held += db.write(name, batch)?.deleted;
    }
    // The checkpoint is what removes the bytes; FORGET waits for it.
    db.checkpoint().map_err(QueryError::from)?;
    record(db, principal, id, held)?;
    Ok(Output::Done {
        tag: "FORGET",
        affected: held,
    })
}

fn record(db: &Database, principal: &Principal, id: &str, tables: u64) -> QueryResult<()> {
    match db.create_table(
        TableSchema::new(FORGOTTEN_TABLE, "id_hash")
            .column("at", ColumnType::Timestamp)
            .column("user", ColumnType::Text)
            .column("tables", ColumnType::Int),
    ) {
        Ok(()) | Err(EngineError::TableExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let now = crate::engine::events::clock_now();
    let mut batch = Batch::new();
    batch
        .upsert(id_hash(id))
        .set("at", Value::Timestamp(now))
        .set("user", principal.user.as_str())
        .set("tables", tables as i64);
    db.write(FORGOTTEN_TABLE, batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recorded_as_blake2b_256() {
        // RFC 7693 test vector for "abc", BLAKE2b-256.
        assert_eq!(
            id_hash("abc"),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
        assert_eq!(id_hash("u1").len(), 64);
    }
}
