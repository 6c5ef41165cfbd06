//! The naive model: a table as a `BTreeMap` from profile id to plain Rust
//! values, the CohortQL literals, predicates and writes the generator makes,
//! and their meaning evaluated row by row with the documented semantics
//! (two-valued logic: a comparison is false on NULL, `NOT p` is true exactly
//! when `p` is false).
//!
//! `EVENTS<TEXT>` cells are sets of (UTC day, value); every `HAS` on them
//! counts only the days of its window up to the statement's today (the day
//! of `AS OF`, or of the clock for writes) and, with a table's
//! `retention_days = r`, from today − r + 1 on.
//!
//! Nothing here uses the engine's code: literal conversion (including
//! ISO-8601 timestamps and UTC days) is done independently.

use cohortdb::Value;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    Set,
    Int,
    Ts,
    Float,
    Bool,
    /// `EVENTS<TEXT>`
    Events,
}

impl Ty {
    pub const ALL: [Ty; 7] = [
        Ty::Text,
        Ty::Set,
        Ty::Int,
        Ty::Ts,
        Ty::Float,
        Ty::Bool,
        Ty::Events,
    ];

    /// GROUP BY works on these.
    pub fn groupable(self) -> bool {
        matches!(self, Ty::Text | Ty::Set | Ty::Bool)
    }

    /// SUM / AVG work on these.
    pub fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Ts | Ty::Float)
    }

    /// MIN / MAX work on these.
    pub fn ordered(self) -> bool {
        matches!(self, Ty::Int | Ty::Ts | Ty::Float | Ty::Text)
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Ty,
}

/// How statements spell identifiers (they resolve case-insensitively, and
/// may be double-quoted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentStyle {
    Plain,
    Upper,
    Quoted,
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub table: String,
    pub key: String,
    pub columns: Vec<Column>,
    pub style: IdentStyle,
    /// Named segments on the table: name -> (definition, materialized).
    pub segments: BTreeMap<String, (Pred, bool)>,
    /// The table's `retention_days` option.
    pub retention: Option<i64>,
    /// The table's `consent_column` option (a SET<TEXT> column).
    pub consent: Option<usize>,
    /// The table's `min_audience` option.
    pub min_audience: Option<u64>,
}

impl Schema {
    /// The declared name of the key or a column.
    pub fn raw(&self, target: Target) -> &str {
        match target {
            Target::Key => &self.key,
            Target::Col(c) => &self.columns[c].name,
        }
    }

    /// An identifier as statements spell it.
    pub fn ident(&self, name: &str) -> String {
        match self.style {
            IdentStyle::Plain => name.to_string(),
            IdentStyle::Upper => name.to_uppercase(),
            IdentStyle::Quoted => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The key or a column as statements spell it.
    pub fn name(&self, target: Target) -> String {
        self.ident(self.raw(target))
    }

    /// Column `c` as statements spell it.
    pub fn col(&self, c: usize) -> String {
        self.name(Target::Col(c))
    }

    /// The table as statements spell it.
    pub fn table_ref(&self) -> String {
        self.ident(&self.table)
    }

    /// Whether profile row `row` consented to `purpose` (always, without a
    /// consent column; a NULL consent set holds nothing).
    pub fn consents(&self, row: &[Option<Mv>], purpose: Option<&str>) -> bool {
        let Some(c) = self.consent else {
            return true;
        };
        match (&row[c], purpose) {
            (Some(Mv::Set(tags)), Some(p)) => tags.contains(p),
            _ => false,
        }
    }

    pub fn has_events(&self) -> bool {
        self.columns.iter().any(|c| c.ty == Ty::Events)
    }

    /// Whether a checkpoint would expire events the model still holds: the
    /// engine expires by the wall clock, long after the generated days, so
    /// such tables are never checkpointed (a huge retention expires nothing).
    pub fn expiry_risk(&self) -> bool {
        self.has_events() && self.retention.is_some_and(|r| r < NO_EXPIRY_DAYS)
    }
}

/// A retention this long expires none of the generated events at the clock.
pub const NO_EXPIRY_DAYS: i64 = 100_000;

const DAY_SECONDS: i64 = 86_400;

/// The UTC day of an instant (days since 1970-01-01).
pub fn day_of(secs: i64) -> i64 {
    secs.div_euclid(DAY_SECONDS)
}

/// Today by the system clock: the statement's today for writes and for
/// queries without `AS OF`.
pub fn clock_day() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    day_of(secs as i64)
}

/// The engine's rendering of one event: `YYYY-MM-DD:value`.
pub fn event_tag(day: i64, value: &str) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}:{value}")
}

