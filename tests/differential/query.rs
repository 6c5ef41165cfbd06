//! Queries the generator makes, their SQL, the model's answer for them, and
//! the comparison of an answer with the engine's.

use super::model::{
    cell_value, clock_day, compare, day_of, quote, Lit, Model, Mv, Pred, Schema, Target, Ty,
};
use cohortdb::query::OutColumn;
use cohortdb::{ColumnType, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Count => "COUNT",
            Func::Sum => "SUM",
            Func::Avg => "AVG",
            Func::Min => "MIN",
            Func::Max => "MAX",
        }
    }
}

/// An aggregate; `arg: None` is `COUNT(*)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub func: Func,
    pub arg: Option<Target>,
}

impl Agg {
    pub const COUNT_STAR: Agg = Agg {
        func: Func::Count,
        arg: None,
    };

    pub fn sql(&self, s: &Schema) -> String {
        match self.arg {
            None => "COUNT(*)".into(),
            Some(t) => format!("{}({})", self.func.name(), s.name(t)),
        }
    }

    /// The result column's default name.
    fn default_name(&self, s: &Schema) -> String {
        match self.arg {
            None => "count".into(),
            Some(t) => format!("{}({})", self.func.name().to_lowercase(), s.raw(t)),
        }
    }

    /// SUM and AVG of a FLOAT column: summation order may change the last bits.
    pub fn approx(&self, s: &Schema) -> bool {
        matches!(self.func, Func::Sum | Func::Avg)
            && matches!(self.arg, Some(Target::Col(c)) if s.columns[c].ty == Ty::Float)
    }

    /// The value over `rows`; `Err` when the engine must refuse (SUM overflow).
    pub fn eval(&self, s: &Schema, rows: &[&Vec<Option<Mv>>]) -> Result<Value, String> {
        let c = match self.arg {
            None | Some(Target::Key) => return Ok(Value::Int(rows.len() as i64)),
            Some(Target::Col(c)) => c,
        };
        let values: Vec<&Mv> = rows.iter().filter_map(|r| r[c].as_ref()).collect();
        let n = values.len();
        Ok(match self.func {
            Func::Count => Value::Int(n as i64),
            _ if n == 0 => Value::Null,
            Func::Sum | Func::Avg => match s.columns[c].ty {
                Ty::Float => {
                    let mut sum = 0.0;
                    for v in &values {
                        let Mv::Float(x) = v else { unreachable!() };
                        sum += x;
                    }
                    Value::Float(if self.func == Func::Avg {
                        sum / n as f64
                    } else {
                        sum
                    })
                }
                _ => {
                    let sum: i128 = values
                        .iter()
                        .map(|v| match v {
                            Mv::Int(x) | Mv::Ts(x) => i128::from(*x),
                            _ => unreachable!(),
                        })
                        .sum();
                    if self.func == Func::Avg {
                        Value::Float(sum as f64 / n as f64)
                    } else {
                        Value::Int(i64::try_from(sum).map_err(|_| {
                            format!("SUM({}) = {sum} overflows i64", s.columns[c].name)
                        })?)
                    }
                }
            },
            Func::Min | Func::Max => {
                let want = if self.func == Func::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                let mut best = values[0];
                for v in &values[1..] {
                    if compare(v, best) == want {
                        best = v;
                    }
                }
                best.to_value()
            }
        })
    }
}

/// An item of a grouped SELECT.
#[derive(Debug, Clone, PartialEq)]
pub enum GItem {
    /// A group key column (by column index), with an optional alias.
    Key(usize, Option<String>),
    Agg(Agg, Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    /// `ORDER BY 2` (1-based).
    Pos(usize),
    /// A column or alias name.
    Name(String),
    CountStar,
    /// An aggregate other than COUNT(*), as `SUM(c)`.
    Agg(Agg),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub key: OrderKey,
    /// `None`: no direction written (ascending); `Some(true)`: DESC.
    pub desc: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `SELECT aggs FROM t [WHERE p]` (one row).
    Aggs {
        items: Vec<(Agg, Option<String>)>,
        filter: Option<Pred>,
    },
    Groups {
        keys: Vec<usize>,
        items: Vec<GItem>,
        filter: Option<Pred>,
        order: Vec<Order>,
        limit: Option<u64>,
    },
    /// `fields: None` is `SELECT *`.
    Rows {
        fields: Option<Vec<Target>>,
        filter: Option<Pred>,
        limit: Option<u64>,
    },
    /// `OVERLAP [MATRIX] items [ON t] [WHERE base]`: two results (regions,
    /// pairs) or, with MATRIX, one; the answer is their rows in sequence.
    Overlap {
        items: Vec<(OverlapItem, Option<String>)>,
        on_table: bool,
        base: Option<Pred>,
        matrix: bool,
    },
    /// `TOP n col FROM t [WHERE p] [WITHIN q] [BY COUNT | BY LIFT] [MIN COUNT m]`.
    Top {
        n: u64,
        col: usize,
        filter: Option<Pred>,
        within: Option<Pred>,
        /// `None`: no BY written (by count).
        by_lift: Option<bool>,
        min_count: Option<u64>,
    },
    /// `EXPORT audience [ON t] [COLUMNS (...)] [FOR PURPOSE 'p'] [LIMIT n]`:
    /// the id and the columns of each profile of the audience (that
    /// consented to the purpose, when the table keeps consent).
    Export {
        audience: OverlapItem,
        on_table: bool,
        columns: Vec<usize>,
        purpose: Option<String>,
        limit: Option<u64>,
    },
    /// `LOOKALIKE [REACH] seed [ON t] [WITHIN p] [FOR PURPOSE 'x'] [LIMIT n]`.
    Lookalike {
        seed: OverlapItem,
        on_table: bool,
        within: Option<Pred>,
        purpose: Option<String>,
        /// `None`: REACH.
        limit: Option<u64>,
    },
}

/// What one OVERLAP item counts.
#[derive(Debug, Clone, PartialEq)]
pub enum OverlapItem {
    Segment(String),
    Pred(Pred),
}

impl OverlapItem {
    fn sql(&self, s: &Schema) -> String {
        match self {
            OverlapItem::Segment(name) => name.clone(),
            OverlapItem::Pred(p) => format!("({})", p.sql(s)),
        }
    }

