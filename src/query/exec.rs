//! Execution: a bound query run shard by shard over the bitmap indexes, in
//! parallel (`crate::parallel`: the shards on a pool of one worker per
//! core), and merged: counts add, groups add per key, aggregates combine.
//!
//! Strategy per shard (docs/cohortql.md, "How queries run"):
//! - AND evaluates its cheapest operands first — value bitmaps ordered by
//!   their actual size, then NOT operands that are value bitmaps, then
//!   ranges, unions and scans restricted to what is left, then other NOT
//!   operands — stops as soon as the result is empty, and applies NOT
//!   operands as AND NOT (set difference) instead of building a complement.
//! - COUNT never materialises the bitmap it only needs the size of: the last
//!   step of an AND is an `intersection_len` / `difference_len`.
//! - INT and TIMESTAMP ranges and SUM/MIN/MAX are bit-sliced index work.
//!
//! Invariant: every bitmap a predicate evaluates to is a subset of the
//! shard's live rows.

use super::ast::{AggFn, CmpOp};
use super::bind::{Agg, Field, Pred};
use super::error::{QueryError, QueryResult};
use crate::engine::derived::DerivedBitmaps;
use crate::engine::{ShardSnapshot, TableSnapshot, Value};
use crate::storage::bsi::Comparison;
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;
use std::sync::Arc;

/// A predicate's rows in one shard: a bitmap the shard holds, one computed
/// for this query, or a cached one (a materialized segment).
#[derive(Debug, Clone)]
pub enum Bits<'a> {
    Borrowed(&'a RoaringBitmap),
    Owned(RoaringBitmap),
    Shared(Arc<RoaringBitmap>),
}

impl Bits<'_> {
    pub fn into_owned(self) -> RoaringBitmap {
        match self {
            Bits::Borrowed(b) => b.clone(),
            Bits::Owned(b) => b,
            Bits::Shared(b) => Arc::unwrap_or_clone(b),
        }
    }
}

impl std::ops::Deref for Bits<'_> {
    type Target = RoaringBitmap;
    fn deref(&self) -> &RoaringBitmap {
        match self {
            Bits::Borrowed(b) => b,
            Bits::Owned(b) => b,
            Bits::Shared(b) => b,
        }
    }
}

impl AsRef<RoaringBitmap> for Bits<'_> {
    fn as_ref(&self) -> &RoaringBitmap {
        self
    }
}

/// Runs `work` on every shard, at most one thread per core, and returns the
/// results in shard order.
pub fn per_shard<T: Send>(
    table: &TableSnapshot,
    work: impl Fn(&ShardSnapshot) -> QueryResult<T> + Sync,
) -> QueryResult<Vec<T>> {
    let shards: Vec<ShardSnapshot> = table.shards().collect();
    crate::parallel::map(&shards, work, || {
        QueryError::Limit("a query worker thread failed".into())
    })
}

/// Replaces key predicates by the rows they name (looked up once per query).
pub fn resolve_keys(pred: &Pred, table: &TableSnapshot) -> Resolved {
    match pred {
        Pred::Keys { ids } => {
            Resolved::Rows(ids.iter().filter_map(|id| table.lookup(id)).collect())
        }
        Pred::Not(p) => Resolved::Not(Box::new(resolve_keys(p, table))),
        Pred::Segment {
            key,
            materialized: true,
            pred,
            ..
        } => Resolved::Cached {
            key: key.clone(),
            cache: table.derived().clone(),
            inner: Box::new(resolve_keys(pred, table)),
        },
        Pred::Segment { pred, .. } => resolve_keys(pred, table),
        Pred::And(ps) => Resolved::And(ps.iter().map(|p| resolve_keys(p, table)).collect()),
        Pred::Or(ps) => Resolved::Or(ps.iter().map(|p| resolve_keys(p, table)).collect()),
        other => Resolved::Leaf(other.clone()),
    }
}

