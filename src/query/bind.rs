//! Binding: a parsed statement checked against the catalog of a snapshot —
//! tables and columns resolved to positions, literals converted to the
//! column's type — into the bound form the planner and executor run.
//!
//! Predicate semantics (two-valued, documented in docs/cohortql.md): a
//! comparison is true only for rows whose value is not NULL and satisfies
//! it (so `country != 'NL'` excludes profiles without a country), and
//! `NOT p` is every profile for which `p` is false (so `NOT country = 'NL'`
//! includes them). Binding makes this explicit: a negative comparison
//! becomes `NotNull(c) AND NOT positive`.

use super::ast::*;
use super::error::{Position, QueryError, QueryResult};
use crate::engine::{Batch, Change, Snapshot, Value};
use crate::storage::bsi::Comparison;
use crate::storage::schema::{ColumnDef, ColumnType, TableSchema};

/// A bound predicate; see the module doc for its semantics.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    Const(bool),
    /// A TEXT column equal to one of `values`, or a SET<TEXT> column holding one of them.
    Text {
        col: usize,
        values: Vec<String>,
    },
    /// A SET<TEXT> column holding all of `values`.
    TextAll {
        col: usize,
        values: Vec<String>,
    },
    /// A TEXT column ordered against `value` (byte order); `op` is not Eq/Ne.
    TextRange {
        col: usize,
        op: CmpOp,
        value: String,
    },
    Bool {
        col: usize,
        value: bool,
    },
    Int {
        col: usize,
        op: Comparison,
        value: i64,
    },
    IntBetween {
        col: usize,
        low: i64,
        high: i64,
    },
    IntIn {
        col: usize,
        values: Vec<i64>,
    },
    Float {
        col: usize,
        op: CmpOp,
        value: f64,
    },
    FloatBetween {
        col: usize,
        low: f64,
        high: f64,
    },
    FloatIn {
        col: usize,
        values: Vec<f64>,
    },
    NotNull {
        col: usize,
    },
    /// The profiles with these ids.
    Keys {
        ids: Vec<String>,
    },
    /// An EVENTS<TEXT> column holding `value` on at least `min_days`
    /// distinct days within `[from_day, to_day]` (days since the epoch, UTC;
    /// open ends are `None`).
    Events {
        col: usize,
        value: String,
        from_day: Option<i64>,
        to_day: Option<i64>,
        min_days: u64,
    },
    /// `IN name`: a named segment, its definition bound in place.
    Segment {
        name: String,
        /// Names the bound definition (table and predicate): the key of a
        /// materialized segment's cached bitmaps.
        key: std::sync::Arc<str>,
        materialized: bool,
        pred: Box<Pred>,
    },
    Not(Box<Pred>),
    And(Vec<Pred>),
    Or(Vec<Pred>),
}

/// A function over a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub func: AggFn,
    /// `None` for COUNT(*).
    pub column: Option<usize>,
    pub ty: ColumnType,
}

impl Agg {
    /// The type of the result.
    pub fn result_type(&self) -> ColumnType {
        match self.func {
            AggFn::Count => ColumnType::Int,
            AggFn::Avg => ColumnType::Float,
            AggFn::Sum if self.ty == ColumnType::Timestamp => ColumnType::Int,
            _ => self.ty,
        }
    }
}

/// An output column of a grouped query.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupOut {
    /// The value of group key number `n`.
    Key(usize),
    Agg(Agg),
}

/// A field of a row query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Column(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Aggregates(Vec<Agg>),
    Groups {
        keys: Vec<usize>,
        outputs: Vec<GroupOut>,
        /// (output position, descending)
        order: Vec<(usize, bool)>,
        limit: Option<u64>,
    },
    Rows {
        fields: Vec<Field>,
        limit: Option<u64>,
    },
}

/// A result column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutColumn {
    pub name: String,
    pub ty: ColumnType,
}

/// A bound SELECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub table: String,
    pub schema: TableSchema,
    pub filter: Option<Pred>,
    pub shape: Shape,
    pub columns: Vec<OutColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    CreateTable(TableSchema),
    DropTable {
        name: String,
        if_exists: bool,
    },
    CreateUser {
        name: String,
        password: String,
        role: String,
    },
    DropUser {
        name: String,
        if_exists: bool,
    },
    ShowTables,
    Describe(String),
    Insert {
        table: String,
        batch: Batch,
    },
    Update {
        table: String,
        changes: Vec<(String, Change)>,
        filter: Option<Pred>,
    },
    Delete {
        table: String,
        filter: Option<Pred>,
    },
    Select(Query),
    Explain(Query),
    CreateSegment {
        def: super::segments::SegmentDef,
        replace: bool,
    },
    DropSegment {
        name: Ident,
        if_exists: bool,
    },
    ShowSegments,
    DescribeSegment(Ident),
    Overlap(super::overlap::OverlapQuery),
    Top(super::top::TopQuery),
    Export(super::activation::ExportQuery),
    ShowExports,
    Forget {
        id: String,
        table: Option<String>,
    },
    Lookalike(super::lookalike::LookalikeQuery),
}

/// Known table options and what they take.
pub const TABLE_OPTIONS: &[&str] = &["retention_days", "min_audience", "consent_column"];

