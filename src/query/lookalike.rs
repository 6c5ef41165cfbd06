//! `LOOKALIKE`: the profiles outside a seed audience that look most like
//! it, and the `REACH` curve (audience size at each similarity threshold).
//!
//! Model (docs/privacy.md, "Look-alikes"): a *feature* is a value of a
//! TEXT column, a tag of a SET<TEXT> column, true or false of a BOOL
//! column, or an `EVENTS<TEXT>` value within the last 30 days (of the
//! statement's now) that the table's retention still counts. PII columns, the key and the consent column are not
//! features; numeric columns are not either. With seed S and base B (the
//! whole table, or `WITHIN` it), a feature held by s of the |S| seed
//! profiles and b of the |B| base profiles weighs the smoothed log odds
//! ratio
//!
//! ```text
//! w = ln((s + ½) / (|S| − s + ½)) − ln((b + ½) / (|B| − b + ½))
//! ```
//!
//! (Haldane–Anscombe: no feature gets an infinite weight, and a feature
//! no one in the seed has weighs less than zero). A candidate — a profile
//! of the base, not in the seed, and consenting to the purpose when the
//! table keeps consent — scores the sum of the weights of its features.
//! Every count is a bitmap intersection per shard, and scores add a
//! feature's weight to the rows of its bitmap, never row by row over
//! values.
//!
//! Invariants: weights are rounded to micro-units and added as integers,
//! so a score does not depend on the order of the work and the same data
//! gives the same answer; ties rank by row (load order).

use super::access::Principal;
use super::ast::Lookalike;
use super::bind::{bind_expr, Binder, OutColumn, Pred};
use super::error::{QueryError, QueryResult};
use super::exec::{per_shard, resolve_keys, Resolved};
use super::output::{Output, Rows};
use super::run::selected;
use crate::engine::{ShardSnapshot, Snapshot, Value};
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;

/// Days of events that count as recent.
const RECENT_DAYS: i64 = 30;
/// Weight units per 1.0.
const UNITS: f64 = 1_000_000.0;
/// The similarity levels of REACH, in percent of the score range.
const REACH_STEPS: u64 = 20;

/// A bound LOOKALIKE.
#[derive(Debug, Clone, PartialEq)]
pub struct LookalikeQuery {
    pub table: String,
    pub seed: Pred,
    pub base: Option<Pred>,
    pub consent: Option<Pred>,
    pub reach: bool,
    pub limit: u64,
    /// The statement's today (UTC day), for recent events.
    pub today: i64,
}

pub(super) fn bind(b: &Binder<'_>, l: &Lookalike) -> QueryResult<LookalikeQuery> {
    let (schema, seed) = super::activation::bind_audience(b, &l.seed, "LOOKALIKE")?;
    let base = l
        .within
        .as_ref()
        .map(|w| bind_expr(b, &schema, w))
        .transpose()?;
    let consent =
        super::activation::consent(b, &schema, l.purpose.as_deref(), l.span, "look-alike")?;
    let limit = match (l.reach, l.limit) {
        (true, Some(_)) => {
            return Err(b.err(
                l.span,
                "LOOKALIKE REACH gives the whole curve; LIMIT is for the list form",
            ))
        }
        (true, None) => 0,
        (false, Some(n)) if n >= 1 => n,
        (false, _) => {
            return Err(b.err(
                l.span,
                "LOOKALIKE needs LIMIT n (how many profiles), or REACH for the curve",
            ))
        }
    };
    Ok(LookalikeQuery {
        table: schema.name.clone(),
        seed,
        base,
        consent,
        reach: l.reach,
        limit,
        today: crate::engine::events::day_of(b.now),
    })
}

/// A feature: (column, value); for BOOL the value is "true" / "false".
type Feature = (usize, String);

/// Every feature of a shard with its rows.
fn features(shard: &ShardSnapshot, today: i64) -> Vec<(Feature, RoaringBitmap)> {
    let schema = shard.schema();
    let consent = schema
        .options
        .get(super::activation::CONSENT_OPTION)
        .and_then(|c| schema.column_index(c));
    // Recent events: the last RECENT_DAYS days, and only those the table's
    // retention still counts (as HAS does).
    let oldest = crate::engine::events::retention_days(&schema.options)
        .map_or(today - RECENT_DAYS + 1, |r| {
            (today - RECENT_DAYS + 1).max(crate::engine::events::oldest_kept_day(today, r))
        });
    let mut out = Vec::new();
    for (c, def) in schema.columns.iter().enumerate() {
        if def.pii || Some(c) == consent {
            continue;
        }
        match def.ty {
            ColumnType::TextSet if def.events => {
                let mut values: Vec<String> = shard
                    .values(c)
                    .into_iter()
                    .filter_map(|(t, _)| crate::engine::events::parse_tag(t))
                    .filter(|(day, _)| *day >= oldest && *day <= today)
                    .map(|(_, v)| v.to_string())
                    .collect();
                values.sort();
                values.dedup();
                for v in values {
                    let window = (Some(oldest), Some(today));
                    let rows = super::events::rows(shard, c, &v, window, 1, None);
                    out.push(((c, v), rows));
                }
            }
            ColumnType::Text | ColumnType::TextSet => {
                for (v, rows) in shard.values(c) {
                    out.push(((c, v.to_string()), rows.clone()));
                }
            }
            ColumnType::Bool => {
                for value in [true, false] {
                    if let Some(rows) = shard.bool_bitmap(c, value) {
                        out.push(((c, value.to_string()), rows));
                    }
                }
            }
            ColumnType::Int | ColumnType::Timestamp | ColumnType::Float => {}
        }
    }
    out
}

