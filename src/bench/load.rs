//! Loading the audience into the server: the one place that knows how
//! profiles travel to the database.
//!
//! It is the path `cohortdb import` takes, over [`LoadLimits::connections`]
//! connections (2 by default): each batch one InsertRows message (the
//! columnar bulk-load message of docs/protocol.md, one atomic write on the
//! server) of at most [`LoadLimits::rows`] rows (10,000, the import default)
//! and about [`LoadLimits::bytes`] bytes (4 MiB, the import default). A
//! profile goes to the connection its id hashes to, so every write of one id
//! travels in order on one connection; each connection has one batch in
//! flight, and the next is encoded while the server applies it. With two
//! connections the server logs one batch while it applies the other. With a
//! server of protocol version 3 the country, gender and interests columns
//! go dictionary-coded (each batch carries the whole, fixed dictionary of
//! each; a value is its index), so the server looks each text up once per
//! batch instead of once per value.
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

/// Batch limits, and how many connections carry the batches.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Rows per batch.
    pub rows: usize,
    /// Largest batch payload in bytes (about).
    pub bytes: usize,
    /// Connections the batches are spread over (at least 1).
    pub connections: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            rows: 10_000,
            bytes: 4 << 20,
            connections: 2,
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

/// Sends blocks of profiles as InsertRows batches, each profile on the
/// connection its id hashes to.
///
/// Each connection ([`Lane`]) has at most one batch in flight: a full batch
/// is sent, and its acknowledgement is read only when that connection's next
/// batch is ready to go (or at [`Loader::finish`]), so the client encodes
/// while the server works. The protocol's one-request-at-a-time rule holds
/// on every connection: nothing else is sent on it before the answer is read.
pub struct Loader<'c> {
    /// The first connection (the caller's) and the loader's own others.
    client: &'c mut Client,
    others: Vec<Client>,
    lanes: Vec<Lane>,
    limits: LoadLimits,
    columns: Vec<ColumnInfo>,
    /// Whether every connection's server takes dictionary-coded columns.
    coded: bool,
    /// Scratch space for an id's text.
    id: String,
    stats: LoadStats,
}

/// One connection's batch being built and batch in flight.
struct Lane {
    rows: RowsEncoder,
    /// Lowest and highest row number in `rows`, and how many rows it holds.
    first: u64,
    last: u64,
    pending: u64,
    /// The batch sent and not yet acknowledged.
    in_flight: Option<InFlight>,
}

/// A batch the server has been sent but has not answered yet.
struct InFlight {
    first: u64,
    last: u64,
    rows: u64,
    bytes: u64,
}

