//! The most common values first: `SELECT v, COUNT(*) ... GROUP BY v ORDER
//! BY COUNT(*) DESC ... LIMIT n` over one TEXT or SET<TEXT> column, without
//! counting every value.
//!
//! A value's count within the filter is at most the size of its bitmap, so
//! values are counted from the largest bitmap (summed over the shards)
//! down, in rounds, and counting stops once the next value's size is below
//! the n-th largest count found: no value left can reach the first n, or tie
//! with them. The groups counted (and the NULL group, always counted) then
//! go through the ordinary ordering and limit ([`super::group::finish`]).
//!
//! Invariants: every value that can be among the first n rows, or tie with
//! the n-th under the first ORDER BY key, is counted exactly; the groups
//! returned are exactly those of the full GROUP BY with those values (count
//! above zero, NULL group included when non-empty), so ordering ties and
//! LIMIT give the same rows.

use super::bind::GroupOut;
use super::error::{QueryError, QueryResult};
use super::exec::{AggState, Resolved};
use super::group::{Groups, KeyPart};
use super::run::selected;
use crate::engine::{ShardSnapshot, TableSnapshot};
use crate::storage::schema::{ColumnType, TableSchema};
use roaring::{MultiOps, RoaringBitmap};
use std::collections::HashMap;

/// Values counted in the first round; each round counts twice as many.
pub(super) const FIRST_ROUND: usize = 32;

/// The key column and n when a grouped query has the shape this module
/// answers: one TEXT or SET<TEXT> key, only the key and COUNT(*) as
/// outputs, ordered first by a COUNT(*) descending, with a LIMIT.
pub fn plan(
    schema: &TableSchema,
    keys: &[usize],
    outputs: &[GroupOut],
    order: &[(usize, bool)],
    limit: Option<u64>,
) -> Option<(usize, u64)> {
    let [column] = keys else { return None };
    let def = schema.columns.get(*column)?;
    if def.events || !matches!(def.ty, ColumnType::Text | ColumnType::TextSet) {
        return None;
    }
    let count_star = |o: &GroupOut| matches!(o, GroupOut::Agg(a) if a.column.is_none());
    if !outputs
        .iter()
        .all(|o| count_star(o) || matches!(o, GroupOut::Key(0)))
    {
        return None;
    }
    match order.first() {
        Some(&(first, true)) if outputs.get(first).is_some_and(count_star) => {}
        _ => return None,
    }
    Some((*column, limit?))
}

/// One shard's rows within the filter.
struct ShardRows {
    shard: ShardSnapshot,
    rows: RoaringBitmap,
}

/// The groups of the values that can be among the first `n` (see the
/// module doc), with `outputs`' COUNT(*) states.
pub fn groups(
    schema: &TableSchema,
    table: &TableSnapshot,
    filter: Option<&Resolved>,
    column: usize,
    outputs: &[GroupOut],
    n: u64,
) -> QueryResult<Groups> {
    let shards: Vec<ShardSnapshot> = table.shards().collect();
    let shard_rows = crate::parallel::map(
        &shards,
        |shard| {
            Ok(ShardRows {
                rows: selected(filter, shard)?,
                shard: shard.clone(),
            })
        },
        worker_failed,
    )?;
    count_top(schema, &shard_rows, column, outputs, n, FIRST_ROUND)
}

pub(super) fn worker_failed() -> QueryError {
    QueryError::Limit("a query worker thread failed".into())
}

/// [`groups`] over each shard's rows within the filter, counting
/// `first_round` values in the first round.
fn count_top(
    schema: &TableSchema,
    shard_rows: &[ShardRows],
    column: usize,
    outputs: &[GroupOut],
    n: u64,
    first_round: usize,
) -> QueryResult<Groups> {
    let shards: Vec<&ShardSnapshot> = shard_rows.iter().map(|s| &s.shard).collect();
    let counted = largest_first(&shards, column, n, 1, first_round, |s, bitmaps| {
        bitmaps
            .iter()
            .map(|b| b.map_or(0, |b| shard_rows[s].rows.intersection_len(b)))
            .collect()
    })?;
    // Per shard: whether a counted value holds every row of it (then a
    // SET column's NULL group there is empty).
    let mut covered = vec![false; shard_rows.len()];
    for (_, per_shard) in &counted {
        for (s, count) in per_shard.iter().enumerate() {
            covered[s] |= *count == shard_rows[s].rows.len();
        }
    }
    let null = null_count(schema, column, shard_rows, &covered)?;
    let states = |count: u64| -> Vec<AggState> {
        outputs
            .iter()
            .filter(|o| matches!(o, GroupOut::Agg(_)))
            .map(|_| AggState::Count(count))
            .collect()
    };
    let mut out = Groups::new();
    for (value, per_shard) in counted {
        out.insert(vec![KeyPart::Text(value)], states(per_shard.iter().sum()));
    }
    if null > 0 {
        out.insert(vec![KeyPart::Null], states(null));
    }
    Ok(out)
}

