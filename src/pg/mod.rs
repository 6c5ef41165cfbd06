//! The PostgreSQL wire protocol (frontend/backend protocol v3), so psql,
//! pgbench and PostgreSQL drivers talk to CohortDB: `cohortdb serve
//! --pg-listen ADDR`. The user's guide is docs/postgres.md.
//!
//! Parts, one job each: [`codec`] (messages as bytes), [`scram`]
//! (SCRAM-SHA-256 verifiers and exchanges), [`types`] (OIDs and value
//! formats), [`startup`] (SSL refusal, startup, authentication),
//! [`session`] (simple and extended query protocol), [`plan`] (what a
//! statement is), [`sql`] (splitting, `$n` parameters, positions),
//! [`settings`] (SET, SHOW, transactions), [`catalog`] (probe and catalog
//! queries), [`copy`] (COPY TO STDOUT / FROM STDIN), [`exec`] (running
//! statements and streaming rows), [`errors`] (SQLSTATEs).
//!
//! Invariants: statements run through the same engine entry point
//! (`Database::execute_statement_as`), principal, roles, connection cap,
//! query timeout and shutdown as the native protocol; nothing a client
//! sends panics the server or reaches another client.

pub mod catalog;
pub mod codec;
#[cfg(test)]
mod codec_tests;
pub mod copy;
pub mod errors;
pub mod exec;
pub mod plan;
pub mod scram;
pub mod session;
pub mod settings;
pub mod sql;
pub mod startup;
pub mod types;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// Everything that can go wrong speaking the protocol.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("message truncated")]
    Truncated,
    #[error("invalid message length {0}")]
    BadLength(i32),
    #[error("message of {length} bytes exceeds the maximum of {max}")]
    TooLarge { length: usize, max: usize },
    #[error("unknown message type {:?}", char::from(*.0))]
    UnknownMessage(u8),
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("parameter ${index} {message}")]
    Param { index: usize, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything the fuzz target runs on client text: splitting, parameter
/// substitution, session commands, COPY and catalog select lists must
/// return (an answer or an error) for any text, never panic.
pub fn fuzz_text(text: &str) {
    for piece in sql::split(text) {
        let _ = sql::strip_leading(piece.text);
        let _ = copy::parse(piece.text);
        let mut s = settings::Settings::new("fuzz", true, None);
        let _ = s.handle(piece.text);
    }
    let n = sql::param_count(text).min(4);
    let params: Vec<(u32, i16, Option<Vec<u8>>)> = (0..n)
        .map(|i| {
            (
                types::TEXT,
                0,
                Some(text.as_bytes()[..text.len().min(i * 3)].to_vec()),
            )
        })
        .collect();
    if let Ok(s) = sql::substitute(text, &params) {
        let _ = s.original_offset(s.text.len() / 2);
    }
    let _ = catalog::select_items(text);
    let _ = catalog::is_catalog_query(&text.to_ascii_lowercase());
    let _ = types::parse_array(text);
}

/// Backend keys of live sessions, for CancelRequest.
#[derive(Default)]
pub struct Cancels {
    sessions: parking_lot::Mutex<HashMap<i32, (i32, session::CancelSlot)>>,
}

impl Cancels {
    pub fn register(&self, process_id: i32, secret_key: i32, slot: session::CancelSlot) {
        self.sessions.lock().insert(process_id, (secret_key, slot));
    }

    pub fn unregister(&self, process_id: i32) {
        self.sessions.lock().remove(&process_id);
    }

    /// Cancels the running statement of `process_id` if `secret_key` is its key.
    pub fn cancel(&self, process_id: i32, secret_key: i32) {
        let slot = match self.sessions.lock().get(&process_id) {
            Some((key, slot)) if *key == secret_key => slot.clone(),
            _ => return,
        };
        let running = slot.lock().clone();
        if let Some(flag) = running {
            let _ = flag.compare_exchange(
                exec::RUNNING,
                exec::CANCELLED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }
}

/// Serves one PostgreSQL connection: start, then the session.
pub(crate) async fn connection(
    shared: std::sync::Arc<crate::server::Shared>,
    mut socket: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    id: u64,
    stop: tokio::sync::broadcast::Receiver<()>,
) {
    match startup::start(&shared, &mut socket, peer).await {
        startup::Start::Ready(started) => {
            // Backend process ids are positive i32s.
            let process_id = (id % i32::MAX as u64) as i32;
            session::run(shared, socket, started, process_id, stop).await;
        }
        startup::Start::Close => {}
    }
}

/// Answers a connection over the cap: SSL refused, then FATAL 53300.
pub(crate) async fn too_many(mut socket: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..2 {
            let Ok(length) = socket.read_i32().await else {
                return;
            };
            let Ok(n) = codec::body_len(length, codec::MAX_STARTUP_BYTES) else {
                return;
            };
            let mut body = vec![0u8; n];
            if socket.read_exact(&mut body).await.is_err() {
                return;
            }
            match codec::decode_startup(&body) {
                Ok(codec::Startup::SslRequest | codec::Startup::GssEncRequest) => {
                    if socket.write_all(b"N").await.is_err() {
                        return;
                    }
                }
                _ => break,
            }
        }
        startup::refuse(
            &mut socket,
            errors::PgErrorResponse::fatal(
                errors::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            ),
        )
        .await;
    })
    .await;
}