    /// The item's result name without an alias.
    fn name(&self, s: &Schema) -> String {
        match self {
            OverlapItem::Segment(name) => name.clone(),
            OverlapItem::Pred(p) => p.sql(s),
        }
    }

    fn holds(&self, s: &Schema, id: &str, row: &[Option<Mv>], today: i64) -> bool {
        match self {
            OverlapItem::Segment(name) => s.segments[name].0.eval(s, id, row, today),
            OverlapItem::Pred(p) => p.eval(s, id, row, today),
        }
    }

    fn clock_free(&self, s: &Schema) -> bool {
        match self {
            OverlapItem::Segment(name) => s.segments[name].0.clock_free(s),
            OverlapItem::Pred(p) => p.clock_free(s),
        }
    }
}

/// `AS OF t` at the end of a query: the statement's now, so its today is
/// the UTC day of `t` (a time literal: ISO-8601, `TIMESTAMP '...'` or seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct AsOf(pub Lit);

impl AsOf {
    pub fn today(&self) -> i64 {
        day_of(self.0.secs())
    }
}

/// A query as run: with `AS OF` or (today by the clock) without.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub query: Query,
    pub as_of: Option<AsOf>,
}

impl Stmt {
    pub fn sql(&self, s: &Schema) -> String {
        match &self.as_of {
            Some(a) => format!("{} AS OF {}", self.query.sql(s), a.0.sql()),
            None => self.query.sql(s),
        }
    }

    pub fn expect(&self, s: &Schema, model: &Model) -> Expectation {
        let today = self.as_of.as_ref().map_or_else(clock_day, AsOf::today);
        self.query.expect_at(s, model, today)
    }

    /// The answer an analyst gets (docs/privacy.md): refused for rows,
    /// exports and conditions on the id; otherwise with every count below
    /// the table's `min_audience` (and what is computed from it) suppressed.
    pub fn expect_analyst(&self, s: &Schema, model: &Model) -> Expectation {
        let today = self.as_of.as_ref().map_or_else(clock_day, AsOf::today);
        if let Some(why) = self.query.analyst_refusal(s) {
            return Expectation {
                expected: Expected::Error(why),
                approx: Vec::new(),
            };
        }
        let mut exp = self.query.expect_k(s, model, today, s.min_audience);
        if let (Some(k), Expected::Ordered(rows)) = (s.min_audience, &mut exp.expected) {
            match &self.query {
                Query::Overlap { matrix, .. } => {
                    for row in rows.iter_mut() {
                        let rules = overlap_rules(row, *matrix);
                        suppress_row(row, &rules, k);
                    }
                }
                Query::Lookalike { .. } => {
                    for row in rows.iter_mut() {
                        suppress_row(row, &[Rule::Keep, Rule::Keep, Rule::Count], k);
                    }
                }
                Query::Top { .. } => {
                    let rules = [
                        Rule::Keep,
                        Rule::Count,
                        Rule::Derived(&[1]),
                        Rule::Count,
                        Rule::Derived(&[3]),
                        Rule::Derived(&[1, 3]),
                    ];
                    for row in rows.iter_mut() {
                        suppress_row(row, &rules, k);
                    }
                }
                _ => {}
            }
        }
        exp
    }
}

