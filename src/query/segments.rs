//! Named segments: `CREATE [OR REPLACE] SEGMENT name ON table AS <predicate>
//! [MATERIALIZED]`, `DROP SEGMENT`, `SHOW SEGMENTS`, `DESCRIBE SEGMENT` and
//! the `IN name` predicate.
//!
//! A segment is a saved definition: a row of the `_segments` system table
//! (name as the key, the table it is on, the predicate's text, whether it is
//! materialized), so it is durable like any data (WAL and checkpoints).
//! `IN name` parses and binds the stored text in place, against the table
//! of the query; a materialized segment's per-shard bitmaps are kept in the
//! database's derived-bitmap cache (crate::engine::derived), keyed by the
//! bound definition and valid while the shard's content version is
//! unchanged, so `IN name` costs a lookup until rows of that shard change.
//!
//! Invariants: the segment graph has no cycle (checked when a segment is
//! created or replaced, and again when one is bound); a segment other
//! segments use cannot be dropped; a segment is used only on its own table;
//! names are case-sensitive, like table names.

use super::access::Role;
use super::ast::{Expr, Ident, Span};
use super::bind::{bind_expr, Binder, OutColumn, Pred};
use super::error::{QueryError, QueryResult};
use super::output::{Output, Rows};
use crate::engine::{Batch, Database, Error as EngineError, Snapshot, Value};
use crate::storage::schema::{ColumnType, TableSchema};
use std::sync::Arc;

/// The system table holding segment definitions.
pub const SEGMENTS_TABLE: &str = "_segments";
/// How deep segments may nest inside each other.
pub const MAX_SEGMENT_DEPTH: usize = 32;

/// A stored segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDef {
    pub name: String,
    pub table: String,
    /// The predicate as written.
    pub definition: String,
    pub materialized: bool,
}

fn segments_schema() -> TableSchema {
    TableSchema::new(SEGMENTS_TABLE, "name")
        .column("table_name", ColumnType::Text)
        .column("definition", ColumnType::Text)
        .column("materialized", ColumnType::Bool)
}

fn from_row(id: String, values: &[Value]) -> SegmentDef {
    let text = |i: usize| match values.get(i) {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    };
    SegmentDef {
        name: id,
        table: text(0),
        definition: text(1),
        materialized: matches!(values.get(2), Some(Value::Bool(true))),
    }
}

/// The stored segment `name`, if there is one.
pub fn load(snapshot: &Snapshot, name: &str) -> QueryResult<Option<SegmentDef>> {
    let Ok(table) = snapshot.table(SEGMENTS_TABLE) else {
        return Ok(None);
    };
    Ok(table.get(name)?.map(|row| from_row(row.id, &row.values)))
}

