//! Audience analytics on a small hand-built table whose answers are worked
//! out by hand: named segments (plain, materialized, nested, cycles, drop
//! rules, durability), OVERLAP (Venn regions, pairs, MATRIX) and TOP (by
//! count, by lift, WITHIN, MIN COUNT). The randomized differential test
//! (tests/cohortql_differential.rs) covers the same statements against the
//! model on random data.

use cohortdb::query::Output;
use cohortdb::{Database, Durability, Options, Value};

fn options() -> Options {
    Options {
        durability: Durability::Off,
        background: false,
        ..Options::default()
    }
}

/// Ten profiles:
///
/// | id | country | interests         |
/// |----|---------|-------------------|
/// | u0 | NL      | tea, baking       |
/// | u1 | NL      | tea               |
/// | u2 | BE      | baking, golf      |
/// | u3 | BE      | tea, baking, golf |
/// | u4 | DE      | golf              |
/// | u5 | DE      | (none)            |
/// | u6 | NL      | baking            |
/// | u7 | (null)  | tea, golf         |
/// | u8 | NL      | tea, baking       |
/// | u9 | BE      | golf              |
const SETUP: &str = "
CREATE TABLE p (id TEXT PRIMARY KEY, country TEXT, interests SET<TEXT>);
INSERT INTO p (id, country, interests) VALUES
  ('u0', 'NL', ['tea', 'baking']), ('u1', 'NL', ['tea']), ('u2', 'BE', ['baking', 'golf']),
  ('u3', 'BE', ['tea', 'baking', 'golf']), ('u4', 'DE', ['golf']), ('u5', 'DE', []),
  ('u6', 'NL', ['baking']), ('u7', NULL, ['tea', 'golf']), ('u8', 'NL', ['tea', 'baking']),
  ('u9', 'BE', ['golf']);
";

fn open(dir: &std::path::Path) -> Database {
    Database::open(dir, options()).expect("open")
}

fn setup() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(dir.path());
    db.execute(SETUP).expect("setup");
    (dir, db)
}

/// Every output of `sql`, as rows of values (a completion is an empty list).
fn results(db: &Database, sql: &str) -> Vec<Vec<Vec<Value>>> {
    db.execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|o| match o {
            Output::Rows(rows) => rows.collect_all().expect("rows"),
            Output::Done { .. } => Vec::new(),
        })
        .collect()
}

fn rows(db: &Database, sql: &str) -> Vec<Vec<Value>> {
    let mut all = results(db, sql);
    assert_eq!(all.len(), 1, "{sql} gives one result");
    all.remove(0)
}

fn count(db: &Database, sql: &str) -> i64 {
    match rows(db, sql).as_slice() {
        [row] => match row.as_slice() {
            [Value::Int(n)] => *n,
            other => panic!("{sql}: {other:?}"),
        },
        other => panic!("{sql}: {other:?}"),
    }
}

fn error(db: &Database, sql: &str) -> String {
    match db.execute(sql) {
        Ok(o) => panic!("{sql} should fail, gave {o:?}"),
        Err(e) => e.to_string(),
    }
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}
fn i(n: i64) -> Value {
    Value::Int(n)
}
fn f(x: f64) -> Value {
    Value::Float(x)
}
fn b(x: bool) -> Value {
    Value::Bool(x)
}