/// A predicate with its key lookups done.
#[derive(Debug, Clone)]
pub enum Resolved {
    Leaf(Pred),
    Rows(RoaringBitmap),
    Not(Box<Resolved>),
    And(Vec<Resolved>),
    Or(Vec<Resolved>),
    /// A materialized segment: its per-shard bitmap comes from `cache` when
    /// the shard has not changed since it was computed, else from `inner`.
    Cached {
        key: Arc<str>,
        cache: Arc<DerivedBitmaps>,
        inner: Box<Resolved>,
    },
}

impl Resolved {
    /// A bitmap the shard already holds, without computing anything.
    fn direct<'a>(&self, shard: &'a ShardSnapshot) -> Option<Bits<'a>> {
        match self {
            Resolved::Leaf(Pred::Text { col, values }) if values.len() == 1 => Some(
                shard
                    .value_bitmap(*col, &values[0])
                    .map_or_else(|| Bits::Owned(RoaringBitmap::new()), Bits::Borrowed),
            ),
            Resolved::Leaf(Pred::Bool { col, value: true }) => {
                shard.true_bitmap(*col).map(Bits::Borrowed)
            }
            Resolved::Leaf(Pred::NotNull { col }) => shard.exists(*col).map(Bits::Borrowed),
            Resolved::Leaf(Pred::Const(true)) => Some(Bits::Borrowed(shard.live())),
            Resolved::Cached { key, cache, .. } => cache
                .get(key, shard.number(), shard.version())
                .map(Bits::Shared),
            _ => None,
        }
    }

    /// Evaluation order class: direct bitmaps first, then unions, then ranges and scans.
    fn cost_class(&self) -> u8 {
        match self {
            Resolved::Leaf(Pred::Const(false)) => 0,
            Resolved::Rows(_) => 0,
            Resolved::Cached { .. } => 1,
            Resolved::Leaf(Pred::Text { values, .. }) if values.len() == 1 => 1,
            Resolved::Leaf(
                Pred::Bool { value: true, .. } | Pred::NotNull { .. } | Pred::Const(true),
            ) => 1,
            Resolved::Leaf(Pred::Text { .. } | Pred::TextAll { .. } | Pred::Bool { .. }) => 2,
            Resolved::Leaf(Pred::Int { .. } | Pred::IntBetween { .. } | Pred::IntIn { .. }) => 3,
            Resolved::Or(_) | Resolved::And(_) | Resolved::Not(_) => 3,
            Resolved::Leaf(Pred::TextRange { .. }) => 4,
            Resolved::Leaf(_) => 5,
        }
    }
}

fn empty<'a>() -> Bits<'a> {
    Bits::Owned(RoaringBitmap::new())
}

/// The rows of `shard` satisfying `pred`, looking only within `within` when given.
pub fn eval<'a>(
    pred: &Resolved,
    shard: &'a ShardSnapshot,
    within: Option<&RoaringBitmap>,
) -> QueryResult<Bits<'a>> {
    if let Some(d) = pred.direct(shard) {
        return Ok(d);
    }
    let live = shard.live();
    Ok(match pred {
        Resolved::Rows(rows) => Bits::Owned(rows & live),
        Resolved::Not(inner) => {
            let base = within.unwrap_or(live);
            let inner = eval(inner, shard, Some(base))?;
            Bits::Owned(base - inner.as_ref())
        }
        Resolved::And(parts) => eval_and(parts, shard, within)?,
        Resolved::Or(parts) => {
            // Within a (usually small) set, intersect each part with it
            // before the union: a direct value bitmap is returned whole.
            let mut acc = RoaringBitmap::new();
            for p in parts {
                let bits = eval(p, shard, within)?;
                match within {
                    Some(w) => acc |= bits.as_ref() & w,
                    None => acc |= bits.as_ref(),
                }
            }
            Bits::Owned(acc)
        }
        Resolved::Leaf(leaf) => eval_leaf(leaf, shard, within)?,
        Resolved::Cached { key, cache, inner } => {
            // Computed for the whole shard (not only `within`) so it can be reused.
            let bits = Arc::new(eval(inner, shard, None)?.into_owned());
            cache.put(key, shard.number(), shard.version(), bits.clone());
            Bits::Shared(bits)
        }
    })
}

