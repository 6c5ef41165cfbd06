//! `cohortdb bench`, end to end through the real binary, and the generator's
//! exactness against gen_profiles.py.
//!
//! - The fixtures in tests/fixtures/ were written by
//!   `python3 ../shared/bench/gen_profiles.py` (numpy 2.4.6): seed 42 rows
//!   0..2600, seed 42 rows 1048576..1048726 (the start of block 1; the
//!   header plus the last 150 lines of a 1,048,726-row file), seed 7 rows
//!   0..1000. The Rust generator must render the same bytes.
//! - The bench runs check their JSON answers against answers this file
//!   computes itself from the generated profiles (plain loops, not the
//!   bench's own `Expected`).

mod support_server;

use cohortdb::bench::audience::{tag_index, Block, COUNTRIES, CSV_HEADER};
use cohortdb::bench::stream::block;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support_server::Server;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn render(block: &Block, rows: std::ops::Range<usize>) -> String {
    let mut out = format!("{CSV_HEADER}\n").into_bytes();
    for i in rows {
        block.profile(i).write_csv(&mut out);
    }
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn generator_is_byte_identical_to_gen_profiles_py() {
    let b = block(2600, 42, 0).expect("generate");
    assert_eq!(render(&b, 0..2600), fixture("gen_profiles_s42_2600.csv"));
    let b = block(1000, 7, 0).expect("generate");
    assert_eq!(render(&b, 0..1000), fixture("gen_profiles_s7_1000.csv"));
    let b = block(1_048_726, 42, 1).expect("generate");
    assert_eq!(b.row0, 1_048_576);
    assert_eq!(b.len(), 150);
    assert_eq!(
        render(&b, 0..150),
        fixture("gen_profiles_s42_rows_1048576_to_1048725.csv")
    );
}

#[test]
fn emit_csv_writes_what_gen_profiles_py_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("audience.csv");
    let run = bench(
        &["--profiles", "1000", "--seed", "7", "--emit-csv"],
        Some(&out),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let written = std::fs::read_to_string(&out).expect("the CSV");
    assert_eq!(written, fixture("gen_profiles_s7_1000.csv"));
}

/// Runs `cohortdb bench ARGS [PATH]`.
fn bench(args: &[&str], path: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohortdb"));
    cmd.arg("bench").args(args);
    if let Some(p) = path {
        cmd.arg(p);
    }
    cmd.output().expect("run cohortdb bench")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Json {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    })
}

