//! The extended query protocol of a session: Parse, Bind (parameters
//! replaced by literals, src/pg/sql.rs), Describe (a read runs here so its
//! RowDescription is exact; its rows stream at Execute), Execute (with a
//! row limit a portal suspends and resumes), Close.
//!
//! Invariants: an error sets skip-until-Sync; a portal keeps what is left
//! of its outputs between Executes, never more than the engine's stream.

use super::{answer_description, Failure, Portal, Prepared, Session};
use crate::pg::codec::{Backend, Target};
use crate::pg::errors::{self, PgErrorResponse};
use crate::pg::exec::{self, Cursor, Sent};
use crate::pg::plan::{self, Plan};
use crate::pg::sql;
use crate::pg::types;

impl Session {
    pub(super) fn parse(&mut self, name: String, query: String, param_types: Vec<u32>) {
        if !name.is_empty() && self.statements.contains_key(&name) {
            self.extended_error(&PgErrorResponse::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
            return;
        }
        if sql::split(&query).len() > 1 {
            self.extended_error(&PgErrorResponse::new(
                errors::SYNTAX,
                "cannot insert multiple commands into a prepared statement",
            ));
            return;
        }
        if query.len() > self.shared.config.max_statement_bytes {
            self.extended_error(&PgErrorResponse::new(
                "54000",
                "the query text is longer than --max-statement-bytes",
            ));
            return;
        }
        self.statements.insert(
            name,
            Prepared {
                text: query,
                param_types,
            },
        );
        self.push(&Backend::ParseComplete);
    }

    pub(super) fn bind(
        &mut self,
        portal: String,
        statement: &str,
        param_formats: &[i16],
        params: Vec<Option<Vec<u8>>>,
        result_formats: Vec<i16>,
    ) {
        let Some(prepared) = self.statements.get(statement) else {
            self.extended_error(&PgErrorResponse::new(
                errors::PREPARED_NOT_FOUND,
                format!("prepared statement \"{statement}\" does not exist"),
            ));
            return;
        };
        if param_formats.len() > 1 && param_formats.len() != params.len() {
            self.extended_error(&PgErrorResponse::new(
                errors::PROTOCOL,
                "bind message has a different number of parameter formats and parameters",
            ));
            return;
        }
        let bound: Vec<(u32, i16, Option<Vec<u8>>)> = params
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let oid = prepared.param_types.get(i).copied().unwrap_or(0);
                (oid, exec::format_of(param_formats, i), p)
            })
            .collect();
        let original = prepared.text.clone();
        let mut substituted = match sql::substitute(&original, &bound) {
            Ok(s) => s,
            Err(e) => {
                self.extended_error(&PgErrorResponse::new(errors::BAD_VALUE, e.to_string()));
                return;
            }
        };
        // Untyped parameters (pgbench, node-postgres) are strings; PostgreSQL
        // would type them from context. If the statement does not bind so and
        // some look like numbers, try them as numbers.
        if !self.binds(&substituted.text) {
            let numeric = |(oid, format, value): &(u32, i16, Option<Vec<u8>>)| {
                matches!(*oid, 0 | types::UNKNOWN)
                    && *format == 0
                    && value
                        .as_deref()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .is_some_and(|t| t.trim().parse::<f64>().is_ok_and(f64::is_finite))
            };
            let candidates: Vec<usize> = (0..bound.len()).filter(|&i| numeric(&bound[i])).collect();
            // Every choice of which of them are numbers (binding is cheap; at
            // most 63 tries), all-numbers first.
            let k = candidates.len().min(6);
            let mut masks: Vec<u32> = (1..(1u32 << k)).collect();
            masks.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
            for mask in masks {
                let mut retyped = bound.clone();
                for (bit, &i) in candidates.iter().take(k).enumerate() {
                    if mask & (1 << bit) != 0 {
                        retyped[i].0 = types::NUMERIC;
                    }
                }
                if let Ok(s) = sql::substitute(&original, &retyped) {
                    if self.binds(&s.text) {
                        substituted = s;
                        break;
                    }
                }
            }
        }
        let plan = if sql::is_blank(&substituted.text) {
            Err(PgErrorResponse::new("00000", ""))
        } else {
            plan::plan(&substituted.text, &self.context()).map_err(|e| {
                self.plan_error(
                    e,
                    &substituted.text,
                    0,
                    &substituted.text,
                    Some(&substituted),
                    &original,
                )
            })
        };
        self.portals.insert(
            portal,
            Portal {
                original,
                substituted,
                plan,
                formats: result_formats,
                cursor: None,
                done: false,
            },
        );
        self.push(&Backend::BindComplete);
    }

    /// Whether `text` parses and binds as CohortQL (without running it);
    /// true for anything that is not CohortQL.
    fn binds(&self, text: &str) -> bool {
        let Ok(Plan::CohortQl { text, statements }) = plan::plan(text, &self.context()) else {
            return true;
        };
        let snapshot = self.shared.db.snapshot();
        statements.iter().all(|s| {
            crate::query::bind::bind(&text, &snapshot, &s.statement, self.principal.role).is_ok()
        })
    }

    pub(super) async fn describe(&mut self, target: Target, name: &str) {
        match target {
            Target::Statement => self.describe_statement(name).await,
            Target::Portal => self.describe_portal(name).await,
        }
    }

    async fn describe_statement(&mut self, name: &str) {
        let Some(prepared) = self.statements.get(name) else {
            self.extended_error(&PgErrorResponse::new(
                errors::PREPARED_NOT_FOUND,
                format!("prepared statement \"{name}\" does not exist"),
            ));
            return;
        };
        let count = sql::param_count(&prepared.text).max(prepared.param_types.len());
        let types: Vec<u32> = (0..count)
            .map(
                |i| match prepared.param_types.get(i).copied().unwrap_or(0) {
                    0 => types::TEXT,
                    t => t,
                },
            )
            .collect();
        // Sample values of the declared types, to learn the result's shape.
        let sample: Vec<(u32, i16, Option<Vec<u8>>)> = types
            .iter()
            .map(|&t| {
                let v: &[u8] = match t {
                    types::INT2
                    | types::INT4
                    | types::INT8
                    | types::FLOAT4
                    | types::FLOAT8
                    | types::NUMERIC => b"0",
                    types::BOOL => b"f",
                    types::TEXT_ARRAY => b"{}",
                    _ => b"",
                };
                (t, 0, Some(v.to_vec()))
            })
            .collect();
        let text = prepared.text.clone();
        self.push(&Backend::ParameterDescription(types));
        let plan = match sql::substitute(&text, &sample) {
            Ok(s) => plan::plan(&s.text, &self.context()).ok(),
            Err(_) => None,
        };
        let description = match plan {
            Some(plan) => self.description_of(plan, &[]).await.0,
            None => Backend::NoData,
        };
        self.push(&description);
    }

    /// The RowDescription (or NoData) of a plan, and the cursor if reading
    /// it meant running it.
    async fn description_of(&mut self, plan: Plan, formats: &[i16]) -> (Backend, Option<Cursor>) {
        match plan {
            Plan::Answer(a) => (answer_description(&a, formats), None),
            Plan::Settings(text) => {
                let lower = sql::strip_leading(&text).to_ascii_lowercase();
                if lower.starts_with("show") {
                    let name = text
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("setting")
                        .trim_end_matches(';')
                        .to_string();
                    (
                        Backend::RowDescription(vec![types::field(&name, types::TEXT, 0)]),
                        None,
                    )
                } else {
                    (Backend::NoData, None)
                }
            }
            Plan::CohortQl {
                text,
                mut statements,
            } if statements.len() == 1 && !plan::writes(&statements[0].statement) => {
                match self.execute_statement(&text, statements.remove(0)).await {
                    Ok(cursor) => {
                        let d = match cursor.columns() {
                            Some(cols) => exec::row_description(cols, formats),
                            None => Backend::NoData,
                        };
                        (d, Some(cursor))
                    }
                    Err(_) => (Backend::NoData, None),
                }
            }
            _ => (Backend::NoData, None),
        }
    }

    /// The plan of portal `name`; `None` when there is nothing to run, after
    /// answering: `on_empty` for an empty query, the error for a missing
    /// portal or one whose statement failed to plan.
    fn portal_plan(&mut self, name: &str, on_empty: Backend) -> Option<Plan> {
        let Some(portal) = self.portals.get(name) else {
            self.extended_error(&PgErrorResponse::new(
                errors::PORTAL_NOT_FOUND,
                format!("portal \"{name}\" does not exist"),
            ));
            return None;
        };
        match &portal.plan {
            Ok(p) => Some(p.clone()),
            Err(e) if e.code == "00000" => {
                self.push(&on_empty);
                None
            }
            Err(e) => {
                let e = e.clone();
                self.extended_error(&e);
                None
            }
        }
    }

    async fn describe_portal(&mut self, name: &str) {
        let Some(plan) = self.portal_plan(name, Backend::NoData) else {
            return;
        };
        let Some(portal) = self.portals.get_mut(name) else {
            return;
        };
        let formats = portal.formats.clone();
        // Reads run now, so the description is exact; the rows stream at Execute.
        if let Plan::CohortQl { text, statements } = &plan {
            if statements.len() == 1 && !plan::writes(&statements[0].statement) {
                let (text, statement) = (text.clone(), statements[0].clone());
                let (original, subst) = (portal.original.clone(), portal.substituted.clone());
                match self.execute_statement(&text, statement).await {
                    Ok(cursor) => {
                        let d = match cursor.columns() {
                            Some(cols) => exec::row_description(cols, &formats),
                            None => Backend::NoData,
                        };
                        if let Some(p) = self.portals.get_mut(name) {
                            p.cursor = Some(cursor);
                        }
                        self.push(&d);
                    }
                    Err(Failure::Query(q)) => {
                        let e = errors::from_query(
                            &q,
                            &subst.text,
                            0,
                            &text,
                            |o| subst.original_offset(o),
                            &original,
                        );
                        self.extended_error(&e);
                    }
                    Err(Failure::Pg(e)) => self.extended_error(&e),
                }
                return;
            }
        }
        let (d, _) = self.description_of(plan, &formats).await;
        self.push(&d);
    }

    pub(super) async fn execute(&mut self, name: &str, max_rows: i32) {
        let Some(plan) = self.portal_plan(name, Backend::EmptyQueryResponse) else {
            return;
        };
        let Some(portal) = self.portals.get_mut(name) else {
            return;
        };
        if portal.done {
            self.push(&Backend::CommandComplete("SELECT 0".into()));
            return;
        }
        let formats = portal.formats.clone();
        let max_rows = u64::try_from(max_rows).unwrap_or(0);
        let (original, subst) = (portal.original.clone(), portal.substituted.clone());
        let cursor = portal.cursor.take();
        let ok = match (plan, cursor) {
            (Plan::CohortQl { .. }, Some(mut cursor)) => {
                let result = self
                    .blocking(move |job| {
                        let r = exec::send_front(job, &mut cursor, &formats, max_rows, false);
                        (r, cursor)
                    })
                    .await;
                match result {
                    Some((Ok(Sent::Suspended), cursor)) => {
                        if let Some(p) = self.portals.get_mut(name) {
                            p.cursor = Some(cursor);
                        }
                        return;
                    }
                    Some((Ok(Sent::Complete), _)) => true,
                    Some((Ok(Sent::Gone), _)) => {
                        self.closing = true;
                        false
                    }
                    Some((Err(e), _)) => {
                        self.error(&e);
                        false
                    }
                    None => false,
                }
            }
            (plan, _) => {
                let text = subst.text.clone();
                self.run_plan(plan, &formats, false, max_rows, move |q, _s: &Self| {
                    errors::from_query(&q, &text, 0, &text, |o| subst.original_offset(o), &original)
                })
                .await
            }
        };
        if let Some(p) = self.portals.get_mut(name) {
            p.done = true;
        }
        if !ok {
            self.skip_until_sync = true;
        }
    }
}