/// What may suppress one result column for an analyst (src/query/suppress.rs).
#[derive(Debug, Clone, Copy)]
enum Rule {
    Keep,
    /// A count of profiles: suppressed below k.
    Count,
    /// Suppressed with any of these count columns.
    Derived(&'static [usize]),
}

/// The rules of a row of OVERLAP: a Venn region (flags, then its count), a
/// pair (names, three counts, two shares and a Jaccard) or a MATRIX row.
fn overlap_rules(row: &[Value], matrix: bool) -> Vec<Rule> {
    let width = row.len();
    if matrix {
        (0..width)
            .map(|c| if c == 0 { Rule::Keep } else { Rule::Count })
            .collect()
    } else if matches!(row.first(), Some(Value::Bool(_))) {
        (0..width)
            .map(|c| {
                if c + 1 == width {
                    Rule::Count
                } else {
                    Rule::Keep
                }
            })
            .collect()
    } else {
        vec![
            Rule::Keep,
            Rule::Keep,
            Rule::Count,
            Rule::Count,
            Rule::Count,
            Rule::Derived(&[2, 4]),
            Rule::Derived(&[3, 4]),
            Rule::Derived(&[2, 3, 4]),
        ]
    }
}

/// A count below k (zero and negative numbers too).
fn below(v: &Value, k: u64) -> bool {
    matches!(v, Value::Int(n) if u64::try_from(*n).map_or(true, |n| n < k))
}

/// A number as an analyst sees it on a table with `min_audience`: as TEXT.
fn as_text(v: Value) -> Value {
    match v {
        Value::Int(n) | Value::Timestamp(n) => Value::Text(n.to_string()),
        Value::Float(x) => Value::Text(x.to_string()),
        other => other,
    }
}

fn suppress_row(row: &mut [Value], rules: &[Rule], k: u64) {
    let own: Vec<bool> = row
        .iter()
        .zip(rules)
        .map(|(v, r)| matches!(r, Rule::Count) && below(v, k))
        .collect();
    for (c, v) in row.iter_mut().enumerate() {
        let suppressed = match rules[c] {
            Rule::Keep => continue,
            Rule::Count => own[c],
            Rule::Derived(on) => on.iter().any(|d| own[*d]),
        };
        let old = std::mem::replace(v, Value::Null);
        *v = if suppressed {
            Value::Text(format!("< {k}"))
        } else {
            as_text(old)
        };
    }
}

/// An aggregate cell for an analyst: suppressed when the row's profiles
/// (`n`) are fewer than k, or when it is itself a count below k.
fn suppress_agg(v: Value, agg: &Agg, n: usize, k: u64) -> Value {
    if (n as u64) < k || (agg.func == Func::Count && below(&v, k)) {
        Value::Text(format!("< {k}"))
    } else {
        as_text(v)
    }
}

/// 100 × (count / segment) / (base_count / base), as docs/cohortql.md defines it.
fn lift_index(count: u64, segment: u64, base_count: u64, base: u64) -> f64 {
    100.0 * (count as f64 * base as f64) / (segment as f64 * base_count as f64)
}

fn ratio(a: u64, b: u64) -> Value {
    if b == 0 {
        Value::Null
    } else {
        Value::Float(a as f64 / b as f64)
    }
}

fn where_sql(filter: &Option<Pred>, s: &Schema) -> String {
    filter
        .as_ref()
        .map(|p| format!(" WHERE {}", p.sql(s)))
        .unwrap_or_default()
}

fn limit_sql(limit: Option<u64>) -> String {
    limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
}

fn alias_sql(alias: &Option<String>) -> String {
    alias
        .as_ref()
        .map(|a| format!(" AS {a}"))
        .unwrap_or_default()
}

/// What the engine must answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// Exactly these rows, in this order.
    Ordered(Vec<Vec<Value>>),
    /// These rows in any order.
    Unordered(Vec<Vec<Value>>),
    /// `min(n, all.len())` distinct rows of `all`, in any order (a LIMIT without ORDER BY).
    Subset { all: Vec<Vec<Value>>, n: usize },
    /// The `min(n, all.len())` best rows of `all` (id, score), best first,
    /// each one of `all`, their scores the `n` best scores (ties in any order).
    Ranked { all: Vec<Vec<Value>>, n: usize },
    /// An error (the reason the model expects one).
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub expected: Expected,
    /// Per output column: compare FLOATs with a relative tolerance.
    pub approx: Vec<bool>,
}

impl Expectation {
    /// Whether the answer says something (an error, or a row with a value
    /// other than NULL and 0): a statistic of how often predicates hit.
    pub fn informative(&self) -> bool {
        let rows = match &self.expected {
            Expected::Error(_) => return true,
            Expected::Ordered(rows) | Expected::Unordered(rows) => rows,
            Expected::Subset { all, .. } | Expected::Ranked { all, .. } => all,
        };
        rows.iter()
            .flatten()
            .any(|v| !matches!(v, Value::Null | Value::Int(0)))
    }
}

/// A group key part; orders like the engine documents: false < true, text by bytes, NULL last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Gk {
    Bool(bool),
    Text(String),
    Null,
}

impl Gk {
    fn value(&self) -> Value {
        match self {
            Gk::Bool(b) => Value::Bool(*b),
            Gk::Text(s) => Value::Text(s.clone()),
            Gk::Null => Value::Null,
        }
    }
}

/// The group key parts one profile contributes for a key column.
fn key_parts(cell: &Option<Mv>) -> Vec<Gk> {
    match cell {
        None => vec![Gk::Null],
        Some(Mv::Text(s)) => vec![Gk::Text(s.clone())],
        Some(Mv::Bool(b)) => vec![Gk::Bool(*b)],
        Some(Mv::Set(t)) if t.is_empty() => vec![Gk::Null],
        Some(Mv::Set(t)) => t.iter().map(|x| Gk::Text(x.clone())).collect(),
        Some(other) => panic!("model: cannot group by {other:?}"),
    }
}

/// ORDER BY comparison: NULL after everything, numbers numerically.
fn order_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Int(x) | Value::Timestamp(x), Value::Int(y) | Value::Timestamp(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => panic!("model: ORDER BY over {a:?} and {b:?}"),
    }
}

impl Query {
    /// Whether the answer does not depend on the statement's today (see
    /// [`Pred::clock_free`]): then the query may go without `AS OF`.
    pub fn clock_free(&self, s: &Schema) -> bool {
        let free = |p: &Option<Pred>| p.as_ref().is_none_or(|p| p.clock_free(s));
        match self {
            Query::Aggs { filter, .. }
            | Query::Groups { filter, .. }
            | Query::Rows { filter, .. } => free(filter),
            Query::Overlap { items, base, .. } => {
                free(base) && items.iter().all(|(i, _)| i.clock_free(s))
            }
            Query::Top { filter, within, .. } => free(filter) && free(within),
            Query::Export { audience, .. } => audience.clock_free(s),
            // Recent events are look-alike features.
            Query::Lookalike { seed, within, .. } => {
                !s.has_events() && seed.clock_free(s) && free(within)
            }
        }
    }

