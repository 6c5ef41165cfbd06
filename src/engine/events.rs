//! Event tags and their retention.
//!
//! An `EVENTS<TEXT>` column is stored as a SET<TEXT> column whose tags are
//! events `YYYY-MM-DD:value`: the UTC day, a colon, the value
//! (docs/storage.md, "Events"). This module owns that tag format and the
//! physical side of a table's `retention_days`: [`Inner::expire_events`]
//! removes, as one ordinary logged write per table, every tag of a day that
//! has left the retention window, so the checkpoint that follows writes
//! parts without them and, once the WAL before it is dropped, no byte of
//! them is left in the directory.
//!
//! Invariants: day numbers are days since 1970-01-01 (UTC), negative
//! before; every tag of an EVENTS column parses as an event (writes are
//! checked by [`check_tag`] and [`check_rows_tags`] before they are logged).

use super::commit::Request;
use super::error::{Error, Result};
use super::value::Batch;
use super::{Inner, Snapshot};
use crate::storage::columnar::RowsView;
use std::collections::BTreeMap;

const DAY_SECONDS: i64 = 86_400;

/// Profiles changed per logged expiry write.
const EXPIRY_BATCH_OPS: usize = 10_000;

/// The table option naming how many days of events a table keeps.
pub const RETENTION_OPTION: &str = "retention_days";

/// Now, from the system clock, in seconds since the epoch.
pub fn clock_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The UTC day of an instant (seconds since the epoch).
pub fn day_of(seconds: i64) -> i64 {
    seconds.div_euclid(DAY_SECONDS)
}

/// The tag of `value` on `day`.
pub fn tag(day: i64, value: &str) -> String {
    let date = chrono::DateTime::from_timestamp(day * DAY_SECONDS, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    format!("{date}:{value}")
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times an event may have.
pub const EVENT_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// The tag of `value` at instant `seconds`, or `None` outside the years 1 to 9999.
pub fn event_tag(value: &str, seconds: i64) -> Option<String> {
    EVENT_SECONDS
        .contains(&seconds)
        .then(|| tag(day_of(seconds), value))
}

/// The day and value of an event tag (`None` for anything else).
pub fn parse_tag(tag: &str) -> Option<(i64, &str)> {
    let date = tag.get(..10)?;
    let value = tag.get(10..)?.strip_prefix(':')?;
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let midnight = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some((day_of(midnight), value))
}

/// Checks that `tag`, written to EVENTS column `column`, is an event tag.
pub fn check_tag(column: &str, tag: &str) -> Result<()> {
    match parse_tag(tag) {
        Some(_) => Ok(()),
        None => Err(Error::InvalidWrite(format!(
            "column {column} is EVENTS<TEXT>; {tag:?} is not an event (YYYY-MM-DD:value)"
        ))),
    }
}

/// Checks the tags of the EVENTS columns of a rows batch: `columns` are
/// (payload column, column name).
pub fn check_rows_tags(view: &RowsView<'_>, columns: &[(usize, String)]) -> Result<()> {
    for (c, name) in columns {
        if let Some(column) = view.columns.get(*c) {
            column.texts().try_for_each(|t| check_tag(name, t))?;
        }
    }
    Ok(())
}

/// The first day still inside a retention of `days` days when today is
/// `today`: today and the `days − 1` days before it are kept.
pub fn oldest_kept_day(today: i64, days: i64) -> i64 {
    today - days + 1
}

/// A table's retention in days, if it has one.
pub fn retention_days(options: &BTreeMap<String, String>) -> Option<i64> {
    options.get(RETENTION_OPTION)?.parse::<i64>().ok()
}

/// For every table with a retention and EVENTS columns, the removals of the
/// tags older than the retention window at `now`: (table, batch).
fn expiry_batches(snapshot: &Snapshot, now: i64) -> Result<Vec<(String, Batch)>> {
    let mut out = Vec::new();
    for schema in snapshot.tables() {
        let Some(days) = retention_days(&schema.options) else {
            continue;
        };
        let event_columns: Vec<usize> = (0..schema.columns.len())
            .filter(|&c| schema.columns[c].events)
            .collect();
        if event_columns.is_empty() {
            continue;
        }
        let oldest = oldest_kept_day(day_of(now), days);
        let table = snapshot.table(&schema.name)?;
        let mut batch = Batch::new();
        for shard in table.shards() {
            // row -> column -> expired tags the row holds
            let mut removals: BTreeMap<u32, BTreeMap<usize, Vec<String>>> = BTreeMap::new();
            for &c in &event_columns {
                for (t, rows) in shard.values(c) {
                    if parse_tag(t).is_some_and(|(day, _)| day < oldest) {
                        for row in rows {
                            let tags = removals.entry(row).or_default().entry(c).or_default();
                            tags.push(t.to_string());
                        }
                    }
                }
            }
            for (row, columns) in removals {
                let Some(id) = shard.id(row)? else {
                    continue;
                };
                let mut update = batch.update(id);
                for (c, tags) in columns {
                    update = update.remove(&schema.columns[c].name, tags);
                }
            }
        }
        if !batch.is_empty() {
            out.push((schema.name.clone(), batch));
        }
    }
    Ok(out)
}

impl Inner {
    /// Removes every event tag older than its table's retention at `now`
    /// (ordinary logged writes, so it is durable and replicated like any
    /// other); the number of profiles changed.
    pub(crate) fn expire_events(&self, now: i64) -> Result<u64> {
        let snapshot = Snapshot::new(self.state.read().clone(), self.derived.clone());
        let mut changed = 0;
        for (table, batch) in expiry_batches(&snapshot, now)? {
            // Bounded writes keep each WAL record small; expiry is
            // idempotent, so a crash between them loses nothing.
            for ops in batch.ops.chunks(EXPIRY_BATCH_OPS) {
                let batch = Batch { ops: ops.to_vec() };
                changed += batch.ops.len() as u64;
                self.submit(Request::Write {
                    table: table.clone(),
                    batch,
                })?;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_the_utc_day_and_parse_back() {
        let day = day_of(1_795_219_199); // 2026-11-20T23:59:59Z
        assert_eq!(tag(day, "baking"), "2026-11-20:baking");
        assert_eq!(parse_tag("2026-11-20:baking"), Some((day, "baking")));
        assert_eq!(parse_tag("2026-11-20:a:b"), Some((day, "a:b")));
        assert_eq!(parse_tag("1969-12-31:x"), Some((-1, "x")));
        assert_eq!(day_of(-1), -1);
        for bad in ["baking", "2026-11-20", "2026-13-01:x", "2026-11-20 x", ""] {
            assert_eq!(parse_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn retention_keeps_today_and_the_days_before() {
        assert_eq!(oldest_kept_day(100, 1), 100);
        assert_eq!(oldest_kept_day(100, 30), 71);
    }
}