/// Cost classes up to this one are bitmap lookups or cheap combinations of
/// them; AND steps of a higher class (ranges, unions, scans) cost in
/// proportion to the running set they are evaluated within.
pub(crate) const CHEAP_CLASS: u8 = 2;

/// One step of an AND: keep (intersect) or drop (subtract) an operand's rows.
#[derive(Clone, Copy)]
struct AndStep<'p> {
    keep: bool,
    pred: &'p Resolved,
}

/// Orders AND operands: cheap positives (class ≤ [`CHEAP_CLASS`]) by cost
/// class then actual size; then negatives that are direct bitmaps, since a
/// difference with one only shrinks the running set that the costlier steps
/// work in; then the other positives by class; then the other negatives.
fn and_steps<'p>(parts: &'p [Resolved], shard: &ShardSnapshot) -> Vec<AndStep<'p>> {
    let (mut positives, negatives): (Vec<&Resolved>, Vec<&Resolved>) =
        parts.iter().partition(|p| !matches!(p, Resolved::Not(_)));
    positives.sort_by_key(|p| {
        let size = p.direct(shard).map_or(u64::MAX, |b| b.len());
        (p.cost_class(), size)
    });
    let (cheap_drops, other_drops): (Vec<&Resolved>, Vec<&Resolved>) = negatives
        .into_iter()
        .map(|n| match n {
            Resolved::Not(inner) => inner.as_ref(),
            other => other,
        })
        .partition(|n| n.cost_class() <= 1);
    let split = positives.partition_point(|p| p.cost_class() <= CHEAP_CLASS);
    let keep = |pred| AndStep { keep: true, pred };
    let drop = |pred| AndStep { keep: false, pred };
    positives[..split]
        .iter()
        .map(|p| keep(*p))
        .chain(cheap_drops.into_iter().map(drop))
        .chain(positives[split..].iter().map(|p| keep(*p)))
        .chain(other_drops.into_iter().map(drop))
        .collect()
}

fn eval_and<'a>(
    parts: &[Resolved],
    shard: &'a ShardSnapshot,
    within: Option<&RoaringBitmap>,
) -> QueryResult<Bits<'a>> {
    eval_steps(&and_steps(parts, shard), shard, within)
}

/// The rows (within `within`, if given) that pass every step in order;
/// stops as soon as nothing is left.
fn eval_steps<'a>(
    steps: &[AndStep<'_>],
    shard: &'a ShardSnapshot,
    within: Option<&RoaringBitmap>,
) -> QueryResult<Bits<'a>> {
    let mut acc: Bits<'a> = match (steps.first(), within) {
        (Some(first), _) if first.keep => {
            let b = eval(first.pred, shard, within)?;
            match within {
                Some(w) => Bits::Owned(b.as_ref() & w),
                None => b,
            }
        }
        (_, Some(w)) => Bits::Owned(w & shard.live()),
        (_, None) => Bits::Borrowed(shard.live()),
    };
    let rest = match steps.first() {
        Some(first) if first.keep => &steps[1..],
        _ => steps,
    };
    for step in rest {
        if acc.is_empty() {
            return Ok(acc);
        }
        let other = eval(step.pred, shard, Some(&acc))?;
        acc = Bits::Owned(if step.keep {
            acc.as_ref() & other.as_ref()
        } else {
            acc.as_ref() - other.as_ref()
        });
    }
    Ok(acc)
}

fn float_matches(op: CmpOp, v: f64, x: f64) -> bool {
    match op {
        CmpOp::Eq => v == x,
        CmpOp::Ne => v != x,
        CmpOp::Lt => v < x,
        CmpOp::Le => v <= x,
        CmpOp::Gt => v > x,
        CmpOp::Ge => v >= x,
    }
}

fn scan_floats<'a>(
    shard: &ShardSnapshot,
    col: usize,
    within: Option<&RoaringBitmap>,
    keep: impl Fn(f64) -> bool,
) -> QueryResult<Bits<'a>> {
    let Some(exists) = shard.exists(col) else {
        return Ok(empty());
    };
    let candidates = match within {
        Some(w) => exists & w,
        None => exists.clone(),
    };
    let mut out = RoaringBitmap::new();
    for row in candidates.iter() {
        if let Value::Float(v) = shard.value(col, row)? {
            if keep(v) {
                out.insert(row);
            }
        }
    }
    Ok(Bits::Owned(out))
}