    pub fn sql(&self, s: &Schema) -> String {
        match self {
            Query::Aggs { items, filter } => format!(
                "SELECT {} FROM {}{}",
                items
                    .iter()
                    .map(|(a, alias)| format!("{}{}", a.sql(s), alias_sql(alias)))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.table_ref(),
                where_sql(filter, s)
            ),
            Query::Groups {
                keys,
                items,
                filter,
                order,
                limit,
            } => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        GItem::Key(c, alias) => format!("{}{}", s.col(*c), alias_sql(alias)),
                        GItem::Agg(a, alias) => format!("{}{}", a.sql(s), alias_sql(alias)),
                    })
                    .collect();
                let keys: Vec<String> = keys.iter().map(|c| s.col(*c)).collect();
                let order = if order.is_empty() {
                    String::new()
                } else {
                    let o: Vec<String> = order
                        .iter()
                        .map(|o| {
                            let k = match &o.key {
                                OrderKey::Pos(n) => n.to_string(),
                                OrderKey::Name(n) => s.ident(n),
                                OrderKey::CountStar => "COUNT(*)".into(),
                                OrderKey::Agg(a) => a.sql(s),
                            };
                            match o.desc {
                                None => k,
                                Some(true) => format!("{k} DESC"),
                                Some(false) => format!("{k} ASC"),
                            }
                        })
                        .collect();
                    format!(" ORDER BY {}", o.join(", "))
                };
                format!(
                    "SELECT {} FROM {}{} GROUP BY {}{}{}",
                    items.join(", "),
                    s.table_ref(),
                    where_sql(filter, s),
                    keys.join(", "),
                    order,
                    limit_sql(*limit)
                )
            }
            Query::Rows {
                fields,
                filter,
                limit,
            } => {
                let fields = match fields {
                    None => "*".to_string(),
                    Some(f) => f.iter().map(|t| s.name(*t)).collect::<Vec<_>>().join(", "),
                };
                format!(
                    "SELECT {fields} FROM {}{}{}",
                    s.table_ref(),
                    where_sql(filter, s),
                    limit_sql(*limit)
                )
            }
            Query::Overlap {
                items,
                on_table,
                base,
                matrix,
            } => format!(
                "OVERLAP {}{}{}{}",
                if *matrix { "MATRIX " } else { "" },
                items
                    .iter()
                    .map(|(i, alias)| format!("{}{}", i.sql(s), alias_sql(alias)))
                    .collect::<Vec<_>>()
                    .join(", "),
                if *on_table {
                    format!(" ON {}", s.table_ref())
                } else {
                    String::new()
                },
                where_sql(base, s)
            ),
            Query::Top {
                n,
                col,
                filter,
                within,
                by_lift,
                min_count,
            } => format!(
                "TOP {n} {} FROM {}{}{}{}{}",
                s.col(*col),
                s.table_ref(),
                where_sql(filter, s),
                within
                    .as_ref()
                    .map(|p| format!(" WITHIN {}", p.sql(s)))
                    .unwrap_or_default(),
                match by_lift {
                    None => "",
                    Some(true) => " BY LIFT",
                    Some(false) => " BY COUNT",
                },
                min_count
                    .map(|m| format!(" MIN COUNT {m}"))
                    .unwrap_or_default()
            ),
            Query::Export { .. } => self.export_sql(s),
            Query::Lookalike {
                seed,
                on_table,
                within,
                purpose,
                limit,
            } => {
                let mut out = format!(
                    "LOOKALIKE {}{}",
                    if limit.is_none() { "REACH " } else { "" },
                    seed.sql(s)
                );
                if *on_table {
                    out.push_str(&format!(" ON {}", s.table_ref()));
                }
                if let Some(p) = within {
                    out.push_str(&format!(" WITHIN {}", p.sql(s)));
                }
                if let Some(p) = purpose {
                    out.push_str(&format!(" FOR PURPOSE {}", quote(p)));
                }
                out.push_str(&limit_sql(*limit));
                out
            }
        }
    }

    /// The SQL of an EXPORT.
    fn export_sql(&self, s: &Schema) -> String {
        let Query::Export {
            audience,
            on_table,
            columns,
            purpose,
            limit,
        } = self
        else {
            unreachable!()
        };
        let mut out = format!("EXPORT {}", audience.sql(s));
        if *on_table {
            out.push_str(&format!(" ON {}", s.table_ref()));
        }
        if !columns.is_empty() {
            let names: Vec<String> = columns.iter().map(|c| s.col(*c)).collect();
            out.push_str(&format!(" COLUMNS ({})", names.join(", ")));
        }
        if let Some(p) = purpose {
            out.push_str(&format!(" FOR PURPOSE {}", quote(p)));
        }
        out.push_str(&limit_sql(*limit));
        out
    }

    /// The model's answer without `AS OF` (today by the clock).
    pub fn expect(&self, s: &Schema, model: &Model) -> Expectation {
        self.expect_at(s, model, clock_day())
    }

    /// Why an analyst may not run this query, if they may not.
    pub fn analyst_refusal(&self, s: &Schema) -> Option<String> {
        let keyed = |p: &Option<Pred>| p.as_ref().is_some_and(|p| p.uses_key(s));
        let refused = match self {
            Query::Rows { .. } => return Some("analysts may not read rows".into()),
            Query::Export { .. } => return Some("analysts may not export".into()),
            Query::Aggs { filter, .. } | Query::Groups { filter, .. } => keyed(filter),
            Query::Overlap { items, base, .. } => {
                keyed(base)
                    || items.iter().any(|(i, _)| match i {
                        OverlapItem::Segment(name) => s.segments[name].0.uses_key(s),
                        OverlapItem::Pred(p) => p.uses_key(s),
                    })
            }
            Query::Top { filter, within, .. } => keyed(filter) || keyed(within),
            Query::Lookalike { limit: Some(_), .. } => {
                return Some("analysts may not list look-alikes".into())
            }
            Query::Lookalike { seed, within, .. } => {
                keyed(within)
                    || match seed {
                        OverlapItem::Segment(name) => s.segments[name].0.uses_key(s),
                        OverlapItem::Pred(p) => p.uses_key(s),
                    }
            }
        };
        refused.then(|| "analysts may not select profiles by their id".into())
    }

    /// The model's answer when the statement's today is `today`.
    pub fn expect_at(&self, s: &Schema, model: &Model, today: i64) -> Expectation {
        self.expect_k(s, model, today, None)
    }

    /// The model's answer when the statement's today is `today`, with the
    /// aggregates of SELECT suppressed below `k` (an analyst on a table
    /// with `min_audience = k`).
    fn expect_k(&self, s: &Schema, model: &Model, today: i64, k: Option<u64>) -> Expectation {
        let filtered = |filter: &Option<Pred>| -> Vec<(&String, &Vec<Option<Mv>>)> {
            model
                .rows
                .iter()
                .filter(|(id, row)| filter.as_ref().is_none_or(|p| p.eval(s, id, row, today)))
                .collect()
        };
        match self {
            Query::Aggs { items, filter } => {
                let rows: Vec<&Vec<Option<Mv>>> =
                    filtered(filter).into_iter().map(|(_, r)| r).collect();
                let approx = items.iter().map(|(a, _)| a.approx(s)).collect();
                let row: Result<Vec<Value>, String> = items
                    .iter()
                    .map(|(a, _)| {
                        let v = a.eval(s, &rows)?;
                        Ok(match k {
                            Some(k) => suppress_agg(v, a, rows.len(), k),
                            None => v,
                        })
                    })
                    .collect();
                Expectation {
                    expected: match row {
                        Ok(row) => Expected::Ordered(vec![row]),
                        Err(e) => Expected::Error(e),
                    },
                    approx,
                }
            }
            Query::Groups {
                keys,
                items,
                filter,
                order,
                limit,
            } => {
                let approx: Vec<bool> = items
                    .iter()
                    .map(|i| matches!(i, GItem::Agg(a, _) if a.approx(s)))
                    .collect();
                let mut groups: BTreeMap<Vec<Gk>, Vec<&Vec<Option<Mv>>>> = BTreeMap::new();
                for (_, row) in filtered(filter) {
                    let mut combos: Vec<Vec<Gk>> = vec![Vec::new()];
                    for k in keys {
                        let parts = key_parts(&row[*k]);
                        combos = combos
                            .iter()
                            .flat_map(|c| {
                                parts.iter().map(move |p| {
                                    let mut c = c.clone();
                                    c.push(p.clone());
                                    c
                                })
                            })
                            .collect();
                    }
                    for c in combos {
                        groups.entry(c).or_default().push(row);
                    }
                }
                let mut out = Vec::new();
                for (key, members) in &groups {
                    let mut row = Vec::new();
                    for i in items {
                        match i {
                            GItem::Key(c, _) => {
                                let k = keys.iter().position(|x| x == c).expect("a group key");
                                row.push(key[k].value());
                            }
                            GItem::Agg(a, _) => match a.eval(s, members) {
                                Ok(v) => row.push(v),
                                Err(e) => {
                                    return Expectation {
                                        expected: Expected::Error(e),
                                        approx,
                                    }
                                }
                            },
                        }
                    }
                    // The group's profiles, last, for suppression.
                    row.push(Value::Int(members.len() as i64));
                    out.push(row);
                }
                let names: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        GItem::Key(_, Some(alias)) | GItem::Agg(_, Some(alias)) => alias.clone(),
                        GItem::Key(c, None) => s.columns[*c].name.clone(),
                        GItem::Agg(a, None) => a.default_name(s),
                    })
                    .collect();
                let positions: Vec<(usize, bool)> = order
                    .iter()
                    .map(|o| {
                        let p = match &o.key {
                            OrderKey::Pos(n) => n - 1,
                            OrderKey::Name(n) => items
                                .iter()
                                .zip(&names)
                                .position(|(i, name)| {
                                    name.eq_ignore_ascii_case(n)
                                        || matches!(i, GItem::Key(c, _) if s.columns[*c].name.eq_ignore_ascii_case(n))
                                })
                                .expect("ORDER BY names an output"),
                            OrderKey::CountStar => items
                                .iter()
                                .position(|i| matches!(i, GItem::Agg(a, _) if *a == Agg::COUNT_STAR))
                                .expect("ORDER BY COUNT(*) needs COUNT(*)"),
                            OrderKey::Agg(want) => items
                                .iter()
                                .position(|i| matches!(i, GItem::Agg(a, _) if a == want))
                                .expect("ORDER BY an aggregate of the result"),
                        };
                        (p, o.desc == Some(true))
                    })
                    .collect();
                // Stable: ties keep the key order.
                out.sort_by(|a, b| {
                    for (p, desc) in &positions {
                        let o = order_values(&a[*p], &b[*p]);
                        let o = if *desc { o.reverse() } else { o };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    Ordering::Equal
                });
                if let Some(n) = limit {
                    out.truncate(*n as usize);
                }
                for row in &mut out {
                    let Some(Value::Int(n)) = row.pop() else {
                        unreachable!()
                    };
                    if let Some(k) = k {
                        for (v, item) in row.iter_mut().zip(items) {
                            if let GItem::Agg(a, _) = item {
                                let old = std::mem::replace(v, Value::Null);
                                *v = suppress_agg(old, a, n as usize, k);
                            }
                        }
                    }
                }
                Expectation {
                    expected: Expected::Ordered(out),
                    approx,
                }
            }
            Query::Rows {
                fields,
                filter,
                limit,
            } => {
                let fields: Vec<Target> = match fields {
                    Some(f) => f.clone(),
                    None => std::iter::once(Target::Key)
                        .chain((0..s.columns.len()).map(Target::Col))
                        .collect(),
                };
                let all: Vec<Vec<Value>> = filtered(filter)
                    .into_iter()
                    .map(|(id, row)| {
                        fields
                            .iter()
                            .map(|f| match f {
                                Target::Key => Value::Text(id.clone()),
                                Target::Col(c) => cell_value(&row[*c]),
                            })
                            .collect()
                    })
                    .collect();
                let approx = vec![false; fields.len()];
                Expectation {
                    expected: match limit {
                        Some(n) => Expected::Subset {
                            all,
                            n: *n as usize,
                        },
                        None => Expected::Unordered(all),
                    },
                    approx,
                }
            }
            Query::Overlap {
                items,
                base,
                matrix,
                ..
            } => Expectation {
                expected: expect_overlap(s, &filtered(base), items, *matrix, today),
                approx: Vec::new(),
            },
            Query::Top {
                n,
                col,
                filter,
                within,
                by_lift,
                min_count,
            } => Expectation {
                expected: Expected::Ordered(expect_top(
                    &filtered(within),
                    |id, row| filter.as_ref().is_none_or(|p| p.eval(s, id, row, today)),
                    *col,
                    *n,
                    by_lift.unwrap_or(false),
                    min_count.unwrap_or(1).max(1),
                )),
                approx: Vec::new(),
            },
            Query::Export {
                audience,
                columns,
                purpose,
                limit,
                ..
            } => {
                let approx = vec![false; columns.len() + 1];
                if s.consent.is_some() && purpose.is_none() {
                    return Expectation {
                        expected: Expected::Error("the table keeps consent: no purpose".into()),
                        approx,
                    };
                }
                let all: Vec<Vec<Value>> = model
                    .rows
                    .iter()
                    .filter(|(id, row)| {
                        audience.holds(s, id, row, today) && s.consents(row, purpose.as_deref())
                    })
                    .map(|(id, row)| {
                        std::iter::once(Value::Text(id.clone()))
                            .chain(columns.iter().map(|c| cell_value(&row[*c])))
                            .collect()
                    })
                    .collect();
                Expectation {
                    expected: match limit {
                        Some(n) => Expected::Subset {
                            all,
                            n: *n as usize,
                        },
                        None => Expected::Unordered(all),
                    },
                    approx,
                }
            }
            Query::Lookalike {
                seed,
                within,
                purpose,
                limit,
                ..
            } => Expectation {
                expected: expect_lookalike(
                    s,
                    model,
                    today,
                    seed,
                    within.as_ref(),
                    purpose.as_deref(),
                    *limit,
                ),
                approx: Vec::new(),
            },
        }
    }
}

