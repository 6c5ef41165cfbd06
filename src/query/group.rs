//! GROUP BY over bitmaps: per shard, the filter is split by each key
//! column's value bitmaps (a profile with a SET<TEXT> key counts once for
//! every value it holds; profiles with no value form the NULL group), and
//! aggregates run per group; shards merge by key.
//!
//! Invariant: when every output is COUNT(*), the innermost level counts
//! with `intersection_len` and never builds the group's bitmap.

use super::bind::{Agg, GroupOut};
use super::error::{QueryError, QueryResult};
use super::exec::{aggregate, AggState};
use crate::engine::{ShardSnapshot, Value};
use crate::storage::schema::{ColumnType, TableSchema};
use roaring::{MultiOps, RoaringBitmap};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One part of a group key. Orders NULL last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyPart {
    Bool(bool),
    Text(String),
    Null,
}

impl KeyPart {
    pub fn value(&self) -> Value {
        match self {
            KeyPart::Bool(b) => Value::Bool(*b),
            KeyPart::Text(s) => Value::Text(s.clone()),
            KeyPart::Null => Value::Null,
        }
    }
}

pub type Groups = BTreeMap<Vec<KeyPart>, Vec<AggState>>;

fn aggs(outputs: &[GroupOut]) -> Vec<&Agg> {
    outputs
        .iter()
        .filter_map(|o| match o {
            GroupOut::Agg(a) => Some(a),
            GroupOut::Key(_) => None,
        })
        .collect()
}

/// The groups of one shard within `rows`.
pub fn group_shard(
    schema: &TableSchema,
    keys: &[usize],
    outputs: &[GroupOut],
    shard: &ShardSnapshot,
    rows: &RoaringBitmap,
) -> QueryResult<Groups> {
    let aggs = aggs(outputs);
    let count_only = aggs.iter().all(|a| a.column.is_none());
    let mut out = Groups::new();
    let mut key = Vec::with_capacity(keys.len());
    descend(
        schema, keys, &aggs, count_only, shard, rows, &mut key, &mut out,
    )?;
    Ok(out)
}

/// The rows of the NULL group of a key column, or how to find them.
enum NullRows<'s> {
    Ready(RoaringBitmap),
    /// A SET<TEXT> column: live rows holding no tag. Needs a union of every
    /// value bitmap, so it is only built when the value groups did not
    /// already show that every row in question holds a tag.
    SetWithoutTags(&'s ShardSnapshot, usize),
}

impl NullRows<'_> {
    fn rows(self) -> RoaringBitmap {
        match self {
            NullRows::Ready(b) => b,
            NullRows::SetWithoutTags(shard, col) => {
                // One multi-way union (roaring accumulates in bitmap
                // containers), not a chain of pairwise ORs.
                let holders = shard.values(col).into_iter().map(|(_, b)| b).union();
                shard.live() - &holders
            }
        }
    }
}