#[test]
fn segments_are_saved_definitions_usable_wherever_a_predicate_is() {
    let (dir, db) = setup();
    db.execute(
        "CREATE SEGMENT tea ON p AS interests HAS 'tea';
         CREATE SEGMENT bakers ON p AS interests HAS 'baking' MATERIALIZED;
         CREATE SEGMENT dutch_tea ON p AS IN tea AND country = 'NL'",
    )
    .expect("create");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN tea"), 5);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN bakers"), 5);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN dutch_tea"), 3);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM p WHERE IN tea AND NOT IN bakers"),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM p WHERE NOT IN tea OR IN dutch_tea"
        ),
        8
    );
    // The materialized bitmap follows writes.
    db.execute("UPDATE p SET interests = interests + ['baking'] WHERE id = 'u1'; DELETE FROM p WHERE id = 'u6'")
        .expect("write");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN bakers"), 5);
    assert_eq!(
        rows(&db, "SELECT id FROM p WHERE IN bakers AND country = 'NL'"),
        vec![vec![t("u0")], vec![t("u1")], vec![t("u8")]]
    );
    assert_eq!(
        rows(&db, "SHOW SEGMENTS"),
        vec![
            vec![
                t("bakers"),
                t("p"),
                t("interests HAS 'baking'"),
                b(true),
                i(5)
            ],
            vec![
                t("dutch_tea"),
                t("p"),
                t("IN tea AND country = 'NL'"),
                b(false),
                i(3)
            ],
            vec![t("tea"), t("p"), t("interests HAS 'tea'"), b(false), i(5)],
        ]
    );
    assert_eq!(
        rows(&db, "DESCRIBE SEGMENT tea"),
        vec![vec![
            t("tea"),
            t("p"),
            t("interests HAS 'tea'"),
            b(false),
            i(5),
            t(""),
            t("dutch_tea")
        ]]
    );
    // Replacing a segment changes what uses it.
    db.execute("CREATE OR REPLACE SEGMENT tea ON p AS interests HAS 'golf'")
        .expect("replace");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN dutch_tea"), 0);
    // Durable: the definitions survive a reopen (WAL replay).
    drop(db);
    let db = open(dir.path());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN tea"), 5);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN bakers"), 5);
    db.checkpoint().expect("checkpoint");
    drop(db);
    let db = open(dir.path());
    assert_eq!(rows(&db, "SHOW SEGMENTS").len(), 3);
}