pub(super) struct Binder<'a> {
    pub(super) source: &'a str,
    pub(super) snapshot: &'a Snapshot,
    /// Segments being bound, outermost first (a repeat is a cycle).
    pub(super) segments: &'a std::cell::RefCell<Vec<String>>,
    /// The statement's now (seconds since the epoch): `AS OF`, or the clock.
    pub(super) now: i64,
    /// Who runs it: decides whether PII columns and system tables exist.
    pub(super) role: super::access::Role,
}

impl Binder<'_> {
    pub(super) fn err(&self, span: Span, message: impl Into<String>) -> QueryError {
        QueryError::Bind {
            position: Position::of(self.source, span.start),
            message: message.into(),
        }
    }

    pub(super) fn table(&self, snapshot: &Snapshot, name: &Ident) -> QueryResult<TableSchema> {
        let missing = || self.err(name.span, format!("table {} does not exist", name.name));
        if name.name.starts_with('_') && !self.role.sees_system_tables() {
            return Err(missing());
        }
        snapshot
            .table(&name.name)
            .map(|t| t.schema().clone())
            .map_err(|_| missing())
    }
}

/// The column a name refers to.
pub(super) enum ColumnRef<'s> {
    Key,
    Column(usize, &'s ColumnDef),
}

/// The column `name` refers to when reading (conditions, results, GROUP
/// BY, TOP); a PII column does not exist for a role that may not see it.
pub(super) fn resolve<'s>(
    b: &Binder<'_>,
    schema: &'s TableSchema,
    name: &Ident,
) -> QueryResult<ColumnRef<'s>> {
    resolve_as(b, schema, name, b.role.sees_pii())
}

/// The column `name` refers to as the target of a write (INSERT columns,
/// UPDATE SET).
pub(super) fn resolve_target<'s>(
    b: &Binder<'_>,
    schema: &'s TableSchema,
    name: &Ident,
) -> QueryResult<ColumnRef<'s>> {
    resolve_as(b, schema, name, b.role.writes_pii())
}

fn resolve_as<'s>(
    b: &Binder<'_>,
    schema: &'s TableSchema,
    name: &Ident,
    pii: bool,
) -> QueryResult<ColumnRef<'s>> {
    if name.name.eq_ignore_ascii_case(&schema.key_column) {
        return Ok(ColumnRef::Key);
    }
    match schema.column_index(&name.name) {
        Some(i) if pii || !schema.columns[i].pii => Ok(ColumnRef::Column(i, &schema.columns[i])),
        _ => Err(b.err(
            name.span,
            format!("table {} has no column {}", schema.name, name.name),
        )),
    }
}

/// Parses an ISO-8601 timestamp (or date) to seconds since the epoch, UTC.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, format) {
            return Some(dt.and_utc().timestamp());
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
}

/// Converts a literal to a value of column type `ty`, or says why it does not fit.
fn coerce(b: &Binder<'_>, column: &str, ty: ColumnType, lit: &Lit) -> QueryResult<Value> {
    let mismatch = || {
        b.err(
            lit.span,
            format!("column {column} is {ty}, {}", lit.value.describe()),
        )
    };
    Ok(match (ty, &lit.value) {
        (_, Literal::Null) => Value::Null,
        (ColumnType::Text, Literal::Str(s)) => Value::Text(s.clone()),
        (ColumnType::TextSet, Literal::Set(tags)) => Value::Set(tags.clone()),
        (ColumnType::Int, Literal::Int(v)) => Value::Int(*v),
        (ColumnType::Timestamp, Literal::Int(v)) => Value::Timestamp(*v),
        (ColumnType::Timestamp, Literal::Str(s) | Literal::Timestamp(s)) => {
            Value::Timestamp(parse_timestamp(s).ok_or_else(|| {
                b.err(
                    lit.span,
                    format!("'{s}' is not an ISO-8601 timestamp (e.g. '2026-11-01T10:00:00Z' or '2026-11-01')"),
                )
            })?)
        }
        (ColumnType::Float, Literal::Float(v)) => Value::Float(*v),
        (ColumnType::Float, Literal::Int(v)) => Value::Float(*v as f64),
        (ColumnType::Bool, Literal::Bool(v)) => Value::Bool(*v),
        _ => return Err(mismatch()),
    })
}