/// Counts the values of `column` largest bitmap first (sizes summed over
/// `shards`), in rounds of `first_round` values and then twice as many each
/// round, and stops when the next value's size is below both the n-th
/// largest total found and `min_count`: a value's count is at most its
/// bitmap's size, so no value left could rank among the first `n` by count
/// (or tie with the n-th) or reach `min_count`.
///
/// `count(s, bitmaps)` counts, in shard `s`, the rows of each of the
/// round's values (`None`: the value is not in that shard). Returns every
/// counted value with a total above zero and its counts per shard.
pub(super) fn largest_first(
    shards: &[&ShardSnapshot],
    column: usize,
    n: u64,
    min_count: u64,
    first_round: usize,
    count: impl Fn(usize, &[Option<&RoaringBitmap>]) -> Vec<u64> + Sync,
) -> QueryResult<Vec<(String, Vec<u64>)>> {
    let mut bound: HashMap<&str, u64> = HashMap::new();
    for shard in shards {
        for (v, b) in shard.values(column) {
            *bound.entry(v).or_default() += b.len();
        }
    }
    let mut by_size: Vec<(&str, u64)> = bound.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let indexes: Vec<usize> = (0..shards.len()).collect();
    let mut counted: Vec<(String, Vec<u64>)> = Vec::new();
    let mut totals: Vec<u64> = Vec::new();
    let mut next = 0;
    let mut round = first_round.max(1);
    while next < by_size.len() {
        let threshold = nth_largest(&mut totals, n).max(min_count);
        let end = (next..by_size.len())
            .take(round)
            .take_while(|&i| by_size[i].1 >= threshold)
            .last()
            .map_or(next, |i| i + 1);
        if end == next {
            break;
        }
        let values = &by_size[next..end];
        let per: Vec<Vec<u64>> = crate::parallel::map(
            &indexes,
            |&s| {
                let bitmaps: Vec<Option<&RoaringBitmap>> = values
                    .iter()
                    .map(|(v, _)| shards[s].value_bitmap(column, v))
                    .collect();
                Ok(count(s, &bitmaps))
            },
            worker_failed,
        )?;
        for (i, (value, _)) in values.iter().enumerate() {
            let per_shard: Vec<u64> = per.iter().map(|c| c.get(i).copied().unwrap_or(0)).collect();
            let total: u64 = per_shard.iter().sum();
            if total > 0 {
                counted.push((value.to_string(), per_shard));
                totals.push(total);
            }
        }
        next = end;
        round = round.saturating_mul(2);
    }
    Ok(counted)
}

/// The n-th largest of `totals` (0 while fewer than n are known; n = 0:
/// none can be among the first n). Reorders `totals`.
fn nth_largest(totals: &mut [u64], n: u64) -> u64 {
    let Ok(n) = usize::try_from(n) else { return 0 };
    if n == 0 {
        return u64::MAX;
    }
    if totals.len() < n {
        return 0;
    }
    let (_, nth, _) = totals.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
    *nth
}

