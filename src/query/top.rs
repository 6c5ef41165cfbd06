//! `TOP n col FROM t [WHERE p] [WITHIN base] [BY COUNT | BY LIFT]
//! [MIN COUNT m]`: the affinity report of a segment over a TEXT or SET<TEXT>
//! column, exact.
//!
//! The base is the whole table, or the profiles `WITHIN` selects; the
//! segment is the profiles of the base that satisfy `p`. Per value: count
//! in the segment, share of the segment, count and share in the base, and
//! index = 100 × share_in_segment / share_in_base.
//!
//! Per shard the base and the segment are evaluated once. Values are then
//! counted in the segment largest bitmap first, in rounds over all shards
//! ([`super::top_groups::largest_first`]): BY COUNT stops once no value
//! left can reach the n-th count found (a value's count is at most its
//! bitmap's size) or MIN COUNT; BY LIFT counts every value that can reach
//! MIN COUNT. Base counts are taken over every shard, for the values that
//! can be listed (BY COUNT: only the first n). Ranking uses the totals over
//! all shards, so the top n are exact.
//!
//! Order: BY COUNT (the default) is count descending, then value ascending;
//! BY LIFT is index descending (compared exactly, as count × base_size
//! fractions), then count descending, then value ascending. Values with a
//! count below `MIN COUNT` (default 1) are left out.

use super::ast::Top;
use super::bind::{bind_expr, resolve, Binder, ColumnRef, OutColumn, Pred};
use super::error::QueryResult;
use super::exec::{eval, resolve_keys, Resolved};
use super::output::{Output, Rows};
use super::top_groups::{largest_first, worker_failed, FIRST_ROUND};
use crate::engine::SHARD_ROWS;
use crate::engine::{ShardSnapshot, Snapshot, Value};
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// A bound TOP.
#[derive(Debug, Clone, PartialEq)]
pub struct TopQuery {
    pub table: String,
    pub column: usize,
    pub column_name: String,
    pub n: u64,
    pub filter: Option<Pred>,
    pub within: Option<Pred>,
    pub by_lift: bool,
    pub min_count: u64,
}

pub(super) fn bind(b: &Binder<'_>, t: &Top) -> QueryResult<TopQuery> {
    let schema = b.table(b.snapshot, &t.table)?;
    let (column, column_name) = match resolve(b, &schema, &t.column)? {
        ColumnRef::Column(i, def)
            if !def.events && matches!(def.ty, ColumnType::Text | ColumnType::TextSet) =>
        {
            (i, def.name.clone())
        }
        ColumnRef::Column(_, def) => {
            return Err(b.err(
                t.column.span,
                format!(
                    "TOP works on TEXT and SET<TEXT> columns; {} is {}",
                    def.name,
                    def.type_name()
                ),
            ))
        }
        ColumnRef::Key => {
            return Err(b.err(
                t.column.span,
                "TOP of the primary key would list single profiles",
            ))
        }
    };
    let bind =
        |e: &Option<super::ast::Expr>| e.as_ref().map(|e| bind_expr(b, &schema, e)).transpose();
    Ok(TopQuery {
        table: schema.name.clone(),
        column,
        column_name,
        n: t.n,
        filter: bind(&t.filter)?,
        within: bind(&t.within)?,
        by_lift: t.by_lift,
        min_count: t.min_count.max(1),
    })
}

/// Counts a value's rows within a set of rows. A dense set (mostly bitmap
/// containers) is left to roaring, which tests each row of the value
/// against it; a sparse one (sorted-array containers, which roaring
/// intersects by scanning both sides, so a sparse segment was scanned once
/// per value: 170 ms for TOP 20 over 1000 values at 10M) becomes a plain
/// bitset so that the cost is one bit test per row of the value.
enum Counter {
    Roaring(RoaringBitmap),
    Dense(DenseRows),
}

/// Above this share of a shard's rows, roaring's own containers are bitmaps.
const DENSE_SHARE: u64 = 16;

impl Counter {
    fn new(rows: RoaringBitmap, first: u32) -> Counter {
        if rows.len() * DENSE_SHARE >= u64::from(SHARD_ROWS) {
            Counter::Roaring(rows)
        } else {
            Counter::Dense(DenseRows::new(&rows, first))
        }
    }

    fn count_in(&self, rows: &RoaringBitmap, scratch: &mut [u32]) -> u64 {
        match self {
            Counter::Roaring(set) => set.intersection_len(rows),
            Counter::Dense(set) => set.count_in(rows, scratch),
        }
    }
}

/// One shard's rows as a plain bitset.
struct DenseRows {
    first: u32,
    words: Vec<u64>,
}

impl DenseRows {
    fn new(rows: &RoaringBitmap, first: u32) -> DenseRows {
        let mut words = vec![0u64; SHARD_ROWS as usize / 64];
        for row in rows.iter() {
            let local = row.wrapping_sub(first) as usize;
            if let Some(w) = words.get_mut(local / 64) {
                *w |= 1 << (local % 64);
            }
        }
        DenseRows { first, words }
    }

