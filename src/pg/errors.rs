//! Errors as PostgreSQL clients see them: an ErrorResponse with severity,
//! SQLSTATE, message and, for errors in the query text, the 1-based
//! character position PostgreSQL reports (psql draws its caret there).
//!
//! | SQLSTATE | when |
//! | --- | --- |
//! | 42601 | syntax error (with position) |
//! | 42P01 | unknown table |
//! | 42703 | unknown column |
//! | 42804 | a value of the wrong type |
//! | 42704 | unknown segment, user or setting |
//! | 42P07 / 42710 | table / user already exists |
//! | 42501 | the role may not do it |
//! | 22P02 / 22023 | a bad value (parameter, COPY field, write) |
//! | 54000 | a limit of the query layer |
//! | 57014 | cancelled or over the statement timeout |
//! | 57P01 | the server is shutting down |
//! | 25006 | the database is read-only after a failure |
//! | 28P01 / 28000 | wrong password / connection not allowed |
//! | 53300 | too many connections |
//! | 08P01 | protocol violation |
//! | 0A000 | not supported |
//! | XX001 / XX000 | damaged data / internal error |

use super::codec::Backend;
use crate::engine::Error as EngineError;
use crate::query::QueryError;

/// An error to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgErrorResponse {
    pub code: &'static str,
    pub message: String,
    /// 1-based character position in the query text.
    pub position: Option<usize>,
    pub severity: &'static str,
}

impl PgErrorResponse {
    pub fn new(code: &'static str, message: impl Into<String>) -> PgErrorResponse {
        PgErrorResponse {
            code,
            message: message.into(),
            position: None,
            severity: "ERROR",
        }
    }

    pub fn fatal(code: &'static str, message: impl Into<String>) -> PgErrorResponse {
        PgErrorResponse {
            severity: "FATAL",
            ..PgErrorResponse::new(code, message)
        }
    }

    pub fn at(mut self, position: Option<usize>) -> PgErrorResponse {
        self.position = position;
        self
    }

    pub fn to_message(&self) -> Backend {
        let mut fields = vec![
            (b'S', self.severity.to_string()),
            (b'V', self.severity.to_string()),
            (b'C', self.code.to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(p) = self.position {
            fields.push((b'P', p.to_string()));
        }
        Backend::ErrorResponse(fields)
    }
}

pub const SYNTAX: &str = "42601";
pub const PROTOCOL: &str = "08P01";
pub const NOT_SUPPORTED: &str = "0A000";
pub const BAD_VALUE: &str = "22P02";
pub const INVALID_PARAMETER: &str = "22023";
pub const CANCELED: &str = "57014";
pub const SHUTDOWN: &str = "57P01";
pub const INTERNAL: &str = "XX000";
pub const UNDEFINED_OBJECT: &str = "42704";
pub const PRIVILEGE: &str = "42501";
pub const BAD_PASSWORD: &str = "28P01";
pub const NOT_AUTHORIZED: &str = "28000";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const PREPARED_NOT_FOUND: &str = "26000";
pub const PORTAL_NOT_FOUND: &str = "34000";

/// The SQLSTATE of a query error.
pub fn sqlstate(e: &QueryError) -> &'static str {
    match e {
        QueryError::Syntax { .. } => SYNTAX,
        QueryError::Bind { message, .. } => {
            if message.starts_with("table ") && message.ends_with("does not exist") {
                "42P01"
            } else if message.contains(" has no column ") {
                "42703"
            } else if message.starts_with("column ") && message.contains(" is ") {
                "42804"
            } else if message.contains("does not exist") {
                UNDEFINED_OBJECT
            } else if message.contains("must appear in GROUP BY") {
                "42803"
            } else {
                "42000"
            }
        }
        QueryError::Denied(_) => PRIVILEGE,
        QueryError::Limit(m) => {
            if m.contains("already exists") {
                "42710"
            } else if m.contains("does not exist") {
                UNDEFINED_OBJECT
            } else {
                "54000"
            }
        }
        QueryError::Engine(engine) => match engine {
            EngineError::TableNotFound(_) => "42P01",
            EngineError::TableExists(_) => "42P07",
            EngineError::ColumnNotFound { .. } => "42703",
            EngineError::TypeMismatch { .. } => "42804",
            EngineError::InvalidSchema(_) => "42P16",
            EngineError::InvalidWrite(_) => INVALID_PARAMETER,
            EngineError::TableFull(_) => "54000",
            EngineError::ReadOnly(_) => "25006",
            EngineError::Storage(s) if s.is_corruption() => "XX001",
            _ => INTERNAL,
        },
    }
}

/// A query error of the statement `text`, which starts at byte `offset` of
/// the client's query `whole`; `map` turns a byte offset in `whole` into one
/// in the text the client sent (parameters replaced).
pub fn from_query(
    e: &QueryError,
    whole: &str,
    offset: usize,
    text: &str,
    map: impl Fn(usize) -> usize,
    original: &str,
) -> PgErrorResponse {
    debug_assert!(whole.len() >= offset);
    let position = e.position().map(|p| {
        let in_text = super::sql::offset_of(text, p.line, p.column);
        super::sql::char_position(original, map(offset + in_text))
    });
    // Our messages start with "line:column: " when they have a position;
    // PostgreSQL clients show the position themselves.
    let message = match (e, e.position()) {
        (QueryError::Syntax { message, .. } | QueryError::Bind { message, .. }, Some(_)) => {
            message.clone()
        }
        _ => e.to_string(),
    };
    PgErrorResponse::new(sqlstate(e), message).at(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Position;

    #[test]
    fn query_errors_get_sqlstates_and_positions() {
        let bind = |m: &str| QueryError::Bind {
            position: Position { line: 1, column: 1 },
            message: m.into(),
        };
        assert_eq!(sqlstate(&bind("table nope does not exist")), "42P01");
        assert_eq!(sqlstate(&bind("table p has no column shoe")), "42703");
        assert_eq!(sqlstate(&bind("column age is INT, TEXT \"x\"")), "42804");
        assert_eq!(sqlstate(&QueryError::Denied("no".into())), "42501");
        assert_eq!(
            sqlstate(&QueryError::Engine(EngineError::TableNotFound("t".into()))),
            "42P01"
        );
        let whole = "SELECT 1;\nSELECT COUNT(*) FRO x";
        let offset = whole.find("\nSELECT").unwrap();
        let text = &whole[offset..];
        let e = QueryError::Syntax {
            position: Position {
                line: 2,
                column: 17,
            },
            message: "expected FROM".into(),
        };
        let r = from_query(&e, whole, offset, text, |o| o, whole);
        assert_eq!(r.code, "42601");
        assert_eq!(r.position, Some(whole.find("FRO x").unwrap() + 1));
        assert_eq!(r.message, "expected FROM");
        match r.to_message() {
            Backend::ErrorResponse(f) => {
                assert!(f.contains(&(b'C', "42601".to_string())));
                assert!(f.contains(&(b'P', (whole.find("FRO x").unwrap() + 1).to_string())));
            }
            other => panic!("{other:?}"),
        }
    }
}
