//! EXPLAIN: the plan of a query as text — the predicate tree in the order
//! the executor evaluates it, each node with its estimated number of
//! profiles and how it is computed (bitmap lookup, bit-sliced range,
//! AND NOT, count-only).
//!
//! Estimates: value lookups are exact (bitmap sizes summed over shards);
//! ranges and scans are rough (a third of the column's rows); AND takes the
//! smallest operand, OR the sum capped at the table.

use super::ast::CmpOp;
use super::bind::OutColumn;
use super::bind::{Pred, Query, Shape};
use super::error::QueryResult;
use super::exec::{per_shard, CHEAP_CLASS};
use super::output::{Output, Rows};
use crate::engine::{Snapshot, TableSnapshot, Value};
use crate::storage::bsi::Comparison;
use crate::storage::schema::{ColumnType, TableSchema};

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(values: impl Iterator<Item = String>) -> String {
    values.collect::<Vec<_>>().join(", ")
}

fn cmp(op: Comparison) -> &'static str {
    match op {
        Comparison::Lt => "<",
        Comparison::Le => "<=",
        Comparison::Eq => "=",
        Comparison::Ne => "!=",
        Comparison::Ge => ">=",
        Comparison::Gt => ">",
    }
}

/// CohortQL text of a bound predicate leaf, and how it is computed.
fn describe(pred: &Pred, schema: &TableSchema) -> (String, &'static str) {
    let name = |c: &usize| {
        schema
            .columns
            .get(*c)
            .map_or("?", |d| d.name.as_str())
            .to_string()
    };
    let is_set = |c: &usize| {
        schema
            .columns
            .get(*c)
            .is_some_and(|d| d.ty == ColumnType::TextSet)
    };
    match pred {
        Pred::Const(b) => (b.to_string().to_uppercase(), "constant"),
        Pred::Text { col, values } if values.len() == 1 && is_set(col) => (
            format!("{} HAS {}", name(col), quote(&values[0])),
            "bitmap lookup",
        ),
        Pred::Text { col, values } if values.len() == 1 => (
            format!("{} = {}", name(col), quote(&values[0])),
            "bitmap lookup",
        ),
        Pred::Text { col, values } if is_set(col) => (
            format!(
                "{} HAS ANY ({})",
                name(col),
                list(values.iter().map(|v| quote(v)))
            ),
            "union of bitmaps",
        ),
        Pred::Text { col, values } => (
            format!(
                "{} IN ({})",
                name(col),
                list(values.iter().map(|v| quote(v)))
            ),
            "union of bitmaps",
        ),
        Pred::TextAll { col, values } => (
            format!(
                "{} HAS ALL ({})",
                name(col),
                list(values.iter().map(|v| quote(v)))
            ),
            "intersection of bitmaps",
        ),
        Pred::TextRange { col, op, value } => (
            format!("{} {} {}", name(col), op.symbol(), quote(value)),
            "union of the dictionary values in range",
        ),
        Pred::Bool { col, value } => (format!("{} = {value}", name(col)), "bitmap lookup"),
        Pred::Int { col, op, value } => (
            format!("{} {} {value}", name(col), cmp(*op)),
            "bit-sliced index range",
        ),
        Pred::IntBetween { col, low, high } => (
            format!("{} BETWEEN {low} AND {high}", name(col)),
            "bit-sliced index range",
        ),
        Pred::IntIn { col, values } => (
            format!(
                "{} IN ({})",
                name(col),
                list(values.iter().map(|v| v.to_string()))
            ),
            "bit-sliced index lookups",
        ),
        Pred::Float { col, op, value } => (
            format!("{} {} {value}", name(col), op.symbol()),
            "column scan",
        ),
        Pred::FloatBetween { col, low, high } => (
            format!("{} BETWEEN {low} AND {high}", name(col)),
            "column scan",
        ),
        Pred::FloatIn { col, values } => (
            format!(
                "{} IN ({})",
                name(col),
                list(values.iter().map(|v| v.to_string()))
            ),
            "column scan",
        ),
        Pred::NotNull { col } => (format!("{} IS NOT NULL", name(col)), "existence bitmap"),
        Pred::Keys { ids } => (
            format!(
                "{} IN ({})",
                schema.key_column,
                list(ids.iter().map(|v| quote(v)))
            ),
            "key lookup",
        ),
        Pred::Segment {
            name,
            materialized: true,
            ..
        } => (
            format!("IN {name}"),
            "materialized segment (cached per shard)",
        ),
        Pred::Segment { name, .. } => (format!("IN {name}"), "segment definition"),
        Pred::Events {
            col,
            value,
            from_day,
            to_day,
            min_days,
        } => {
            let day = |d: &Option<i64>| {
                d.map_or("…".to_string(), |d| {
                    crate::engine::events::tag(d, "")
                        .trim_end_matches(':')
                        .to_string()
                })
            };
            (
                format!(
                    "{} HAS {} ON AT LEAST {min_days} DAYS BETWEEN {} AND {}",
                    name(col),
                    quote(value),
                    day(from_day),
                    day(to_day)
                ),
                "union of day bitmaps",
            )
        }
        Pred::Not(_) | Pred::And(_) | Pred::Or(_) => (String::new(), ""),
    }
}