/// Q1–Q8 computed with plain loops over the profiles, as JSON in the
/// bench's (and queries.md's) answer forms.
fn independent_answers(blocks: &[Block]) -> BTreeMap<&'static str, Json> {
    let t = |name: &str| tag_index(name).expect("tag") as u16;
    let (a, b, c) = (t("i0003"), t("i0007"), t("i0001"));
    let q4_names = [
        "i0001", "i0002", "i0005", "i0010", "i0020", "i0050", "i0100", "i0200", "i0500", "i1000",
    ];
    let q5_names = ["i0004", "i0008", "i0016"];
    let country = |code: &str| COUNTRIES.iter().position(|x| *x == code).expect("code") as u8;
    let (nl, us) = (country("NL"), country("US"));
    let mut q = [0u64; 3];
    let mut q4: BTreeMap<String, u64> = BTreeMap::new();
    let mut q5: BTreeMap<String, u64> = BTreeMap::new();
    let mut q6: BTreeMap<String, u64> = BTreeMap::new();
    let mut q7: Vec<String> = Vec::new();
    let mut co: BTreeMap<u16, u64> = BTreeMap::new();
    for block in blocks {
        for p in block.profiles() {
            let has = |x: u16| p.tags.contains(&x);
            if has(a) {
                q[0] += 1;
                *q6.entry(COUNTRIES[p.country as usize].to_string())
                    .or_default() += 1;
                if p.country == us {
                    q7.push(format!("u{}", p.row));
                }
                for &x in p.tags {
                    if x != a {
                        *co.entry(x).or_default() += 1;
                    }
                }
            }
            if has(a) && has(b) {
                q[1] += 1;
            }
            if (has(a) || has(b)) && p.country == nl && (30..=45).contains(&p.age) && !has(c) {
                q[2] += 1;
            }
            for (i, x) in q4_names.iter().enumerate() {
                if !has(t(x)) {
                    continue;
                }
                *q4.entry(x.to_string()).or_default() += 1;
                for y in &q4_names[i + 1..] {
                    if has(t(y)) {
                        *q4.entry(format!("{x}&{y}")).or_default() += 1;
                    }
                }
            }
            let region: String = q5_names
                .iter()
                .map(|x| if has(t(x)) { '1' } else { '0' })
                .collect();
            if region != "000" {
                *q5.entry(region).or_default() += 1;
            }
        }
    }
    // Keys with zero counts are still keys of Q4 and Q5.
    for (i, x) in q4_names.iter().enumerate() {
        q4.entry(x.to_string()).or_default();
        for y in &q4_names[i + 1..] {
            q4.entry(format!("{x}&{y}")).or_default();
        }
    }
    for r in ["100", "010", "001", "110", "101", "011", "111"] {
        q5.entry(r.to_string()).or_default();
    }
    q7.sort();
    let mut top: Vec<(u16, u64)> = co.into_iter().collect();
    top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    top.truncate(10);
    let mut answers = BTreeMap::new();
    answers.insert("Q1", json!(q[0]));
    answers.insert("Q2", json!(q[1]));
    answers.insert("Q3", json!(q[2]));
    answers.insert("Q4", json!(q4));
    answers.insert("Q5", json!(q5));
    answers.insert("Q6", json!(q6));
    answers.insert(
        "Q7",
        json!({ "count": q7.len(), "sha1": sha1_hex(q7.join("\n").as_bytes()) }),
    );
    answers.insert(
        "Q8",
        Json::Array(
            top.iter()
                .map(|(x, n)| json!([format!("i{:04}", x + 1), n]))
                .collect(),
        ),
    );
    answers
}

