//! `EVENTS<TEXT>` columns: behaviour with time.
//!
//! Storage: an EVENTS column is a SET<TEXT> column (flag bit 1 in the
//! schema, docs/storage.md) whose tags are events `YYYY-MM-DD:value` — the
//! UTC day, a colon, the value (format and retention in engine/events.rs).
//! Each tag has its bitmap, so the bitmap of a value on a day is a
//! dictionary lookup, and every window below is bitmap algebra over day
//! bitmaps.
//!
//! Writing: `EVENT('value', time)` or `[EVENT(...), ...]`; an INSERT adds
//! the events to the profile's (they accumulate; the same value on the same
//! day is one event), `UPDATE ... SET visits = [...]` replaces them and
//! `= NULL` clears them.
//!
//! Reading: `visits HAS 'v'` (any day), with `WITHIN n DAYS` (today of the
//! statement's now and the n − 1 days before), `SINCE t`, `BETWEEN t AND u`
//! (days of t and u included), and `ON AT LEAST k DAYS` (on k distinct days
//! of the window). The statement's now is `AS OF t`, or the clock. A table's
//! `retention_days = r` makes days before today − r + 1 not count, and no
//! day after the statement's today counts (so `AS OF` answers stay the same
//! as new events arrive).
//!
//! Invariants: day numbers are days since 1970-01-01 (UTC), negative before;
//! event times are between years 1 and 9999; a tag that is not an event (it
//! can only come from the embedded API) never matches.

use super::ast::{EventWindow, Lit, Literal, TimeRange};
use super::bind::{parse_timestamp, Binder, Pred};
use super::error::QueryResult;
use crate::engine::events::{
    day_of, oldest_kept_day, parse_tag, retention_days, tag, EVENT_SECONDS,
};
use crate::engine::{ShardSnapshot, Value, SHARD_ROWS};
use crate::storage::schema::{ColumnDef, TableSchema};
use roaring::{MultiOps, RoaringBitmap};

/// An instant written as a timestamp string, `TIMESTAMP '...'` or seconds.
pub(super) fn instant(b: &Binder<'_>, lit: &Lit) -> QueryResult<i64> {
    let seconds = match &lit.value {
        Literal::Str(s) | Literal::Timestamp(s) => parse_timestamp(s).ok_or_else(|| {
            b.err(
                lit.span,
                format!("'{s}' is not an ISO-8601 timestamp (e.g. '2026-11-01T10:00:00Z' or '2026-11-01')"),
            )
        })?,
        Literal::Int(v) => *v,
        other => {
            return Err(b.err(
                lit.span,
                format!("expected a time, {}", other.describe()),
            ))
        }
    };
    if !EVENT_SECONDS.contains(&seconds) {
        return Err(b.err(lit.span, "a time must be within the years 1 to 9999"));
    }
    Ok(seconds)
}

/// The cell value an EVENTS column gets from a literal: the set of event
/// tags, or NULL.
pub(super) fn cell(b: &Binder<'_>, def: &ColumnDef, lit: &Lit) -> QueryResult<Value> {
    match &lit.value {
        Literal::Null => Ok(Value::Null),
        Literal::Events(events) => {
            let mut tags = Vec::with_capacity(events.len());
            for (value, time) in events {
                tags.push(tag(day_of(instant(b, time)?), value));
            }
            Ok(Value::Set(tags))
        }
        other => Err(b.err(
            lit.span,
            format!(
                "column {} is EVENTS<TEXT>, {}; write EVENT('value', '2026-11-20T10:00:00Z') or a list [EVENT(...), ...]",
                def.name,
                other.describe()
            ),
        )),
    }
}

/// `col HAS 'value' [window]` on an EVENTS column.
pub(super) fn bind_has(
    b: &Binder<'_>,
    schema: &TableSchema,
    col: usize,
    def: &ColumnDef,
    value: &Lit,
    window: Option<&EventWindow>,
) -> QueryResult<Pred> {
    let Literal::Str(v) = &value.value else {
        return Err(b.err(
            value.span,
            format!(
                "column {} is EVENTS<TEXT>, {}; HAS takes the value as a string",
                def.name,
                value.value.describe()
            ),
        ));
    };
    let today = day_of(b.now);
    let (mut from_day, mut to_day) = (None, None);
    let mut min_days = 1;
    if let Some(w) = window {
        if let Some((n, span)) = w.min_days {
            if n == 0 {
                return Err(b.err(span, "ON AT LEAST takes a number of days of at least 1"));
            }
            min_days = n;
        }
        match &w.range {
            None => {}
            Some(TimeRange::WithinDays(n, span)) => {
                if *n == 0 {
                    return Err(b.err(*span, "WITHIN takes a number of days of at least 1"));
                }
                let n = i64::try_from(*n).unwrap_or(i64::MAX).min(4_000_000);
                from_day = Some(today - n + 1);
                to_day = Some(today);
            }
            Some(TimeRange::Since(t)) => from_day = Some(day_of(instant(b, t)?)),
            Some(TimeRange::Between(t, u)) => {
                from_day = Some(day_of(instant(b, t)?));
                to_day = Some(day_of(instant(b, u)?));
            }
        }
    }
    // Nothing after the statement's today counts (so AS OF is reproducible
    // while new events arrive), nor anything before its table's retention.
    to_day = Some(to_day.map_or(today, |t| t.min(today)));
    if let Some(r) = retention_days(&schema.options) {
        let oldest = oldest_kept_day(today, r);
        from_day = Some(from_day.map_or(oldest, |f| f.max(oldest)));
    }
    Ok(Pred::Events {
        col,
        value: v.clone(),
        from_day,
        to_day,
        min_days,
    })
}

