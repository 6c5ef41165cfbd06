//! COPY in a session: `COPY ... TO STDOUT` streams a CohortQL query's rows
//! as CopyData; `COPY ... FROM STDIN` answers CopyInResponse and feeds the
//! CopyData messages, through a bounded channel, to the loader
//! (src/pg/copy.rs) on the blocking pool.
//!
//! Invariants: after a failed COPY FROM the rest of its data is read and
//! dropped, so the connection stays usable; CopyFail loads nothing more.

use super::{Failure, Session};
use crate::pg::codec::{Backend, Frontend};
use crate::pg::copy::Copy;
use crate::pg::errors::{self, PgErrorResponse};
use crate::pg::exec::{Cursor, Job};
use crate::query::ast::Spanned;

impl Session {
    pub(super) async fn run_copy(
        &mut self,
        copy: Copy,
        query: Option<Box<(String, Spanned)>>,
        positioned: &impl Fn(crate::query::QueryError, &Self) -> PgErrorResponse,
    ) -> bool {
        match copy {
            Copy::Out { format, .. } => {
                let Some((text, statement)) = query.map(|q| *q) else {
                    return false;
                };
                let mut cursor = match self.execute_statement(&text, statement).await {
                    Ok(c) => c,
                    Err(Failure::Query(q)) => {
                        // The position is within the inner query: report it without one.
                        let e = positioned(q, self).at(None);
                        self.error(&e);
                        return false;
                    }
                    Err(Failure::Pg(e)) => {
                        self.error(&e);
                        return false;
                    }
                };
                let result = self
                    .blocking(move |job| copy_out(job, &mut cursor, &format))
                    .await;
                match result {
                    Some(Ok(n)) => {
                        self.push(&Backend::CommandComplete(format!("COPY {n}")));
                        true
                    }
                    Some(Err(e)) => {
                        self.error(&e);
                        false
                    }
                    None => false,
                }
            }
            Copy::In {
                table,
                columns,
                format,
            } => self.copy_in(table, columns, format).await,
        }
    }

    async fn copy_in(
        &mut self,
        table: String,
        columns: Option<Vec<String>>,
        format: crate::pg::copy::Format,
    ) -> bool {
        let width = match self.shared.db.schema(&table) {
            Ok(s) => columns.as_ref().map_or(s.columns.len() + 1, Vec::len),
            Err(e) => {
                let q: crate::query::QueryError = e.into();
                self.error(&PgErrorResponse::new(errors::sqlstate(&q), q.to_string()));
                return false;
            }
        };
        self.push(&Backend::CopyInResponse {
            format: 0,
            columns: vec![0; width],
        });
        if self.flush().await.is_err() {
            self.closing = true;
            return false;
        }
        let (data_tx, data_rx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(16);
        let db = self.shared.db.clone();
        let principal = self.principal.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx: data_rx,
                current: Vec::new(),
                at: 0,
                failed: false,
            };
            crate::pg::copy::copy_in(&db, &principal, &table, columns.as_deref(), &format, reader)
        });
        // Feed CopyData to the loader until CopyDone or CopyFail.
        let mut failure: Option<PgErrorResponse> = None;
        loop {
            let next = tokio::select! {
                _ = self.stop.recv() => {
                    failure = Some(PgErrorResponse::fatal(errors::SHUTDOWN, "terminating connection because the server is shutting down"));
                    break;
                }
                m = tokio::time::timeout(self.shared.config.idle_timeout, self.messages.recv()) => m,
            };
            match next {
                Ok(Some(Ok(Frontend::CopyData(bytes)))) => {
                    let tx = data_tx.clone();
                    // The loader may be slow (a batch being written): wait off the runtime.
                    let sent = tokio::task::spawn_blocking(move || tx.send(Some(bytes)).is_ok())
                        .await
                        .unwrap_or(false);
                    if !sent {
                        break; // the loader stopped on an error; it reports it
                    }
                }
                Ok(Some(Ok(Frontend::CopyDone))) => break,
                Ok(Some(Ok(Frontend::CopyFail(why)))) => {
                    failure = Some(PgErrorResponse::new(
                        "57014",
                        format!("COPY from stdin failed: {why}"),
                    ));
                    let _ = data_tx.try_send(None);
                    break;
                }
                Ok(Some(Ok(Frontend::Flush | Frontend::Sync))) => {}
                Ok(Some(Ok(other))) => {
                    failure = Some(PgErrorResponse::fatal(
                        errors::PROTOCOL,
                        format!("unexpected message during COPY: {other:?}"),
                    ));
                    let _ = data_tx.try_send(None);
                    break;
                }
                Ok(Some(Err(e))) => {
                    failure = Some(PgErrorResponse::fatal(
                        errors::PROTOCOL,
                        format!("invalid message during COPY: {e}"),
                    ));
                    let _ = data_tx.try_send(None);
                    break;
                }
                Ok(None) | Err(_) => {
                    self.closing = true;
                    let _ = data_tx.try_send(None);
                    break;
                }
            }
        }
        drop(data_tx);
        let result = worker.await;
        if let Some(e) = failure {
            self.error(&e);
            return false;
        }
        match result {
            Ok(Ok(n)) => {
                self.push(&Backend::CommandComplete(format!("COPY {n}")));
                true
            }
            Ok(Err(e)) => {
                // Read what the client still sends of this COPY, so the
                // connection is usable after the error.
                self.drain_copy().await;
                self.error(&e);
                false
            }
            Err(_) => {
                self.error(&PgErrorResponse::new(
                    errors::INTERNAL,
                    "COPY failed with an internal error",
                ));
                false
            }
        }
    }

    /// Skips the rest of a failed COPY FROM (up to CopyDone or CopyFail).
    async fn drain_copy(&mut self) {
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), self.messages.recv())
                .await
            {
                Ok(Some(Ok(Frontend::CopyData(_)))) => {}
                Ok(Some(Ok(Frontend::CopyDone | Frontend::CopyFail(_)))) => return,
                _ => {
                    self.closing = true;
                    return;
                }
            }
        }
    }
}

