//! Loading the audience into the server: the one place that knows how
//! profiles travel to the database.
//!
//! It is the path `cohortdb import` takes: one connection, each batch one
//! InsertRows message (the columnar bulk-load message of docs/protocol.md,
//! one atomic write on the server) of at most [`LoadLimits::rows`] rows
//! (10,000, the import default) and about [`LoadLimits::bytes`] bytes (4 MiB,
//! the import default), sent one after another; the next batch is encoded
//! while the server applies the one before.
//!
//! Boundary: [`prepare_table`] before anything is sent; then
//! [`Loader::send_block`] for every block, in row order; then
//! [`Loader::finish`]. Invariant: when `finish` returns `Ok`, the server has
//! acknowledged every row of every block passed to `send_block`, and the
//! acknowledged count is the number of rows sent (each id once).

use super::audience::{tag_names, Block, Profile, COUNTRIES, GENDERS};
use super::queries::TABLE;
use crate::client::{Client, ClientError};
use crate::engine::Value;
use crate::protocol::message::ColumnInfo;
use crate::storage::columnar::RowsEncoder;
use crate::storage::schema::ColumnType;

/// The `profiles` table of the bench (gen_profiles.py's columns).
pub const CREATE_TABLE: &str = "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, gender TEXT, age INT, interests SET<TEXT>, last_seen TIMESTAMP, ltv FLOAT, consent BOOL)";

/// The InsertRows columns, in the order [`write_row`] fills them.
fn columns() -> Vec<ColumnInfo> {
    [
        ("id", ColumnType::Text),
        ("country", ColumnType::Text),
        ("gender", ColumnType::Text),
        ("age", ColumnType::Int),
        ("interests", ColumnType::TextSet),
        ("last_seen", ColumnType::Timestamp),
        ("ltv", ColumnType::Float),
        ("consent", ColumnType::Bool),
    ]
    .into_iter()
    .map(|(name, ty)| ColumnInfo {
        name: name.into(),
        ty,
    })
    .collect()
}

/// Why loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("the server refused the batch of rows {first}..={last}: {source}")]
    Refused {
        first: u64,
        last: u64,
        #[source]
        source: ClientError,
    },
    #[error("the server acknowledged {got} rows for a batch of {sent} (rows {first}..={last})")]
    Miscounted {
        sent: u64,
        got: u64,
        first: u64,
        last: u64,
    },
    #[error("unexpected answer to SHOW TABLES: {0}")]
    Show(String),
}

/// Batch limits.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Rows per batch.
    pub rows: usize,
    /// Largest batch payload in bytes (about).
    pub bytes: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            rows: 10_000,
            bytes: 4 << 20,
        }
    }
}

/// What [`prepare_table`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// The table did not exist and was created.
    Created,
    /// The table exists and holds this many profiles.
    Existing(u64),
}

/// Creates the `profiles` table unless it exists; says how many profiles an
/// existing one holds.
pub fn prepare_table(client: &mut Client) -> Result<TableState, LoadError> {
    let results = client.execute("SHOW TABLES")?;
    let rows = results
        .into_iter()
        .next()
        .map(|r| r.rows)
        .ok_or_else(|| LoadError::Show("no result".into()))?;
    for row in rows {
        match row.as_slice() {
            [Value::Text(name), _, Value::Int(profiles)] if name == TABLE => {
                return Ok(TableState::Existing(u64::try_from(*profiles).unwrap_or(0)));
            }
            [Value::Text(_), _, _] => {}
            other => return Err(LoadError::Show(format!("{other:?}"))),
        }
    }
    client.execute(CREATE_TABLE)?;
    Ok(TableState::Created)
}

/// What a load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Rows acknowledged by the server.
    pub rows: u64,
    /// InsertRows batches sent.
    pub batches: u64,
    /// Payload bytes sent.
    pub bytes: u64,
}

/// Sends blocks of profiles as InsertRows batches over one connection.
///
/// One batch at a time is in flight: a full batch is sent, and its
/// acknowledgement is read only when the next batch is ready to go (or at
/// [`Loader::finish`]), so the client encodes batch n + 1 while the server
/// applies batch n. The protocol's one-request-at-a-time rule holds: nothing
/// else is sent before the answer is read.
pub struct Loader<'c> {
    client: &'c mut Client,
    limits: LoadLimits,
    columns: Vec<ColumnInfo>,
    rows: RowsEncoder,
    /// Scratch space for an id's text.
    id: String,
    /// First and last row number in `rows`, and how many rows it holds.
    first: u64,
    last: u64,
    pending: u64,
    /// The batch sent and not yet acknowledged.
    in_flight: Option<InFlight>,
    stats: LoadStats,
}

/// A batch the server has been sent but has not answered yet.
struct InFlight {
    first: u64,
    last: u64,
    rows: u64,
    bytes: u64,
}

