//! Activation: `EXPORT` streams the ids (and chosen non-PII columns) of an
//! audience, restricted to the profiles that consented to the purpose when
//! the table has a `consent_column`, and writes every export to the
//! `_exports` audit table first; `SHOW EXPORTS` reads that log.
//!
//! Invariants: an export is logged (who, when, table, definition, purpose,
//! profiles) before its first row is sent, so every export that sent
//! anything is in the log; a PII column is never exported, not even by an
//! admin; with a consent column no profile outside the purpose's consent is
//! exported.

use super::access::Principal;
use super::ast::{Audience, Export, OverlapTarget};
use super::bind::{bind_expr, resolve, Binder, ColumnRef, Field, OutColumn, Pred, Query, Shape};
use super::error::{QueryError, QueryResult};
use super::output::{Output, Rows};
use crate::engine::{Batch, Database, Error as EngineError, Snapshot, Value};
use crate::storage::schema::{ColumnType, TableSchema};
use std::sync::atomic::{AtomicU64, Ordering};

/// The audit log of exports.
pub const EXPORTS_TABLE: &str = "_exports";
/// The table option naming the consent column.
pub const CONSENT_OPTION: &str = "consent_column";

/// A bound EXPORT.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportQuery {
    pub query: Query,
    pub definition: String,
    pub purpose: Option<String>,
}

/// The table and condition of an audience: a segment (on its table) or a
/// parenthesised predicate (on `ON t`).
pub(super) fn bind_audience(
    b: &Binder<'_>,
    audience: &Audience,
    what: &str,
) -> QueryResult<(TableSchema, Pred)> {
    let table = match (&audience.table, &audience.target) {
        (Some(t), _) => t.clone(),
        (None, OverlapTarget::Segment(s)) => match super::segments::load(b.snapshot, &s.name)? {
            Some(def) => super::ast::Ident {
                name: def.table,
                span: s.span,
            },
            None => return Err(b.err(s.span, format!("segment {} does not exist", s.name))),
        },
        (None, OverlapTarget::Predicate(_)) => {
            return Err(b.err(
                audience.span,
                format!("{what} of a predicate needs ON table to say which table it is on"),
            ))
        }
    };
    let schema = b.table(b.snapshot, &table)?;
    let pred = match &audience.target {
        OverlapTarget::Segment(s) => super::segments::bind_in_segment(b, &schema, s)?,
        OverlapTarget::Predicate(e) => bind_expr(b, &schema, e)?,
    };
    Ok((schema, pred))
}

/// The consent condition for `purpose` on `schema`: `None` when the table
/// has no consent column; an error when it has one and no purpose is given.
pub(super) fn consent(
    b: &Binder<'_>,
    schema: &TableSchema,
    purpose: Option<&str>,
    span: super::ast::Span,
    what: &str,
) -> QueryResult<Option<Pred>> {
    let Some(column) = schema.options.get(CONSENT_OPTION) else {
        return Ok(None);
    };
    let Some(purpose) = purpose else {
        return Err(b.err(
            span,
            format!(
                "table {} keeps consent in column {column}: say what the {what} is for with FOR PURPOSE 'purpose'",
                schema.name
            ),
        ));
    };
    let col = schema.column_index(column).ok_or_else(|| {
        b.err(
            span,
            format!("the consent column {column} of {} is gone", schema.name),
        )
    })?;
    Ok(Some(Pred::Text {
        col,
        values: vec![purpose.to_string()],
    }))
}