/// SHA-1 through the system's `sha1sum`, independent of the bench's own.
fn sha1_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha1sum (coreutils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write to sha1sum");
    let out = child.wait_with_output().expect("sha1sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// Checks a bench JSON report: every query present once, right and equal to
/// `expected`, with timings.
fn check_queries(report: &Json, expected: &BTreeMap<&'static str, Json>, runs: usize) {
    let queries = report["queries"].as_array().expect("queries");
    let names: Vec<&str> = queries.iter().filter_map(|q| q["name"].as_str()).collect();
    assert_eq!(names, expected.keys().copied().collect::<Vec<_>>());
    for q in queries {
        let name = q["name"].as_str().expect("name");
        assert_eq!(q["ok"], json!(true), "{name}: {}", q["error"]);
        assert_eq!(q["answer"], expected[name], "{name}'s answer");
        assert_eq!(q["expected"], expected[name], "{name}'s expected answer");
        assert_eq!(q["runs_ms"].as_array().map(Vec::len), Some(runs), "{name}");
        for key in ["median_ms", "p95_ms", "max_ms"] {
            assert!(q[key].as_f64().is_some_and(|v| v >= 0.0), "{name} {key}");
        }
        // The server's own time is part of each run's round trip.
        let wall = q["runs_ms"].as_array().expect("runs_ms");
        let server = q["server_runs_ms"].as_array().expect("server_runs_ms");
        assert_eq!(server.len(), wall.len(), "{name}");
        for (w, s) in wall.iter().zip(server) {
            let (w, s) = (w.as_f64().expect("ms"), s.as_f64().expect("server ms"));
            assert!(
                s > 0.0 && s <= w,
                "{name}: server {s} ms, round trip {w} ms"
            );
        }
    }
    assert_eq!(report["ok"], json!(true));
}

#[test]
fn bench_embedded_json_answers_are_right() {
    let run = bench(
        &["--profiles", "50000", "--runs", "1", "--format", "json"],
        None,
    );
    assert!(
        run.status.success(),
        "exit {:?}: {}",
        run.status,
        stderr(&run)
    );
    let report = json_of(&run);
    assert_eq!(report["profiles"], json!(50000));
    assert_eq!(report["seed"], json!(42));
    assert_eq!(report["server"], json!("embedded"));
    let expected = independent_answers(&[block(50_000, 42, 0).expect("generate")]);
    check_queries(&report, &expected, 1);
    // A few known values pin the shape of the audience itself.
    assert!(report["queries"][0]["answer"]
        .as_u64()
        .is_some_and(|n| n > 10_000));
    assert_eq!(
        report["queries"][5]["answer"].as_object().map(|m| m.len()),
        Some(50)
    );
    let load = &report["load"];
    assert_eq!(load["loaded"], json!(true));
    assert!(load["seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert!(load["profiles_per_second"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
    // 50,000 rows: 10,000 rows per InsertRows batch.
    assert!(load["batches"]
        .as_u64()
        .is_some_and(|n| (5..=10).contains(&n)));
    for key in [
        "rss_after_bytes",
        "rss_before_bytes",
        "disk_bytes",
        "checkpoint_seconds",
    ] {
        assert!(
            load[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {}",
            load[key]
        );
    }
    let disk = load["disk_bytes_per_profile"]
        .as_f64()
        .expect("disk per profile");
    assert!(
        (10.0..1000.0).contains(&disk),
        "{disk} disk bytes per profile"
    );
    assert!(load["rss_bytes_per_profile"].as_f64().is_some());
    // The temporary data directory is gone.
    assert_eq!(report["data_dir"], Json::Null);
}

#[test]
fn bench_from_csv_checks_against_the_file() {
    let csv = fixture_path("gen_profiles_s42_2600.csv");
    let run = bench(&["--runs", "2", "--format", "json", "--csv"], Some(&csv));
    assert!(
        run.status.success(),
        "exit {:?}: {}",
        run.status,
        stderr(&run)
    );
    let report = json_of(&run);
    assert_eq!(report["profiles"], json!(2600));
    assert_eq!(report["seed"], Json::Null);
    let expected = independent_answers(&[block(2600, 42, 0).expect("generate")]);
    check_queries(&report, &expected, 2);
}

#[test]
fn bench_against_a_server_refuses_data_then_reuses_it_and_catches_wrong_answers() {
    let server = Server::start(&[]);
    let args = |extra: &[&str]| {
        let mut v = vec!["--addr", server.addr.as_str(), "--profiles", "3000"];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run_with = |extra: &[&str]| {
        let a = args(extra);
        bench(&a.iter().map(String::as_str).collect::<Vec<_>>(), None)
    };
    let blocks = [block(3000, 42, 0).expect("generate")];
    let mut expected = independent_answers(&blocks);
    expected.retain(|k, _| ["Q1", "Q6", "Q7"].contains(k));

    let first = run_with(&["--runs", "1", "--format", "json", "--queries", "q7,Q1,Q6"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let report = json_of(&first);
    check_queries(&report, &expected, 1);
    assert_eq!(report["server"], json!(server.addr));
    assert_eq!(report["load"]["rss_bytes_per_profile"], Json::Null);
    assert_eq!(report["load"]["disk_bytes"], Json::Null);

    // The table now holds the profiles: loading again is refused...
    let again = run_with(&["--runs", "1"]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already holds 3000 profiles"),
        "{}",
        stderr(&again)
    );
    // ...unless reused, and then the table form says so.
    let reused = run_with(&["--runs", "1", "--reuse", "--queries", "Q1,Q6,Q7"]);
    assert!(reused.status.success(), "{}", stderr(&reused));
    let table = String::from_utf8_lossy(&reused.stdout);
    assert!(table.contains("skipped (--reuse"), "{table}");
    assert!(table.contains("n/a (remote)"), "{table}");
    assert!(table.contains("all 3 answers match"), "{table}");

    // A changed profile makes the answers wrong, and the bench says which:
    // give i0003 to the first profile without it.
    let a = tag_index("i0003").expect("tag") as u16;
    let p = blocks[0]
        .profiles()
        .find(|p| !p.tags.contains(&a))
        .expect("a profile without i0003");
    let mut client = server.client();
    client
        .execute(&format!(
            "INSERT INTO profiles (id, interests) VALUES ('u{}', ['i0003'])",
            p.row
        ))
        .expect("change a profile");
    let wrong = run_with(&["--runs", "1", "--reuse", "--queries", "Q1"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("WRONG"));
    let q1 = expected["Q1"].as_u64().expect("Q1");
    assert!(
        stderr(&wrong).contains(&format!(
            "Q1 failed at 3000 profiles: wrong answer (run 0): expected {q1}, got {}",
            q1 + 1
        )),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn bench_keeps_a_named_data_dir_and_reuses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let run = bench(
        &[
            "--profiles",
            "2000",
            "--runs",
            "1",
            "--queries",
            "Q2",
            "--format",
            "json",
            "--data-dir",
        ],
        Some(&data),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let report = json_of(&run);
    assert_eq!(report["data_dir"], json!(data.display().to_string()));
    let files = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
    assert!(
        files > 0,
        "the data directory was kept and holds the database"
    );
    let reuse = bench(
        &[
            "--profiles",
            "2000",
            "--runs",
            "1",
            "--queries",
            "Q2",
            "--format",
            "json",
            "--reuse",
            "--data-dir",
        ],
        Some(&data),
    );
    assert!(reuse.status.success(), "{}", stderr(&reuse));
    let report = json_of(&reuse);
    assert_eq!(report["load"]["loaded"], json!(false));
    assert_eq!(report["ok"], json!(true));
    // A different size does not match what the directory holds.
    let other = bench(
        &["--profiles", "2001", "--runs", "1", "--reuse", "--data-dir"],
        Some(&data),
    );
    assert_eq!(other.status.code(), Some(2));
    assert!(
        stderr(&other).contains("already holds 2000 profiles"),
        "{}",
        stderr(&other)
    );
}

#[test]
fn bench_scale_grows_the_table_and_plots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("scale.svg");
    let run = bench(
        &[
            "--scale",
            "3000,1000",
            "--runs",
            "1",
            "--format",
            "json",
            "--plot",
        ],
        Some(&svg),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let report = json_of(&run);
    assert_eq!(report["ok"], json!(true));
    let stages = report["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 2);
    let all = block(3000, 42, 0).expect("generate");
    for (stage, rows) in stages.iter().zip([1000usize, 3000]) {
        assert_eq!(stage["profiles"], json!(rows));
        assert_eq!(stage["load"]["profiles_loaded"], json!(rows.min(2000)));
        check_queries(stage, &independent_answers(&[all.slice(0, rows)]), 1);
    }
    assert!(stages[0]["load"]["disk_bytes"]
        .as_u64()
        .is_some_and(|b| b > 0));
    let svg = std::fs::read_to_string(&svg).expect("the plot");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 8);
    let reuse = bench(&["--scale", "10,20", "--reuse"], None);
    assert_eq!(reuse.status.code(), Some(2));
}

#[test]
fn bench_help_and_usage_errors() {
    let help = bench(&["--help"], None);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--profiles",
        "--seed",
        "--csv",
        "--addr",
        "--user",
        "--password-env",
        "--data-dir",
        "--reuse",
        "--runs",
        "--queries",
        "--format",
        "--batch",
        "--batch-bytes",
        "--threads",
        "--emit-csv",
        "--scale",
        "--plot",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
    let bad = bench(&["--queries", "Q1,Q9"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("unknown query 'Q9'"),
        "{}",
        stderr(&bad)
    );
    let both = bench(&["--addr", "127.0.0.1:1", "--data-dir", "x"], None);
    assert_eq!(both.status.code(), Some(2));
    let nothing = bench(&["--addr", "127.0.0.1:1", "--profiles", "10"], None);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(
        stderr(&nothing).contains("cannot connect"),
        "{}",
        stderr(&nothing)
    );
    let missing = bench(&["--csv", "/nonexistent/profiles.csv"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("/nonexistent/profiles.csv"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn bench_load_runs_every_kind_of_operation_without_errors() {
    let out = bench(
        &[
            "load",
            "--profiles",
            "3000",
            "--connections",
            "4",
            "--duration",
            "2s",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 connections"), "{stdout}");
    assert!(stdout.contains(", 0 errors"), "{stdout}");
    for kind in [
        "insert (new profile)",
        "upsert (existing profile)",
        "segment count",
        "overlap of 3",
        "top 5 by lift",
        "export (<= 1000 ids)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} line in {stdout}"));
        let ops: u64 = line[kind.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(ops > 0, "{line}");
    }
    let usage = bench(&["load", "--duration", "soon"], None);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("is not a duration"));
}