/// Weight units per 1.0 of a look-alike score.
const UNITS: f64 = 1_000_000.0;

/// The look-alike features of one profile (src/query/lookalike.rs): TEXT
/// values, SET<TEXT> tags, BOOL true / false and EVENTS values of the 30
/// days up to today that the table's retention keeps; not the consent
/// column, not numbers.
fn features(s: &Schema, row: &[Option<Mv>], today: i64) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (c, cell) in row.iter().enumerate() {
        if Some(c) == s.consent {
            continue;
        }
        match cell {
            Some(Mv::Text(t)) => out.push((c, t.clone())),
            Some(Mv::Set(tags)) => out.extend(tags.iter().map(|t| (c, t.clone()))),
            Some(Mv::Bool(b)) => out.push((c, b.to_string())),
            Some(Mv::Events(events)) => {
                let recent: std::collections::BTreeSet<&String> = events
                    .iter()
                    .filter(|(d, _)| *d > today - 30 && *d <= today)
                    .filter(|(d, _)| s.retention.is_none_or(|r| *d > today - r))
                    .map(|(_, v)| v)
                    .collect();
                out.extend(recent.into_iter().map(|v| (c, v.clone())));
            }
            _ => {}
        }
    }
    out
}

/// LOOKALIKE computed profile by profile: the list as `Ranked` rows
/// (id, score) or the REACH curve.
fn expect_lookalike(
    s: &Schema,
    model: &Model,
    today: i64,
    seed: &OverlapItem,
    within: Option<&Pred>,
    purpose: Option<&str>,
    limit: Option<u64>,
) -> Expected {
    if s.consent.is_some() && purpose.is_none() {
        return Expected::Error("the table keeps consent: no purpose".into());
    }
    let in_seed = |id: &str, row: &[Option<Mv>]| seed.holds(s, id, row, today);
    let in_base = |id: &str, row: &[Option<Mv>]| within.is_none_or(|p| p.eval(s, id, row, today));
    let mut counts: BTreeMap<(usize, String), (u64, u64)> = BTreeMap::new();
    let (mut seed_size, mut base_size) = (0u64, 0u64);
    for (id, row) in &model.rows {
        let (a, b) = (in_seed(id, row), in_base(id, row));
        seed_size += u64::from(a);
        base_size += u64::from(b);
        for f in features(s, row, today) {
            let e = counts.entry(f).or_default();
            e.0 += u64::from(a);
            e.1 += u64::from(b);
        }
    }
    if seed_size == 0 {
        return Expected::Error("the seed is empty".into());
    }
    let odds = |k: u64, n: u64| (k as f64 + 0.5) / ((n.saturating_sub(k)) as f64 + 0.5);
    let weights: BTreeMap<(usize, String), i64> = counts
        .into_iter()
        .map(|(f, (sc, bc))| {
            let w = odds(sc, seed_size).ln() - odds(bc, base_size).ln();
            (f, (w * UNITS).round() as i64)
        })
        .collect();
    let mut scored: Vec<(String, i64)> = model
        .rows
        .iter()
        .filter(|(id, row)| in_base(id, row) && !in_seed(id, row) && s.consents(row, purpose))
        .map(|(id, row)| {
            let score = features(s, row, today).iter().map(|f| weights[f]).sum();
            (id.clone(), score)
        })
        .collect();
    scored.sort_by_key(|r| std::cmp::Reverse(r.1));
    match limit {
        Some(n) => Expected::Ranked {
            all: scored
                .into_iter()
                .map(|(id, score)| vec![Value::Text(id), Value::Float(score as f64 / UNITS)])
                .collect(),
            n: n as usize,
        },
        None => {
            let (Some(max), Some(min)) = (scored.first(), scored.last()) else {
                return Expected::Ordered(Vec::new());
            };
            let (max, min) = (i128::from(max.1), i128::from(min.1));
            Expected::Ordered(
                (0..=20u64)
                    .rev()
                    .map(|step| {
                        let percent = step * 5;
                        let threshold = min + (max - min) * i128::from(percent) / 100;
                        let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
                        let reach = scored.iter().filter(|(_, sc)| *sc >= threshold).count();
                        vec![
                            Value::Int(percent as i64),
                            Value::Float(threshold as f64 / UNITS),
                            Value::Int(reach as i64),
                        ]
                    })
                    .collect(),
            )
        }
    }
}