/// A stored (non-NULL) value.
#[derive(Debug, Clone, PartialEq)]
pub enum Mv {
    Text(String),
    Set(BTreeSet<String>),
    Int(i64),
    Ts(i64),
    Float(f64),
    Bool(bool),
    /// An EVENTS<TEXT> cell: (UTC day, value) pairs.
    Events(BTreeSet<(i64, String)>),
}

impl Mv {
    pub fn to_value(&self) -> Value {
        match self {
            Mv::Text(s) => Value::Text(s.clone()),
            Mv::Set(s) => Value::Set(s.iter().cloned().collect()),
            Mv::Events(e) => {
                // Read back as its tags, sorted by their bytes like a SET.
                let tags: BTreeSet<String> = e.iter().map(|(d, v)| event_tag(*d, v)).collect();
                Value::Set(tags.into_iter().collect())
            }
            Mv::Int(v) => Value::Int(*v),
            Mv::Ts(v) => Value::Timestamp(*v),
            Mv::Float(v) => Value::Float(*v),
            Mv::Bool(v) => Value::Bool(*v),
        }
    }
}

pub fn cell_value(cell: &Option<Mv>) -> Value {
    cell.as_ref().map_or(Value::Null, Mv::to_value)
}

/// Orders two values of the same scalar type (TEXT by bytes, numbers numerically).
pub fn compare(a: &Mv, b: &Mv) -> Ordering {
    match (a, b) {
        (Mv::Text(x), Mv::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Mv::Int(x), Mv::Int(y)) | (Mv::Ts(x), Mv::Ts(y)) => x.cmp(y),
        (Mv::Float(x), Mv::Float(y)) => x.partial_cmp(y).expect("no NaN is generated"),
        (Mv::Bool(x), Mv::Bool(y)) => x.cmp(y),
        _ => panic!("model: comparing {a:?} with {b:?}"),
    }
}

/// A CohortQL literal as the generator writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A string written with `''` for a quote.
    Str(String),
    /// A string written with backslash escapes (`\'`, `\\`, `\n`, `\t`).
    StrBs(String),
    Int(i64),
    /// A number with a decimal point or exponent, kept as written.
    Float(String),
    Bool(bool),
    Null,
    Set(Vec<String>),
    /// An ISO-8601 string for the instant `secs`, as `'...'` or `TIMESTAMP '...'`.
    Ts {
        text: String,
        secs: i64,
        keyword: bool,
    },
    /// `EVENT('value', time)` (one event, `list: false`) or
    /// `[EVENT(...), ...]`; each event is (value string, time literal).
    Events {
        events: Vec<(Lit, Lit)>,
        list: bool,
    },
}

