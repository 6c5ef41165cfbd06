//! What one statement sent over the PostgreSQL protocol is: a session
//! command (`SET`, `SHOW`, `BEGIN`...), a catalog or probe query answered
//! in memory, a `COPY`, or CohortQL for the engine.
//!
//! Invariants: CohortQL is parsed here, before anything of the request
//! runs, so a syntax error anywhere in a simple query runs nothing (as in
//! the native protocol); text that is neither a known command nor CohortQL
//! gets CohortQL's syntax error, with its position.

use super::catalog::{self, Answer, Context};
use super::copy::{self, Copy};
use super::errors::PgErrorResponse;
use crate::query::ast::{Spanned, Statement};
use crate::query::{parse, QueryError};

/// A planned statement.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Handled by the session's settings (src/pg/settings.rs).
    Settings(String),
    /// Answered from memory.
    Answer(Answer),
    /// CohortQL: the text and its parsed statements.
    CohortQl {
        text: String,
        statements: Vec<Spanned>,
    },
    /// `COPY ... TO STDOUT` (with the parsed CohortQL query) or `COPY ... FROM STDIN`.
    Copy {
        copy: Copy,
        query: Option<Box<(String, Spanned)>>,
    },
    /// `DEALLOCATE name`, `DEALLOCATE ALL`, `DISCARD ALL`.
    Deallocate {
        name: Option<String>,
        tag: &'static str,
    },
}

/// Why a statement cannot run.
#[derive(Debug)]
pub enum PlanError {
    /// A CohortQL error, positioned in the statement's text.
    Query(QueryError),
    Pg(PgErrorResponse),
}

const SETTINGS_WORDS: &[&str] = &[
    "set",
    "show",
    "reset",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "unlisten",
];

/// Whether a statement writes (so Describe must not run it early).
pub fn writes(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateTable { .. }
            | Statement::DropTable { .. }
            | Statement::CreateUser { .. }
            | Statement::DropUser { .. }
            | Statement::Insert { .. }
            | Statement::Update { .. }
            | Statement::Delete { .. }
            | Statement::CreateSegment { .. }
            | Statement::DropSegment { .. }
            | Statement::Forget { .. }
    )
}

/// Plans one statement's text.
pub fn plan(text: &str, ctx: &Context) -> Result<Plan, PlanError> {
    let body = super::sql::strip_leading(text);
    let lower = body.to_ascii_lowercase();
    let first = lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    let second = lower.split_whitespace().nth(1).unwrap_or("");
    let cohort_show = first == "show"
        && matches!(
            second.trim_end_matches(';'),
            "tables" | "segments" | "exports"
        )
        && lower.split_whitespace().count() == 2;
    if SETTINGS_WORDS.contains(&first) && !cohort_show {
        return Ok(Plan::Settings(body.to_string()));
    }
    match first {
        "copy" => {
            let c = copy::parse(body).map_err(PlanError::Pg)?;
            let query = match &c {
                Copy::Out { query, .. } => {
                    let mut parsed = parse::parse(query).map_err(PlanError::Query)?;
                    if parsed.len() != 1 {
                        return Err(PlanError::Pg(PgErrorResponse::new(
                            super::errors::SYNTAX,
                            "COPY (query) takes exactly one query",
                        )));
                    }
                    Some(Box::new((query.clone(), parsed.remove(0))))
                }
                Copy::In { .. } => None,
            };
            return Ok(Plan::Copy { copy: c, query });
        }
        "deallocate" => {
            let name = body
                .split_whitespace()
                .filter(|w| !w.eq_ignore_ascii_case("prepare"))
                .nth(1)
                .map(|n| n.trim_end_matches(';').trim_matches('"').to_string());
            let all = name
                .as_deref()
                .is_none_or(|n| n.eq_ignore_ascii_case("all"));
            return Ok(Plan::Deallocate {
                name: if all { None } else { name },
                tag: if all { "DEALLOCATE ALL" } else { "DEALLOCATE" },
            });
        }
        "discard" => {
            return Ok(Plan::Deallocate {
                name: None,
                tag: "DISCARD ALL",
            })
        }
        "listen" | "notify" | "prepare" | "execute" | "fetch" | "declare" | "vacuum"
        | "analyze" | "lock" | "grant" | "revoke" | "truncate" | "alter" => {
            return Err(PlanError::Pg(PgErrorResponse::new(
                super::errors::NOT_SUPPORTED,
                format!(
                    "{} is not supported by CohortDB",
                    first.to_ascii_uppercase()
                ),
            )))
        }
        _ => {}
    }
    if (first == "select" || first == "with") && catalog::is_catalog_query(&lower) {
        if let Some(a) = catalog::answer(body, ctx) {
            return Ok(Plan::Answer(a));
        }
    }
    match parse::parse(text) {
        Ok(statements) => Ok(Plan::CohortQl {
            text: text.to_string(),
            statements,
        }),
        Err(e) => match catalog::answer(body, ctx) {
            Some(a) => Ok(Plan::Answer(a)),
            None => Err(PlanError::Query(e)),
        },
    }
}