/// Every stored segment, ordered by name.
pub fn all(snapshot: &Snapshot) -> QueryResult<Vec<SegmentDef>> {
    let Ok(table) = snapshot.table(SEGMENTS_TABLE) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for shard in table.shards() {
        for row in shard.live().iter() {
            if let Some(r) = shard.row(row)? {
                out.push(from_row(r.id, &r.values));
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The segments a predicate names with `IN`, in order of first mention.
pub fn references(expr: &Expr) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::And(ps) | Expr::Or(ps) => ps.iter().for_each(|p| walk(p, out)),
            Expr::Not(p) => walk(p, out),
            Expr::Pred(_) => {}
            Expr::InSegment(name) => {
                if !out.contains(&name.name) {
                    out.push(name.name.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

/// The segments a stored definition names (none if it does not parse).
fn uses(def: &SegmentDef) -> Vec<String> {
    super::parse::parse_predicate(&def.definition)
        .map(|e| references(&e))
        .unwrap_or_default()
}

/// The names of the stored segments whose definitions use `name`.
pub fn used_by(snapshot: &Snapshot, name: &str) -> QueryResult<Vec<String>> {
    Ok(all(snapshot)?
        .into_iter()
        .filter(|d| d.name != name && uses(d).iter().any(|u| u == name))
        .map(|d| d.name)
        .collect())
}

/// Binds `IN name` against `schema`: the stored definition, parsed and
/// bound in place (segments inside it too).
pub(super) fn bind_in_segment(
    b: &Binder<'_>,
    schema: &TableSchema,
    name: &Ident,
) -> QueryResult<Pred> {
    let path = b.segments.borrow().clone();
    if let Some(at) = path.iter().position(|s| *s == name.name) {
        let mut cycle = path[at..].to_vec();
        cycle.push(name.name.clone());
        return Err(b.err(
            name.span,
            format!(
                "segments may not use themselves: {} is a cycle",
                cycle.join(" -> ")
            ),
        ));
    }
    if path.len() >= MAX_SEGMENT_DEPTH {
        return Err(b.err(
            name.span,
            format!("segments nest more than {MAX_SEGMENT_DEPTH} deep"),
        ));
    }
    let Some(def) = load(b.snapshot, &name.name)? else {
        return Err(b.err(name.span, format!("segment {} does not exist", name.name)));
    };
    if def.table != schema.name {
        return Err(b.err(
            name.span,
            format!(
                "segment {} is on table {}, not {}",
                def.name, def.table, schema.name
            ),
        ));
    }
    let pred = bind_definition(b, schema, &def.name, &def.definition).map_err(|e| {
        // The definition may name PII a role cannot see: say nothing of it.
        if !b.role.sees_pii() {
            return QueryError::Denied(format!(
                "permission denied: segment {} cannot be used by role {} (its definition does not bind for this role)",
                def.name,
                b.role.name()
            ));
        }
        let why = match e {
            QueryError::Syntax { position, message } | QueryError::Bind { position, message } => {
                format!("{message} (at {position} of its definition)")
            }
            other => other.to_string(),
        };
        b.err(name.span, format!("in segment {}: {why}", def.name))
    })?;
    Ok(Pred::Segment {
        key: Arc::from(format!("{}\u{0}{:?}", schema.name, pred)),
        name: def.name,
        materialized: def.materialized,
        pred: Box::new(pred),
    })
}

/// Parses and binds the definition of segment `name` (on the segment stack).
fn bind_definition(
    b: &Binder<'_>,
    schema: &TableSchema,
    name: &str,
    text: &str,
) -> QueryResult<Pred> {
    let expr = super::parse::parse_predicate(text)?;
    b.segments.borrow_mut().push(name.to_string());
    let inner = Binder {
        source: text,
        snapshot: b.snapshot,
        segments: b.segments,
        now: b.now,
        role: b.role,
    };
    let bound = bind_expr(&inner, schema, &expr);
    b.segments.borrow_mut().pop();
    bound
}

/// Checks a new definition: its table exists, it binds, it makes no cycle,
/// and (when it replaces a segment others use) it stays on the same table.
pub(super) fn bind_create(
    b: &Binder<'_>,
    name: &Ident,
    table: &Ident,
    definition: &Expr,
    text: &str,
    replace: bool,
) -> QueryResult<SegmentDef> {
    if name.name.is_empty() {
        return Err(b.err(name.span, "a segment needs a name"));
    }
    let schema = b.table(b.snapshot, table)?;
    if let Some(old) = load(b.snapshot, &name.name)? {
        if !replace {
            return Err(b.err(
                name.span,
                format!(
                    "segment {} already exists (CREATE OR REPLACE SEGMENT changes it)",
                    name.name
                ),
            ));
        }
        let users = used_by(b.snapshot, &name.name)?;
        if old.table != schema.name && !users.is_empty() {
            return Err(b.err(
                table.span,
                format!(
                    "segment {} is on table {} and used by {}; it cannot move to {}",
                    name.name,
                    old.table,
                    users.join(", "),
                    schema.name
                ),
            ));
        }
    }
    b.segments.borrow_mut().push(name.name.clone());
    let bound = bind_expr(b, &schema, definition);
    b.segments.borrow_mut().pop();
    bound?;
    Ok(SegmentDef {
        name: name.name.clone(),
        table: schema.name.clone(),
        definition: text.trim().to_string(),
        materialized: false,
    })
}

/// Stores (or replaces) a segment.
pub fn store(db: &Database, def: &SegmentDef) -> QueryResult<()> {
    match db.create_table(segments_schema()) {
        Ok(()) | Err(EngineError::TableExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut batch = Batch::new();
    batch
        .upsert(def.name.clone())
        .set("table_name", def.table.clone())
        .set("definition", def.definition.clone())
        .set("materialized", def.materialized);
    db.write(SEGMENTS_TABLE, batch)?;
    Ok(())
}

/// `DROP SEGMENT`: refused while other segments use it; false if there was none.
pub fn drop_segment(db: &Database, name: &str, span: Span, source: &str) -> QueryResult<bool> {
    let snapshot = db.snapshot();
    if load(&snapshot, name)?.is_none() {
        return Ok(false);
    }
    let users = used_by(&snapshot, name)?;
    if !users.is_empty() {
        return Err(QueryError::Bind {
            position: super::error::Position::of(source, span.start),
            message: format!(
                "segment {name} is used by {}; drop or replace {} first",
                users.join(", "),
                if users.len() == 1 { "it" } else { "them" }
            ),
        });
    }
    let mut batch = Batch::new();
    batch.delete(name);
    Ok(db.write(SEGMENTS_TABLE, batch)?.deleted > 0)
}

/// Removes the segments on a table that was dropped.
pub fn drop_segments_of(db: &Database, table: &str) -> QueryResult<()> {
    let doomed: Vec<String> = all(&db.snapshot())?
        .into_iter()
        .filter(|d| d.table == table)
        .map(|d| d.name)
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    for name in doomed {
        batch.delete(name);
    }
    db.write(SEGMENTS_TABLE, batch)?;
    Ok(())
}

/// The current number of profiles in a stored segment, or why it cannot be
/// counted (its table was dropped, a column it uses is gone...).
fn size(snapshot: &Snapshot, def: &SegmentDef, role: Role) -> QueryResult<u64> {
    let table = snapshot.table(&def.table)?;
    let stack = std::cell::RefCell::new(Vec::new());
    let b = Binder {
        source: "",
        snapshot,
        segments: &stack,
        now: crate::engine::events::clock_now(),
        role,
    };
    let ident = Ident {
        name: def.name.clone(),
        span: Span::default(),
    };
    let pred = bind_in_segment(&b, table.schema(), &ident)?;
    super::run::count_rows(&table, &pred)
}

fn text_column(name: &str) -> OutColumn {
    OutColumn {
        name: name.into(),
        ty: ColumnType::Text,
    }
}

fn segment_columns() -> Vec<OutColumn> {
    vec![
        text_column("segment"),
        text_column("table"),
        text_column("definition"),
        OutColumn {
            name: "materialized".into(),
            ty: ColumnType::Bool,
        },
        OutColumn {
            name: "profiles".into(),
            ty: ColumnType::Int,
        },
    ]
}

fn segment_row(snapshot: &Snapshot, def: &SegmentDef, role: Role) -> Vec<Value> {
    let size = size(snapshot, def, role);
    // A definition that does not bind for a role that cannot see PII may
    // name a PII column or value: it is not shown.
    let definition = match &size {
        Err(_) if !role.sees_pii() => format!("(not visible to role {})", role.name()),
        _ => def.definition.clone(),
    };
    vec![
        Value::Text(def.name.clone()),
        Value::Text(def.table.clone()),
        Value::Text(definition),
        Value::Bool(def.materialized),
        size.map_or(Value::Null, |n| Value::Int(n as i64)),
    ]
}

/// `SHOW SEGMENTS`: name, table, definition, materialized, current size
/// (NULL when the segment cannot be evaluated any more).
pub fn show(snapshot: &Snapshot, role: Role) -> QueryResult<Output> {
    let rows = all(snapshot)?
        .iter()
        .map(|d| segment_row(snapshot, d, role))
        .collect();
    Ok(Output::Rows(Rows::from_vec(segment_columns(), rows)))
}

/// `DESCRIBE SEGMENT name`: what SHOW SEGMENTS says of it, the segments it
/// uses and the segments that use it.
pub fn describe(
    snapshot: &Snapshot,
    name: &Ident,
    source: &str,
    role: Role,
) -> QueryResult<Output> {
    let Some(def) = load(snapshot, &name.name)? else {
        return Err(QueryError::Bind {
            position: super::error::Position::of(source, name.span.start),
            message: format!("segment {} does not exist", name.name),
        });
    };
    let mut row = segment_row(snapshot, &def, role);
    row.push(Value::Text(uses(&def).join(", ")));
    row.push(Value::Text(used_by(snapshot, &def.name)?.join(", ")));
    let mut columns = segment_columns();
    columns.push(text_column("uses"));
    columns.push(text_column("used_by"));
    Ok(Output::Rows(Rows::from_vec(columns, vec![row])))
}