/// A single-quoted CohortQL string: `'` doubled, `\` escaped.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A single-quoted CohortQL string with backslash escapes only.
pub fn quote_bs(s: &str) -> String {
    let mut out = String::from("'");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl Lit {
    pub fn sql(&self) -> String {
        match self {
            Lit::Str(s) => quote(s),
            Lit::StrBs(s) => quote_bs(s),
            Lit::Int(v) => v.to_string(),
            Lit::Float(text) => text.clone(),
            Lit::Bool(true) => "TRUE".into(),
            Lit::Bool(false) => "false".into(),
            Lit::Null => "NULL".into(),
            Lit::Set(tags) => format!(
                "[{}]",
                tags.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ")
            ),
            Lit::Ts {
                text,
                keyword: true,
                ..
            } => format!("TIMESTAMP {}", quote(text)),
            Lit::Ts { text, .. } => quote(text),
            Lit::Events { events, list } => {
                let each: Vec<String> = events
                    .iter()
                    .map(|(v, t)| format!("EVENT({}, {})", v.sql(), t.sql()))
                    .collect();
                if *list || each.len() != 1 {
                    format!("[{}]", each.join(", "))
                } else {
                    each.join("")
                }
            }
        }
    }

    /// The instant a time literal names (an ISO-8601 string or seconds).
    pub fn secs(&self) -> i64 {
        match self {
            Lit::Ts { secs, .. } | Lit::Int(secs) => *secs,
            _ => panic!("generator bug: {self:?} is not a time"),
        }
    }

    /// The value this literal means for a column of type `ty` (`None` for NULL).
    pub fn value_for(&self, ty: Ty) -> Option<Mv> {
        Some(match (ty, self) {
            (_, Lit::Null) => return None,
            (Ty::Text, Lit::Str(s) | Lit::StrBs(s)) => Mv::Text(s.clone()),
            (Ty::Set, Lit::Set(tags)) => Mv::Set(tags.iter().cloned().collect()),
            (Ty::Int, Lit::Int(v)) => Mv::Int(*v),
            (Ty::Ts, Lit::Int(v)) => Mv::Ts(*v),
            (Ty::Ts, Lit::Ts { secs, .. }) => Mv::Ts(*secs),
            (Ty::Float, Lit::Int(v)) => Mv::Float(*v as f64),
            (Ty::Float, Lit::Float(text)) => Mv::Float(text.parse().expect("float literal")),
            (Ty::Bool, Lit::Bool(v)) => Mv::Bool(*v),
            (Ty::Events, Lit::Events { events, .. }) => Mv::Events(
                events
                    .iter()
                    .map(|(v, t)| (day_of(t.secs()), v.text().to_string()))
                    .collect(),
            ),
            _ => panic!("generator bug: literal {self:?} for a {ty:?} column"),
        })
    }

    pub fn text(&self) -> &str {
        match self {
            Lit::Str(s) | Lit::StrBs(s) => s,
            _ => panic!("generator bug: {self:?} is not a string"),
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// ISO-8601 renderings of `secs` (seconds since the epoch, UTC); `style`
/// picks one: 0 `...T..:..:..Z`, 1 `... ..:..:..` (no zone, read as UTC),
/// 2 with a `+01:00` offset, 3 a date alone (midnight only), 4 without
/// seconds (whole minutes only). Styles that cannot express `secs` fall back to 0.
pub fn iso8601(secs: i64, style: u32) -> String {
    let (local, zone) = match style {
        2 => (secs + 3600, "+01:00"),
        1 | 3 | 4 => (secs, ""),
        _ => (secs, "Z"),
    };
    let days = local.div_euclid(86_400);
    let rest = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rest / 3600, rest % 3600 / 60, rest % 60);
    match style {
        1 => format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
        3 if rest == 0 => format!("{y:04}-{m:02}-{d:02}"),
        4 if ss == 0 => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}"),
        2 => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{zone}"),
        _ => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    }
}

/// What a predicate or an assignment names: the primary key or a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Key,
    Col(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    /// `!=`
    Ne,
    /// `<>`
    NeAlt,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub const ALL: [Op; 7] = [Op::Eq, Op::Ne, Op::NeAlt, Op::Lt, Op::Le, Op::Gt, Op::Ge];

    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::NeAlt => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne | Op::NeAlt => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }
}

/// The days an EVENTS `HAS` looks at (before the today / retention clamp).
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// `WITHIN n DAYS`: today and the n − 1 days before.
    Within(u64),
    /// `SINCE t`: from t's day on.
    Since(Lit),
    /// `BETWEEN t AND u`: t's day to u's day.
    Between(Lit, Lit),
}

/// A WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    /// Redundant parentheses.
    Paren(Box<Pred>),
    Cmp(Target, Op, Lit),
    /// `IN (...)`, or `NOT IN (...)` when negated.
    In(Target, Vec<Lit>, bool),
    /// `BETWEEN lo AND hi`, or `NOT BETWEEN` when negated.
    Between(usize, Lit, Lit, bool),
    Has(usize, Lit),
    HasAny(usize, Vec<Lit>),
    HasAll(usize, Vec<Lit>),
    /// `IS NULL`, or `IS NOT NULL` when negated.
    IsNull(Target, bool),
    /// `IN name`: a named segment (its definition is in the schema).
    InSegment(String),
    /// `col HAS 'v' [ON AT LEAST k DAYS] [range]` on an EVENTS<TEXT> column.
    Events {
        col: usize,
        value: Lit,
        min_days: Option<u64>,
        range: Option<Range>,
    },
}

fn value_of_events(cell: Option<&Mv>) -> Option<&BTreeSet<(i64, String)>> {
    match cell {
        Some(Mv::Events(e)) => Some(e),
        None => None,
        Some(other) => panic!("model: {other:?} in an EVENTS column"),
    }
}

fn lits_sql(lits: &[Lit]) -> String {
    lits.iter().map(Lit::sql).collect::<Vec<_>>().join(", ")
}

