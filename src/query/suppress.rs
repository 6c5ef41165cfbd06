//! Minimum audience size: for analysts, every count below a table's
//! `min_audience = k` is suppressed and shown as `< k`, and so is every
//! number computed from a suppressed count (a share, an index, a Jaccard,
//! an aggregate over fewer than k profiles). docs/privacy.md says what
//! this does and does not prevent.
//!
//! How: a result is rewritten after it is computed. Each column has a
//! [`Rule`]; a column a rule may suppress becomes TEXT (its numbers written
//! as text, so one column has one type), the others are unchanged.
//!
//! Invariants: only finished, small results are rewritten (aggregates,
//! groups, Venn regions and pairs, TOP rows, catalog rows), never a row
//! stream; a suppressed cell never shows its value in any form.

use super::ast::AggFn;
use super::bind::{Agg, OutColumn, Query, Shape};
use super::error::QueryResult;
use super::output::{Output, Rows};
use crate::engine::Value;
use crate::storage::schema::{ColumnType, TableSchema};

/// The table option naming the smallest count analysts see.
pub const MIN_AUDIENCE_OPTION: &str = "min_audience";

/// A table's minimum audience, if it has one.
pub fn min_audience(schema: &TableSchema) -> Option<u64> {
    schema.options.get(MIN_AUDIENCE_OPTION)?.parse().ok()
}

/// What may suppress one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// The column is a count of profiles: suppressed when below k.
    pub count: bool,
    /// Suppressed when any of these count columns is.
    pub depends_on: Vec<usize>,
}

impl Rule {
    pub fn keep() -> Rule {
        Rule::default()
    }
    pub fn count() -> Rule {
        Rule {
            count: true,
            depends_on: Vec::new(),
        }
    }
    pub fn derived(depends_on: &[usize]) -> Rule {
        Rule {
            count: false,
            depends_on: depends_on.to_vec(),
        }
    }
    fn may_suppress(&self) -> bool {
        self.count || !self.depends_on.is_empty()
    }
}

/// Rewrites `output` with `rules` (one per column); `k_of(row)` is the
/// threshold for that row (`None`: nothing suppressed in it).
pub fn apply(
    output: Output,
    rules: &[Rule],
    k_of: impl Fn(&[Value]) -> Option<u64>,
) -> QueryResult<Output> {
    let Output::Rows(rows) = output else {
        return Ok(output);
    };
    let columns: Vec<OutColumn> = rows
        .columns
        .iter()
        .zip(rules.iter().chain(std::iter::repeat(&Rule::keep())))
        .map(|(c, r)| OutColumn {
            name: c.name.clone(),
            ty: if r.may_suppress() {
                ColumnType::Text
            } else {
                c.ty
            },
        })
        .collect();
    let mut out = Vec::new();
    for row in rows.collect_all()? {
        let k = k_of(&row);
        let below = |v: &Value| match (v, k) {
            (Value::Int(n), Some(k)) => u64::try_from(*n).map_or(true, |n| n < k),
            _ => false,
        };
        let own: Vec<bool> = row
            .iter()
            .zip(rules.iter().chain(std::iter::repeat(&Rule::keep())))
            .map(|(v, r)| r.count && below(v))
            .collect();
        let new_row = row
            .into_iter()
            .enumerate()
            .map(|(c, v)| {
                let rule = rules.get(c).cloned().unwrap_or_default();
                if !rule.may_suppress() {
                    return v;
                }
                let suppressed =
                    own[c] || rule.depends_on.iter().any(|d| own.get(*d) == Some(&true));
                match (suppressed, k, v) {
                    (true, Some(k), _) => Value::Text(format!("< {k}")),
                    (_, _, Value::Null) => Value::Null,
                    (_, _, Value::Int(n)) => Value::Text(n.to_string()),
                    (_, _, Value::Float(x)) => Value::Text(x.to_string()),
                    (_, _, Value::Timestamp(t)) => Value::Text(t.to_string()),
                    (_, _, other) => other,
                }
            })
            .collect();
        out.push(new_row);
    }
    Ok(Output::Rows(Rows::from_vec(columns, out)))
}

