//! Activation and erasure (issue 7), embedded (as admin; tests/privacy.rs
//! covers who may run them): EXPORT with and without a consent column,
//! its audit log, and FORGET proven by scanning every byte of the data
//! directory.

mod disk_scan;

use cohortdb::query::forget::id_hash;
use cohortdb::query::Output;
use cohortdb::{Database, Durability, Options, Value};
use disk_scan::holding;

fn options() -> Options {
    Options {
        durability: Durability::Always,
        background: false,
        // Raw column blocks, so a byte scan sees values if they are there.
        compress_blocks: false,
        ..Options::default()
    }
}

fn results(db: &Database, sql: &str) -> Vec<Vec<Vec<Value>>> {
    db.execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|o| match o {
            Output::Rows(r) => r.collect_all().expect("rows"),
            Output::Done { .. } => Vec::new(),
        })
        .collect()
}

fn rows(db: &Database, sql: &str) -> Vec<Vec<Value>> {
    let mut all = results(db, sql);
    assert_eq!(all.len(), 1, "{sql}");
    all.remove(0)
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

fn sorted_ids(rows: Vec<Vec<Value>>) -> Vec<String> {
    let mut ids: Vec<String> = rows
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

const CONSENTED: &str = "
CREATE TABLE c (id TEXT PRIMARY KEY, country TEXT, interests SET<TEXT>, consent SET<TEXT>, email TEXT PII)
  WITH (consent_column = 'consent');
INSERT INTO c (id, country, interests, consent, email) VALUES
  ('c1', 'NL', ['tea'], ['ads', 'analytics'], 'c1@example.com'),
  ('c2', 'NL', ['tea'], ['analytics'], 'c2@example.com'),
  ('c3', 'NL', ['golf'], [], 'c3@example.com'),
  ('c4', 'NL', ['tea'], NULL, 'c4@example.com'),
  ('c5', 'BE', ['tea'], ['ads'], 'c5@example.com'),
  ('c6', 'NL', ['golf', 'tea'], ['ads'], 'c6@example.com');
CREATE SEGMENT dutch_tea ON c AS country = 'NL' AND interests HAS 'tea';
";

#[test]
fn export_sends_exactly_the_consented_profiles_and_logs_every_export() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = Database::open(dir.path(), options()).expect("open");
    db.execute(CONSENTED).expect("setup");
    // With a consent column, a purpose is required...
    let e = error(&db, "EXPORT dutch_tea");
    assert!(e.contains("FOR PURPOSE 'purpose'"), "{e}");
    // ...and only the profiles that consented to it are exported.
    assert_eq!(
        sorted_ids(rows(&db, "EXPORT dutch_tea FOR PURPOSE 'ads'")),
        ["c1", "c6"]
    );
    assert_eq!(
        sorted_ids(rows(&db, "EXPORT dutch_tea FOR PURPOSE 'analytics'")),
        ["c1", "c2"]
    );
    assert_eq!(
        sorted_ids(rows(
            &db,
            "EXPORT (interests HAS 'tea') ON c FOR PURPOSE 'ads'"
        )),
        ["c1", "c5", "c6"]
    );
    assert_eq!(
        rows(&db, "EXPORT dutch_tea FOR PURPOSE 'email'"),
        Vec::<Vec<Value>>::new()
    );
    // Chosen columns come along; PII never does, not even for an admin.
    let with_country = rows(
        &db,
        "EXPORT (interests HAS 'golf') ON c COLUMNS (country, interests) FOR PURPOSE 'ads'",
    );
    assert_eq!(
        with_country,
        vec![vec![
            t("c6"),
            t("NL"),
            Value::Set(vec!["golf".into(), "tea".into()])
        ]]
    );
    let e = error(&db, "EXPORT dutch_tea COLUMNS (email) FOR PURPOSE 'ads'");
    assert!(
        e.contains("email is PII: EXPORT never sends PII columns"),
        "{e}"
    );
    assert_eq!(
        rows(&db, "EXPORT dutch_tea FOR PURPOSE 'ads' LIMIT 1").len(),
        1
    );
    // Every export is in the log, with who, what, why and how many.
    let log = rows(&db, "SHOW EXPORTS");
    let summary: Vec<(Value, Value, Value, Value, Value)> = log
        .iter()
        .map(|r| {
            assert!(matches!(r[0], Value::Timestamp(_)), "{r:?}");
            (
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                r[5].clone(),
            )
        })
        .collect();
    let admin = || t("embedded");
    assert_eq!(
        summary,
        vec![
            (admin(), t("c"), t("EXPORT dutch_tea FOR PURPOSE 'ads'"), t("ads"), Value::Int(2)),
            (admin(), t("c"), t("EXPORT dutch_tea FOR PURPOSE 'analytics'"), t("analytics"), Value::Int(2)),
            (admin(), t("c"), t("EXPORT (interests HAS 'tea') ON c FOR PURPOSE 'ads'"), t("ads"), Value::Int(3)),
            (admin(), t("c"), t("EXPORT dutch_tea FOR PURPOSE 'email'"), t("email"), Value::Int(0)),
            (
                admin(),
                t("c"),
                t("EXPORT (interests HAS 'golf') ON c COLUMNS (country, interests) FOR PURPOSE 'ads'"),
                t("ads"),
                Value::Int(1)
            ),
            (admin(), t("c"), t("EXPORT dutch_tea FOR PURPOSE 'ads' LIMIT 1"), t("ads"), Value::Int(1)),
        ]
    );
    // Refused exports are not logged; the log survives a reopen.
    drop(db);
    let db = Database::open(dir.path(), options()).expect("reopen");
    assert_eq!(rows(&db, "SHOW EXPORTS").len(), 6);
    // Without a consent column, the purpose is optional and only recorded.
    db.execute(
        "CREATE TABLE n (id TEXT PRIMARY KEY, country TEXT);
         INSERT INTO n (id, country) VALUES ('n1', 'NL'), ('n2', 'BE'), ('n3', 'NL')",
    )
    .expect("n");
    assert_eq!(
        sorted_ids(rows(&db, "EXPORT (country = 'NL') ON n")),
        ["n1", "n3"]
    );
    let log = rows(&db, "SHOW EXPORTS");
    assert_eq!(log.len(), 7);
    assert_eq!(
        (log[6][4].clone(), log[6][5].clone()),
        (Value::Null, Value::Int(2))
    );
}

#[test]
fn forget_leaves_no_byte_of_the_profile_in_any_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = Database::open(dir.path(), options()).expect("open");
    let id = "zz-forget-me-4711";
    let secret = "only-this-person-has-this-value";
    let tag = "rare-tag-of-this-person";
    db.execute(&format!(
        "CREATE TABLE p (id TEXT PRIMARY KEY, note TEXT, interests SET<TEXT>, visits EVENTS<TEXT>);
         CREATE TABLE q (id TEXT PRIMARY KEY, note TEXT);
         INSERT INTO p (id, note, interests) VALUES ('{id}', '{secret}', ['tea', '{tag}']),
           ('other', 'shared', ['tea']);
         INSERT INTO q (id, note) VALUES ('{id}', 'shared')"
    ))
    .expect("setup");
    // In a part file and in the WAL (an update after the checkpoint).
    db.checkpoint().expect("checkpoint");
    db.execute(&format!(
        "INSERT INTO p (id, visits) VALUES ('{id}', EVENT('secret-visit-value', '2026-11-20'))"
    ))
    .expect("update");
    for needle in [id, secret, tag, "secret-visit-value"] {
        assert!(
            !holding(dir.path(), needle).is_empty(),
            "{needle} is on disk before FORGET"
        );
    }
    let out = db.execute(&format!("FORGET '{id}'")).expect("forget");
    assert!(
        matches!(
            out.as_slice(),
            [Output::Done {
                tag: "FORGET",
                affected: 2
            }]
        ),
        "{out:?}"
    );
    // No byte of the profile is left: not its id, nor a value only it had,
    // in the parts, the WAL or anywhere else.
    for needle in [id, secret, tag, "secret-visit-value"] {
        assert_eq!(
            holding(dir.path(), needle),
            Vec::<String>::new(),
            "{needle}"
        );
    }
    // Others are untouched, and the request is on record by hash only.
    assert_eq!(
        rows(&db, "SELECT COUNT(*) FROM p WHERE interests HAS 'tea'"),
        vec![vec![Value::Int(1)]]
    );
    assert_eq!(
        rows(&db, "SELECT id_hash, user, tables FROM _forgotten"),
        vec![vec![t(&id_hash(id)), t("embedded"), Value::Int(2)]]
    );
    // Forgetting an unknown id records it too, and changes nothing else.
    let out = db
        .execute("FORGET 'never-seen' FROM p")
        .expect("forget unknown");
    assert!(
        matches!(out.as_slice(), [Output::Done { affected: 0, .. }]),
        "{out:?}"
    );
    drop(db);
    let db = Database::open(dir.path(), options()).expect("reopen");
    assert_eq!(
        rows(&db, "SELECT COUNT(*) FROM p"),
        vec![vec![Value::Int(1)]]
    );
    assert_eq!(holding(dir.path(), id), Vec::<String>::new());
}