/// The rows of `shard` holding `value` on at least `min_days` days of the
/// window, looking only within `within` when given.
pub fn rows(
    shard: &ShardSnapshot,
    col: usize,
    value: &str,
    (from_day, to_day): (Option<i64>, Option<i64>),
    min_days: u64,
    within: Option<&RoaringBitmap>,
) -> RoaringBitmap {
    let days: Vec<&RoaringBitmap> = shard
        .values(col)
        .into_iter()
        // The value is compared before the date is parsed: most tags are
        // other values' days.
        .filter(|(t, _)| t.len() == value.len() + 11 && t.ends_with(value))
        .filter(|(t, _)| {
            parse_tag(t).is_some_and(|(day, v)| {
                v == value && from_day.is_none_or(|f| day >= f) && to_day.is_none_or(|t| day <= t)
            })
        })
        .map(|(_, b)| b)
        .collect();
    if min_days <= 1 {
        let all = days.into_iter().union();
        return match within {
            Some(w) => all & w,
            None => all,
        };
    }
    if (days.len() as u64) < min_days {
        return RoaringBitmap::new();
    }
    match u8::try_from(min_days) {
        Ok(k) => at_least_by_counting(shard.first_row(), &days, k, within),
        Err(_) => at_least_by_bitmaps(&days, min_days, within),
    }
}

/// Rows in at least `k` of `days`: one byte of count per row of the shard,
/// so the cost is one increment per (row, day) whatever k is.
fn at_least_by_counting(
    first_row: u32,
    days: &[&RoaringBitmap],
    k: u8,
    within: Option<&RoaringBitmap>,
) -> RoaringBitmap {
    let mut counts = vec![0u8; SHARD_ROWS as usize];
    let mut reached: Vec<u32> = Vec::new();
    let mut count = |row: u32| {
        if let Some(c) = counts.get_mut(row.wrapping_sub(first_row) as usize) {
            if *c < k {
                *c += 1;
                if *c == k {
                    reached.push(row);
                }
            }
        }
    };
    for day in days {
        match within {
            Some(w) => (*day & w).iter().for_each(&mut count),
            None => day.iter().for_each(&mut count),
        }
    }
    reached.sort_unstable();
    RoaringBitmap::from_sorted_iter(reached).unwrap_or_default()
}

/// Rows in at least `k` of `days` by bitmap algebra (k of more than 255
/// days): `at_least[j]` holds the rows on more than j of the days so far.
fn at_least_by_bitmaps(
    days: &[&RoaringBitmap],
    k: u64,
    within: Option<&RoaringBitmap>,
) -> RoaringBitmap {
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let mut at_least: Vec<RoaringBitmap> = vec![RoaringBitmap::new(); k];
    for day in days {
        let day = match within {
            Some(w) => *day & w,
            None => (*day).clone(),
        };
        for j in (1..k).rev() {
            let more = &at_least[j - 1] & &day;
            at_least[j] |= more;
        }
        at_least[0] |= day;
    }
    at_least.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of counting days agree with a direct count, with and
    /// without a row restriction.
    #[test]
    fn at_least_k_days_by_counting_and_by_bitmaps_agree() {
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as u32
        };
        let first = 3 * SHARD_ROWS;
        let days: Vec<RoaringBitmap> = (0..12)
            .map(|_| (0..300).map(|_| first + next() % 2000).collect())
            .collect();
        let refs: Vec<&RoaringBitmap> = days.iter().collect();
        let within: RoaringBitmap = (0..1000).map(|_| first + next() % 2000).collect();
        for k in 1..=6u8 {
            for w in [None, Some(&within)] {
                let direct: RoaringBitmap = (first..first + 2000)
                    .filter(|r| w.is_none_or(|w| w.contains(*r)))
                    .filter(|r| days.iter().filter(|d| d.contains(*r)).count() >= usize::from(k))
                    .collect();
                assert_eq!(at_least_by_counting(first, &refs, k, w), direct, "k={k}");
                assert_eq!(at_least_by_bitmaps(&refs, u64::from(k), w), direct, "k={k}");
            }
        }
    }
}