/// An aggregate or grouped query with a COUNT(*) output to suppress by:
/// the query (one appended if it had none), the position of that count,
/// and whether it was appended (and must be removed from the result).
pub fn with_count(mut query: Query) -> (Query, usize, bool) {
    let count_star = Agg {
        func: AggFn::Count,
        column: None,
        ty: ColumnType::Int,
    };
    let is_count_star = |a: &Agg| a.func == AggFn::Count && a.column.is_none();
    let found = match &query.shape {
        Shape::Aggregates(aggs) => aggs.iter().position(is_count_star),
        Shape::Groups { outputs, .. } => outputs
            .iter()
            .position(|o| matches!(o, super::bind::GroupOut::Agg(a) if is_count_star(a))),
        Shape::Rows { .. } => Some(0),
    };
    if let Some(at) = found {
        return (query, at, false);
    }
    let at = query.columns.len();
    match &mut query.shape {
        Shape::Aggregates(aggs) => aggs.push(count_star),
        Shape::Groups { outputs, .. } => outputs.push(super::bind::GroupOut::Agg(count_star)),
        Shape::Rows { .. } => {}
    }
    query.columns.push(OutColumn {
        name: "count".into(),
        ty: ColumnType::Int,
    });
    (query, at, true)
}

/// The rules for an aggregate or grouped query whose COUNT(*) is at
/// `count_at`: group keys stay, every aggregate depends on the count.
pub fn query_rules(query: &Query, count_at: usize) -> Vec<Rule> {
    let is_key = |i: usize| match &query.shape {
        Shape::Groups { outputs, .. } => {
            matches!(outputs.get(i), Some(super::bind::GroupOut::Key(_)))
        }
        _ => false,
    };
    let is_count = |i: usize| match &query.shape {
        Shape::Aggregates(aggs) => aggs.get(i).is_some_and(|a| a.func == AggFn::Count),
        Shape::Groups { outputs, .. } => matches!(
            outputs.get(i),
            Some(super::bind::GroupOut::Agg(a)) if a.func == AggFn::Count
        ),
        Shape::Rows { .. } => false,
    };
    (0..query.columns.len())
        .map(|i| {
            if is_key(i) {
                Rule::keep()
            } else {
                Rule {
                    count: is_count(i),
                    depends_on: vec![count_at],
                }
            }
        })
        .collect()
}

/// Removes the last column of `output` (the appended count).
pub fn drop_last_column(output: Output) -> QueryResult<Output> {
    let Output::Rows(rows) = output else {
        return Ok(output);
    };
    let mut columns = rows.columns.clone();
    columns.pop();
    let data = rows
        .collect_all()?
        .into_iter()
        .map(|mut r| {
            r.pop();
            r
        })
        .collect();
    Ok(Output::Rows(Rows::from_vec(columns, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: Vec<Vec<Value>>) -> Output {
        let columns = ["a", "n", "m", "share"]
            .iter()
            .zip([
                ColumnType::Text,
                ColumnType::Int,
                ColumnType::Int,
                ColumnType::Float,
            ])
            .map(|(n, ty)| OutColumn {
                name: n.to_string(),
                ty,
            })
            .collect();
        Output::Rows(Rows::from_vec(columns, rows))
    }

    #[test]
    fn counts_below_k_and_what_depends_on_them_are_suppressed() {
        let rules = [
            Rule::keep(),
            Rule::count(),
            Rule::count(),
            Rule::derived(&[1, 2]),
        ];
        let out = apply(
            table(vec![
                vec![
                    Value::Text("x".into()),
                    Value::Int(4),
                    Value::Int(50),
                    Value::Float(0.08),
                ],
                vec![
                    Value::Text("y".into()),
                    Value::Int(5),
                    Value::Int(0),
                    Value::Float(0.5),
                ],
                vec![
                    Value::Text("z".into()),
                    Value::Int(9),
                    Value::Null,
                    Value::Null,
                ],
            ]),
            &rules,
            |_| Some(5),
        )
        .unwrap();
        let Output::Rows(rows) = out else { panic!() };
        assert!(rows.columns[1..].iter().all(|c| c.ty == ColumnType::Text));
        assert_eq!(rows.columns[0].ty, ColumnType::Text);
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            rows.collect_all().unwrap(),
            vec![
                vec![t("x"), t("< 5"), t("50"), t("< 5")],
                vec![t("y"), t("5"), t("< 5"), t("< 5")],
                vec![t("z"), t("9"), Value::Null, Value::Null],
            ]
        );
    }
}
