//! A [`BenchReport`] as an aligned text table (`--format table`) or one JSON
//! object (`--format json`); both carry the same figures.
//!
//! Definitions (docs/bench.md): median of the timed runs (mean of the two
//! middle ones for an even count); the server column is the median of the
//! server's own time per run (its Complete messages' microseconds); p95 by nearest rank (the
//! `ceil(0.95 * runs)`-th smallest, so the maximum for fewer than 20 runs);
//! per-profile memory is the growth of this process's resident set from just
//! before the first profile was sent (database open, first generated block
//! in memory) to after the load and its checkpoint, divided by the profiles.
//!
//! Invariant: rendering never fails and never changes the report.

use super::run::{BenchReport, QueryReport, Source};
use serde_json::{json, Value as Json};
use std::fmt::Write;

/// Median, p95 (nearest rank) and maximum of `ms`; `None` when empty.
pub fn summary(ms: &[f64]) -> Option<(f64, f64, f64)> {
    if ms.is_empty() {
        return None;
    }
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Some((median, v[rank - 1], v[n - 1]))
}

fn per_profile(bytes: Option<u64>, profiles: u64) -> Option<f64> {
    bytes
        .filter(|_| profiles > 0)
        .map(|b| b as f64 / profiles as f64)
}

fn rss_growth(r: &BenchReport) -> Option<u64> {
    Some(
        r.load
            .rss_after_bytes?
            .saturating_sub(r.load.rss_before_bytes?),
    )
}

fn rate(r: &BenchReport) -> Option<f64> {
    (r.load.loaded && r.load.seconds > 0.0).then(|| r.load.profiles_loaded as f64 / r.load.seconds)
}

/// The JSON object.
pub fn to_json(r: &BenchReport) -> Json {
    let embedded = r.server == "embedded";
    let queries: Vec<Json> = r.queries.iter().map(query_json).collect();
    json!({
        "profiles": r.profiles,
        "source": match &r.source {
            Source::Generated { .. } => json!("generated"),
            Source::Csv(path) => json!(path.display().to_string()),
        },
        "seed": match &r.source {
            Source::Generated { seed, .. } => json!(seed),
            Source::Csv(_) => Json::Null,
        },
        "server": r.server,
        "durability": if embedded { json!("always") } else { Json::Null },
        "data_dir": r.data_dir.as_ref().map(|d| d.display().to_string()),
        "load": {
            "loaded": r.load.loaded,
            "profiles_loaded": r.load.profiles_loaded,
            "seconds": r.load.seconds,
            "profiles_per_second": rate(r),
            "batches": r.load.batches,
            "batch_bytes": r.load.batch_bytes,
            "checkpoint_seconds": r.load.checkpoint_seconds,
            "rss_before_bytes": r.load.rss_before_bytes,
            "rss_after_bytes": r.load.rss_after_bytes,
            "rss_peak_bytes": r.load.rss_peak_bytes,
            "rss_bytes_per_profile": per_profile(rss_growth(r), r.profiles),
            "disk_bytes": r.load.disk_bytes,
            "disk_bytes_per_profile": per_profile(r.load.disk_bytes, r.profiles),
        },
        "queries": queries,
        "ok": r.ok(),
    })
}

