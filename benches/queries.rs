//! Criterion benches of the audience query set Q1–Q8 (../shared/bench/queries.md)
//! through `Database::execute`, in process, on the synthetic audience of
//! benches/support (the shape of gen_profiles.py).
//!
//! `COHORT_QUERY_PROFILES` (default 10,000,000) sets the size. The database is
//! built once into `target/bench-data/queries-exact-<N>` and reused by later runs.
//! Every answer is checked against a direct computation from the generated
//! profiles before anything is timed; a wrong answer aborts the bench.
//!
//! Run: `cargo bench --bench queries` (or `COHORT_QUERY_PROFILES=1000000 ...`).

#[path = "support/mod.rs"]
mod support;

/// The same allocator as the `cohortdb` binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cohortdb::query::Output;
use cohortdb::{Database, Durability, Options, Value};
use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

const A: &str = "i0003";
const B: &str = "i0007";
const C: &str = "i0001";
const Q4_TAGS: [&str; 10] = [
    "i0001", "i0002", "i0005", "i0010", "i0020", "i0050", "i0100", "i0200", "i0500", "i1000",
];
const Q5_TAGS: [&str; 3] = ["i0004", "i0008", "i0016"];

fn profiles_wanted() -> u64 {
    std::env::var("COHORT_QUERY_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

/// Expected answers, computed straight from the generated profiles.
#[derive(Default, Debug)]
struct Expected {
    q1: u64,
    q2: u64,
    q3: u64,
    q4: Vec<u64>,
    q5: Vec<u64>,
    q6: BTreeMap<String, u64>,
    q7: u64,
    q8: Vec<(String, u64)>,
}

fn expected(n: u64) -> Expected {
    let tags = support::tag_names();
    let idx = |t: &str| support::tag_index(t);
    let (a, b, c) = (idx(A), idx(B), idx(C));
    let q4: Vec<usize> = Q4_TAGS.iter().map(|t| idx(t)).collect();
    let q5: Vec<usize> = Q5_TAGS.iter().map(|t| idx(t)).collect();
    let nl = support::COUNTRIES.iter().position(|c| *c == "NL").unwrap();
    let us = support::COUNTRIES.iter().position(|c| *c == "US").unwrap();
    let mut e = Expected {
        q4: vec![0; 55],
        q5: vec![0; 8],
        ..Expected::default()
    };
    let mut co = vec![0u64; tags.len()];
    for ch in 0..support::chunks_for(n) {
        for p in support::chunk(support::SEED, ch, support::rows_in_chunk(n, ch)) {
            let (ha, hb, hc) = (p.has_tag(a), p.has_tag(b), p.has_tag(c));
            e.q1 += u64::from(ha);
            e.q2 += u64::from(ha && hb);
            e.q3 += u64::from((ha || hb) && p.country == nl && (30..=45).contains(&p.age) && !hc);
            let has: Vec<bool> = q4.iter().map(|t| p.has_tag(*t)).collect();
            let mut k = 10;
            for i in 0..10 {
                e.q4[i] += u64::from(has[i]);
                for j in i + 1..10 {
                    e.q4[k] += u64::from(has[i] && has[j]);
                    k += 1;
                }
            }
            let region = q5.iter().enumerate().fold(0, |acc, (i, t)| {
                acc | (usize::from(p.has_tag(*t)) << (2 - i))
            });
            e.q5[region] += 1;
            if ha {
                *e.q6
                    .entry(support::COUNTRIES[p.country].to_string())
                    .or_default() += 1;
                e.q7 += u64::from(p.country == us);
                for t in &p.interests {
                    co[*t as usize] += 1;
                }
            }
        }
    }
    let mut top: Vec<(String, u64)> = co
        .iter()
        .enumerate()
        .filter(|(t, n)| *t != a && **n > 0)
        .map(|(t, n)| (tags[t].clone(), *n))
        .collect();
    top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    top.truncate(10);
    e.q8 = top;
    e
}

fn open_loaded(n: u64) -> Database {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/bench-data/queries-exact-{n}"));
    let options = Options {
        durability: Durability::Off,
        ..Options::default()
    };
    if dir.exists() {
        let db = Database::open(&dir, options.clone()).expect("open bench data");
        let loaded = db
            .snapshot()
            .table("profiles")
            .map(|t| t.row_count())
            .unwrap_or(0);
        if loaded == n {
            return db;
        }
        drop(db);
        std::fs::remove_dir_all(&dir).expect("remove stale bench data");
    }
    let started = Instant::now();
    let db = Database::open(&dir, options).expect("open bench data");
    db.create_table(support::schema()).expect("create");
    for ch in 0..support::chunks_for(n) {
        let batch = support::batch(&support::chunk(
            support::SEED,
            ch,
            support::rows_in_chunk(n, ch),
        ));
        db.write("profiles", batch).expect("load");
    }
    db.checkpoint().expect("checkpoint");
    eprintln!(
        "queries bench: loaded {n} profiles in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    db
}

fn count_of(outputs: Vec<Output>) -> Vec<u64> {
    outputs
        .into_iter()
        .map(
            |o| match o.into_rows().expect("rows").first().and_then(|r| r.first()) {
                Some(Value::Int(n)) => *n as u64,
                other => panic!("not a count: {other:?}"),
            },
        )
        .collect()
}

fn sql_q3() -> String {
    format!(
        "SELECT COUNT(*) FROM profiles WHERE (interests HAS '{A}' OR interests HAS '{B}') AND country = 'NL' \
         AND age BETWEEN 30 AND 45 AND NOT interests HAS '{C}'"
    )
}

fn sql_q4() -> String {
    let mut s = String::new();
    for t in Q4_TAGS {
        s += &format!("SELECT COUNT(*) FROM profiles WHERE interests HAS '{t}';");
    }
    for (i, first) in Q4_TAGS.iter().enumerate() {
        for second in &Q4_TAGS[i + 1..] {
            s += &format!(
                "SELECT COUNT(*) FROM profiles WHERE interests HAS '{first}' AND interests HAS '{second}';"
            );
        }
    }
    s
}

fn sql_q5() -> String {
    let mut s = String::new();
    for region in 1..8 {
        let parts: Vec<String> = (0..3)
            .map(|i| {
                let has = format!("interests HAS '{}'", Q5_TAGS[i]);
                if region >> (2 - i) & 1 == 1 {
                    has
                } else {
                    format!("NOT {has}")
                }
            })
            .collect();
        s += &format!(
            "SELECT COUNT(*) FROM profiles WHERE {};",
            parts.join(" AND ")
        );
    }
    s
}

fn q6(db: &Database) -> BTreeMap<String, u64> {
    let rows = db
        .execute(&format!(
            "SELECT country, COUNT(*) FROM profiles WHERE interests HAS '{A}' GROUP BY country"
        ))
        .expect("q6")
        .remove(0)
        .into_rows()
        .expect("rows");
    rows.into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (Value::Text(c), Value::Int(n)) => (c.clone(), *n as u64),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn q7(db: &Database) -> Vec<String> {
    let out = db
        .execute(&format!(
            "SELECT id FROM profiles WHERE interests HAS '{A}' AND country = 'US'"
        ))
        .expect("q7")
        .remove(0);
    match out {
        Output::Rows(rows) => rows
            .map(|r| match r.expect("row").pop() {
                Some(Value::Text(id)) => id,
                other => panic!("{other:?}"),
            })
            .collect(),
        Output::Done { .. } => panic!("q7 returned no rows"),
    }
}

fn q8(db: &Database) -> Vec<(String, u64)> {
    let rows = db
        .execute(&format!(
            "SELECT interests, COUNT(*) FROM profiles WHERE interests HAS '{A}' GROUP BY interests ORDER BY 2 DESC, 1 LIMIT 11"
        ))
        .expect("q8")
        .remove(0)
        .into_rows()
        .expect("rows");
    rows.into_iter()
        .filter_map(|r| match (&r[0], &r[1]) {
            (Value::Text(t), Value::Int(n)) if t != A => Some((t.clone(), *n as u64)),
            _ => None,
        })
        .take(10)
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = profiles_wanted();
    let db = open_loaded(n);
    let want = expected(n);
    let q1 = format!("SELECT COUNT(*) FROM profiles WHERE interests HAS '{A}'");
    let q2 =
        format!("SELECT COUNT(*) FROM profiles WHERE interests HAS '{A}' AND interests HAS '{B}'");
    let (q3, q4, q5) = (sql_q3(), sql_q4(), sql_q5());
    // Check every answer once, loudly.
    assert_eq!(count_of(db.execute(&q1).unwrap()), vec![want.q1], "Q1");
    assert_eq!(count_of(db.execute(&q2).unwrap()), vec![want.q2], "Q2");
    assert_eq!(count_of(db.execute(&q3).unwrap()), vec![want.q3], "Q3");
    assert_eq!(count_of(db.execute(&q4).unwrap()), want.q4, "Q4");
    assert_eq!(
        count_of(db.execute(&q5).unwrap()),
        want.q5[1..].to_vec(),
        "Q5"
    );
    assert_eq!(q6(&db), want.q6, "Q6");
    assert_eq!(q7(&db).len() as u64, want.q7, "Q7");
    assert_eq!(q8(&db), want.q8, "Q8");
    eprintln!("queries bench: all answers agree with the direct computation ({n} profiles)");

    let mut g = c.benchmark_group(format!("queries_{n}"));
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.bench_function("Q1_count", |b| b.iter(|| db.execute(&q1).unwrap()));
    g.bench_function("Q2_and", |b| b.iter(|| db.execute(&q2).unwrap()));
    g.bench_function("Q3_mixed", |b| b.iter(|| db.execute(&q3).unwrap()));
    g.bench_function("Q4_matrix_55_statements", |b| {
        b.iter(|| db.execute(&q4).unwrap())
    });
    g.bench_function("Q5_venn_7_statements", |b| {
        b.iter(|| db.execute(&q5).unwrap())
    });
    g.bench_function("Q6_by_country", |b| b.iter(|| q6(&db)));
    g.bench_function("Q7_export_ids", |b| b.iter(|| q7(&db)));
    g.bench_function("Q8_top_co_interests", |b| b.iter(|| q8(&db)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