/// Binds one statement against `snapshot`'s catalog.
pub fn bind(
    source: &str,
    snapshot: &Snapshot,
    statement: &Statement,
    role: super::access::Role,
) -> QueryResult<Bound> {
    let stack = std::cell::RefCell::new(Vec::new());
    let as_of = match statement {
        Statement::Select(s) | Statement::Explain(s) => s.as_of.as_ref(),
        Statement::Overlap(o) => o.as_of.as_ref(),
        Statement::Top(t) => t.as_of.as_ref(),
        Statement::Export(e) => e.as_of.as_ref(),
        Statement::Lookalike(l) => l.as_of.as_ref(),
        _ => None,
    };
    let unbound = Binder {
        source,
        snapshot,
        segments: &stack,
        now: 0,
        role,
    };
    let now = match as_of {
        Some(lit) => super::events::instant(&unbound, lit)?,
        None => crate::engine::events::clock_now(),
    };
    let b = Binder { now, ..unbound };
    Ok(match statement {
        Statement::CreateTable {
            name,
            columns,
            options,
        } => Bound::CreateTable(bind_create(&b, name, columns, options)?),
        Statement::DropTable { name, if_exists } => Bound::DropTable {
            name: name.name.clone(),
            if_exists: *if_exists,
        },
        Statement::CreateUser {
            name,
            password,
            role,
        } => {
            let r = role.name.to_ascii_lowercase();
            if !super::users::ROLES.contains(&r.as_str()) {
                return Err(b.err(
                    role.span,
                    format!(
                        "unknown role {}; roles are {}",
                        role.name,
                        super::users::ROLES.join(", ")
                    ),
                ));
            }
            if password.is_empty() {
                return Err(b.err(name.span, "a user needs a non-empty password"));
            }
            Bound::CreateUser {
                name: name.name.clone(),
                password: password.clone(),
                role: r,
            }
        }
        Statement::DropUser { name, if_exists } => Bound::DropUser {
            name: name.name.clone(),
            if_exists: *if_exists,
        },
        Statement::ShowTables => Bound::ShowTables,
        Statement::Describe { table } => Bound::Describe(b.table(snapshot, table)?.name),
        Statement::Insert {
            table,
            columns,
            rows,
        } => {
            let schema = b.table(snapshot, table)?;
            Bound::Insert {
                table: schema.name.clone(),
                batch: bind_insert(&b, &schema, columns, rows)?,
            }
        }
        Statement::Update {
            table,
            assignments,
            filter,
        } => {
            let schema = b.table(snapshot, table)?;
            let mut changes = Vec::new();
            for a in assignments {
                let ColumnRef::Column(_, def) = resolve_target(&b, &schema, &a.column)? else {
                    return Err(b.err(
                        a.column.span,
                        format!(
                            "the primary key {} cannot be changed; insert a new profile instead",
                            a.column.name
                        ),
                    ));
                };
                let change = match &a.value {
                    AssignValue::Literal(lit) if def.events => {
                        Change::Set(super::events::cell(&b, def, lit)?)
                    }
                    AssignValue::Literal(lit) => Change::Set(coerce(&b, &def.name, def.ty, lit)?),
                    AssignValue::Add(target, tags) | AssignValue::Remove(target, tags) => {
                        if !target.name.eq_ignore_ascii_case(&def.name) {
                            return Err(b.err(
                                target.span,
                                format!("write {0} = {0} + [...] to add tags to {0}", def.name),
                            ));
                        }
                        if def.events {
                            return Err(b.err(
                                a.column.span,
                                format!(
                                    "column {0} is EVENTS<TEXT>; INSERT adds events, SET {0} = [EVENT(...), ...] replaces them",
                                    def.name
                                ),
                            ));
                        }
                        if def.ty != ColumnType::TextSet {
                            return Err(b.err(
                                a.column.span,
                                format!(
                                    "column {} is {}; only SET<TEXT> columns take + and -",
                                    def.name, def.ty
                                ),
                            ));
                        }
                        if matches!(a.value, AssignValue::Add(..)) {
                            Change::Add(tags.clone())
                        } else {
                            Change::Remove(tags.clone())
                        }
                    }
                };
                changes.push((def.name.clone(), change));
            }
            Bound::Update {
                table: schema.name.clone(),
                filter: filter
                    .as_ref()
                    .map(|f| bind_expr(&b, &schema, f))
                    .transpose()?,
                changes,
            }
        }
        Statement::Delete { table, filter } => {
            let schema = b.table(snapshot, table)?;
            Bound::Delete {
                table: schema.name.clone(),
                filter: filter
                    .as_ref()
                    .map(|f| bind_expr(&b, &schema, f))
                    .transpose()?,
            }
        }
        Statement::Select(select) => Bound::Select(bind_select(&b, snapshot, select)?),
        Statement::Explain(select) => Bound::Explain(bind_select(&b, snapshot, select)?),
        Statement::CreateSegment {
            name,
            table,
            definition,
            text,
            materialized,
            replace,
        } => {
            let mut def =
                super::segments::bind_create(&b, name, table, definition, text, *replace)?;
            def.materialized = *materialized;
            Bound::CreateSegment {
                def,
                replace: *replace,
            }
        }
        Statement::DropSegment { name, if_exists } => Bound::DropSegment {
            name: name.clone(),
            if_exists: *if_exists,
        },
        Statement::ShowSegments => Bound::ShowSegments,
        Statement::DescribeSegment { name } => Bound::DescribeSegment(name.clone()),
        Statement::Overlap(o) => Bound::Overlap(super::overlap::bind(&b, o)?),
        Statement::Top(t) => Bound::Top(super::top::bind(&b, t)?),
        Statement::Export(e) => Bound::Export(super::activation::bind_export(&b, e)?),
        Statement::ShowExports => Bound::ShowExports,
        Statement::Forget { id, table } => Bound::Forget {
            id: id.clone(),
            table: table
                .as_ref()
                .map(|t| b.table(snapshot, t).map(|s| s.name))
                .transpose()?,
        },
        Statement::Lookalike(l) => Bound::Lookalike(super::lookalike::bind(&b, l)?),
    })
}