fn eval_leaf<'a>(
    leaf: &Pred,
    shard: &'a ShardSnapshot,
    within: Option<&RoaringBitmap>,
) -> QueryResult<Bits<'a>> {
    Ok(match leaf {
        Pred::Const(true) => Bits::Borrowed(shard.live()),
        Pred::Const(false) => empty(),
        Pred::Text { col, values } => {
            let mut acc = RoaringBitmap::new();
            for v in values {
                if let Some(b) = shard.value_bitmap(*col, v) {
                    acc |= b;
                }
            }
            Bits::Owned(acc)
        }
        Pred::TextAll { col, values } => {
            let mut bitmaps = Vec::with_capacity(values.len());
            for v in values {
                match shard.value_bitmap(*col, v) {
                    Some(b) => bitmaps.push(b),
                    None => return Ok(empty()),
                }
            }
            bitmaps.sort_by_key(|b| b.len());
            let mut acc = match (bitmaps.first(), within) {
                (Some(first), Some(w)) => *first & w,
                (Some(first), None) => (*first).clone(),
                (None, _) => return Ok(Bits::Borrowed(shard.live())),
            };
            for b in bitmaps.iter().skip(1) {
                if acc.is_empty() {
                    break;
                }
                acc &= *b;
            }
            Bits::Owned(acc)
        }
        Pred::TextRange { col, op, value } => {
            let mut acc = RoaringBitmap::new();
            for (v, b) in shard.values(*col) {
                let keep = match op {
                    CmpOp::Lt => v < value.as_str(),
                    CmpOp::Le => v <= value.as_str(),
                    CmpOp::Gt => v > value.as_str(),
                    CmpOp::Ge => v >= value.as_str(),
                    CmpOp::Eq => v == value.as_str(),
                    CmpOp::Ne => v != value.as_str(),
                };
                if keep {
                    acc |= b;
                }
            }
            Bits::Owned(acc)
        }
        Pred::Bool { col, value } => match shard.bool_bitmap(*col, *value) {
            Some(b) => Bits::Owned(b),
            None => empty(),
        },
        Pred::Int { col, op, value } => match shard.bsi(*col) {
            Some(bsi) => Bits::Owned(bsi.compare(*op, *value, within)),
            None => empty(),
        },
        Pred::IntBetween { col, low, high } => match shard.bsi(*col) {
            Some(bsi) => Bits::Owned(bsi.between(*low, *high, within)),
            None => empty(),
        },
        Pred::IntIn { col, values } => match shard.bsi(*col) {
            Some(bsi) => {
                let mut acc = RoaringBitmap::new();
                for v in values {
                    acc |= bsi.compare(Comparison::Eq, *v, within);
                }
                Bits::Owned(acc)
            }
            None => empty(),
        },
        Pred::Float { col, op, value } => {
            scan_floats(shard, *col, within, |v| float_matches(*op, v, *value))?
        }
        Pred::FloatBetween { col, low, high } => {
            scan_floats(shard, *col, within, |v| *low <= v && v <= *high)?
        }
        Pred::FloatIn { col, values } => scan_floats(shard, *col, within, |v| values.contains(&v))?,
        Pred::NotNull { col } => match shard.exists(*col) {
            Some(b) => Bits::Borrowed(b),
            None => empty(),
        },
        Pred::Events {
            col,
            value,
            from_day,
            to_day,
            min_days,
        } => Bits::Owned(super::events::rows(
            shard,
            *col,
            value,
            (*from_day, *to_day),
            *min_days,
            within,
        )),
        // Resolved into rows before execution.
        Pred::Keys { .. } => empty(),
        Pred::Not(_) | Pred::And(_) | Pred::Or(_) | Pred::Segment { .. } => {
            return Err(QueryError::Limit(
                "internal error: an unresolved predicate reached a shard".into(),
            ))
        }
    })
}