impl<'c> Loader<'c> {
    /// A loader over `client` and `others` (one lane each).
    pub fn new(client: &'c mut Client, others: Vec<Client>, limits: LoadLimits) -> Loader<'c> {
        let columns = columns();
        let coded = client.version >= 3 && others.iter().all(|c| c.version >= 3);
        let lanes = (0..=others.len())
            .map(|_| Lane {
                rows: encoder(coded),
                first: u64::MAX,
                last: 0,
                pending: 0,
                in_flight: None,
            })
            .collect();
        Loader {
            client,
            others,
            lanes,
            limits: LoadLimits {
                rows: limits.rows.max(1),
                bytes: limits.bytes,
                connections: limits.connections.max(1),
            },
            columns,
            coded,
            id: String::new(),
            stats: LoadStats::default(),
        }
    }

    /// Sends every profile of `block` (full batches go out as they fill; the
    /// last partial batches wait for the next block or [`Loader::finish`]).
    pub fn send_block(&mut self, block: &Block) -> Result<(), LoadError> {
        for p in block.profiles() {
            write_id(&mut self.id, &p);
            let k = lane_of(&self.id, self.lanes.len());
            let lane = &mut self.lanes[k];
            lane.first = lane.first.min(p.row);
            lane.last = lane.last.max(p.row);
            write_row(&mut lane.rows, &self.id, &p, self.coded);
            lane.pending += 1;
            if lane.pending as usize >= self.limits.rows || lane.rows.len() >= self.limits.bytes {
                self.flush(k)?;
            }
        }
        Ok(())
    }

    /// Sends the last partial batches, waits for every acknowledgement and
    /// returns the totals.
    pub fn finish(mut self) -> Result<LoadStats, LoadError> {
        for k in 0..self.lanes.len() {
            self.flush(k)?;
        }
        for k in 0..self.lanes.len() {
            self.await_in_flight(k)?;
        }
        Ok(self.stats)
    }

    /// The connection of lane `k`.
    fn connection(&mut self, k: usize) -> &mut Client {
        match k.checked_sub(1) {
            None => self.client,
            Some(i) => &mut self.others[i],
        }
    }

    /// Sends lane `k`'s batch being built, after its batch in flight is
    /// acknowledged.
    fn flush(&mut self, k: usize) -> Result<(), LoadError> {
        if self.lanes[k].pending == 0 {
            return Ok(());
        }
        self.await_in_flight(k)?;
        let fresh = encoder(self.coded);
        let lane = &mut self.lanes[k];
        let (first, last, sent) = (lane.first, lane.last, lane.pending);
        let coded = lane.rows.coded();
        let payload = std::mem::replace(&mut lane.rows, fresh).finish();
        lane.first = u64::MAX;
        lane.last = 0;
        lane.pending = 0;
        let bytes = payload.len() as u64;
        let columns = std::mem::take(&mut self.columns);
        let sent_ok = self
            .connection(k)
            .send_coded_insert_rows(TABLE, &columns, &coded, payload);
        self.columns = columns;
        sent_ok.map_err(|source| refused(first, last, source))?;
        self.lanes[k].in_flight = Some(InFlight {
            first,
            last,
            rows: sent,
            bytes,
        });
        Ok(())
    }

    /// Reads the answer to lane `k`'s batch in flight, if any, and counts it.
    fn await_in_flight(&mut self, k: usize) -> Result<(), LoadError> {
        let Some(batch) = self.lanes[k].in_flight.take() else {
            return Ok(());
        };
        let got = self
            .connection(k)
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

/// The lane (of `lanes`) an id's profiles travel on: the same for every
/// write of the id, so they reach the server in order.
fn lane_of(id: &str, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    (xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % lanes as u64) as usize
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

/// Writes a profile's id (`u` and its row number) into `id`.
fn write_id(id: &mut String, p: &Profile<'_>) {
    use std::fmt::Write;
    id.clear();
    let _ = write!(id, "u{}", p.row);
}

/// An empty batch of the [`columns`]; with `coded`, country, gender and
/// interests are dictionary-coded over all their values.
fn encoder(coded: bool) -> RowsEncoder {
    let mut e = RowsEncoder::new(columns().len());
    if coded {
        e.dictionary(1, COUNTRIES.iter().copied());
        e.dictionary(2, GENDERS.iter().copied());
        e.dictionary(4, tag_names().iter().map(String::as_str));
    }
    e
}

/// Appends one profile as a row of cells (the order of [`columns`]) to a
/// batch from [`encoder`]`(coded)`; `id` is its id, from [`write_id`].
fn write_row(out: &mut RowsEncoder, id: &str, p: &Profile<'_>, coded: bool) {
    out.text(0, id);
    if coded {
        out.code(1, u32::from(p.country));
        out.code(2, u32::from(p.gender));
    } else {
        out.text(1, COUNTRIES[usize::from(p.country)]);
        out.text(2, GENDERS[usize::from(p.gender)]);
    }
    out.int(3, i64::from(p.age));
    if coded {
        out.codes(4, p.tags.iter().map(|t| u32::from(*t)));
    } else {
        let names = tag_names();
        out.set(4, p.tags.iter().map(|t| names[usize::from(*t)].as_str()));
    }
    out.int(5, p.last_seen);
    // Cents / 100 is correctly rounded: the same f64 as parsing "20.09".
    out.float(6, p.ltv_cents as f64 / 100.0);
    out.bool(7, p.consent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::columnar::{parse_coded_rows, ColumnView};

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
        // Plain and dictionary-coded batches carry the same profiles.
        for coded in [false, true] {
            let mut e = encoder(coded);
            let mut id = String::new();
            write_id(&mut id, &p);
            write_row(&mut e, &id, &p, coded);
            let second = Profile {
                tags: &[],
                consent: false,
                ltv_cents: 5,
                ..p
            };
            write_row(&mut e, &id, &second, coded);
            let types: Vec<ColumnType> = columns().iter().map(|c| c.ty).collect();
            let flags = e.coded();
            assert_eq!(
                flags,
                [false, coded, coded, false, coded, false, false, false]
            );
            let payload = e.finish();
            let view = parse_coded_rows(&types, &flags, &payload, 0).unwrap();
            assert_eq!(
                view.columns[0],
                ColumnView::Text(vec![Some("u7"), Some("u7")])
            );
            for (c, want) in [(1, "NL"), (2, "m")] {
                assert_eq!(view.columns[c].text(0), Some(want));
                assert_eq!(view.columns[c].text(1), Some(want));
            }
            assert_eq!(
                view.columns[4].tags(0).collect::<Vec<_>>(),
                ["i0001", "i0007", "i0020"]
            );
            assert_eq!(view.columns[4].tags(1).len(), 0);
            assert!(!view.columns[4].is_null(1));
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

    #[test]
    fn an_id_always_takes_the_same_lane_and_both_lanes_are_used() {
        let ids: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
        let lanes: Vec<usize> = ids.iter().map(|id| lane_of(id, 2)).collect();
        for (id, lane) in ids.iter().zip(&lanes) {
            assert_eq!(lane_of(id, 2), *lane);
            assert_eq!(lane_of(id, 1), 0);
        }
        let on_first = lanes.iter().filter(|l| **l == 0).count();
        assert!(
            (400..600).contains(&on_first),
            "{on_first} of 1000 on lane 0"
        );
    }
}