/// Estimated profiles matching `pred`.
fn estimate(pred: &Pred, table: &TableSnapshot, total: u64) -> u64 {
    let sum_over = |f: &(dyn Fn(&crate::engine::ShardSnapshot) -> u64 + Sync)| -> u64 {
        per_shard(table, |s| Ok(f(s))).map_or(0, |v| v.into_iter().sum())
    };
    match pred {
        Pred::Const(true) => total,
        Pred::Const(false) => 0,
        Pred::Text { col, values } => sum_over(&|s| {
            values
                .iter()
                .filter_map(|v| s.value_bitmap(*col, v))
                .map(|b| b.len())
                .sum()
        })
        .min(total),
        Pred::TextAll { col, values } => values
            .iter()
            .map(|v| sum_over(&|s| s.value_bitmap(*col, v).map_or(0, |b| b.len())))
            .min()
            .unwrap_or(total),
        Pred::Bool { col, value } => {
            sum_over(&|s| s.bool_bitmap(*col, *value).map_or(0, |b| b.len()))
        }
        Pred::NotNull { col } => sum_over(&|s| s.exists(*col).map_or(0, |b| b.len())),
        Pred::Keys { ids } => ids.len() as u64,
        Pred::Int {
            col,
            op: Comparison::Eq,
            ..
        }
        | Pred::IntIn { col, .. } => sum_over(&|s| s.exists(*col).map_or(0, |b| b.len())) / 20,
        Pred::TextRange { col, .. }
        | Pred::Int { col, .. }
        | Pred::IntBetween { col, .. }
        | Pred::Float { col, .. }
        | Pred::FloatBetween { col, .. }
        | Pred::FloatIn { col, .. } => sum_over(&|s| s.exists(*col).map_or(0, |b| b.len())) / 3,
        Pred::Segment { pred, .. } => estimate(pred, table, total),
        Pred::Events { col, .. } => sum_over(&|s| s.exists(*col).map_or(0, |b| b.len())) / 3,
        Pred::Not(p) => total.saturating_sub(estimate(p, table, total)),
        Pred::And(ps) => ps
            .iter()
            .filter(|p| !matches!(p, Pred::Not(_)))
            .map(|p| estimate(p, table, total))
            .min()
            .unwrap_or(total),
        Pred::Or(ps) => ps
            .iter()
            .map(|p| estimate(p, table, total))
            .sum::<u64>()
            .min(total),
    }
}

fn class(p: &Pred) -> u8 {
    match p {
        Pred::Const(false) | Pred::Keys { .. } => 0,
        Pred::Text { values, .. } if values.len() == 1 => 1,
        Pred::Bool { value: true, .. } | Pred::NotNull { .. } | Pred::Const(true) => 1,
        Pred::Text { .. } | Pred::TextAll { .. } | Pred::Bool { .. } => 2,
        Pred::Int { .. } | Pred::IntBetween { .. } | Pred::IntIn { .. } => 3,
        Pred::Or(_) | Pred::And(_) | Pred::Not(_) => 3,
        Pred::TextRange { .. } => 4,
        Pred::Segment {
            materialized: true, ..
        } => 1,
        Pred::Segment { pred, .. } => class(pred),
        _ => 5,
    }
}