#[test]
fn segment_errors_are_clear_and_change_nothing() {
    let (_dir, db) = setup();
    db.execute(
        "CREATE SEGMENT a ON p AS interests HAS 'tea';
         CREATE SEGMENT b ON p AS IN a AND country = 'NL'",
    )
    .expect("create");
    let e = error(&db, "CREATE SEGMENT a ON p AS country = 'BE'");
    assert!(e.contains("already exists"), "{e}");
    let e = error(&db, "CREATE OR REPLACE SEGMENT a ON p AS IN b");
    assert!(e.contains("cycle") && e.contains("a -> b -> a"), "{e}");
    let e = error(&db, "CREATE SEGMENT c ON p AS IN c");
    assert!(e.contains("cycle"), "{e}");
    let e = error(&db, "DROP SEGMENT a");
    assert!(e.contains("used by b"), "{e}");
    let e = error(&db, "SELECT COUNT(*) FROM p WHERE IN nobody");
    assert!(
        e.contains("1:33") && e.contains("segment nobody does not exist"),
        "{e}"
    );
    let e = error(&db, "CREATE SEGMENT d ON p AS colour = 'red'");
    assert!(e.contains("no column colour"), "{e}");
    let e = error(&db, "CREATE SEGMENT d ON nowhere AS country = 'NL'");
    assert!(e.contains("table nowhere does not exist"), "{e}");
    let e = error(&db, "DROP SEGMENT nobody");
    assert!(e.contains("does not exist"), "{e}");
    db.execute("DROP SEGMENT IF EXISTS nobody")
        .expect("if exists");
    db.execute("CREATE TABLE q (id TEXT PRIMARY KEY, country TEXT)")
        .expect("q");
    let e = error(&db, "SELECT COUNT(*) FROM q WHERE IN a");
    assert!(e.contains("segment a is on table p, not q"), "{e}");
    // Nothing above changed the catalog; dropping in order works.
    assert_eq!(rows(&db, "SHOW SEGMENTS").len(), 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM p WHERE IN a"), 5);
    db.execute("DROP SEGMENT b; DROP SEGMENT a").expect("drop");
    assert!(rows(&db, "SHOW SEGMENTS").is_empty());
    // Dropping a table drops its segments.
    db.execute("CREATE SEGMENT nl ON p AS country = 'NL'; DROP TABLE p")
        .expect("drop table");
    assert!(rows(&db, "SHOW SEGMENTS").is_empty());
}

#[test]
fn overlap_gives_every_venn_region_and_every_pair() {
    let (_dir, db) = setup();
    db.execute("CREATE SEGMENT tea ON p AS interests HAS 'tea'")
        .expect("segment");
    let out = results(
        &db,
        "OVERLAP tea, (interests HAS 'baking') AS baking, (interests HAS 'golf') AS golf",
    );
    assert_eq!(out.len(), 2, "regions, then pairs");
    // tea only: u1; baking only: u6; golf only: u4, u9; tea+baking: u0, u8;
    // tea+golf: u7; baking+golf: u2; all three: u3. u5 is in none.
    assert_eq!(
        out[0],
        vec![
            vec![b(true), b(false), b(false), i(1)],
            vec![b(false), b(true), b(false), i(1)],
            vec![b(false), b(false), b(true), i(2)],
            vec![b(true), b(true), b(false), i(2)],
            vec![b(true), b(false), b(true), i(1)],
            vec![b(false), b(true), b(true), i(1)],
            vec![b(true), b(true), b(true), i(1)],
        ]
    );
    assert_eq!(
        out[1],
        vec![
            vec![
                t("tea"),
                t("baking"),
                i(5),
                i(5),
                i(3),
                f(0.6),
                f(0.6),
                f(3.0 / 7.0)
            ],
            vec![
                t("tea"),
                t("golf"),
                i(5),
                i(5),
                i(2),
                f(0.4),
                f(0.4),
                f(2.0 / 8.0)
            ],
            vec![
                t("baking"),
                t("golf"),
                i(5),
                i(5),
                i(2),
                f(0.4),
                f(0.4),
                f(2.0 / 8.0)
            ],
        ]
    );
    // A base restricts every count; a region that becomes empty disappears.
    let out = results(
        &db,
        "OVERLAP tea, (interests HAS 'golf') AS golf WHERE country = 'BE'",
    );
    assert_eq!(
        out[0],
        vec![vec![b(false), b(true), i(2)], vec![b(true), b(true), i(1)]]
    );
    // MATRIX: just the k x k table.
    assert_eq!(
        rows(
            &db,
            "OVERLAP MATRIX tea, (interests HAS 'golf') AS golf, (country = 'NL') ON p"
        ),
        vec![
            vec![t("tea"), i(5), i(2), i(3)],
            vec![t("golf"), i(2), i(5), i(0)],
            vec![t("country = 'NL'"), i(3), i(0), i(4)],
        ]
    );
    let e = error(&db, "OVERLAP (country = 'NL'), (country = 'BE')");
    assert!(e.contains("ON table"), "{e}");
    let e = error(&db, "OVERLAP tea");
    assert!(e.contains("2 to 16"), "{e}");
    let e = error(&db, "OVERLAP tea, tea");
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn top_ranks_values_by_count_or_by_lift() {
    let (_dir, db) = setup();
    // Segment: NL (u0 u1 u6 u8). Base: all 10.
    // tea: 3 of 4 in the segment, 5 of 10 in the base -> index 150.
    // baking: 3 of 4, 5 of 10 -> 150.  golf: 0 -> not listed.
    let want = |value: &str, n: i64, base: i64, index: f64| {
        vec![
            t(value),
            i(n),
            f(n as f64 / 4.0),
            i(base),
            f(base as f64 / 10.0),
            f(index),
        ]
    };
    assert_eq!(
        rows(&db, "TOP 5 interests FROM p WHERE country = 'NL' BY LIFT"),
        vec![want("baking", 3, 5, 150.0), want("tea", 3, 5, 150.0)]
    );
    // Within BE (u2 u3 u9): segment golf holders = u2 u3 u9 (all of BE).
    let r = rows(
        &db,
        "TOP 2 interests FROM p WHERE interests HAS 'tea' WITHIN country = 'BE' BY COUNT",
    );
    // Segment: u3 only. tea 1 (base 1 of 3), baking 1 (base 2), golf 1 (base 3).
    assert_eq!(
        r,
        vec![
            vec![t("baking"), i(1), f(1.0), i(2), f(2.0 / 3.0), f(150.0)],
            vec![t("golf"), i(1), f(1.0), i(3), f(1.0), f(100.0)],
        ]
    );
    let r = rows(
        &db,
        "TOP 3 interests FROM p WHERE interests HAS 'tea' WITHIN country = 'BE' BY LIFT",
    );
    assert_eq!(
        r.iter().map(|row| row[0].clone()).collect::<Vec<_>>(),
        vec![t("tea"), t("baking"), t("golf")]
    );
    // MIN COUNT drops rare values; TEXT columns work too.
    let r = rows(&db, "TOP 10 country FROM p MIN COUNT 3");
    assert_eq!(
        r.iter()
            .map(|row| (row[0].clone(), row[1].clone()))
            .collect::<Vec<_>>(),
        vec![(t("NL"), i(4)), (t("BE"), i(3))]
    );
    let e = error(&db, "TOP 3 id FROM p");
    assert!(e.contains("primary key"), "{e}");
}