fn bind_create(
    b: &Binder<'_>,
    name: &Ident,
    columns: &[ColumnSpec],
    options: &[(Ident, Lit)],
) -> QueryResult<TableSchema> {
    let keys: Vec<&ColumnSpec> = columns.iter().filter(|c| c.primary_key).collect();
    let key = match keys.as_slice() {
        [one] => *one,
        [] => {
            return Err(b.err(
                name.span,
                format!(
                    "table {} needs a PRIMARY KEY column (the profile id, TEXT)",
                    name.name
                ),
            ))
        }
        [_, second, ..] => {
            return Err(b.err(
                second.name.span,
                "a table has exactly one PRIMARY KEY column",
            ))
        }
    };
    if key.set_of || !key.ty.name.eq_ignore_ascii_case("text") {
        return Err(b.err(key.ty.span, "the PRIMARY KEY column must be TEXT"));
    }
    if key.pii {
        return Err(b.err(
            key.name.span,
            "the PRIMARY KEY cannot be PII (it is the pseudonymous id)",
        ));
    }
    let mut schema = TableSchema::new(&name.name, &key.name.name);
    for c in columns.iter().filter(|c| !c.primary_key) {
        if c.events {
            if !c.ty.name.eq_ignore_ascii_case("text") {
                return Err(b.err(c.ty.span, "only EVENTS<TEXT> is supported"));
            }
            let mut def = ColumnDef::events(&c.name.name);
            def.pii = c.pii;
            schema.columns.push(def);
            continue;
        }
        let ty = if c.set_of {
            if !c.ty.name.eq_ignore_ascii_case("text") {
                return Err(b.err(c.ty.span, "only SET<TEXT> is supported"));
            }
            ColumnType::TextSet
        } else {
            match c.ty.name.to_ascii_lowercase().as_str() {
                "text" | "varchar" | "string" => ColumnType::Text,
                "int" | "integer" | "bigint" | "int8" => ColumnType::Int,
                "timestamp" | "timestamptz" => ColumnType::Timestamp,
                "float" | "double" | "real" | "float8" => ColumnType::Float,
                "bool" | "boolean" => ColumnType::Bool,
                other => {
                    return Err(b.err(
                        c.ty.span,
                        format!("unknown type {other}; expected TEXT, SET<TEXT>, EVENTS<TEXT>, INT, TIMESTAMP, FLOAT or BOOL"),
                    ))
                }
            }
        };
        let mut def = ColumnDef::new(&c.name.name, ty);
        def.pii = c.pii;
        schema.columns.push(def);
    }
    for (k, v) in options {
        let key = k.name.to_ascii_lowercase();
        let value = match (key.as_str(), &v.value) {
            ("retention_days" | "min_audience", Literal::Int(n)) if *n >= 1 => n.to_string(),
            ("retention_days" | "min_audience", _) => {
                return Err(b.err(v.span, format!("{key} takes a whole number of at least 1")))
            }
            ("consent_column", Literal::Str(c)) => {
                match schema.column_index(c).map(|i| &schema.columns[i]) {
                    Some(def) if def.ty == ColumnType::TextSet => def.name.clone(),
                    _ => {
                        return Err(b.err(
                            v.span,
                            format!(
                                "consent_column must name a SET<TEXT> column of {}",
                                schema.name
                            ),
                        ))
                    }
                }
            }
            ("consent_column", _) => {
                return Err(b.err(v.span, "consent_column takes a column name as a string"))
            }
            _ => {
                return Err(b.err(
                    k.span,
                    format!(
                        "unknown table option {}; known options: {}",
                        k.name,
                        TABLE_OPTIONS.join(", ")
                    ),
                ))
            }
        };
        if schema.options.insert(key.clone(), value).is_some() {
            return Err(b.err(k.span, format!("option {key} is given twice")));
        }
    }
    schema.validate().map_err(|e| b.err(name.span, e))?;
    Ok(schema)
}

fn bind_insert(
    b: &Binder<'_>,
    schema: &TableSchema,
    columns: &[Ident],
    rows: &[(Vec<Lit>, Span)],
) -> QueryResult<Batch> {
    let mut key_at = None;
    let mut targets: Vec<Option<&ColumnDef>> = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let target = match resolve_target(b, schema, c)? {
            ColumnRef::Key => {
                if key_at.replace(i).is_some() {
                    return Err(b.err(c.span, format!("column {} is listed twice", c.name)));
                }
                None
            }
            ColumnRef::Column(_, def) => {
                if targets.iter().flatten().any(|d| d.name == def.name) {
                    return Err(b.err(c.span, format!("column {} is listed twice", c.name)));
                }
                Some(def)
            }
        };
        targets.push(target);
    }
    let Some(key_at) = key_at else {
        let span = columns.first().map(|c| c.span).unwrap_or_default();
        return Err(b.err(
            span,
            format!(
                "INSERT must give the primary key {} (the profile id)",
                schema.key_column
            ),
        ));
    };
    let mut batch = Batch::new();
    for (row, span) in rows {
        if row.len() != columns.len() {
            return Err(b.err(
                *span,
                format!(
                    "this row has {} values for {} columns",
                    row.len(),
                    columns.len()
                ),
            ));
        }
        let id = match &row[key_at].value {
            Literal::Str(s) if !s.is_empty() => s.clone(),
            _ => {
                return Err(b.err(
                    row[key_at].span,
                    format!(
                        "the primary key {} must be a non-empty string",
                        schema.key_column
                    ),
                ))
            }
        };
        let mut values = Vec::with_capacity(row.len());
        for (lit, target) in row.iter().zip(&targets) {
            if let Some(def) = target {
                let value = if def.events {
                    super::events::cell(b, def, lit)?
                } else {
                    coerce(b, &def.name, def.ty, lit)?
                };
                values.push((def, value));
            }
        }
        let mut upsert = batch.upsert(id);
        for (def, value) in values {
            // Events accumulate: an INSERT adds them to the profile's events.
            upsert = match value {
                Value::Set(tags) if def.events => upsert.add(&def.name, tags),
                value => upsert.set(&def.name, value),
            };
        }
    }
    Ok(batch)
}