    /// |rows ∩ self|.
    fn count_in(&self, rows: &RoaringBitmap, scratch: &mut [u32]) -> u64 {
        let mut n = 0u64;
        let mut it = rows.iter();
        loop {
            let batch = it.next_many(scratch);
            if batch.is_empty() {
                return n;
            }
            for row in batch.iter() {
                let local = row.wrapping_sub(self.first) as usize;
                if let Some(w) = self.words.get(local / 64) {
                    n += (w >> (local % 64)) & 1;
                }
            }
        }
    }
}

/// One shard's segment and base, ready to count values in.
struct ShardSets {
    segment_size: u64,
    base_size: u64,
    /// `None` when the segment is empty here.
    segment: Option<Counter>,
    /// `None` when the base is the whole shard: a value's base count is then
    /// its bitmap's size.
    base: Option<Counter>,
}

fn shard_sets(
    shard: &ShardSnapshot,
    filter: Option<&Resolved>,
    within: Option<&Resolved>,
) -> QueryResult<ShardSets> {
    let base = match within {
        Some(w) => Some(eval(w, shard, None)?.into_owned()),
        None => None,
    };
    let base_rows = base.as_ref().unwrap_or(shard.live());
    let segment = match filter {
        Some(f) => eval(f, shard, Some(base_rows))?.as_ref() & base_rows,
        None => base_rows.clone(),
    };
    let first = shard.first_row();
    Ok(ShardSets {
        segment_size: segment.len(),
        base_size: base_rows.len(),
        segment: (!segment.is_empty()).then(|| Counter::new(segment, first)),
        base: base.map(|b| Counter::new(b, first)),
    })
}

/// Above this n, TOP BY COUNT counts every value in one pass: skipping the
/// small ones in rounds pays when n is a small part of the values (at 10M,
/// TOP 10 of the 1000 interests: 5.7 ms against 14.1), not when the rounds
/// end up counting most of them anyway (TOP 100: 15.6–18.4 against 14.2–14.8).
const LARGEST_FIRST_MAX_N: u64 = 2 * FIRST_ROUND as u64;

/// Every value's rows in the segment and in the base, summed over the
/// shards, in one pass over each shard's values; values with no row in the
/// segment are left out (their base rows in every shard are counted).
fn count_every_value(
    shards: &[ShardSnapshot],
    sets: &[ShardSets],
    column: usize,
) -> QueryResult<Vec<(String, u64, u64)>> {
    let indexes: Vec<usize> = (0..shards.len()).collect();
    let per: Vec<Vec<(&str, u64, u64)>> = crate::parallel::map(
        &indexes,
        |&s| {
            let sets = &sets[s];
            let mut scratch = vec![0u32; 4096];
            Ok(shards[s]
                .values(column)
                .into_iter()
                .map(|(v, bits)| {
                    let n = sets
                        .segment
                        .as_ref()
                        .map_or(0, |c| c.count_in(bits, &mut scratch));
                    let b = match &sets.base {
                        None => bits.len(),
                        Some(_) if sets.base_size == 0 => 0,
                        Some(base) => base.count_in(bits, &mut scratch),
                    };
                    (v, n, b)
                })
                .collect())
        },
        worker_failed,
    )?;
    let mut total: HashMap<&str, (u64, u64)> = HashMap::new();
    for (v, n, b) in per.into_iter().flatten() {
        let e = total.entry(v).or_default();
        e.0 += n;
        e.1 += b;
    }
    Ok(total
        .into_iter()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(v, (n, b))| (v.to_string(), n, b))
        .collect())
}

/// Each value's rows in the base, summed over all shards.
fn base_counts(
    shards: &[&ShardSnapshot],
    sets: &[ShardSets],
    column: usize,
    values: &[&str],
) -> QueryResult<Vec<u64>> {
    let indexes: Vec<usize> = (0..shards.len()).collect();
    let per: Vec<Vec<u64>> = crate::parallel::map(
        &indexes,
        |&s| {
            let mut scratch = vec![0u32; 4096];
            Ok(values
                .iter()
                .map(
                    |v| match (shards[s].value_bitmap(column, v), &sets[s].base) {
                        (None, _) => 0,
                        (Some(bits), None) => bits.len(),
                        (Some(_), Some(_)) if sets[s].base_size == 0 => 0,
                        (Some(bits), Some(base)) => base.count_in(bits, &mut scratch),
                    },
                )
                .collect())
        },
        worker_failed,
    )?;
    Ok((0..values.len())
        .map(|i| per.iter().map(|c| c[i]).sum())
        .collect())
}