impl Pred {
    pub fn sql(&self, s: &Schema) -> String {
        match self {
            Pred::And(ps) => ps
                .iter()
                .map(|p| match p {
                    Pred::Or(_) => format!("({})", p.sql(s)),
                    _ => p.sql(s),
                })
                .collect::<Vec<_>>()
                .join(" AND "),
            Pred::Or(ps) => ps.iter().map(|p| p.sql(s)).collect::<Vec<_>>().join(" OR "),
            Pred::Not(p) => match **p {
                Pred::And(_) | Pred::Or(_) => format!("NOT ({})", p.sql(s)),
                _ => format!("NOT {}", p.sql(s)),
            },
            Pred::Paren(p) => format!("({})", p.sql(s)),
            Pred::Cmp(t, op, l) => format!("{} {} {}", s.name(*t), op.sql(), l.sql()),
            Pred::In(t, ls, neg) => format!(
                "{} {}IN ({})",
                s.name(*t),
                if *neg { "NOT " } else { "" },
                lits_sql(ls)
            ),
            Pred::Between(c, lo, hi, neg) => format!(
                "{} {}BETWEEN {} AND {}",
                s.col(*c),
                if *neg { "NOT " } else { "" },
                lo.sql(),
                hi.sql()
            ),
            Pred::Has(c, l) => format!("{} HAS {}", s.col(*c), l.sql()),
            Pred::HasAny(c, ls) => format!("{} HAS ANY ({})", s.col(*c), lits_sql(ls)),
            Pred::HasAll(c, ls) => format!("{} HAS ALL ({})", s.col(*c), lits_sql(ls)),
            Pred::IsNull(t, neg) => {
                format!("{} IS {}NULL", s.name(*t), if *neg { "NOT " } else { "" })
            }
            Pred::InSegment(name) => format!("IN {name}"),
            Pred::Events {
                col,
                value,
                min_days,
                range,
            } => {
                let mut out = format!("{} HAS {}", s.col(*col), value.sql());
                if let Some(k) = min_days {
                    out.push_str(&format!(" ON AT LEAST {k} DAYS"));
                }
                match range {
                    None => {}
                    Some(Range::Within(n)) => out.push_str(&format!(" WITHIN {n} DAYS")),
                    Some(Range::Since(t)) => out.push_str(&format!(" SINCE {}", t.sql())),
                    Some(Range::Between(t, u)) => {
                        out.push_str(&format!(" BETWEEN {} AND {}", t.sql(), u.sql()))
                    }
                }
                out
            }
        }
    }

    /// Whether profile `id` with values `row` satisfies the predicate when
    /// the statement's today is `today` (a UTC day).
    pub fn eval(&self, s: &Schema, id: &str, row: &[Option<Mv>], today: i64) -> bool {
        let value = |c: usize| row[c].as_ref();
        let ty = |c: usize| s.columns[c].ty;
        let set = |c: usize| match value(c) {
            Some(Mv::Set(tags)) => Some(tags),
            None => None,
            Some(other) => panic!("model: {other:?} in a SET column"),
        };
        match self {
            Pred::And(ps) => ps.iter().all(|p| p.eval(s, id, row, today)),
            Pred::Or(ps) => ps.iter().any(|p| p.eval(s, id, row, today)),
            Pred::Not(p) => !p.eval(s, id, row, today),
            Pred::Paren(p) => p.eval(s, id, row, today),
            Pred::Cmp(Target::Key, op, l) => match op {
                Op::Eq => id == l.text(),
                Op::Ne | Op::NeAlt => id != l.text(),
                _ => panic!("generator bug: {op:?} on the key"),
            },
            Pred::Cmp(Target::Col(c), op, l) => value(*c).is_some_and(|v| {
                let lit = l.value_for(ty(*c)).expect("no NULL comparisons");
                op.holds(compare(v, &lit))
            }),
            Pred::In(Target::Key, ls, neg) => ls.iter().any(|l| l.text() == id) != *neg,
            Pred::In(Target::Col(c), ls, neg) => value(*c).is_some_and(|v| {
                let found = ls.iter().any(|l| {
                    compare(v, &l.value_for(ty(*c)).expect("no NULL in IN")) == Ordering::Equal
                });
                found != *neg
            }),
            Pred::Between(c, lo, hi, neg) => value(*c).is_some_and(|v| {
                let lo = lo.value_for(ty(*c)).expect("no NULL bound");
                let hi = hi.value_for(ty(*c)).expect("no NULL bound");
                let inside =
                    compare(v, &lo) != Ordering::Less && compare(v, &hi) != Ordering::Greater;
                inside != *neg
            }),
            Pred::Has(c, l) => set(*c).is_some_and(|t| t.contains(l.text())),
            Pred::HasAny(c, ls) => set(*c).is_some_and(|t| ls.iter().any(|l| t.contains(l.text()))),
            Pred::HasAll(c, ls) => set(*c).is_some_and(|t| ls.iter().all(|l| t.contains(l.text()))),
            Pred::IsNull(Target::Key, neg) => *neg,
            Pred::IsNull(Target::Col(c), neg) => value(*c).is_none() != *neg,
            Pred::InSegment(name) => s.segments[name].0.eval(s, id, row, today),
            Pred::Events {
                col,
                value,
                min_days,
                range,
            } => {
                let Some(events) = value_of_events(row[*col].as_ref()) else {
                    return false;
                };
                // The window [from, to], then clamped to today and retention.
                let (mut from, mut to) = match range {
                    None => (i64::MIN, i64::MAX),
                    Some(Range::Within(n)) => {
                        let n = i64::try_from(*n).unwrap_or(i64::MAX);
                        (today.saturating_sub(n).saturating_add(1), today)
                    }
                    Some(Range::Since(t)) => (day_of(t.secs()), i64::MAX),
                    Some(Range::Between(t, u)) => (day_of(t.secs()), day_of(u.secs())),
                };
                to = to.min(today);
                if let Some(r) = s.retention {
                    from = from.max(today - r + 1);
                }
                let v = value.text();
                let days: BTreeSet<i64> = events
                    .iter()
                    .filter(|(d, x)| x == v && (from..=to).contains(d))
                    .map(|(d, _)| *d)
                    .collect();
                days.len() as u64 >= min_days.unwrap_or(1)
            }
        }
    }