fn text_of(b: &Binder<'_>, column: &str, ty: ColumnType, lit: &Lit) -> QueryResult<String> {
    match &lit.value {
        Literal::Str(s) => Ok(s.clone()),
        Literal::Null => Err(b.err(
            lit.span,
            "comparisons with NULL are never true; use IS NULL or IS NOT NULL",
        )),
        other => Err(b.err(
            lit.span,
            format!("column {column} is {ty}, {}", other.describe()),
        )),
    }
}

fn value_of(b: &Binder<'_>, def: &ColumnDef, lit: &Lit) -> QueryResult<Value> {
    if matches!(lit.value, Literal::Null) {
        return Err(b.err(
            lit.span,
            "comparisons with NULL are never true; use IS NULL or IS NOT NULL",
        ));
    }
    coerce(b, &def.name, def.ty, lit)
}

/// The error for a literal that does not fit a column.
fn mismatch(b: &Binder<'_>, def: &ColumnDef, lit: &Lit) -> QueryError {
    b.err(
        lit.span,
        format!(
            "column {} is {}, {}",
            def.name,
            def.ty,
            lit.value.describe()
        ),
    )
}

fn int_of(b: &Binder<'_>, def: &ColumnDef, lit: &Lit) -> QueryResult<i64> {
    match value_of(b, def, lit)? {
        Value::Int(v) | Value::Timestamp(v) => Ok(v),
        _ => Err(mismatch(b, def, lit)),
    }
}

fn float_of(b: &Binder<'_>, def: &ColumnDef, lit: &Lit) -> QueryResult<f64> {
    match value_of(b, def, lit)? {
        Value::Float(v) => Ok(v),
        _ => Err(mismatch(b, def, lit)),
    }
}

fn bool_of(b: &Binder<'_>, def: &ColumnDef, lit: &Lit) -> QueryResult<bool> {
    match value_of(b, def, lit)? {
        Value::Bool(v) => Ok(v),
        _ => Err(mismatch(b, def, lit)),
    }
}

fn comparison(op: CmpOp) -> Comparison {
    match op {
        CmpOp::Eq => Comparison::Eq,
        CmpOp::Ne => Comparison::Ne,
        CmpOp::Lt => Comparison::Lt,
        CmpOp::Le => Comparison::Le,
        CmpOp::Gt => Comparison::Gt,
        CmpOp::Ge => Comparison::Ge,
    }
}

/// `NotNull(col) AND NOT p`: a negative comparison, false on NULL.
fn negative(col: usize, p: Pred) -> Pred {
    Pred::And(vec![Pred::NotNull { col }, Pred::Not(Box::new(p))])
}

pub(super) fn bind_expr(b: &Binder<'_>, schema: &TableSchema, e: &Expr) -> QueryResult<Pred> {
    Ok(match e {
        Expr::And(parts) => Pred::And(
            parts
                .iter()
                .map(|p| bind_expr(b, schema, p))
                .collect::<QueryResult<_>>()?,
        ),
        Expr::Or(parts) => Pred::Or(
            parts
                .iter()
                .map(|p| bind_expr(b, schema, p))
                .collect::<QueryResult<_>>()?,
        ),
        Expr::Not(inner) => Pred::Not(Box::new(bind_expr(b, schema, inner)?)),
        Expr::Pred(p) => bind_predicate(b, schema, p)?,
        Expr::InSegment(name) => super::segments::bind_in_segment(b, schema, name)?,
    })
}