/// OVERLAP over the profiles of the base, computed profile by profile.
fn expect_overlap(
    s: &Schema,
    base: &[(&String, &Vec<Option<Mv>>)],
    items: &[(OverlapItem, Option<String>)],
    matrix: bool,
    today: i64,
) -> Expected {
    let names: Vec<String> = items
        .iter()
        .map(|(i, alias)| alias.clone().unwrap_or_else(|| i.name(s)))
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Expected::Error(format!("{n} is named twice"));
        }
    }
    let k = items.len();
    // Membership of every base profile, item by item.
    let member: Vec<Vec<bool>> = base
        .iter()
        .map(|(id, row)| {
            items
                .iter()
                .map(|(i, _)| i.holds(s, id, row, today))
                .collect()
        })
        .collect();
    let in_both = |i: usize, j: usize| member.iter().filter(|m| m[i] && m[j]).count() as u64;
    let int = |n: u64| Value::Int(n as i64);
    if matrix {
        return Expected::Ordered(
            (0..k)
                .map(|i| {
                    let mut row = vec![Value::Text(names[i].clone())];
                    row.extend((0..k).map(|j| int(in_both(i, j))));
                    row
                })
                .collect(),
        );
    }
    let mut regions: BTreeMap<Vec<bool>, u64> = BTreeMap::new();
    for m in &member {
        if m.iter().any(|x| *x) {
            *regions.entry(m.clone()).or_default() += 1;
        }
    }
    let mut ordered: Vec<(Vec<bool>, u64)> = regions.into_iter().collect();
    ordered.sort_by(|(a, _), (b, _)| {
        let ones = |m: &Vec<bool>| m.iter().filter(|x| **x).count();
        ones(a).cmp(&ones(b)).then_with(|| b.cmp(a))
    });
    let mut out: Vec<Vec<Value>> = ordered
        .into_iter()
        .map(|(m, n)| {
            let mut row: Vec<Value> = m.into_iter().map(Value::Bool).collect();
            row.push(int(n));
            row
        })
        .collect();
    for i in 0..k {
        for j in i + 1..k {
            let (a, b, both) = (in_both(i, i), in_both(j, j), in_both(i, j));
            out.push(vec![
                Value::Text(names[i].clone()),
                Value::Text(names[j].clone()),
                int(a),
                int(b),
                int(both),
                ratio(both, a),
                ratio(both, b),
                ratio(both, a + b - both),
            ]);
        }
    }
    Expected::Ordered(out)
}

