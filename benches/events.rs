//! Behaviour over time at scale: N profiles (default 1,000,000) with 90 days
//! of events in an `EVENTS<TEXT>` column, then the frequency and recency
//! predicates of issue 6 timed through `Database::execute` (embedded, no
//! network), each answer checked against a direct count from the generator.
//!
//! ```sh
//! COHORT_EVENTS_PROFILES=10000000 cargo bench --bench events
//! ```
//!
//! Environment:
//! - `COHORT_EVENTS_PROFILES`: profiles to load (default 1,000,000; 0 skips).
//! - `COHORT_EVENTS_RUNS`: timed runs per query (default 9).
//!
//! Data (deterministic): profile `u<row>` has 0..=16 events (uniform), each
//! on one of the 90 days up to 2026-11-22 (uniform) with one of 20 values
//! `v00`..`v19`, skewed to the low numbers (the smaller of two uniform
//! draws). Queries run `AS OF '2026-11-22T12:00:00Z'`.

#[path = "support/mod.rs"]
mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cohortdb::engine::events::{day_of, tag};
use cohortdb::query::Output;
use cohortdb::{Batch, ColumnDef, Database, Durability, Options, TableSchema, Value};
use std::collections::BTreeSet;
use std::time::Instant;

const DEFAULT_PROFILES: u64 = 1_000_000;
const DAYS: u64 = 90;
const VALUES: u64 = 20;
const MAX_EVENTS: u64 = 16;
/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800;
const AS_OF: &str = "AS OF '2026-11-22T12:00:00Z'";
const CHUNK: u64 = 10_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .replace(['_', ','], "")
        .trim()
        .parse()
        .ok()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The events of profile `row`: (days ago, value index), distinct.
fn events(row: u64) -> BTreeSet<(u64, u64)> {
    let mut s = row.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED;
    let n = splitmix(&mut s) % (MAX_EVENTS + 1);
    (0..n)
        .map(|_| {
            let ago = splitmix(&mut s) % DAYS;
            let v = (splitmix(&mut s) % VALUES).min(splitmix(&mut s) % VALUES);
            (ago, v)
        })
        .collect()
}

/// A question, and how to answer it from one profile's events.
struct Question {
    name: &'static str,
    predicate: &'static str,
    holds: fn(&BTreeSet<(u64, u64)>) -> bool,
}

fn days_with(e: &BTreeSet<(u64, u64)>, value: u64, within: u64) -> usize {
    e.iter()
        .filter(|(ago, v)| *v == value && *ago < within)
        .count()
}

const QUESTIONS: &[Question] = &[
    Question {
        name: "E1 ever (90 days)",
        predicate: "visits HAS 'v03'",
        holds: |e| days_with(e, 3, DAYS) >= 1,
    },
    Question {
        name: "E2 within 30 days",
        predicate: "visits HAS 'v03' WITHIN 30 DAYS",
        holds: |e| days_with(e, 3, 30) >= 1,
    },
    Question {
        name: "E3 on >= 3 days within 30",
        predicate: "visits HAS 'v03' ON AT LEAST 3 DAYS WITHIN 30 DAYS",
        holds: |e| days_with(e, 3, 30) >= 3,
    },
    Question {
        name: "E4 on >= 2 days within 30, not within 7 of another",
        predicate: "visits HAS 'v00' ON AT LEAST 2 DAYS WITHIN 30 DAYS AND NOT visits HAS 'v01' WITHIN 7 DAYS",
        holds: |e| days_with(e, 0, 30) >= 2 && days_with(e, 1, 7) == 0,
    },
];

fn main() {
    let n = env_u64("COHORT_EVENTS_PROFILES").unwrap_or(DEFAULT_PROFILES);
    if n == 0 {
        println!("events: skipped (COHORT_EVENTS_PROFILES=0)");
        return;
    }
    let runs = env_u64("COHORT_EVENTS_RUNS").unwrap_or(9).max(1) as usize;
    if let Err(e) = run(n, runs) {
        eprintln!("events: {e}");
        std::process::exit(1);
    }
}

fn run(n: u64, runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::Builder::new()
        .prefix("cohort-events-")
        .tempdir()?;
    let db = Database::open(tmp.path(), Options::default().durability(Durability::Off))?;
    db.create_table(TableSchema {
        columns: vec![ColumnDef::events("visits")],
        ..TableSchema::new("activity", "id")
    })?;
    let today = day_of(NOW);
    let mut truth = vec![0u64; QUESTIONS.len()];
    let mut total_events = 0u64;
    let t = Instant::now();
    let chunks = n.div_ceil(CHUNK);
    for c in 0..chunks {
        let mut batch = Batch::new();
        for row in c * CHUNK..((c + 1) * CHUNK).min(n) {
            let e = events(row);
            for (q, count) in QUESTIONS.iter().zip(truth.iter_mut()) {
                *count += u64::from((q.holds)(&e));
            }
            total_events += e.len() as u64;
            let tags: Vec<String> = e
                .iter()
                .map(|(ago, v)| tag(today - *ago as i64, &format!("v{v:02}")))
                .collect();
            batch.upsert(format!("u{row}")).add("visits", tags);
        }
        db.write("activity", batch)?;
        if ((c + 1) * CHUNK).is_multiple_of(1_000_000) {
            eprintln!(
                "  loaded {:>10} profiles  {:>6.1} s",
                (c + 1) * CHUNK,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let load = t.elapsed().as_secs_f64();
    db.checkpoint()?;
    println!(
        "events: {n} profiles, {total_events} events ({:.1} per profile) over {DAYS} days, \
         {VALUES} values; loaded in {load:.1} s; resident {:.0} MiB",
        total_events as f64 / n as f64,
        support::rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0)
    );
    println!(
        "{:<52} {:>10} {:>9} {:>9} {:>9}",
        "query", "answer", "median", "p95", "max"
    );
    for (q, want) in QUESTIONS.iter().zip(&truth) {
        let sql = format!(
            "SELECT COUNT(*) FROM activity WHERE {} {AS_OF}",
            q.predicate
        );
        let mut times = Vec::with_capacity(runs);
        let mut answer = 0;
        // One untimed run first: the answer check, and warm caches.
        for i in 0..=runs {
            let t = Instant::now();
            let out = db.execute(&sql)?;
            let rows = match out.into_iter().next() {
                Some(Output::Rows(rows)) => rows.collect_all()?,
                other => return Err(format!("{sql}: unexpected {other:?}").into()),
            };
            let elapsed = t.elapsed().as_secs_f64() * 1e3;
            answer = match rows.as_slice() {
                [row] => match row.as_slice() {
                    [Value::Int(v)] => *v as u64,
                    other => return Err(format!("{sql}: {other:?}").into()),
                },
                other => return Err(format!("{sql}: {other:?}").into()),
            };
            if i > 0 {
                times.push(elapsed);
            }
        }
        if answer != *want {
            return Err(format!("{}: engine says {answer}, generator says {want}", q.name).into());
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "{:<52} {:>10} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            q.name,
            answer,
            pct(0.5),
            pct(0.95),
            times[times.len() - 1]
        );
    }
    Ok(())
}