/// Number of rows of `shard` satisfying `pred`, without materialising the
/// last bitmap where it can be avoided.
pub fn count(pred: &Resolved, shard: &ShardSnapshot) -> QueryResult<u64> {
    if let Some(d) = pred.direct(shard) {
        return Ok(d.len());
    }
    match pred {
        Resolved::Not(inner) => Ok(shard.live().len() - count(inner, shard)?),
        Resolved::And(parts) if parts.len() >= 2 => {
            // Every step but the last, then count the last one.
            let steps = and_steps(parts, shard);
            let Some((last, before)) = steps.split_last() else {
                return Ok(shard.live().len());
            };
            let acc = eval_steps(before, shard, None)?;
            if acc.is_empty() {
                return Ok(0);
            }
            let other = match last.pred.direct(shard) {
                Some(d) => d,
                None => eval(last.pred, shard, Some(&acc))?,
            };
            Ok(if last.keep {
                acc.intersection_len(&other)
            } else {
                acc.difference_len(&other)
            })
        }
        Resolved::Or(parts) if parts.len() == 2 => {
            let a = match parts[0].direct(shard) {
                Some(d) => d,
                None => eval(&parts[0], shard, None)?,
            };
            let b = match parts[1].direct(shard) {
                Some(d) => d,
                None => eval(&parts[1], shard, None)?,
            };
            Ok(a.union_len(&b))
        }
        other => Ok(eval(other, shard, None)?.len()),
    }
}

/// The running state of one aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum AggState {
    Count(u64),
    IntSum { sum: i128, count: u64 },
    FloatSum { sum: f64, count: u64 },
    IntMin(Option<i64>),
    IntMax(Option<i64>),
    FloatMin(Option<f64>),
    FloatMax(Option<f64>),
    TextMin(Option<String>),
    TextMax(Option<String>),
}

impl AggState {
    pub fn new(agg: &Agg) -> AggState {
        let float = agg.ty == ColumnType::Float;
        match agg.func {
            AggFn::Count => AggState::Count(0),
            AggFn::Sum | AggFn::Avg if float => AggState::FloatSum { sum: 0.0, count: 0 },
            AggFn::Sum | AggFn::Avg => AggState::IntSum { sum: 0, count: 0 },
            AggFn::Min if float => AggState::FloatMin(None),
            AggFn::Max if float => AggState::FloatMax(None),
            AggFn::Min if agg.ty == ColumnType::Text => AggState::TextMin(None),
            AggFn::Max if agg.ty == ColumnType::Text => AggState::TextMax(None),
            AggFn::Min => AggState::IntMin(None),
            AggFn::Max => AggState::IntMax(None),
        }
    }