/// Streams a COPY TO: CopyOutResponse, a CopyData per row, CopyDone.
fn copy_out(
    job: &mut Job,
    cursor: &mut Cursor,
    format: &crate::pg::copy::Format,
) -> Result<u64, PgErrorResponse> {
    let Some(crate::query::Output::Rows(rows)) = cursor.outputs.pop_front() else {
        return Err(PgErrorResponse::new(
            errors::SYNTAX,
            "COPY (query) TO needs a query that returns rows",
        ));
    };
    let width = rows.columns.len();
    job.send(&Backend::CopyOutResponse {
        format: 0,
        columns: vec![0; width],
    });
    if format.header {
        let names: Vec<String> = rows.columns.iter().map(|c| c.name.clone()).collect();
        let mut line = Vec::new();
        crate::pg::copy::write_header(format, &names, &mut line);
        job.send(&Backend::CopyData(line));
    }
    let mut n = 0u64;
    let mut line = Vec::new();
    for row in rows {
        let row = row.map_err(|e| PgErrorResponse::new(errors::sqlstate(&e), e.to_string()))?;
        line.clear();
        crate::pg::copy::write_row(format, &row, &mut line);
        crate::pg::codec::put_message(&mut job.buf, b'd', |b| b.extend_from_slice(&line));
        n += 1;
        if n.is_multiple_of(256) {
            if let Some(e) = job.stopped() {
                return Err(e);
            }
            if !job.maybe_flush() {
                return Err(PgErrorResponse::fatal(
                    errors::PROTOCOL,
                    "the client went away",
                ));
            }
        }
    }
    job.send(&Backend::CopyDone);
    Ok(n)
}

/// The bytes of CopyData messages as a `Read` for the loader; `None` on
/// the channel means the COPY was abandoned (read fails).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Option<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    failed: bool,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.failed {
                return Err(std::io::Error::other("COPY abandoned"));
            }
            match self.rx.recv() {
                Ok(Some(bytes)) => {
                    self.current = bytes;
                    self.at = 0;
                }
                Ok(None) => {
                    self.failed = true;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