pub fn run(snapshot: &Snapshot, q: &TopQuery) -> QueryResult<Output> {
    let table = snapshot.table(&q.table)?;
    let filter = q.filter.as_ref().map(|p| resolve_keys(p, &table));
    let within = q.within.as_ref().map(|p| resolve_keys(p, &table));
    let shards: Vec<ShardSnapshot> = table.shards().collect();
    let sets = crate::parallel::map(
        &shards,
        |shard| shard_sets(shard, filter.as_ref(), within.as_ref()),
        worker_failed,
    )?;
    let segment: u64 = sets.iter().map(|s| s.segment_size).sum();
    let base: u64 = sets.iter().map(|s| s.base_size).sum();
    let shard_refs: Vec<&ShardSnapshot> = shards.iter().collect();
    let limit = usize::try_from(q.n).unwrap_or(usize::MAX);
    // (value, count in the segment, count in the base).
    let mut ranked: Vec<(String, u64, u64)> = if !q.by_lift && q.n <= LARGEST_FIRST_MAX_N {
        let mut counted: Vec<(String, u64)> = largest_first(
            &shard_refs,
            q.column,
            q.n,
            q.min_count,
            FIRST_ROUND,
            |s, bitmaps| {
                let mut scratch = vec![0u32; 4096];
                match &sets[s].segment {
                    None => vec![0; bitmaps.len()],
                    Some(c) => bitmaps
                        .iter()
                        .map(|b| b.map_or(0, |b| c.count_in(b, &mut scratch)))
                        .collect(),
                }
            },
        )?
        .into_iter()
        .map(|(v, per_shard)| (v, per_shard.iter().sum()))
        .filter(|(_, n)| *n >= q.min_count)
        .collect();
        counted.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        counted.truncate(limit);
        let values: Vec<&str> = counted.iter().map(|(v, _)| v.as_str()).collect();
        let bases = base_counts(&shard_refs, &sets, q.column, &values)?;
        counted
            .into_iter()
            .zip(bases)
            .map(|((v, n), b)| (v, n, b))
            .collect()
    } else {
        count_every_value(&shards, &sets, q.column)?
            .into_iter()
            .filter(|(_, n, _)| *n >= q.min_count)
            .collect()
    };
    if q.by_lift {
        // index_a > index_b  <=>  n_a / b_a > n_b / b_b  (same sizes for all values).
        ranked.sort_by(|x, y| {
            let lhs = u128::from(y.1) * u128::from(x.2);
            let rhs = u128::from(x.1) * u128::from(y.2);
            lhs.cmp(&rhs)
                .then(y.1.cmp(&x.1))
                .then_with(|| x.0.cmp(&y.0))
        });
    } else {
        ranked.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    }
    ranked.truncate(limit);
    let rows = ranked
        .into_iter()
        .map(|(value, n, b)| {
            vec![
                Value::Text(value),
                Value::Int(n as i64),
                Value::Float(n as f64 / segment as f64),
                Value::Int(b as i64),
                Value::Float(b as f64 / base as f64),
                Value::Float(lift_index(n, segment, b, base)),
            ]
        })
        .collect();
    let columns = [
        (q.column_name.as_str(), ColumnType::Text),
        ("count", ColumnType::Int),
        ("share", ColumnType::Float),
        ("base_count", ColumnType::Int),
        ("base_share", ColumnType::Float),
        ("index", ColumnType::Float),
    ]
    .into_iter()
    .map(|(name, ty)| OutColumn {
        name: name.into(),
        ty,
    })
    .collect();
    Ok(Output::Rows(Rows::from_vec(columns, rows)))
}

/// 100 × (count / segment) / (base_count / base), in one expression so that
/// every implementation rounds it the same way.
pub fn lift_index(count: u64, segment: u64, base_count: u64, base: u64) -> f64 {
    100.0 * (count as f64 * base as f64) / (segment as f64 * base_count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_roaring_counting_agree() {
        let first = 3 * SHARD_ROWS;
        let set: RoaringBitmap = (0..SHARD_ROWS)
            .filter(|r| r % 7 == 0 || r % 11 == 3)
            .map(|r| first + r)
            .collect();
        let value: RoaringBitmap = (0..SHARD_ROWS)
            .filter(|r| r % 5 == 1)
            .map(|r| first + r)
            .collect();
        let dense = DenseRows::new(&set, first);
        let mut scratch = vec![0u32; 64];
        let want = set.intersection_len(&value);
        assert!(want > 0);
        assert_eq!(dense.count_in(&value, &mut scratch), want);
        // The dense side ignores rows outside its shard.
        let outside: RoaringBitmap = [first - 1, first + SHARD_ROWS].into_iter().collect();
        assert_eq!(dense.count_in(&outside, &mut scratch), 0);
        assert!(matches!(
            Counter::new(set.clone(), first),
            Counter::Roaring(_)
        ));
        let sparse: RoaringBitmap = set.iter().take(100).collect();
        assert!(matches!(
            Counter::new(sparse.clone(), first),
            Counter::Dense(_)
        ));
        assert_eq!(
            Counter::new(sparse.clone(), first).count_in(&value, &mut scratch),
            sparse.intersection_len(&value)
        );
    }
}