pub(super) fn bind_export(b: &Binder<'_>, e: &Export) -> QueryResult<ExportQuery> {
    let (schema, pred) = bind_audience(b, &e.audience, "EXPORT")?;
    let filter = match consent(b, &schema, e.purpose.as_deref(), e.span, "export")? {
        Some(c) => Pred::And(vec![pred, c]),
        None => pred,
    };
    let mut fields = vec![Field::Id];
    let mut columns = vec![OutColumn {
        name: schema.key_column.clone(),
        ty: ColumnType::Text,
    }];
    for c in &e.columns {
        match resolve(b, &schema, c)? {
            ColumnRef::Key => {}
            ColumnRef::Column(_, def) if def.pii => {
                return Err(b.err(
                    c.span,
                    format!("{} is PII: EXPORT never sends PII columns", def.name),
                ))
            }
            ColumnRef::Column(i, def) => {
                fields.push(Field::Column(i));
                columns.push(OutColumn {
                    name: def.name.clone(),
                    ty: def.ty,
                });
            }
        }
    }
    Ok(ExportQuery {
        query: Query {
            table: schema.name.clone(),
            schema,
            filter: Some(filter),
            shape: Shape::Rows {
                fields,
                limit: e.limit,
            },
            columns,
        },
        definition: b.source[e.span.start..e.span.end].to_string(),
        purpose: e.purpose.clone(),
    })
}

/// Runs an EXPORT: counts it, logs it, then streams its rows.
pub fn run_export(
    db: &Database,
    snapshot: &Snapshot,
    principal: &Principal,
    export: ExportQuery,
) -> QueryResult<Output> {
    let table = snapshot.table(&export.query.table)?;
    let matching = match &export.query.filter {
        Some(f) => super::run::count_rows(&table, f)?,
        None => table.row_count(),
    };
    let limit = match &export.query.shape {
        Shape::Rows { limit, .. } => *limit,
        _ => None,
    };
    let profiles = limit.map_or(matching, |l| l.min(matching));
    log_export(db, principal, &export, profiles)?;
    super::run::run_query(snapshot, export.query)
}

fn exports_schema() -> TableSchema {
    TableSchema::new(EXPORTS_TABLE, "export")
        .column("at", ColumnType::Timestamp)
        .column("user", ColumnType::Text)
        .column("table_name", ColumnType::Text)
        .column("definition", ColumnType::Text)
        .column("purpose", ColumnType::Text)
        .column("profiles", ColumnType::Int)
}

/// A process-wide sequence, so two exports in the same microsecond get
/// different keys.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn log_export(
    db: &Database,
    principal: &Principal,
    export: &ExportQuery,
    profiles: u64,
) -> QueryResult<()> {
    match db.create_table(exports_schema()) {
        Ok(()) | Err(EngineError::TableExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let key = format!(
        "{:020}-{:06}",
        now.as_micros(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000
    );
    let mut batch = Batch::new();
    batch
        .upsert(key)
        .set("at", Value::Timestamp(now.as_secs() as i64))
        .set("user", principal.user.as_str())
        .set("table_name", export.query.table.as_str())
        .set("definition", export.definition.as_str())
        .set(
            "purpose",
            export
                .purpose
                .as_deref()
                .map_or(Value::Null, |p| Value::Text(p.into())),
        )
        .set("profiles", profiles as i64);
    db.write(EXPORTS_TABLE, batch)?;
    Ok(())
}

/// `SHOW EXPORTS`: every logged export, oldest first.
pub fn show_exports(snapshot: &Snapshot) -> QueryResult<Output> {
    let columns: Vec<OutColumn> = [
        ("at", ColumnType::Timestamp),
        ("user", ColumnType::Text),
        ("table", ColumnType::Text),
        ("definition", ColumnType::Text),
        ("purpose", ColumnType::Text),
        ("profiles", ColumnType::Int),
    ]
    .into_iter()
    .map(|(n, ty)| OutColumn { name: n.into(), ty })
    .collect();
    let Ok(table) = snapshot.table(EXPORTS_TABLE) else {
        return Ok(Output::Rows(Rows::from_vec(columns, Vec::new())));
    };
    let mut rows: Vec<(String, Vec<Value>)> = Vec::new();
    for shard in table.shards() {
        for row in shard.live() {
            if let Some(r) = shard.row(row).map_err(QueryError::from)? {
                rows.push((r.id.clone(), r.values.clone()));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Output::Rows(Rows::from_vec(
        columns,
        rows.into_iter().map(|(_, v)| v).collect(),
    )))
}