/// TOP over the profiles of the base, computed profile by profile.
/// `in_segment` says whether a profile is in the segment (the WHERE).
fn expect_top(
    base: &[(&String, &Vec<Option<Mv>>)],
    in_segment: impl Fn(&str, &[Option<Mv>]) -> bool,
    col: usize,
    n: u64,
    by_lift: bool,
    min_count: u64,
) -> Vec<Vec<Value>> {
    let values = |row: &Vec<Option<Mv>>| -> Vec<String> {
        match &row[col] {
            Some(Mv::Text(t)) => vec![t.clone()],
            Some(Mv::Set(tags)) => tags.iter().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut segment = 0u64;
    for (id, row) in base {
        let inside = in_segment(id, row);
        segment += u64::from(inside);
        for v in values(row) {
            let e = counts.entry(v).or_default();
            e.0 += u64::from(inside);
            e.1 += 1;
        }
    }
    let base_size = base.len() as u64;
    let mut ranked: Vec<(String, u64, u64)> = counts
        .into_iter()
        .filter(|(_, (c, _))| *c >= min_count)
        .map(|(v, (c, b))| (v, c, b))
        .collect();
    ranked.sort_by(|x, y| {
        let by_count =
            y.1.cmp(&x.1)
                .then_with(|| x.0.as_bytes().cmp(y.0.as_bytes()));
        if by_lift {
            (u128::from(y.1) * u128::from(x.2))
                .cmp(&(u128::from(x.1) * u128::from(y.2)))
                .then(by_count)
        } else {
            by_count
        }
    });
    ranked.truncate(n as usize);
    ranked
        .into_iter()
        .map(|(v, c, b)| {
            vec![
                Value::Text(v),
                Value::Int(c as i64),
                Value::Float(c as f64 / segment as f64),
                Value::Int(b as i64),
                Value::Float(b as f64 / base_size as f64),
                Value::Float(lift_index(c, segment, b, base_size)),
            ]
        })
        .collect()
}

/// A total order on values, to sort rows for an unordered comparison.
fn total(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Text(_) => 1,
            Value::Set(_) => 2,
            Value::Int(_) => 3,
            Value::Timestamp(_) => 4,
            Value::Float(_) => 5,
            Value::Bool(_) => 6,
        }
    }
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Set(x), Value::Set(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) | (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn total_rows(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| total(x, y))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(a.len().cmp(&b.len()))
}

/// Relative tolerance for FLOAT SUM / AVG.
pub const FLOAT_TOLERANCE: f64 = 1e-9;

fn value_eq(want: &Value, got: &Value, approx: bool) -> bool {
    match (want, got) {
        (Value::Float(a), Value::Float(b)) if approx => {
            (a - b).abs() <= FLOAT_TOLERANCE * 1f64.max(a.abs()).max(b.abs())
        }
        // An analyst's FLOAT sums come as text.
        (Value::Text(a), Value::Text(b)) if approx && a != b => {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(a), Ok(b)) => value_eq(&Value::Float(a), &Value::Float(b), true),
                _ => false,
            }
        }
        _ => want == got,
    }
}