/// The size of the NULL group: rows with no value (TEXT: NULL; SET<TEXT>:
/// NULL or no tag), as `group::partitions` defines it.
fn null_count(
    schema: &TableSchema,
    column: usize,
    shards: &[ShardRows],
    covered: &[bool],
) -> QueryResult<u64> {
    let set = schema.columns[column].ty == ColumnType::TextSet;
    let per: Vec<u64> = crate::parallel::map(
        &shards.iter().zip(covered).collect::<Vec<_>>(),
        |(s, covered)| {
            if s.rows.is_empty() || (set && **covered) {
                return Ok(0);
            }
            let with_value = if set {
                let holders = s.shard.values(column).into_iter().map(|(_, b)| b).union();
                s.rows.intersection_len(&holders)
            } else {
                s.shard
                    .exists(column)
                    .map_or(0, |e| s.rows.intersection_len(e))
            };
            Ok(s.rows.len() - with_value)
        },
        worker_failed,
    )?;
    Ok(per.into_iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Batch, Database, Options};
    use crate::query::ast::AggFn;
    use crate::query::bind::Agg;
    use crate::query::group::{finish, group_shard, merge, Budget};
    use rand::{Rng, SeedableRng};

    fn quiet_database(dir: &std::path::Path) -> Database {
        let options = Options {
            background: false,
            ..Options::default()
        };
        Database::open(dir, options).unwrap()
    }

    /// `SELECT v, COUNT(*)`.
    fn key_and_count() -> Vec<GroupOut> {
        vec![
            GroupOut::Key(0),
            GroupOut::Agg(Agg {
                func: AggFn::Count,
                column: None,
                ty: ColumnType::Int,
            }),
        ]
    }

    /// Pruned counting, in rounds as small as one value, gives the rows of
    /// the full GROUP BY for every n, filter and ordering of ties.
    #[test]
    fn pruned_counting_gives_the_rows_of_the_full_group_by() {
        let dir = tempfile::tempdir().unwrap();
        let db = quiet_database(dir.path());
        let schema = TableSchema::new("t", "id")
            .column("city", ColumnType::Text)
            .column("tags", ColumnType::TextSet);
        db.create_table(schema.clone()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261124);
        let mut b = Batch::new();
        for i in 0..600 {
            // Cities skewed, tags near uniform (so counts tie at the cut);
            // some rows have neither.
            let x: f64 = rng.random();
            let mut row = b.upsert(format!("u{i}"));
            if rng.random_bool(0.9) {
                row = row.set("city", format!("c{}", (x * x * 40.0) as u32));
            }
            let tags: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| format!("t{}", rng.random_range(0..15)))
                .collect();
            row.set("tags", tags);
        }
        db.write("t", b).unwrap();
        let snapshot = db.snapshot();
        let table = snapshot.table("t").unwrap();
        let outputs = key_and_count();
        for case in 0..300 {
            let column = case % 2;
            let shard_rows: Vec<ShardRows> = table
                .shards()
                .map(|shard| {
                    let rows = if case % 3 == 0 {
                        shard.live().clone()
                    } else {
                        shard
                            .live()
                            .iter()
                            .filter(|_| rng.random_bool(0.5))
                            .collect()
                    };
                    ShardRows { shard, rows }
                })
                .collect();
            let mut full = Groups::new();
            let mut budget = Budget::default();
            for s in &shard_rows {
                let g = group_shard(&schema, &[column], &outputs, &s.shard, &s.rows).unwrap();
                merge(&mut full, g, &mut budget).unwrap();
            }
            let n = rng.random_range(0..8u64);
            let mut order = vec![(1, true)];
            if rng.random_bool(0.7) {
                order.push((0, rng.random_bool(0.5)));
            }
            let want = finish(full, &outputs, &order, Some(n)).unwrap();
            for first_round in [1, 2, 3, 32] {
                let ours =
                    count_top(&schema, &shard_rows, column, &outputs, n, first_round).unwrap();
                let got = finish(ours, &outputs, &order, Some(n)).unwrap();
                assert_eq!(
                    got, want,
                    "case {case}, column {column}, n {n}, first round {first_round}"
                );
            }
        }
    }

    /// A value whose size equals the n-th count can still tie with it and
    /// win on the next ORDER BY key: it must be counted.
    #[test]
    fn a_value_as_large_as_the_cut_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let db = quiet_database(dir.path());
        let schema = TableSchema::new("t", "id").column("city", ColumnType::Text);
        db.create_table(schema.clone()).unwrap();
        let mut b = Batch::new();
        for (i, city) in ["a", "a", "a", "a", "a", "b", "b", "b", "c", "c", "c"]
            .iter()
            .enumerate()
        {
            b.upsert(format!("u{i}")).set("city", *city);
        }
        db.write("t", b).unwrap();
        let snapshot = db.snapshot();
        let table = snapshot.table("t").unwrap();
        let shard_rows: Vec<ShardRows> = table
            .shards()
            .map(|shard| ShardRows {
                rows: shard.live().clone(),
                shard,
            })
            .collect();
        let outputs = key_and_count();
        // Two values in the first round (a 5, b 3) make the cut 3; c (3)
        // comes next and, by city descending, beats b.
        let groups = count_top(&schema, &shard_rows, 0, &outputs, 2, 2).unwrap();
        let rows = finish(groups, &outputs, &[(1, true), (0, true)], Some(2)).unwrap();
        use crate::engine::Value;
        assert_eq!(
            rows,
            vec![
                vec![Value::Text("a".into()), Value::Int(5)],
                vec![Value::Text("c".into()), Value::Int(3)],
            ]
        );
    }
}
