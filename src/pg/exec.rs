//! Running statements for a PostgreSQL session on tokio's blocking pool:
//! the engine's outputs become RowDescription, DataRow and CommandComplete
//! bytes, sent to the session in chunks through a bounded channel, so a
//! slow client slows its own query and no result is ever held whole.
//!
//! A [`Cursor`] is what is left of a statement's outputs: the extended
//! protocol's Execute with a row limit sends part of it and keeps the rest
//! in the portal. Cancel, the statement timeout and shutdown raise the
//! job's flag, which is checked between statements and every few hundred
//! rows.

use super::codec::{Backend, DataRowWriter};
use super::errors::{PgErrorResponse, CANCELED, SHUTDOWN};
use super::types;
use crate::query::{OutColumn, Output, Rows};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

pub const RUNNING: u8 = 0;
pub const CANCELLED: u8 = 1;
pub const TIMED_OUT: u8 = 2;
pub const SHUTTING_DOWN: u8 = 3;

/// Bytes buffered before a chunk goes to the session.
const CHUNK_BYTES: usize = 64 << 10;
/// Rows between checks of the flag.
const CHECK_EVERY: u64 = 256;

/// The blocking side of one running request.
pub struct Job {
    pub flag: Arc<AtomicU8>,
    tx: mpsc::Sender<Vec<u8>>,
    pub buf: Vec<u8>,
}

impl Job {
    pub fn new(flag: Arc<AtomicU8>, tx: mpsc::Sender<Vec<u8>>) -> Job {
        Job {
            flag,
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES + 1024),
        }
    }

    pub fn send(&mut self, m: &Backend) {
        m.encode(&mut self.buf);
    }

    /// Sends the buffer if it is large; false if the session is gone.
    pub fn maybe_flush(&mut self) -> bool {
        self.buf.len() < CHUNK_BYTES || self.flush()
    }

    /// Sends the buffer; false if the session is gone.
    pub fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 1024));
        self.tx.blocking_send(chunk).is_ok()
    }

    /// Why the request must stop, if it must.
    pub fn stopped(&self) -> Option<PgErrorResponse> {
        match self.flag.load(Ordering::SeqCst) {
            RUNNING => None,
            CANCELLED => Some(PgErrorResponse::new(
                CANCELED,
                "canceling statement due to user request",
            )),
            TIMED_OUT => Some(PgErrorResponse::new(
                CANCELED,
                "canceling statement due to statement timeout",
            )),
            _ => Some(PgErrorResponse::fatal(
                SHUTDOWN,
                "terminating connection because the server is shutting down",
            )),
        }
    }
}

/// The result formats of a portal: per column 0 (text) or 1 (binary).
pub fn format_of(formats: &[i16], column: usize) -> i16 {
    match formats {
        [] => 0,
        [one] => *one,
        many => many.get(column).copied().unwrap_or(0),
    }
}

/// The RowDescription of result columns.
pub fn row_description(columns: &[OutColumn], formats: &[i16]) -> Backend {
    Backend::RowDescription(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| types::field(&c.name, types::oid(c.ty), format_of(formats, i)))
            .collect(),
    )
}

/// The CommandComplete tag of a statement that returned no rows.
pub fn command_tag(tag: &str, affected: u64) -> String {
    match tag {
        "INSERT" => format!("INSERT 0 {affected}"),
        "UPDATE" | "DELETE" => format!("{tag} {affected}"),
        other => other.to_string(),
    }
}

/// What is left of a statement's outputs.
#[derive(Debug, Default)]
pub struct Cursor {
    pub outputs: VecDeque<Output>,
    /// Rows of the front output already sent.
    pub sent: u64,
}

impl Cursor {
    pub fn new(outputs: Vec<Output>) -> Cursor {
        Cursor {
            outputs: outputs.into(),
            sent: 0,
        }
    }

    /// The columns of the first output, if it returns rows.
    pub fn columns(&self) -> Option<&[OutColumn]> {
        match self.outputs.front() {
            Some(Output::Rows(r)) => Some(&r.columns),
            _ => None,
        }
    }
}

/// How sending stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The output is complete (CommandComplete sent).
    Complete,
    /// `max_rows` were sent and more remain (PortalSuspended sent).
    Suspended,
    /// The session is gone.
    Gone,
}

/// Sends the front output of `cursor`: its rows (up to `max_rows`, 0 for
/// all) and CommandComplete, or PortalSuspended. With `describe`, a
/// RowDescription first (the simple protocol).
pub fn send_front(
    job: &mut Job,
    cursor: &mut Cursor,
    formats: &[i16],
    max_rows: u64,
    describe: bool,
) -> Result<Sent, PgErrorResponse> {
    let Some(front) = cursor.outputs.front_mut() else {
        job.send(&Backend::CommandComplete("SELECT 0".into()));
        return Ok(Sent::Complete);
    };
    match front {
        Output::Done { tag, affected } => {
            let tag = command_tag(tag, *affected);
            cursor.outputs.pop_front();
            job.send(&Backend::CommandComplete(tag));
            Ok(Sent::Complete)
        }
        Output::Rows(rows) => {
            if describe {
                job.send(&row_description(&rows.columns, formats));
            }
            let done = send_rows(job, rows, formats, max_rows, &mut cursor.sent)?;
            match done {
                None => Ok(Sent::Gone),
                Some(true) => {
                    job.send(&Backend::CommandComplete(format!("SELECT {}", cursor.sent)));
                    cursor.outputs.pop_front();
                    cursor.sent = 0;
                    Ok(Sent::Complete)
                }
                Some(false) => {
                    job.send(&Backend::PortalSuspended);
                    Ok(Sent::Suspended)
                }
            }
        }
    }
}

/// Sends DataRows of `rows` until they end (`Some(true)`), `max_rows` more
/// were sent with rows left (`Some(false)`) or the session is gone (`None`).
fn send_rows(
    job: &mut Job,
    rows: &mut Rows,
    formats: &[i16],
    max_rows: u64,
    sent: &mut u64,
) -> Result<Option<bool>, PgErrorResponse> {
    let tys: Vec<_> = rows.columns.iter().map(|c| c.ty).collect();
    let binary: Vec<bool> = (0..tys.len()).map(|i| format_of(formats, i) == 1).collect();
    let mut this_call = 0u64;
    loop {
        if max_rows > 0 && this_call == max_rows {
            return Ok(Some(false));
        }
        if this_call.is_multiple_of(CHECK_EVERY) && this_call > 0 {
            if let Some(e) = job.stopped() {
                return Err(e);
            }
            if !job.maybe_flush() {
                return Ok(None);
            }
        }
        let Some(row) = rows.next() else {
            return Ok(Some(true));
        };
        let row =
            row.map_err(|e| PgErrorResponse::new(super::errors::sqlstate(&e), e.to_string()))?;
        let mut w = DataRowWriter::begin(&mut job.buf, tys.len());
        for (c, ty) in tys.iter().enumerate() {
            match row.get(c) {
                None | Some(crate::engine::Value::Null) => w.null(),
                Some(v) if binary[c] => w.field(|b| types::binary(v, *ty, b)),
                Some(v) => match types::text(v) {
                    Some(s) => w.field(|b| b.extend_from_slice(s.as_bytes())),
                    None => w.null(),
                },
            }
        }
        w.finish();
        *sent += 1;
        this_call += 1;
    }
}