fn row_eq(want: &[Value], got: &[Value], approx: &[bool]) -> bool {
    want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .enumerate()
            .all(|(i, (w, g))| value_eq(w, g, approx.get(i).copied().unwrap_or(false)))
}

/// Compares the engine's answer with the model's; `Err` says how they differ.
pub fn check(exp: &Expectation, actual: &Result<Vec<Vec<Value>>, String>) -> Result<(), String> {
    let rows = match (&exp.expected, actual) {
        (Expected::Error(_), Err(_)) => return Ok(()),
        (Expected::Error(why), Ok(_)) => {
            return Err(format!("expected an error ({why}), got rows"))
        }
        (_, Err(e)) => return Err(format!("unexpected error: {e}")),
        (_, Ok(rows)) => rows,
    };
    match &exp.expected {
        Expected::Error(_) => unreachable!(),
        Expected::Ordered(want) => {
            if want.len() != rows.len() {
                return Err(format!(
                    "{} rows expected, {} returned",
                    want.len(),
                    rows.len()
                ));
            }
            for (i, (w, g)) in want.iter().zip(rows).enumerate() {
                if !row_eq(w, g, &exp.approx) {
                    return Err(format!("row {i} differs: expected {w:?}, got {g:?}"));
                }
            }
        }
        Expected::Unordered(want) => {
            let mut want = want.clone();
            let mut got = rows.clone();
            want.sort_by(|a, b| total_rows(a, b));
            got.sort_by(|a, b| total_rows(a, b));
            if want.len() != got.len() {
                return Err(format!(
                    "{} rows expected, {} returned",
                    want.len(),
                    got.len()
                ));
            }
            for (w, g) in want.iter().zip(&got) {
                if !row_eq(w, g, &exp.approx) {
                    return Err(format!(
                        "the sorted rows differ first at: expected {w:?}, got {g:?}"
                    ));
                }
            }
        }
        Expected::Ranked { all, n } => {
            let score = |r: &Vec<Value>| match r.get(1) {
                Some(Value::Float(x)) => *x,
                _ => f64::NAN,
            };
            let mut best: Vec<f64> = all.iter().map(score).collect();
            best.sort_by(|a, b| b.total_cmp(a));
            best.truncate(*n);
            let got: Vec<f64> = rows.iter().map(score).collect();
            if got != best {
                return Err(format!("scores: expected {best:?}, got {got:?}"));
            }
            for (i, g) in rows.iter().enumerate() {
                if !all.contains(g) || rows[..i].contains(g) {
                    return Err(format!(
                        "row {g:?} is not a candidate with that score (or returned twice)"
                    ));
                }
            }
        }
        Expected::Subset { all, n } => {
            let want_len = (*n).min(all.len());
            if rows.len() != want_len {
                return Err(format!(
                    "LIMIT {n} over {} matching rows: expected {want_len} rows, {} returned",
                    all.len(),
                    rows.len()
                ));
            }
            let mut left = all.clone();
            for g in rows {
                match left.iter().position(|w| row_eq(w, g, &exp.approx)) {
                    Some(i) => {
                        left.swap_remove(i);
                    }
                    None => {
                        return Err(format!(
                            "row {g:?} is not one of the matching rows (or returned twice)"
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every returned value has its column's declared type (or is NULL), and
/// every row has one value per column.
pub fn check_types(columns: &[OutColumn], rows: &[Vec<Value>]) -> Result<(), String> {
    for row in rows {
        if row.len() != columns.len() {
            return Err(format!(
                "a row of {} values for {} columns: {row:?}",
                row.len(),
                columns.len()
            ));
        }
        for (v, c) in row.iter().zip(columns) {
            let ok = matches!(
                (c.ty, v),
                (_, Value::Null)
                    | (ColumnType::Text, Value::Text(_))
                    | (ColumnType::TextSet, Value::Set(_))
                    | (ColumnType::Int, Value::Int(_))
                    | (ColumnType::Timestamp, Value::Timestamp(_))
                    | (ColumnType::Float, Value::Float(_))
                    | (ColumnType::Bool, Value::Bool(_))
            );
            if !ok {
                return Err(format!(
                    "column {} is declared {:?} but holds {v:?}",
                    c.name, c.ty
                ));
            }
        }
    }
    Ok(())
}