    /// Whether the answer does not depend on the statement's today, as long
    /// as today is after every generated event: no `WITHIN`, no retention
    /// clamp, in this predicate and the segments it uses. Writes (bound with
    /// the clock) only get such predicates.
    pub fn clock_free(&self, s: &Schema) -> bool {
        match self {
            Pred::And(ps) | Pred::Or(ps) => ps.iter().all(|p| p.clock_free(s)),
            Pred::Not(p) | Pred::Paren(p) => p.clock_free(s),
            Pred::InSegment(name) => s.segments[name].0.clock_free(s),
            Pred::Events { range, .. } => {
                s.retention.is_none() && !matches!(range, Some(Range::Within(_)))
            }
            _ => true,
        }
    }

    /// Whether this predicate, or a segment it reaches, has a condition on
    /// the key (analysts may not run those).
    pub fn uses_key(&self, s: &Schema) -> bool {
        match self {
            Pred::And(ps) | Pred::Or(ps) => ps.iter().any(|p| p.uses_key(s)),
            Pred::Not(p) | Pred::Paren(p) => p.uses_key(s),
            Pred::InSegment(name) => s.segments[name].0.uses_key(s),
            Pred::Cmp(Target::Key, ..)
            | Pred::In(Target::Key, ..)
            | Pred::IsNull(Target::Key, _) => true,
            _ => false,
        }
    }

    /// The segments this predicate names directly.
    pub fn segments(&self) -> Vec<&str> {
        match self {
            Pred::And(ps) | Pred::Or(ps) => ps.iter().flat_map(|p| p.segments()).collect(),
            Pred::Not(p) | Pred::Paren(p) => p.segments(),
            Pred::InSegment(name) => vec![name.as_str()],
            _ => Vec::new(),
        }
    }

    /// Whether this predicate reaches segment `name`, directly or through
    /// the segments it uses.
    pub fn reaches(&self, s: &Schema, name: &str) -> bool {
        self.segments()
            .into_iter()
            .any(|n| n == name || s.segments.get(n).is_some_and(|(p, _)| p.reaches(s, name)))
    }
}

/// One `SET` item of an UPDATE.
#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    /// `c = literal`
    Set(usize, Lit),
    /// `s = s + [...]`
    Add(usize, Vec<String>),
    /// `s = s - [...]`
    Remove(usize, Vec<String>),
}

/// A write statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `INSERT INTO t (targets) VALUES rows`; each row has one literal per target.
    Insert {
        targets: Vec<Target>,
        rows: Vec<Vec<Lit>>,
    },
    Update {
        assigns: Vec<Assign>,
        filter: Option<Pred>,
    },
    Delete {
        filter: Option<Pred>,
    },
}