/// Splits a shard's rows by the values of one key column: the value groups,
/// then the NULL group.
fn partitions<'s>(
    schema: &TableSchema,
    col: usize,
    shard: &'s ShardSnapshot,
) -> (
    Vec<(KeyPart, std::borrow::Cow<'s, RoaringBitmap>)>,
    NullRows<'s>,
) {
    use std::borrow::Cow;
    let mut parts = Vec::new();
    match schema.columns[col].ty {
        ColumnType::Bool => {
            for v in [false, true] {
                if let Some(b) = shard.bool_bitmap(col, v) {
                    parts.push((KeyPart::Bool(v), Cow::Owned(b)));
                }
            }
            let exists = shard.exists(col).cloned().unwrap_or_default();
            (parts, NullRows::Ready(shard.live() - &exists))
        }
        ty => {
            for (v, b) in shard.values(col) {
                parts.push((KeyPart::Text(v.to_string()), Cow::Borrowed(b)));
            }
            let null = if ty == ColumnType::TextSet {
                NullRows::SetWithoutTags(shard, col)
            } else {
                NullRows::Ready(shard.live() - shard.exists(col).unwrap_or(&RoaringBitmap::new()))
            };
            (parts, null)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn descend(
    schema: &TableSchema,
    keys: &[usize],
    aggs: &[&Agg],
    count_only: bool,
    shard: &ShardSnapshot,
    rows: &RoaringBitmap,
    key: &mut Vec<KeyPart>,
    out: &mut Groups,
) -> QueryResult<()> {
    let depth = key.len();
    let last = depth + 1 == keys.len();
    let (values, null) = partitions(schema, keys[depth], shard);
    let total = rows.len();
    // True once a value group holds all of `rows`: then none is in the
    // NULL group of a SET column (they all hold that tag).
    let mut all_hold_a_value = false;
    let mut groups: Vec<(KeyPart, std::borrow::Cow<'_, RoaringBitmap>)> = values;
    let mut null = Some(null);
    let mut i = 0;
    loop {
        let (part, bitmap) = if i < groups.len() {
            let (part, bitmap) = &groups[i];
            i += 1;
            (part.clone(), bitmap.clone())
        } else {
            match null.take() {
                Some(NullRows::SetWithoutTags(..)) if all_hold_a_value => break,
                Some(n) => {
                    groups.clear();
                    (KeyPart::Null, std::borrow::Cow::Owned(n.rows()))
                }
                None => break,
            }
        };
        if last && count_only {
            let n = rows.intersection_len(&bitmap);
            all_hold_a_value |= n == total;
            if n > 0 {
                let mut k = key.clone();
                k.push(part);
                out.insert(k, aggs.iter().map(|_| AggState::Count(n)).collect());
            }
            continue;
        }
        let sub: RoaringBitmap = rows & &*bitmap;
        all_hold_a_value |= sub.len() == total;
        if sub.is_empty() {
            continue;
        }
        key.push(part);
        if last {
            let states = aggs
                .iter()
                .map(|a| aggregate(a, shard, &sub))
                .collect::<QueryResult<Vec<_>>>()?;
            out.insert(key.clone(), states);
        } else {
            descend(schema, keys, aggs, count_only, shard, &sub, key, out)?;
        }
        key.pop();
    }
    Ok(())
}

/// The memory a query's groups may take, and what they take so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub limit: Option<u64>,
    pub used: u64,
}

/// About what one group costs in memory: its map node, key and states.
fn group_bytes(key: &[KeyPart], states: &[AggState]) -> u64 {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let key_bytes: usize = key
        .iter()
        .map(|k| match k {
            KeyPart::Text(s) => 24 + s.len(),
            _ => 24,
        })
        .sum();
    let state_bytes: usize = states
        .iter()
        .map(|s| match s {
            AggState::TextMin(t) | AggState::TextMax(t) => 40 + text(t),
            _ => 40,
        })
        .sum();
    (96 + key_bytes + state_bytes) as u64
}

/// Merges shard groups into `into`, within `budget`.
pub fn merge(into: &mut Groups, from: Groups, budget: &mut Budget) -> QueryResult<()> {
    for (k, states) in from {
        match into.get_mut(&k) {
            Some(existing) => {
                for (a, b) in existing.iter_mut().zip(states) {
                    a.merge(b);
                }
            }
            None => {
                budget.used += group_bytes(&k, &states);
                if let Some(limit) = budget.limit.filter(|l| budget.used > *l) {
                    let size = if limit % (1 << 20) == 0 {
                        format!("{} MiB", limit >> 20)
                    } else {
                        format!("{} KiB", limit.div_ceil(1 << 10))
                    };
                    return Err(QueryError::Limit(format!(
                        "the query needs more than the {size} a query may use ({} groups so far); \
                         narrow the WHERE, group by fewer or coarser columns, or raise --query-memory-limit",
                        into.len() + 1
                    )));
                }
                into.insert(k, states);
            }
        }
    }
    Ok(())
}

/// Orders values for ORDER BY: NULL after everything, numbers numerically.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (Int(x) | Timestamp(x), Int(y) | Timestamp(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.total_cmp(y),
        (Int(x) | Timestamp(x), Float(y)) => (*x as f64).total_cmp(y),
        (Float(x), Int(y) | Timestamp(y)) => x.total_cmp(&(*y as f64)),
        (Text(x), Text(y)) => x.cmp(y),
        (Bool(x), Bool(y)) => x.cmp(y),
        (Set(x), Set(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Final rows of a grouped query: outputs per group, ordered, limited.
pub fn finish(
    groups: Groups,
    outputs: &[GroupOut],
    order: &[(usize, bool)],
    limit: Option<u64>,
) -> QueryResult<Vec<Vec<Value>>> {
    let mut rows = Vec::with_capacity(groups.len());
    for (key, states) in groups {
        let mut agg_i = 0;
        let mut row = Vec::with_capacity(outputs.len());
        for o in outputs {
            match o {
                GroupOut::Key(k) => row.push(key[*k].value()),
                GroupOut::Agg(a) => {
                    row.push(states[agg_i].finish(a)?);
                    agg_i += 1;
                }
            }
        }
        rows.push(row);
    }
    if !order.is_empty() {
        rows.sort_by(|a, b| {
            for (i, desc) in order {
                let o = compare_values(&a[*i], &b[*i]);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    if let Some(n) = limit {
        rows.truncate(n.min(usize::MAX as u64) as usize);
    }
    Ok(rows)
}