impl<'c> Loader<'c> {
    pub fn new(client: &'c mut Client, limits: LoadLimits) -> Loader<'c> {
        let columns = columns();
        Loader {
            client,
            limits: LoadLimits {
                rows: limits.rows.max(1),
                bytes: limits.bytes,
            },
            rows: RowsEncoder::new(columns.len()),
            columns,
            id: String::new(),
            first: 0,
            last: 0,
            pending: 0,
            in_flight: None,
            stats: LoadStats::default(),
        }
    }

    /// Sends every profile of `block` (full batches go out as they fill; the
    /// last partial batch waits for the next block or [`Loader::finish`]).
    pub fn send_block(&mut self, block: &Block) -> Result<(), LoadError> {
        for p in block.profiles() {
            if self.pending == 0 {
                self.first = p.row;
            }
            write_row(&mut self.rows, &mut self.id, &p);
            self.last = p.row;
            self.pending += 1;
            if self.pending as usize >= self.limits.rows || self.rows.len() >= self.limits.bytes {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Sends the last partial batch, waits for every acknowledgement and
    /// returns the totals.
    pub fn finish(mut self) -> Result<LoadStats, LoadError> {
        self.flush()?;
        self.await_in_flight()?;
        Ok(self.stats)
    }

    /// Sends the batch being built, after the one in flight is acknowledged.
    fn flush(&mut self) -> Result<(), LoadError> {
        if self.pending == 0 {
            return Ok(());
        }
        self.await_in_flight()?;
        let (first, last, sent) = (self.first, self.last, self.pending);
        let rows = std::mem::replace(&mut self.rows, RowsEncoder::new(self.columns.len()));
        let payload = rows.finish();
        let bytes = payload.len() as u64;
        self.client
            .send_insert_rows(TABLE, &self.columns, payload)
            .map_err(|source| refused(first, last, source))?;
        self.in_flight = Some(InFlight {
            first,
            last,
            rows: sent,
            bytes,
        });
        self.pending = 0;
        Ok(())
    }

    /// Reads the answer to the batch in flight, if any, and counts it.
    fn await_in_flight(&mut self) -> Result<(), LoadError> {
        let Some(batch) = self.in_flight.take() else {
            return Ok(());
        };
        let got = self
            .client
            .insert_rows_result()
            .map_err(|source| refused(batch.first, batch.last, source))?;
        if got != batch.rows {
            return Err(LoadError::Miscounted {
                sent: batch.rows,
                got,
                first: batch.first,
                last: batch.last,
            });
        }
        self.stats.rows += batch.rows;
        self.stats.batches += 1;
        self.stats.bytes += batch.bytes;
        Ok(())
    }
}

/// A refusal by the server names the batch; other errors pass through.
fn refused(first: u64, last: u64, source: ClientError) -> LoadError {
    match source {
        ClientError::Server { .. } => LoadError::Refused {
            first,
            last,
            source,
        },
        other => LoadError::Client(other),
    }
}

/// Appends one profile as a row of cells (the order of [`columns`]);
/// `id` is scratch space for the id's text.
fn write_row(out: &mut RowsEncoder, id: &mut String, p: &Profile<'_>) {
    use std::fmt::Write;
    id.clear();
    let _ = write!(id, "u{}", p.row);
    out.text(0, id);
    out.text(1, COUNTRIES[usize::from(p.country)]);
    out.text(2, GENDERS[usize::from(p.gender)]);
    out.int(3, i64::from(p.age));
    let names = tag_names();
    out.set(4, p.tags.iter().map(|t| names[usize::from(*t)].as_str()));
    out.int(5, p.last_seen);
    // Cents / 100 is correctly rounded: the same f64 as parsing "20.09".
    out.float(6, p.ltv_cents as f64 / 100.0);
    out.bool(7, p.consent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::columnar::{parse_rows, ColumnView};

    #[test]
    fn rows_carry_the_profile() {
        let tags = [0u16, 6, 19];
        let p = Profile {
            row: 7,
            country: 9,
            gender: 1,
            age: 34,
            tags: &tags,
            last_seen: 1_791_234_567,
            ltv_cents: 2009,
            consent: true,
        };
        let mut e = RowsEncoder::new(8);
        let mut id = String::new();
        write_row(&mut e, &mut id, &p);
        write_row(
            &mut e,
            &mut id,
            &Profile {
                tags: &[],
                consent: false,
                ltv_cents: 5,
                ..p
            },
        );
        let types: Vec<ColumnType> = columns().iter().map(|c| c.ty).collect();
        let payload = e.finish();
        let view = parse_rows(&types, &payload, 0).unwrap();
        assert_eq!(
            view.columns[0],
            ColumnView::Text(vec![Some("u7"), Some("u7")])
        );
        assert_eq!(
            view.columns[1],
            ColumnView::Text(vec![Some("NL"), Some("NL")])
        );
        assert_eq!(
            view.columns[2],
            ColumnView::Text(vec![Some("m"), Some("m")])
        );
        assert_eq!(view.columns[4].tags(0), ["i0001", "i0007", "i0020"]);
        assert!(view.columns[4].tags(1).is_empty());
        assert_eq!(
            view.columns[6],
            ColumnView::Float(vec![Some(20.09), Some(0.05)])
        );
        assert_eq!(
            view.columns[7],
            ColumnView::Bool(vec![Some(true), Some(false)])
        );
    }
}
