//! `EVENTS<TEXT>` columns on small hand-built tables whose answers are
//! worked out by hand: writing events (INSERT accumulates, UPDATE
//! replaces), every HAS window (ever, WITHIN, SINCE, BETWEEN, ON AT LEAST),
//! AS OF reproducibility while new events arrive, retention (events age out
//! of answers at once and out of every file at the next checkpoint), and
//! clear errors. The randomized differential test covers the same
//! predicates against the model on random data.

mod disk_scan;

use cohortdb::engine::events::{clock_now, day_of, tag};
use cohortdb::query::Output;
use cohortdb::{Database, Durability, Options, Value};
use disk_scan::holding;
use std::path::Path;

fn options() -> Options {
    Options {
        durability: Durability::Always,
        background: false,
        // Raw column blocks, so a byte scan of the directory can see values.
        compress_blocks: false,
        ..Options::default()
    }
}

/// Five profiles; "today" in the tests below is 2026-11-22 (AS OF).
///
/// | id | visits                                                       |
/// |----|--------------------------------------------------------------|
/// | u1 | baking 11-20, baking 11-21 (twice), golf 10-01                |
/// | u2 | baking 09-01, baking 11-22 (late evening)                     |
/// | u3 | golf 11-22, baking 11-23 (after today)                        |
/// | u4 | (none)                                                       |
/// | u5 | baking 11-01, 11-10, 11-15                                    |
const SETUP: &str = "
CREATE TABLE t (id TEXT PRIMARY KEY, country TEXT, visits EVENTS<TEXT>);
INSERT INTO t (id, country, visits) VALUES
  ('u1', 'NL', [EVENT('baking', '2026-11-20T10:00:00Z'), EVENT('baking', '2026-11-21T09:00:00Z'),
                EVENT('baking', '2026-11-21T22:00:00Z'), EVENT('golf', '2026-10-01')]),
  ('u2', 'NL', [EVENT('baking', '2026-09-01T00:00:00Z'), EVENT('baking', '2026-11-22T23:59:59Z')]),
  ('u3', 'BE', [EVENT('golf', '2026-11-22T08:00:00Z'), EVENT('baking', '2026-11-23T01:00:00Z')]),
  ('u4', 'BE', NULL),
  ('u5', 'DE', [EVENT('baking', '2026-11-01'), EVENT('baking', '2026-11-10'), EVENT('baking', '2026-11-15')]);
";

const TODAY: &str = "AS OF '2026-11-22T12:00:00Z'";

fn open(dir: &Path) -> Database {
    Database::open(dir, options()).expect("open")
}

fn setup() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(dir.path());
    db.execute(SETUP).expect("setup");
    (dir, db)
}

fn rows(db: &Database, sql: &str) -> Vec<Vec<Value>> {
    let mut outputs = db.execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(outputs.len(), 1, "{sql} gives one result");
    match outputs.remove(0) {
        Output::Rows(rows) => rows.collect_all().expect("rows"),
        Output::Done { .. } => panic!("{sql} gives no rows"),
    }
}