fn bind_predicate(b: &Binder<'_>, schema: &TableSchema, p: &Predicate) -> QueryResult<Pred> {
    let column = resolve(b, schema, &p.column)?;
    let def = match column {
        ColumnRef::Key if b.role == super::access::Role::Analyst => {
            return Err(QueryError::Denied(format!(
                "permission denied: analysts may not select profiles by their id ({}); use segments and conditions on attributes",
                schema.key_column
            )))
        }
        ColumnRef::Key => return bind_key_predicate(b, schema, p),
        ColumnRef::Column(_, def) => def,
    };
    let col = schema.column_index(&def.name).unwrap_or(0);
    let unsupported = |what: &str| {
        b.err(
            p.span,
            format!(
                "{what} is not supported on column {} ({})",
                def.name, def.ty
            ),
        )
    };
    let texts = |lits: &[Lit]| -> QueryResult<Vec<String>> {
        lits.iter()
            .map(|l| text_of(b, &def.name, def.ty, l))
            .collect()
    };
    Ok(match (&p.condition, def.ty) {
        (Condition::IsNull, _) => Pred::Not(Box::new(Pred::NotNull { col })),
        (Condition::IsNotNull, _) => Pred::NotNull { col },
        // EVENTS<TEXT>
        (Condition::Has(l, window), ColumnType::TextSet) if def.events => {
            super::events::bind_has(b, schema, col, def, l, window.as_ref())?
        }
        (_, ColumnType::TextSet) if def.events => {
            return Err(b.err(
                p.span,
                format!(
                    "column {} is EVENTS<TEXT>; use HAS 'value' [ON AT LEAST n DAYS] [WITHIN n DAYS | SINCE t | BETWEEN t AND t]",
                    def.name
                ),
            ))
        }
        (Condition::Has(_, Some(_)), _) => {
            return Err(b.err(
                p.span,
                format!(
                    "days (WITHIN, SINCE, BETWEEN, ON AT LEAST) apply to EVENTS<TEXT> columns; {} is {}",
                    def.name, def.ty
                ),
            ))
        }
        // SET<TEXT>
        (Condition::Has(l, None), ColumnType::TextSet) => Pred::Text {
            col,
            values: texts(std::slice::from_ref(l))?,
        },
        (Condition::HasAny(ls), ColumnType::TextSet) => Pred::Text {
            col,
            values: texts(ls)?,
        },
        (Condition::HasAll(ls), ColumnType::TextSet) => Pred::TextAll {
            col,
            values: texts(ls)?,
        },
        (Condition::Has(..) | Condition::HasAny(_) | Condition::HasAll(_), _) => {
            return Err(b.err(
                p.span,
                format!(
                    "HAS works on SET<TEXT> columns; column {} is {} (use = or IN)",
                    def.name, def.ty
                ),
            ))
        }
        (_, ColumnType::TextSet) => {
            return Err(b.err(
                p.span,
                format!(
                    "column {} is SET<TEXT>; use HAS, HAS ANY (...) or HAS ALL (...)",
                    def.name
                ),
            ))
        }
        // TEXT
        (Condition::Cmp(op, l), ColumnType::Text) => {
            let value = text_of(b, &def.name, def.ty, l)?;
            match op {
                CmpOp::Eq => Pred::Text {
                    col,
                    values: vec![value],
                },
                CmpOp::Ne => negative(
                    col,
                    Pred::Text {
                        col,
                        values: vec![value],
                    },
                ),
                op => Pred::TextRange {
                    col,
                    op: *op,
                    value,
                },
            }
        }
        (Condition::In { values, negated }, ColumnType::Text) => {
            let positive = Pred::Text {
                col,
                values: texts(values)?,
            };
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
        (Condition::Between { low, high, negated }, ColumnType::Text) => {
            let positive = Pred::And(vec![
                Pred::TextRange {
                    col,
                    op: CmpOp::Ge,
                    value: text_of(b, &def.name, def.ty, low)?,
                },
                Pred::TextRange {
                    col,
                    op: CmpOp::Le,
                    value: text_of(b, &def.name, def.ty, high)?,
                },
            ]);
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
        // BOOL
        (Condition::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), l), ColumnType::Bool) => {
            let value = bool_of(b, def, l)?;
            Pred::Bool {
                col,
                value: if *op == CmpOp::Eq { value } else { !value },
            }
        }
        (Condition::In { values, negated }, ColumnType::Bool) => {
            let mut set = [false; 2];
            for l in values {
                set[usize::from(bool_of(b, def, l)?)] = true;
            }
            let positive = Pred::Or(
                [false, true]
                    .into_iter()
                    .filter(|v| set[usize::from(*v)])
                    .map(|value| Pred::Bool { col, value })
                    .collect(),
            );
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
        (_, ColumnType::Bool) => return Err(unsupported("this comparison")),
        // INT / TIMESTAMP
        (Condition::Cmp(op, l), ColumnType::Int | ColumnType::Timestamp) => Pred::Int {
            col,
            op: comparison(*op),
            value: int_of(b, def, l)?,
        },
        (Condition::Between { low, high, negated }, ColumnType::Int | ColumnType::Timestamp) => {
            let positive = Pred::IntBetween {
                col,
                low: int_of(b, def, low)?,
                high: int_of(b, def, high)?,
            };
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
        (Condition::In { values, negated }, ColumnType::Int | ColumnType::Timestamp) => {
            let positive = Pred::IntIn {
                col,
                values: values
                    .iter()
                    .map(|l| int_of(b, def, l))
                    .collect::<QueryResult<_>>()?,
            };
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
        // FLOAT
        (Condition::Cmp(op, l), ColumnType::Float) => Pred::Float {
            col,
            op: *op,
            value: float_of(b, def, l)?,
        },
        (Condition::Between { low, high, negated }, ColumnType::Float) => {
            let positive = Pred::FloatBetween {
                col,
                low: float_of(b, def, low)?,
                high: float_of(b, def, high)?,
            };
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
        (Condition::In { values, negated }, ColumnType::Float) => {
            let positive = Pred::FloatIn {
                col,
                values: values
                    .iter()
                    .map(|l| float_of(b, def, l))
                    .collect::<QueryResult<_>>()?,
            };
            if *negated {
                negative(col, positive)
            } else {
                positive
            }
        }
    })
}

fn bind_key_predicate(b: &Binder<'_>, schema: &TableSchema, p: &Predicate) -> QueryResult<Pred> {
    let key = &schema.key_column;
    let ids = |lits: &[Lit]| -> QueryResult<Vec<String>> {
        lits.iter()
            .map(|l| text_of(b, key, ColumnType::Text, l))
            .collect()
    };
    Ok(match &p.condition {
        Condition::IsNull => Pred::Const(false),
        Condition::IsNotNull => Pred::Const(true),
        Condition::Cmp(CmpOp::Eq, l) => Pred::Keys {
            ids: ids(std::slice::from_ref(l))?,
        },
        Condition::Cmp(CmpOp::Ne, l) => Pred::Not(Box::new(Pred::Keys {
            ids: ids(std::slice::from_ref(l))?,
        })),
        Condition::In { values, negated } => {
            let positive = Pred::Keys { ids: ids(values)? };
            if *negated {
                Pred::Not(Box::new(positive))
            } else {
                positive
            }
        }
        _ => {
            return Err(b.err(
                p.span,
                format!(
                    "the primary key {key} supports =, !=, IN, NOT IN, IS NULL and IS NOT NULL"
                ),
            ))
        }
    })
}

fn bind_select(b: &Binder<'_>, snapshot: &Snapshot, s: &Select) -> QueryResult<Query> {
    let schema = b.table(snapshot, &s.table)?;
    let filter = s
        .filter
        .as_ref()
        .map(|f| bind_expr(b, &schema, f))
        .transpose()?;
    let limit = s.limit.map(|(n, _)| n);
    let name_of = |item: &SelectItem, default: String| {
        item.alias
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or(default)
    };
    let bind_agg = |func: AggFn, arg: Option<&Ident>, span: Span| -> QueryResult<Agg> {
        let Some(arg) = arg else {
            return Ok(Agg {
                func,
                column: None,
                ty: ColumnType::Int,
            });
        };
        let (column, ty) = match resolve(b, &schema, arg)? {
            ColumnRef::Key if func == AggFn::Count => (None, ColumnType::Int),
            ColumnRef::Key => {
                return Err(b.err(
                    arg.span,
                    format!(
                        "{}({}) is not supported: the primary key is an id",
                        func.name(),
                        arg.name
                    ),
                ))
            }
            ColumnRef::Column(i, def) => (Some(i), def.ty),
        };
        let ok = match func {
            AggFn::Count => true,
            AggFn::Sum | AggFn::Avg => matches!(
                ty,
                ColumnType::Int | ColumnType::Timestamp | ColumnType::Float
            ),
            AggFn::Min | AggFn::Max => matches!(
                ty,
                ColumnType::Int | ColumnType::Timestamp | ColumnType::Float | ColumnType::Text
            ),
        };
        if !ok {
            return Err(b.err(
                span,
                format!(
                    "{}({}) is not supported on a {ty} column",
                    func.name(),
                    arg.name
                ),
            ));
        }
        Ok(Agg { func, column, ty })
    };
    let has_aggregate = s
        .items
        .iter()
        .any(|i| matches!(i.expr, SelectExpr::CountStar | SelectExpr::Agg(..)));
    if !s.group_by.is_empty() {
        let mut keys = Vec::new();
        let mut key_names = Vec::new();
        for g in &s.group_by {
            match resolve(b, &schema, g)? {
                ColumnRef::Column(_, def) if def.events => {
                    return Err(b.err(
                        g.span,
                        format!(
                            "GROUP BY an EVENTS<TEXT> column is not supported; count HAS 'value' per value instead ({})",
                            def.name
                        ),
                    ))
                }
                ColumnRef::Column(i, def)
                    if matches!(
                        def.ty,
                        ColumnType::Text | ColumnType::TextSet | ColumnType::Bool
                    ) =>
                {
                    if keys.contains(&i) {
                        return Err(b.err(g.span, format!("{} is grouped by twice", g.name)));
                    }
                    keys.push(i);
                    key_names.push(def.name.clone());
                }
                ColumnRef::Column(_, def) => {
                    return Err(b.err(
                        g.span,
                        format!(
                            "GROUP BY works on TEXT, SET<TEXT> and BOOL columns; {} is {}",
                            def.name, def.ty
                        ),
                    ))
                }
                ColumnRef::Key => {
                    return Err(b.err(
                        g.span,
                        "GROUP BY the primary key would give one group per profile",
                    ))
                }
            }
        }
        let mut outputs = Vec::new();
        let mut columns = Vec::new();
        for item in &s.items {
            match &item.expr {
                SelectExpr::Column(c) => {
                    let ColumnRef::Column(i, def) = resolve(b, &schema, c)? else {
                        return Err(b.err(
                            c.span,
                            format!("{} must appear in GROUP BY or in an aggregate", c.name),
                        ));
                    };
                    let Some(k) = keys.iter().position(|x| *x == i) else {
                        return Err(b.err(
                            c.span,
                            format!("{} must appear in GROUP BY or in an aggregate", c.name),
                        ));
                    };
                    let ty = if def.ty == ColumnType::TextSet {
                        ColumnType::Text
                    } else {
                        def.ty
                    };
                    outputs.push(GroupOut::Key(k));
                    columns.push(OutColumn {
                        name: name_of(item, def.name.clone()),
                        ty,
                    });
                }
                SelectExpr::CountStar => {
                    outputs.push(GroupOut::Agg(bind_agg(AggFn::Count, None, item.span)?));
                    columns.push(OutColumn {
                        name: name_of(item, "count".into()),
                        ty: ColumnType::Int,
                    });
                }
                SelectExpr::Agg(f, arg) => {
                    let agg = bind_agg(*f, Some(arg), item.span)?;
                    columns.push(OutColumn {
                        name: name_of(
                            item,
                            format!("{}({})", f.name().to_ascii_lowercase(), arg.name),
                        ),
                        ty: agg.result_type(),
                    });
                    outputs.push(GroupOut::Agg(agg));
                }
                SelectExpr::Star => return Err(b.err(item.span, "SELECT * cannot be grouped")),
            }
        }
        let mut order = Vec::new();
        for o in &s.order_by {
            let position = match &o.key {
                OrderKey::Position(n) => {
                    if *n == 0 || *n as usize > outputs.len() {
                        return Err(b.err(
                            o.span,
                            format!(
                                "ORDER BY {n} is not a column of the result (1..{})",
                                outputs.len()
                            ),
                        ));
                    }
                    *n as usize - 1
                }
                OrderKey::Expr(e) => {
                    let found = s.items.iter().zip(&columns).position(|(item, col)| match (e, &item.expr) {
                        (SelectExpr::Column(n), _) => {
                            col.name.eq_ignore_ascii_case(&n.name)
                                || matches!(&item.expr, SelectExpr::Column(c) if c.name.eq_ignore_ascii_case(&n.name))
                        }
                        (SelectExpr::CountStar, SelectExpr::CountStar) => true,
                        (SelectExpr::Agg(f, a), SelectExpr::Agg(g, c)) => f == g && a.name.eq_ignore_ascii_case(&c.name),
                        _ => false,
                    });
                    found
                        .ok_or_else(|| b.err(o.span, "ORDER BY must name a column of the result"))?
                }
            };
            order.push((position, o.descending));
        }
        return Ok(Query {
            table: schema.name.clone(),
            filter,
            shape: Shape::Groups {
                keys,
                outputs,
                order,
                limit,
            },
            columns,
            schema,
        });
    }
    if has_aggregate {
        let mut aggs = Vec::new();
        let mut columns = Vec::new();
        for item in &s.items {
            let agg = match &item.expr {
                SelectExpr::CountStar => bind_agg(AggFn::Count, None, item.span)?,
                SelectExpr::Agg(f, arg) => bind_agg(*f, Some(arg), item.span)?,
                SelectExpr::Column(c) => {
                    return Err(b.err(
                        c.span,
                        format!("{} must appear in GROUP BY or in an aggregate", c.name),
                    ))
                }
                SelectExpr::Star => {
                    return Err(b.err(item.span, "SELECT * cannot be mixed with aggregates"))
                }
            };
            let default = match &item.expr {
                SelectExpr::Agg(f, arg) => {
                    format!("{}({})", f.name().to_ascii_lowercase(), arg.name)
                }
                _ => "count".to_string(),
            };
            columns.push(OutColumn {
                name: name_of(item, default),
                ty: agg.result_type(),
            });
            aggs.push(agg);
        }
        if let Some(o) = s.order_by.first() {
            return Err(b.err(
                o.span,
                "ORDER BY needs GROUP BY (an aggregate query returns one row)",
            ));
        }
        return Ok(Query {
            table: schema.name.clone(),
            filter,
            shape: Shape::Aggregates(aggs),
            columns,
            schema,
        });
    }
    if let Some(o) = s.order_by.first() {
        return Err(b.err(
            o.span,
            "ORDER BY is supported with GROUP BY; a row query streams profiles in storage order",
        ));
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for item in &s.items {
        match &item.expr {
            SelectExpr::Star => {
                fields.push(Field::Id);
                columns.push(OutColumn {
                    name: schema.key_column.clone(),
                    ty: ColumnType::Text,
                });
                for (i, def) in schema.columns.iter().enumerate() {
                    fields.push(Field::Column(i));
                    columns.push(OutColumn {
                        name: def.name.clone(),
                        ty: def.ty,
                    });
                }
            }
            SelectExpr::Column(c) => match resolve(b, &schema, c)? {
                ColumnRef::Key => {
                    fields.push(Field::Id);
                    columns.push(OutColumn {
                        name: name_of(item, schema.key_column.clone()),
                        ty: ColumnType::Text,
                    });
                }
                ColumnRef::Column(i, def) => {
                    fields.push(Field::Column(i));
                    columns.push(OutColumn {
                        name: name_of(item, def.name.clone()),
                        ty: def.ty,
                    });
                }
            },
            SelectExpr::CountStar | SelectExpr::Agg(..) => {
                return Err(b.err(
                    item.span,
                    "internal error: an aggregate reached the row query path",
                ))
            }
        }
    }
    Ok(Query {
        table: schema.name.clone(),
        filter,
        shape: Shape::Rows { fields, limit },
        columns,
        schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_utc_seconds() {
        assert_eq!(parse_timestamp("2026-11-01T00:00:00Z"), Some(1_793_491_200));
        assert_eq!(parse_timestamp("2026-11-01"), Some(1_793_491_200));
        assert_eq!(parse_timestamp("2026-11-01 01:00:00"), Some(1_793_494_800));
        assert_eq!(
            parse_timestamp("2026-11-01T02:00:00+01:00"),
            Some(1_793_494_800)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