/// The seed, base and candidates of one shard.
struct Sets {
    seed: RoaringBitmap,
    base: RoaringBitmap,
    candidates: RoaringBitmap,
}

fn sets(
    shard: &ShardSnapshot,
    seed: &Resolved,
    base: Option<&Resolved>,
    consent: Option<&Resolved>,
) -> QueryResult<Sets> {
    let seed = selected(Some(seed), shard)?;
    let base = selected(base, shard)?;
    let mut candidates = &base - &seed;
    if let Some(c) = consent {
        candidates &= selected(Some(c), shard)?;
    }
    Ok(Sets {
        seed,
        base,
        candidates,
    })
}

/// Runs a LOOKALIKE.
pub fn run(snapshot: &Snapshot, q: &LookalikeQuery, _who: &Principal) -> QueryResult<Output> {
    let table = snapshot.table(&q.table)?;
    let seed = resolve_keys(&q.seed, &table);
    let base = q.base.as_ref().map(|b| resolve_keys(b, &table));
    let consent = q.consent.as_ref().map(|c| resolve_keys(c, &table));
    // 1. Counts per feature in the seed and in the base.
    let per = per_shard(&table, |shard| {
        let s = sets(shard, &seed, base.as_ref(), consent.as_ref())?;
        let counts: Vec<(Feature, u64, u64)> = features(shard, q.today)
            .into_iter()
            .map(|(f, rows)| {
                let in_seed = rows.intersection_len(&s.seed);
                let in_base = rows.intersection_len(&s.base);
                (f, in_seed, in_base)
            })
            .collect();
        Ok((s.seed.len(), s.base.len(), counts))
    })?;
    let (mut seed_size, mut base_size) = (0u64, 0u64);
    let mut counts: BTreeMap<Feature, (u64, u64)> = BTreeMap::new();
    for (s, b, shard_counts) in per {
        seed_size += s;
        base_size += b;
        for (f, in_seed, in_base) in shard_counts {
            let c = counts.entry(f).or_default();
            c.0 += in_seed;
            c.1 += in_base;
        }
    }
    if seed_size == 0 {
        return Err(QueryError::Limit(
            "the seed audience is empty: there is nothing to look like".into(),
        ));
    }
    // 2. Weights, in integer units.
    let weights: BTreeMap<Feature, i64> = counts
        .into_iter()
        .map(|(f, (s, b))| {
            let odds = |k: u64, n: u64| (k as f64 + 0.5) / ((n.saturating_sub(k)) as f64 + 0.5);
            let w = odds(s, seed_size).ln() - odds(b, base_size).ln();
            (f, (w * UNITS).round() as i64)
        })
        .filter(|(_, w)| *w != 0)
        .collect();
    // 3. Scores of the candidates, per shard: (score, row), best first.
    let keep = if q.reach {
        usize::MAX
    } else {
        q.limit as usize
    };
    let scored = per_shard(&table, |shard| {
        let s = sets(shard, &seed, base.as_ref(), consent.as_ref())?;
        let first = shard.first_row();
        let span = s.candidates.max().map_or(0, |m| (m - first) as usize + 1);
        let mut score = vec![0i64; span];
        for (f, rows) in features(shard, q.today) {
            let Some(w) = weights.get(&f) else { continue };
            for row in rows & &s.candidates {
                score[(row - first) as usize] += w;
            }
        }
        let mut out: Vec<(i64, u32)> = s
            .candidates
            .iter()
            .map(|r| (score[(r - first) as usize], r))
            .collect();
        out.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        out.truncate(keep);
        Ok(out)
    })?;
    let mut all: Vec<(i64, u32)> = scored.into_iter().flatten().collect();
    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    if q.reach {
        return Ok(reach_curve(&all));
    }
    all.truncate(keep);
    let mut rows = Vec::with_capacity(all.len());
    for (score, row) in all {
        let id = table.row(row)?.map(|r| r.id).unwrap_or_default();
        rows.push(vec![Value::Text(id), Value::Float(score as f64 / UNITS)]);
    }
    Ok(Output::Rows(Rows::from_vec(
        vec![
            OutColumn {
                name: table.schema().key_column.clone(),
                ty: ColumnType::Text,
            },
            OutColumn {
                name: "score".into(),
                ty: ColumnType::Float,
            },
        ],
        rows,
    )))
}

/// The audience size at each similarity level: level p % keeps the
/// candidates scoring at least min + (max − min) × p / 100.
fn reach_curve(sorted_desc: &[(i64, u32)]) -> Output {
    let columns = vec![
        OutColumn {
            name: "similarity".into(),
            ty: ColumnType::Int,
        },
        OutColumn {
            name: "min_score".into(),
            ty: ColumnType::Float,
        },
        OutColumn {
            name: "reach".into(),
            ty: ColumnType::Int,
        },
    ];
    let (Some(max), Some(min)) = (sorted_desc.first(), sorted_desc.last()) else {
        return Output::Rows(Rows::from_vec(columns, Vec::new()));
    };
    let (max, min) = (i128::from(max.0), i128::from(min.0));
    let rows = (0..=REACH_STEPS)
        .rev()
        .map(|step| {
            let percent = step * 100 / REACH_STEPS;
            let threshold = min + (max - min) * i128::from(percent) / 100;
            let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
            let reach = sorted_desc.partition_point(|(s, _)| *s >= threshold);
            vec![
                Value::Int(percent as i64),
                Value::Float(threshold as f64 / UNITS),
                Value::Int(reach as i64),
            ]
        })
        .collect();
    Output::Rows(Rows::from_vec(columns, rows))
}