fn where_sql(filter: &Option<Pred>, s: &Schema) -> String {
    filter
        .as_ref()
        .map(|p| format!(" WHERE {}", p.sql(s)))
        .unwrap_or_default()
}

impl Write {
    pub fn sql(&self, s: &Schema) -> String {
        match self {
            Write::Insert { targets, rows } => format!(
                "INSERT INTO {} ({}) VALUES {}",
                s.table_ref(),
                targets
                    .iter()
                    .map(|t| s.name(*t))
                    .collect::<Vec<_>>()
                    .join(", "),
                rows.iter()
                    .map(|r| format!("({})", lits_sql(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Write::Update { assigns, filter } => {
                let tags = |t: &[String]| {
                    format!(
                        "[{}]",
                        t.iter().map(|x| quote(x)).collect::<Vec<_>>().join(", ")
                    )
                };
                let items: Vec<String> = assigns
                    .iter()
                    .map(|a| match a {
                        Assign::Set(c, l) => format!("{} = {}", s.col(*c), l.sql()),
                        Assign::Add(c, t) => {
                            let n = s.col(*c);
                            format!("{n} = {n} + {}", tags(t))
                        }
                        Assign::Remove(c, t) => {
                            let n = s.col(*c);
                            format!("{n} = {n} - {}", tags(t))
                        }
                    })
                    .collect();
                format!(
                    "UPDATE {} SET {}{}",
                    s.table_ref(),
                    items.join(", "),
                    where_sql(filter, s)
                )
            }
            Write::Delete { filter } => {
                format!("DELETE FROM {}{}", s.table_ref(), where_sql(filter, s))
            }
        }
    }
}

/// The model table: profile id → one optional value per column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub rows: BTreeMap<String, Vec<Option<Mv>>>,
}

impl Model {
    /// The ids of the profiles `filter` selects (all without one) when today is `today`.
    pub fn matching(&self, s: &Schema, filter: Option<&Pred>, today: i64) -> Vec<String> {
        self.rows
            .iter()
            .filter(|(id, row)| filter.is_none_or(|p| p.eval(s, id, row, today)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Applies a write; returns the number of profiles it reports as affected
    /// (rows of an INSERT, matched profiles of an UPDATE or DELETE). Writes
    /// are bound with the clock: their today is the clock's.
    pub fn apply(&mut self, s: &Schema, w: &Write) -> u64 {
        let today = clock_day();
        match w {
            Write::Insert { targets, rows } => {
                for r in rows {
                    let key_at = targets.iter().position(|t| *t == Target::Key).unwrap();
                    let id = r[key_at].text().to_string();
                    let width = s.columns.len();
                    let row = self.rows.entry(id).or_insert_with(|| vec![None; width]);
                    for (t, l) in targets.iter().zip(r) {
                        let Target::Col(c) = t else { continue };
                        // Events accumulate: an INSERT adds to the profile's
                        // (NULL still clears them).
                        row[*c] = match (row[*c].take(), l.value_for(s.columns[*c].ty)) {
                            (Some(Mv::Events(mut old)), Some(Mv::Events(new))) => {
                                old.extend(new);
                                Some(Mv::Events(old))
                            }
                            (_, new) => new,
                        };
                    }
                }
                rows.len() as u64
            }
            Write::Update { assigns, filter } => {
                let ids = self.matching(s, filter.as_ref(), today);
                for id in &ids {
                    let row = self.rows.get_mut(id).unwrap();
                    for a in assigns {
                        match a {
                            Assign::Set(c, l) => row[*c] = l.value_for(s.columns[*c].ty),
                            Assign::Add(c, tags) => {
                                let mut cur = match row[*c].take() {
                                    Some(Mv::Set(t)) => t,
                                    _ => BTreeSet::new(),
                                };
                                cur.extend(tags.iter().cloned());
                                row[*c] = Some(Mv::Set(cur));
                            }
                            Assign::Remove(c, tags) => {
                                if let Some(Mv::Set(t)) = &mut row[*c] {
                                    t.retain(|x| !tags.contains(x));
                                }
                            }
                        }
                    }
                }
                ids.len() as u64
            }
            Write::Delete { filter } => {
                let ids = self.matching(s, filter.as_ref(), today);
                for id in &ids {
                    self.rows.remove(id);
                }
                ids.len() as u64
            }
        }
    }
}