/// The ids matching `predicate`, sorted.
fn ids(db: &Database, predicate: &str, as_of: &str) -> Vec<String> {
    let mut ids: Vec<String> = rows(db, &format!("SELECT id FROM t WHERE {predicate} {as_of}"))
        .into_iter()
        .map(|r| match r.as_slice() {
            [Value::Text(id)] => id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

fn error(db: &Database, sql: &str) -> String {
    match db.execute(sql) {
        Ok(o) => panic!("{sql} should fail, gave {o:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_window_counts_the_right_days() {
    let (_dir, db) = setup();
    let cases: &[(&str, &[&str])] = &[
        // Ever, up to today: u3's baking is tomorrow.
        ("visits HAS 'baking'", &["u1", "u2", "u5"]),
        ("visits HAS 'golf'", &["u1", "u3"]),
        ("visits HAS 'tennis'", &[]),
        // Today and the 6 days before: 11-16 .. 11-22.
        ("visits HAS 'baking' WITHIN 7 DAYS", &["u1", "u2"]),
        ("visits HAS 'baking' WITHIN 1 DAYS", &["u2"]),
        ("visits HAS 'golf' WITHIN 60 DAYS", &["u1", "u3"]),
        ("visits HAS 'golf' WITHIN 53 DAYS", &["u1", "u3"]),
        ("visits HAS 'golf' WITHIN 52 DAYS", &["u3"]),
        (
            "visits HAS 'baking' SINCE '2026-11-10'",
            &["u1", "u2", "u5"],
        ),
        (
            "visits HAS 'baking' SINCE '2026-11-16T23:00:00Z'",
            &["u1", "u2"],
        ),
        (
            "visits HAS 'baking' BETWEEN '2026-09-01' AND '2026-11-01T23:59:59Z'",
            &["u2", "u5"],
        ),
        (
            "visits HAS 'baking' BETWEEN '2026-11-02' AND '2026-11-09'",
            &[],
        ),
        // Distinct days: u1's two events on 11-21 are one day.
        (
            "visits HAS 'baking' ON AT LEAST 2 DAYS",
            &["u1", "u2", "u5"],
        ),
        ("visits HAS 'baking' ON AT LEAST 3 DAYS", &["u5"]),
        (
            "visits HAS 'baking' ON AT LEAST 2 DAYS WITHIN 30 DAYS",
            &["u1", "u5"],
        ),
        (
            "visits HAS 'baking' ON AT LEAST 2 DAYS SINCE '2026-11-15'",
            &["u1"],
        ),
        (
            "visits HAS 'baking' ON AT LEAST 2 DAYS BETWEEN '2026-11-10' AND '2026-11-20'",
            &["u5"],
        ),
        // Composed with other predicates.
        (
            "visits HAS 'baking' WITHIN 30 DAYS AND NOT visits HAS 'golf'",
            &["u2", "u5"],
        ),
        ("visits HAS 'golf' OR country = 'DE'", &["u1", "u3", "u5"]),
        ("visits IS NULL", &["u4"]),
    ];
    for (predicate, want) in cases {
        assert_eq!(ids(&db, predicate, TODAY), *want, "{predicate}");
    }
    // A day later, u3's baking counts and the 7-day window moves.
    let tomorrow = "AS OF '2026-11-23T00:00:00Z'";
    assert_eq!(
        ids(&db, "visits HAS 'baking'", tomorrow),
        ["u1", "u2", "u3", "u5"]
    );
    assert_eq!(
        ids(&db, "visits HAS 'baking' WITHIN 2 DAYS", tomorrow),
        ["u2", "u3"]
    );
    // Counts, OVERLAP and segments take the same AS OF.
    assert_eq!(
        rows(
            &db,
            &format!("SELECT COUNT(*) FROM t WHERE visits HAS 'baking' WITHIN 7 DAYS {TODAY}")
        ),
        vec![vec![Value::Int(2)]]
    );
    db.execute("CREATE SEGMENT recent_bakers ON t AS visits HAS 'baking' WITHIN 7 DAYS")
        .expect("segment");
    assert_eq!(ids(&db, "IN recent_bakers", TODAY), ["u1", "u2"]);
    assert_eq!(ids(&db, "IN recent_bakers", tomorrow), ["u1", "u2", "u3"]);
    let matrix = rows(
        &db,
        &format!("OVERLAP MATRIX recent_bakers, (visits HAS 'golf') {TODAY}"),
    );
    assert_eq!(matrix.len(), 2, "{matrix:?}");
}

#[test]
fn inserts_add_events_and_updates_replace_them() {
    let (dir, db) = setup();
    assert_eq!(
        rows(&db, "SELECT visits FROM t WHERE id = 'u1'"),
        vec![vec![Value::Set(vec![
            "2026-10-01:golf".into(),
            "2026-11-20:baking".into(),
            "2026-11-21:baking".into()
        ])]]
    );
    // A second INSERT of u1 adds to its events; its country stays.
    db.execute("INSERT INTO t (id, visits) VALUES ('u1', EVENT('tea', '2026-11-22T08:00:00Z'))")
        .expect("insert");
    assert_eq!(ids(&db, "visits HAS 'tea'", TODAY), ["u1"]);
    assert_eq!(
        ids(&db, "visits HAS 'baking' WITHIN 7 DAYS", TODAY),
        ["u1", "u2"]
    );
    assert_eq!(ids(&db, "country = 'NL'", TODAY), ["u1", "u2"]);
    // UPDATE replaces them; NULL clears them.
    db.execute(
        "UPDATE t SET visits = [EVENT('golf', '2026-11-22')] WHERE id = 'u5';
         UPDATE t SET visits = NULL WHERE id = 'u2'",
    )
    .expect("update");
    assert_eq!(ids(&db, "visits HAS 'baking'", TODAY), ["u1"]);
    assert_eq!(
        ids(&db, "visits HAS 'golf' WITHIN 1 DAYS", TODAY),
        ["u3", "u5"]
    );
    assert_eq!(ids(&db, "visits IS NULL", TODAY), ["u2", "u4"]);
    // The column type and the events survive a checkpoint and a reopen.
    db.checkpoint().expect("checkpoint");
    drop(db);
    let db = open(dir.path());
    assert_eq!(
        rows(&db, "DESCRIBE t")
            .into_iter()
            .map(|r| r[1].clone())
            .collect::<Vec<_>>(),
        vec![
            Value::Text("TEXT".into()),
            Value::Text("TEXT".into()),
            Value::Text("EVENTS<TEXT>".into())
        ]
    );
    assert_eq!(
        ids(&db, "visits HAS 'golf' WITHIN 1 DAYS", TODAY),
        ["u3", "u5"]
    );
    assert_eq!(ids(&db, "visits HAS 'tea'", TODAY), ["u1"]);
}

#[test]
fn as_of_answers_stay_the_same_while_new_events_arrive() {
    let (_dir, db) = setup();
    let questions = [
        "visits HAS 'baking'",
        "visits HAS 'baking' WITHIN 7 DAYS",
        "visits HAS 'baking' SINCE '2026-11-01'",
        "visits HAS 'baking' ON AT LEAST 2 DAYS",
    ];
    let before: Vec<Vec<String>> = questions.iter().map(|q| ids(&db, q, TODAY)).collect();
    // Later events (today's clock, and dated after the AS OF day) and a
    // checkpoint change nothing about the answers as of that day.
    let now = tag(day_of(clock_now()), "");
    let today = now.trim_end_matches(':');
    db.execute(&format!(
        "INSERT INTO t (id, visits) VALUES ('u4', [EVENT('baking', '{today}'), EVENT('baking', '2026-11-23')]),
           ('u6', EVENT('baking', '2026-12-25')), ('u3', EVENT('baking', '2026-11-24'))"
    ))
    .expect("insert");
    db.checkpoint().expect("checkpoint");
    let after: Vec<Vec<String>> = questions.iter().map(|q| ids(&db, q, TODAY)).collect();
    assert_eq!(before, after);
    // Without AS OF, "now" is the clock and the new events count.
    assert!(ids(&db, "visits HAS 'baking'", "").contains(&"u4".to_string()));
}

#[test]
fn retention_ages_events_out_of_answers_and_out_of_every_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(dir.path());
    let day = |ago: i64| {
        tag(day_of(clock_now()) - ago, "")
            .trim_end_matches(':')
            .to_string()
    };
    db.execute(&format!(
        "CREATE TABLE t (id TEXT PRIMARY KEY, visits EVENTS<TEXT>) WITH (retention_days = 30);
         INSERT INTO t (id, visits) VALUES
           ('a', [EVENT('ancient-zebra', '{old}'), EVENT('fresh-otter', '{recent}')]),
           ('b', EVENT('ancient-zebra', '{edge_out}')),
           ('c', EVENT('ancient-zebra', '{edge_in}'))",
        old = day(100),
        recent = day(2),
        edge_out = day(30),
        edge_in = day(29),
    ))
    .expect("setup");
    // Out of answers at once: only today and the 29 days before count.
    assert_eq!(ids(&db, "visits HAS 'ancient-zebra'", ""), ["c"]);
    assert_eq!(ids(&db, "visits HAS 'fresh-otter'", ""), ["a"]);
    // The old events are on disk (in the WAL) until a checkpoint...
    let old_tag = format!("{}:ancient-zebra", day(100));
    assert!(!holding(dir.path(), &old_tag).is_empty());
    db.checkpoint().expect("checkpoint");
    // ...which removes them: no file of the directory holds them any more.
    assert_eq!(holding(dir.path(), &old_tag), Vec::<String>::new());
    let edge_tag = format!("{}:ancient-zebra", day(30));
    assert_eq!(holding(dir.path(), &edge_tag), Vec::<String>::new());
    // What is inside the window stays, on disk and in answers.
    assert!(!holding(dir.path(), &format!("{}:ancient-zebra", day(29))).is_empty());
    assert_eq!(ids(&db, "visits HAS 'ancient-zebra'", ""), ["c"]);
    assert_eq!(
        rows(&db, "SELECT visits FROM t WHERE id = 'a'"),
        vec![vec![Value::Set(vec![format!("{}:fresh-otter", day(2))])]]
    );
    // Profile b lost its only event; the profile stays, with no events.
    assert_eq!(
        ids(&db, "visits IS NULL OR NOT visits HAS 'x'", ""),
        ["a", "b", "c"]
    );
    drop(db);
    let db = open(dir.path());
    assert_eq!(ids(&db, "visits HAS 'ancient-zebra'", ""), ["c"]);
    assert_eq!(holding(dir.path(), &old_tag), Vec::<String>::new());
}

#[test]
fn event_errors_are_clear() {
    let (_dir, db) = setup();
    let cases = [
        (
            "INSERT INTO t (id, visits) VALUES ('x', 'baking')",
            "column visits is EVENTS<TEXT>",
        ),
        (
            "INSERT INTO t (id, visits) VALUES ('x', EVENT('baking', 'yesterday'))",
            "'yesterday' is not an ISO-8601 timestamp",
        ),
        (
            "INSERT INTO t (id, visits) VALUES ('x', EVENT('baking', '12026-01-01'))",
            "not an ISO-8601 timestamp",
        ),
        (
            "SELECT COUNT(*) FROM t WHERE visits HAS 'baking' WITHIN 0 DAYS",
            "at least 1",
        ),
        (
            "SELECT COUNT(*) FROM t WHERE visits HAS 'baking' ON AT LEAST 0 DAYS",
            "at least 1",
        ),
        (
            "SELECT COUNT(*) FROM t WHERE visits = 'baking'",
            "use HAS 'value'",
        ),
        (
            "SELECT COUNT(*) FROM t WHERE country HAS 'NL' WITHIN 3 DAYS",
            "apply to EVENTS<TEXT> columns",
        ),
        (
            "SELECT COUNT(*) FROM t WHERE visits HAS 'baking' AS OF 'soon'",
            "'soon' is not an ISO-8601 timestamp",
        ),
        (
            "SELECT visits, COUNT(*) FROM t GROUP BY visits",
            "GROUP BY an EVENTS<TEXT>",
        ),
        (
            "UPDATE t SET visits = visits + ['baking']",
            "INSERT adds events",
        ),
        ("TOP 3 visits FROM t WHERE country = 'NL'", "EVENTS<TEXT>"),
        (
            "CREATE TABLE e (id TEXT PRIMARY KEY, v EVENTS<INT>)",
            "only EVENTS<TEXT>",
        ),
    ];
    for (sql, want) in cases {
        let e = error(&db, sql);
        assert!(e.contains(want), "{sql}: {e}");
    }
    // The embedded API cannot write a tag that is not an event either.
    let mut batch = cohortdb::Batch::new();
    batch.upsert("u9").add("visits", ["baking"]);
    let e = db.write("t", batch).expect_err("not an event").to_string();
    assert!(
        e.contains("\"baking\" is not an event (YYYY-MM-DD:value)"),
        "{e}"
    );
    // Nothing changed.
    assert_eq!(ids(&db, "visits HAS 'baking'", TODAY), ["u1", "u2", "u5"]);
    assert_eq!(
        rows(&db, "SELECT COUNT(*) FROM t"),
        vec![vec![Value::Int(5)]]
    );
}