fn query_json(q: &QueryReport) -> Json {
    let (median, p95, max) = match summary(&q.runs_ms) {
        Some((a, b, c)) => (json!(a), json!(b), json!(c)),
        None => (Json::Null, Json::Null, Json::Null),
    };
    json!({
        "name": q.query.name(),
        "title": q.query.title(),
        "statements": q.statements,
        "answer_size": q.answer.as_ref().ok().map(|a| a.size()),
        "answer": q.answer.as_ref().ok().map(|a| a.to_json()),
        "expected": q.expected.to_json(),
        "ok": q.failure.is_none(),
        "error": q.failure,
        "runs_ms": q.runs_ms,
        "median_ms": median,
        "p95_ms": p95,
        "max_ms": max,
        "server_runs_ms": q.server_ms,
        "server_median_ms": summary(&q.server_ms).map(|(m, _, _)| m),
    })
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Milliseconds with about three significant digits.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The text table.
pub fn to_table(r: &BenchReport) -> String {
    let mut s = String::new();
    let source = match &r.source {
        Source::Generated { seed, .. } => format!("generated, seed {seed}"),
        Source::Csv(path) => format!("from {}", path.display()),
    };
    let server = if r.server == "embedded" {
        match &r.data_dir {
            Some(d) => format!(
                "embedded server, data dir {}, durability always",
                d.display()
            ),
            None => "embedded server, temporary data dir, durability always".to_string(),
        }
    } else {
        format!("server at {}", r.server)
    };
    let _ = writeln!(
        s,
        "cohortdb bench: {} profiles ({source}); {server}",
        thousands(r.profiles)
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "load");
    let row = |s: &mut String, k: &str, v: String| {
        let _ = writeln!(s, "  {k:<24} {v}");
    };
    if r.load.loaded {
        if r.load.profiles_loaded != r.profiles {
            row(
                &mut s,
                "profiles loaded",
                format!(
                    "{} (the rows after the previous size)",
                    thousands(r.load.profiles_loaded)
                ),
            );
        }
        row(&mut s, "seconds", format!("{:.2}", r.load.seconds));
        row(
            &mut s,
            "profiles/s",
            rate(r).map_or("n/a".into(), |x| thousands(x.round() as u64)),
        );
        row(
            &mut s,
            "InsertRows batches",
            format!(
                "{} ({} of payload)",
                thousands(r.load.batches),
                mib(r.load.batch_bytes)
            ),
        );
    } else {
        row(
            &mut s,
            "seconds",
            "skipped (--reuse: the table already held them)".into(),
        );
    }
    if let Some(c) = r.load.checkpoint_seconds {
        row(&mut s, "checkpoint after load s", format!("{c:.2}"));
    }
    let memory = match (r.load.rss_after_bytes, rss_growth(r)) {
        (Some(after), Some(growth)) => format!(
            "{:.1} B/profile (resident {} after the load, {} before it; peak {})",
            growth as f64 / r.profiles.max(1) as f64,
            mib(after),
            mib(r.load.rss_before_bytes.unwrap_or(0)),
            mib(r.load.rss_peak_bytes.unwrap_or(0))
        ),
        _ => "n/a (remote)".into(),
    };
    row(&mut s, "resident memory", memory);
    let disk = match r.load.disk_bytes {
        Some(d) => format!(
            "{:.1} B/profile ({} after the checkpoint)",
            d as f64 / r.profiles.max(1) as f64,
            mib(d)
        ),
        None => "n/a (remote)".into(),
    };
    row(&mut s, "disk", disk);
    let _ = writeln!(s);

    let runs = r.queries.iter().map(|q| q.runs_ms.len()).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "queries (ms over {runs} timed run{} after 1 warm-up; server: the median of the server's own time)",
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "  {:<4} {:<52} {:>10} {:>10} {:>10} {:>10} {:>10}  check",
        "", "query", "answer", "median", "p95", "max", "server"
    );
    for q in &r.queries {
        let size = q
            .answer
            .as_ref()
            .map_or("-".to_string(), |a| thousands(a.size()));
        let (median, p95, max) = match summary(&q.runs_ms) {
            Some((a, b, c)) => (ms(a), ms(b), ms(c)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let server = summary(&q.server_ms).map_or("-".into(), |(m, _, _)| ms(m));
        let check = if q.failure.is_none() { "ok" } else { "WRONG" };
        let _ = writeln!(
            s,
            "  {:<4} {:<52} {:>10} {:>10} {:>10} {:>10} {:>10}  {check}",
            q.query.name(),
            q.query.title(),
            size,
            median,
            p95,
            max,
            server
        );
    }
    let _ = writeln!(s);
    let failed: Vec<&QueryReport> = r.queries.iter().filter(|q| q.failure.is_some()).collect();
    if failed.is_empty() {
        let _ = writeln!(
            s,
            "all {} answers match the direct computation from the data",
            r.queries.len()
        );
    } else {
        for q in failed {
            let _ = writeln!(
                s,
                "{}: {}",
                q.query.name(),
                q.failure.as_deref().unwrap_or("")
            );
        }
    }
    s
}

/// The JSON of a run: the report itself for one size; for several sizes
/// (`--scale`) `{"stages": [report, ...], "ok": all right}`.
pub fn run_json(reports: &[BenchReport]) -> Json {
    match reports {
        [one] => to_json(one),
        many => json!({
            "stages": many.iter().map(to_json).collect::<Vec<_>>(),
            "ok": many.iter().all(BenchReport::ok),
        }),
    }
}

/// The text of a run: each size's table, and for several sizes a summary
/// of the median ms per query and size.
pub fn run_table(reports: &[BenchReport]) -> String {
    let mut s: String = reports.iter().map(to_table).collect::<Vec<_>>().join("\n");
    if reports.len() > 1 {
        let _ = writeln!(s);
        let _ = write!(s, "median ms by size\n  {:<4}", "");
        for r in reports {
            let _ = write!(s, " {:>12}", thousands(r.profiles));
        }
        let _ = writeln!(s);
        if let Some(first) = reports.first() {
            for (i, q) in first.queries.iter().enumerate() {
                let _ = write!(s, "  {:<4}", q.query.name());
                for r in reports {
                    let cell = r
                        .queries
                        .get(i)
                        .and_then(|q| summary(&q.runs_ms))
                        .map_or("-".to_string(), |(m, _, _)| ms(m));
                    let _ = write!(s, " {cell:>12}");
                }
                let _ = writeln!(s);
            }
        }
        let _ = write!(s, "  {:<4}", "load");
        for r in reports {
            let cell = rate(r).map_or("-".to_string(), |x| {
                format!("{}/s", thousands(x.round() as u64))
            });
            let _ = write!(s, " {cell:>12}");
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[3.0]), Some((3.0, 3.0, 3.0)));
        assert_eq!(summary(&[5.0, 1.0, 4.0, 2.0, 3.0]), Some((3.0, 5.0, 5.0)));
        assert_eq!(summary(&[4.0, 1.0, 3.0, 2.0]), Some((2.5, 4.0, 4.0)));
        let v: Vec<f64> = (1..=40).map(f64::from).collect();
        assert_eq!(summary(&v), Some((20.5, 38.0, 40.0)));
    }

    #[test]
    fn digit_groups() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
    }
}