    /// Combines another shard's state into this one.
    pub fn merge(&mut self, other: AggState) {
        fn pick<T: PartialOrd>(a: &mut Option<T>, b: Option<T>, want_max: bool) {
            if let Some(b) = b {
                let better = match a {
                    None => true,
                    Some(a) => (want_max && b > *a) || (!want_max && b < *a),
                };
                if better {
                    *a = Some(b);
                }
            }
        }
        match (self, other) {
            (AggState::Count(a), AggState::Count(b)) => *a += b,
            (AggState::IntSum { sum, count }, AggState::IntSum { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (AggState::FloatSum { sum, count }, AggState::FloatSum { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (AggState::IntMin(a), AggState::IntMin(b)) => pick(a, b, false),
            (AggState::IntMax(a), AggState::IntMax(b)) => pick(a, b, true),
            (AggState::FloatMin(a), AggState::FloatMin(b)) => pick(a, b, false),
            (AggState::FloatMax(a), AggState::FloatMax(b)) => pick(a, b, true),
            (AggState::TextMin(a), AggState::TextMin(b)) => pick(a, b, false),
            (AggState::TextMax(a), AggState::TextMax(b)) => pick(a, b, true),
            _ => {}
        }
    }

    /// The final value.
    pub fn finish(&self, agg: &Agg) -> QueryResult<Value> {
        Ok(match self {
            AggState::Count(n) => Value::Int(*n as i64),
            AggState::IntSum { count: 0, .. } | AggState::FloatSum { count: 0, .. } => Value::Null,
            AggState::IntSum { sum, count } => match agg.func {
                AggFn::Avg => Value::Float(*sum as f64 / *count as f64),
                _ => Value::Int(
                    i64::try_from(*sum)
                        .map_err(|_| QueryError::Limit("SUM overflows a 64-bit integer".into()))?,
                ),
            },
            AggState::FloatSum { sum, count } => match agg.func {
                AggFn::Avg => Value::Float(sum / *count as f64),
                _ => Value::Float(*sum),
            },
            AggState::IntMin(v) | AggState::IntMax(v) => match (v, agg.ty) {
                (None, _) => Value::Null,
                (Some(v), ColumnType::Timestamp) => Value::Timestamp(*v),
                (Some(v), _) => Value::Int(*v),
            },
            AggState::FloatMin(v) | AggState::FloatMax(v) => v.map_or(Value::Null, Value::Float),
            AggState::TextMin(v) | AggState::TextMax(v) => {
                v.clone().map_or(Value::Null, Value::Text)
            }
        })
    }
}

/// The state of `agg` over the rows `rows` of `shard` (`count` is |rows|, known by the caller).
pub fn aggregate(agg: &Agg, shard: &ShardSnapshot, rows: &RoaringBitmap) -> QueryResult<AggState> {
    let mut state = AggState::new(agg);
    let Some(col) = agg.column else {
        if let AggState::Count(n) = &mut state {
            *n = rows.len();
        }
        return Ok(state);
    };
    match &mut state {
        AggState::Count(n) => *n = shard.exists(col).map_or(0, |e| e.intersection_len(rows)),
        AggState::IntSum { sum, count } => {
            if let Some(bsi) = shard.bsi(col) {
                *sum = bsi.sum(rows);
                *count = bsi.count(rows);
            }
        }
        AggState::IntMin(v) => *v = shard.bsi(col).and_then(|b| b.min(rows)),
        AggState::IntMax(v) => *v = shard.bsi(col).and_then(|b| b.max(rows)),
        AggState::FloatSum { sum, count } => {
            for_each_float(shard, col, rows, |x| {
                *sum += x;
                *count += 1;
            })?;
        }
        AggState::FloatMin(v) => for_each_float(shard, col, rows, |x| {
            if v.is_none_or(|m| x < m) {
                *v = Some(x);
            }
        })?,
        AggState::FloatMax(v) => for_each_float(shard, col, rows, |x| {
            if v.is_none_or(|m| x > m) {
                *v = Some(x);
            }
        })?,
        AggState::TextMin(v) | AggState::TextMax(v) => {
            let want_max = matches!(agg.func, AggFn::Max);
            let mut present: Vec<&str> = shard
                .values(col)
                .into_iter()
                .filter(|(_, b)| b.intersection_len(rows) > 0)
                .map(|(s, _)| s)
                .collect();
            present.sort_unstable();
            let pick = if want_max {
                present.last()
            } else {
                present.first()
            };
            *v = pick.map(|s| s.to_string());
        }
    }
    Ok(state)
}

fn for_each_float(
    shard: &ShardSnapshot,
    col: usize,
    rows: &RoaringBitmap,
    mut f: impl FnMut(f64),
) -> QueryResult<()> {
    let Some(exists) = shard.exists(col) else {
        return Ok(());
    };
    for row in (rows & exists).iter() {
        if let Value::Float(x) = shard.value(col, row)? {
            f(x);
        }
    }
    Ok(())
}

/// The values of `fields` for one row.
pub fn read_fields(shard: &ShardSnapshot, row: u32, fields: &[Field]) -> QueryResult<Vec<Value>> {
    fields
        .iter()
        .map(|f| match f {
            Field::Id => Ok(shard.id(row)?.map_or(Value::Null, Value::Text)),
            Field::Column(c) => Ok(shard.value(*c, row)?),
        })
        .collect()
}
