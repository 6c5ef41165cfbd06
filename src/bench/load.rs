//! Loading the audience into the server: the one place that knows how
//! profiles travel to the database, so the bench can switch to a faster
//! ingest message by changing this module alone.
//!
//! Today it is the path `cohortdb import` takes: one connection, each batch
//! one `INSERT INTO profiles (...) VALUES (...), ...` statement (one atomic
//! write on the server) of at most [`LoadLimits::rows`] rows (10,000, the
//! import default) and [`LoadLimits::bytes`] bytes (the server's default
//! `--max-statement-bytes`, 1 MiB), sent and acknowledged one after another.
//!
//! Boundary: [`prepare_table`] before anything is sent; then
//! [`Loader::send_block`] for every block, in row order; then
//! [`Loader::finish`]. Invariant: when `finish` returns `Ok`, the server has
//! acknowledged every row of every block passed to `send_block`, and the
//! acknowledged count is the number of rows sent (each id once).

use super::audience::{Block, Profile, COUNTRIES, GENDERS};
use super::queries::TABLE;
use crate::client::{Client, ClientError};
use crate::engine::Value;
use std::io::Write;

/// The `profiles` table of the bench (gen_profiles.py's columns).
pub const CREATE_TABLE: &str = "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, gender TEXT, age INT, interests SET<TEXT>, last_seen TIMESTAMP, ltv FLOAT, consent BOOL)";

const INSERT_HEAD: &str =
    "INSERT INTO profiles (id, country, gender, age, interests, last_seen, ltv, consent) VALUES ";

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
    #[error("row {0} alone is larger than the statement limit of {1} bytes")]
    RowTooLarge(u64, usize),
    #[error("unexpected answer to SHOW TABLES: {0}")]
    Show(String),
}

/// Batch limits.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Rows per INSERT statement.
    pub rows: usize,
    /// Largest statement text in bytes.
    pub bytes: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            rows: 10_000,
            bytes: 1 << 20,
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
    /// INSERT statements sent.
    pub statements: u64,
    /// Statement bytes sent.
    pub bytes: u64,
}

/// Sends blocks of profiles as INSERT batches over one connection.
pub struct Loader<'c> {
    client: &'c mut Client,
    limits: LoadLimits,
    text: Vec<u8>,
    row: Vec<u8>,
    /// First and last row number in `text`, and how many rows it holds.
    first: u64,
    last: u64,
    pending: u64,
    stats: LoadStats,
}

impl<'c> Loader<'c> {
    pub fn new(client: &'c mut Client, limits: LoadLimits) -> Loader<'c> {
        let mut text = Vec::with_capacity(limits.bytes);
        text.extend_from_slice(INSERT_HEAD.as_bytes());
        Loader {
            client,
            limits: LoadLimits {
                rows: limits.rows.max(1),
                bytes: limits.bytes,
            },
            text,
            row: Vec::with_capacity(256),
            first: 0,
            last: 0,
            pending: 0,
            stats: LoadStats::default(),
        }
    }

    /// Sends every profile of `block` (full batches go out as they fill; the
    /// last partial batch waits for the next block or [`Loader::finish`]).
    pub fn send_block(&mut self, block: &Block) -> Result<(), LoadError> {
        for p in block.profiles() {
            self.row.clear();
            write_row(&mut self.row, &p);
            let separator = usize::from(self.pending > 0);
            if self.pending > 0 && self.text.len() + separator + self.row.len() > self.limits.bytes
            {
                self.flush()?;
            }
            if self.pending == 0 {
                if INSERT_HEAD.len() + self.row.len() > self.limits.bytes {
                    return Err(LoadError::RowTooLarge(p.row, self.limits.bytes));
                }
                self.first = p.row;
            } else {
                self.text.push(b',');
            }
            self.text.extend_from_slice(&self.row);
            self.last = p.row;
            self.pending += 1;
            if self.pending as usize >= self.limits.rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Sends the last partial batch; returns the totals.
    pub fn finish(mut self) -> Result<LoadStats, LoadError> {
        self.flush()?;
        Ok(self.stats)
    }

    fn flush(&mut self) -> Result<(), LoadError> {
        if self.pending == 0 {
            return Ok(());
        }
        let (first, last, sent) = (self.first, self.last, self.pending);
        // Every byte written came from ASCII literals and UTF-8 names.
        let text = String::from_utf8_lossy(&self.text);
        let results = self.client.execute(&text).map_err(|source| match source {
            ClientError::Server { .. } => LoadError::Refused {
                first,
                last,
                source,
            },
            other => LoadError::Client(other),
        })?;
        let got: u64 = results.iter().map(|r| r.affected).sum();
        if got != sent {
            return Err(LoadError::Miscounted {
                sent,
                got,
                first,
                last,
            });
        }
        self.stats.rows += sent;
        self.stats.statements += 1;
        self.stats.bytes += self.text.len() as u64;
        self.text.truncate(INSERT_HEAD.len());
        self.pending = 0;
        Ok(())
    }
}

/// Appends one profile as a `( ... )` row of CohortQL literals.
fn write_row(out: &mut Vec<u8>, p: &Profile<'_>) {
    // Writing into a Vec cannot fail. Ids, codes and tag names need no
    // escaping (letters and digits only).
    let _ = write!(
        out,
        "('u{}','{}','{}',{},[",
        p.row,
        COUNTRIES[usize::from(p.country)],
        GENDERS[usize::from(p.gender)],
        p.age
    );
    for (i, t) in p.tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "'i{:04}'", t + 1);
    }
    let _ = write!(
        out,
        "],{},{}.{:02},{})",
        p.last_seen,
        p.ltv_cents.div_euclid(100),
        p.ltv_cents.rem_euclid(100),
        if p.consent { "TRUE" } else { "FALSE" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_literal() {
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
        let mut out = Vec::new();
        write_row(&mut out, &p);
        assert_eq!(
            String::from_utf8(out).as_deref(),
            Ok("('u7','NL','m',34,['i0001','i0007','i0020'],1791234567,20.09,TRUE)")
        );
        let mut out = Vec::new();
        write_row(
            &mut out,
            &Profile {
                tags: &[],
                consent: false,
                ltv_cents: 5,
                ..p
            },
        );
        assert_eq!(
            String::from_utf8(out).as_deref(),
            Ok("('u7','NL','m',34,[],1791234567,0.05,FALSE)")
        );
    }
}