fn render(
    pred: &Pred,
    table: &TableSnapshot,
    total: u64,
    depth: usize,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let pad = "  ".repeat(depth);
    let schema = table.schema();
    let est = estimate(pred, table, total);
    match pred {
        Pred::And(parts) => {
            out.push(format!(
                "{pad}{prefix}AND  [~{est} profiles; stops early when empty]"
            ));
            let mut positives: Vec<&Pred> = parts
                .iter()
                .filter(|p| !matches!(p, Pred::Not(_)))
                .collect();
            // As the executor orders them (`exec::and_steps`): by cost class,
            // then by size only for direct bitmaps (class 1); other steps keep
            // their written order. NOT operands that are direct bitmaps come
            // right after the cheap positives, the other NOT operands last.
            positives.sort_by_key(|p| {
                let c = class(p);
                (
                    c,
                    if c == 1 {
                        estimate(p, table, total)
                    } else {
                        u64::MAX
                    },
                )
            });
            let (cheap_drops, other_drops): (Vec<&Pred>, Vec<&Pred>) = parts
                .iter()
                .filter_map(|p| match p {
                    Pred::Not(inner) => Some(inner.as_ref()),
                    _ => None,
                })
                .partition(|p| class(p) <= 1);
            let split = positives.partition_point(|p| class(p) <= CHEAP_CLASS);
            for (i, p) in positives[..split].iter().enumerate() {
                render(p, table, total, depth + 1, &format!("{}. ", i + 1), out);
            }
            for p in cheap_drops {
                render(p, table, total, depth + 1, "AND NOT ", out);
            }
            for (i, p) in positives.iter().enumerate().skip(split) {
                render(p, table, total, depth + 1, &format!("{}. ", i + 1), out);
            }
            for p in other_drops {
                render(p, table, total, depth + 1, "AND NOT ", out);
            }
        }
        Pred::Or(parts) => {
            out.push(format!("{pad}{prefix}OR  [~{est} profiles; union]"));
            for p in parts {
                render(p, table, total, depth + 1, "", out);
            }
        }
        Pred::Not(inner) => {
            out.push(format!(
                "{pad}{prefix}NOT  [~{est} profiles; all profiles minus]"
            ));
            render(inner, table, total, depth + 1, "", out);
        }
        leaf => {
            let (text, how) = describe(leaf, schema);
            let exact = matches!(
                leaf,
                Pred::Text { .. }
                    | Pred::TextAll { .. }
                    | Pred::Bool { .. }
                    | Pred::NotNull { .. }
                    | Pred::Const(_)
            );
            let tilde = if exact { "" } else { "~" };
            out.push(format!(
                "{pad}{prefix}{text}  [{tilde}{est} profiles; {how}]"
            ));
        }
    }
}

pub fn explain(snapshot: &Snapshot, query: &Query) -> QueryResult<Output> {
    let table = snapshot.table(&query.table)?;
    let total = table.row_count();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(table.shard_count().max(1));
    let mut lines = Vec::new();
    let what = match &query.shape {
        Shape::Aggregates(aggs) if aggs.iter().all(|a| a.column.is_none()) => {
            "count: the last AND step counts (intersection_len / difference_len) without building a bitmap".to_string()
        }
        Shape::Aggregates(_) => "aggregates: bit-sliced index sums and extremes for INT/TIMESTAMP, column reads for FLOAT".into(),
        Shape::Groups {
            keys,
            outputs,
            order,
            limit,
        } => match super::top_groups::plan(&query.schema, keys, outputs, order, *limit) {
            Some((column, n)) => format!(
                "most common values of {}: count values from the largest bitmap down, stop once none left can reach the count in place {n}",
                query.schema.columns[column].name
            ),
            None => format!(
                "group by {}: split the filter by each value bitmap, merge groups across shards",
                list(keys.iter().map(|k| query.schema.columns[*k].name.clone()))
            ),
        },
        Shape::Rows { limit, .. } => format!(
            "rows: stream the matching profiles shard by shard{}",
            limit.map(|n| format!(", stop after {n}")).unwrap_or_default()
        ),
    };
    lines.push(format!(
        "{} on {} ({} profiles in {} shards of 2^20 rows, {} thread(s))",
        what,
        query.table,
        total,
        table.shard_count(),
        threads
    ));
    match &query.filter {
        Some(f) => render(f, &table, total, 1, "filter: ", &mut lines),
        None => lines.push("  no filter: every profile".to_string()),
    }
    let _ = CmpOp::Eq;
    Ok(Output::Rows(Rows::from_vec(
        vec![OutColumn {
            name: "plan".into(),
            ty: ColumnType::Text,
        }],
        lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
    )))
}
