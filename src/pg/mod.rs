//! The PostgreSQL wire protocol (frontend/backend protocol v3), so psql,
//! pgbench and PostgreSQL drivers talk to CohortDB: `cohortdb serve
//! --pg-listen ADDR`. The user's guide is docs/postgres.md.
//!
//! Parts, one job each: [`codec`] (messages as bytes), [`scram`]
//! (SCRAM-SHA-256 verifiers and exchanges), [`types`] (OIDs and value
//! formats).
//!
//! Invariants: statements run through the same engine entry point, roles
//! and limits as the native protocol; nothing a client sends panics the
//! server or reaches another client.

pub mod codec;
#[cfg(test)]
mod codec_tests;
pub mod scram;
pub mod types;

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
