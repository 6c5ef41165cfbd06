//! Privacy through the real server (issue 7): what each role may run and
//! see, PII invisible to analysts everywhere (results, conditions,
//! DESCRIBE, errors), and counts below `min_audience` suppressed in every
//! result kind an analyst can get. Users come from an `--auth` file:
//! ann (admin), wendy (writer), ada (analyst).

mod support_server;

use cohortdb::client::{Client, ClientError};
use cohortdb::protocol::message::ColumnInfo;
use cohortdb::storage::columnar::RowsEncoder;
use cohortdb::{ColumnType, Value};
use support_server::Server;

const PERMISSION_DENIED: u16 = 1004;

/// Twelve profiles; `min_audience = 3`.
///
/// | id  | country | age | interests  |
/// |-----|---------|-----|------------|
/// | u01 | NL | 30 | tea          |
/// | u02 | NL | 31 | tea          |
/// | u03 | NL | 32 | tea, yoga    |
/// | u04 | NL | 40 | yoga         |
/// | u05 | NL | 41 |              |
/// | u06 | NL | 42 | chess        |
/// | u07 | BE | 30 | tea          |
/// | u08 | BE | 35 | tea, yoga    |
/// | u09 | BE | 36 | yoga         |
/// | u10 | BE | 50 | chess        |
/// | u11 | LU | 60 | chess        |
/// | u12 | LU | 61 | chess, yoga  |
const SETUP: &str = "
CREATE TABLE p (id TEXT PRIMARY KEY, country TEXT, age INT, interests SET<TEXT>, email TEXT PII)
  WITH (min_audience = 3);
INSERT INTO p (id, country, age, interests, email) VALUES
  ('u01', 'NL', 30, ['tea'], 'one@example.com'), ('u02', 'NL', 31, ['tea'], 'two@example.com'),
  ('u03', 'NL', 32, ['tea', 'yoga'], 'three@example.com'), ('u04', 'NL', 40, ['yoga'], 'four@example.com'),
  ('u05', 'NL', 41, [], 'five@example.com'), ('u06', 'NL', 42, ['chess'], 'six@example.com'),
  ('u07', 'BE', 30, ['tea'], 'seven@example.com'), ('u08', 'BE', 35, ['tea', 'yoga'], 'eight@example.com'),
  ('u09', 'BE', 36, ['yoga'], 'nine@example.com'), ('u10', 'BE', 50, ['chess'], 'ten@example.com'),
  ('u11', 'LU', 60, ['chess'], 'eleven@example.com'), ('u12', 'LU', 61, ['chess', 'yoga'], 'twelve@example.com');
CREATE SEGMENT tea_lovers ON p AS interests HAS 'tea';
CREATE SEGMENT luxembourg ON p AS country = 'LU';
CREATE SEGMENT by_mail ON p AS email = 'one@example.com';
";

struct Setup {
    _tmp: tempfile::TempDir,
    server: Server,
}

fn start() -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let auth = tmp.path().join("users.txt");
    std::fs::write(
        &auth,
        "ann:admin:a-secret\nwendy:writer:w-secret\nada:analyst:x-secret\n",
    )
    .expect("auth file");
    let server = Server::start(&["--auth", auth.to_str().expect("path")]);
    let mut ann = server.client_as("ann", "a-secret").expect("ann");
    ann.execute(SETUP).expect("setup");
    Setup { _tmp: tmp, server }
}

fn client(s: &Setup, user: &str) -> Client {
    let password = match user {
        "ann" => "a-secret",
        "wendy" => "w-secret",
        _ => "x-secret",
    };
    s.server.client_as(user, password).expect("connect")
}

fn rows(c: &mut Client, sql: &str) -> Vec<Vec<Value>> {
    let mut results = c.execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    results.pop().expect("a result").rows
}

fn refused(c: &mut Client, sql: &str) -> (u16, String) {
    match c.execute(sql) {
        Ok(r) => panic!("{sql} should be refused, gave {r:?}"),
        Err(ClientError::Server { code, message, .. }) => (code, message),
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn each_role_runs_what_it_may_and_nothing_else() {
    let s = start();
    let mut wendy = client(&s, "wendy");
    let mut ada = client(&s, "ada");

    // The writer writes (PII columns included) and reads the catalog...
    wendy
        .execute(
            "INSERT INTO p (id, country, email) VALUES ('w1', 'NL', 'w1@example.com');
             UPDATE p SET age = 33 WHERE id = 'w1';
             DELETE FROM p WHERE id = 'w1'",
        )
        .expect("writer writes");
    let described: Vec<Value> = rows(&mut wendy, "DESCRIBE p")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(described.contains(&t("email")), "{described:?}");
    let mut batch = RowsEncoder::new(2);
    batch.text(0, "w2");
    batch.text(1, "BE");
    let columns = [
        ColumnInfo {
            name: "id".into(),
            ty: ColumnType::Text,
        },
        ColumnInfo {
            name: "country".into(),
            ty: ColumnType::Text,
        },
    ];
    assert_eq!(
        wendy
            .insert_rows("p", &columns, batch.finish())
            .expect("import"),
        1
    );
    // ...but reads nothing, manages nothing, and cannot select by PII.
    for sql in [
        "SELECT COUNT(*) FROM p",
        "SELECT id FROM p",
        "SELECT country, COUNT(*) FROM p GROUP BY country",
        "OVERLAP tea_lovers, luxembourg",
        "TOP 3 interests FROM p WHERE country = 'NL'",
        "SHOW SEGMENTS",
        "CREATE SEGMENT s ON p AS age > 3",
        "CREATE TABLE q (id TEXT PRIMARY KEY)",
        "DROP TABLE p",
        "CREATE USER eve PASSWORD 'pw' ROLE admin",
        "EXPORT tea_lovers",
        "SHOW EXPORTS",
        "LOOKALIKE REACH tea_lovers",
        "FORGET 'u01'",
    ] {
        let (code, message) = refused(&mut wendy, sql);
        assert_eq!(code, PERMISSION_DENIED, "{sql}: {message}");
        assert!(
            message.starts_with("permission denied: role writer may not"),
            "{message}"
        );
    }
    let (_, message) = refused(&mut wendy, "DELETE FROM p WHERE email = 'one@example.com'");
    assert!(message.contains("table p has no column email"), "{message}");

    // The analyst runs aggregates...
    assert_eq!(
        rows(&mut ada, "SELECT COUNT(*) FROM p WHERE interests HAS 'tea'"),
        vec![vec![t("5")]]
    );
    assert_eq!(
        rows(&mut ada, "SELECT COUNT(*) FROM p WHERE IN tea_lovers").len(),
        1
    );
    ada.execute("CREATE SEGMENT yogis ON p AS interests HAS 'yoga'")
        .expect("analyst segment");
    // ...and never a row, an id, a write or a system table.
    for sql in [
        "SELECT id FROM p",
        "SELECT country, age FROM p WHERE interests HAS 'tea'",
        "SELECT * FROM p LIMIT 1",
        "INSERT INTO p (id) VALUES ('a1')",
        "UPDATE p SET age = 1",
        "DELETE FROM p",
        "CREATE TABLE q (id TEXT PRIMARY KEY)",
        "CREATE USER eve PASSWORD 'pw' ROLE admin",
        "SELECT COUNT(*) FROM p WHERE id = 'u01'",
        "SELECT COUNT(*) FROM p WHERE id IN ('u01', 'u02', 'u03') AND age > 40",
        "EXPORT tea_lovers",
        "SHOW EXPORTS",
        "LOOKALIKE tea_lovers LIMIT 3",
        "EXPLAIN SELECT COUNT(*) FROM p WHERE country = 'LU'",
        "FORGET 'u01'",
    ] {
        let (code, message) = refused(&mut ada, sql);
        assert_eq!(code, PERMISSION_DENIED, "{sql}: {message}");
        assert!(message.starts_with("permission denied:"), "{message}");
    }
    let (code, message) = refused(&mut ada, "SELECT COUNT(*) FROM _users");
    assert_eq!(
        (code, message.as_str()),
        (1002, "1:22: table _users does not exist")
    );
    let denied = ada.insert_rows("p", &columns, {
        let mut b = RowsEncoder::new(2);
        b.text(0, "a2");
        b.text(1, "NL");
        b.finish()
    });
    assert_eq!(denied.map_err(|e| e.code()), Err(Some(PERMISSION_DENIED)));

    // The admin does everything.
    let mut ann = client(&s, "ann");
    assert_eq!(
        rows(&mut ann, "SELECT id FROM p WHERE email = 'one@example.com'"),
        vec![vec![t("u01")]]
    );
    assert_eq!(
        rows(&mut ann, "SELECT COUNT(*) FROM p"),
        vec![vec![Value::Int(13)]]
    );
}

#[test]
fn pii_does_not_exist_for_analysts() {
    let s = start();
    let mut ada = client(&s, "ada");
    // Not in DESCRIBE...
    let described: Vec<Value> = rows(&mut ada, "DESCRIBE p")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        described,
        vec![t("id"), t("country"), t("age"), t("interests")]
    );
    // ...and in every statement exactly like a column that does not exist,
    // so the error says nothing a wrong guess would not.
    for (with_pii, without) in [
        (
            "SELECT COUNT(*) FROM p WHERE email = 'one@example.com'",
            "SELECT COUNT(*) FROM p WHERE mail2 = 'one@example.com'",
        ),
        ("SELECT COUNT(email) FROM p", "SELECT COUNT(mail2) FROM p"),
        (
            "SELECT email, COUNT(*) FROM p GROUP BY email",
            "SELECT mail2, COUNT(*) FROM p GROUP BY mail2",
        ),
        (
            "TOP 3 email FROM p WHERE age > 1",
            "TOP 3 mail2 FROM p WHERE age > 1",
        ),
        (
            "OVERLAP (email = 'x'), (age > 3) ON p",
            "OVERLAP (mail2 = 'x'), (age > 3) ON p",
        ),
        (
            "CREATE SEGMENT s ON p AS email = 'x'",
            "CREATE SEGMENT s ON p AS mail2 = 'x'",
        ),
    ] {
        let (code_a, a) = refused(&mut ada, with_pii);
        let (code_b, b) = refused(&mut ada, without);
        assert_eq!(code_a, code_b, "{with_pii}");
        assert_eq!(a.replace("email", "mail2"), b, "{with_pii}");
    }
    // A segment an admin defined over PII is not usable, and neither its
    // definition nor the column shows.
    let (_, message) = refused(&mut ada, "SELECT COUNT(*) FROM p WHERE IN by_mail");
    assert!(
        !message.contains("email") && !message.contains("one@"),
        "{message}"
    );
    let shown = rows(&mut ada, "SHOW SEGMENTS");
    let by_mail = shown.iter().find(|r| r[0] == t("by_mail")).expect("listed");
    assert_eq!(by_mail[2], t("(not visible to role analyst)"));
    assert_eq!(by_mail[4], Value::Null);
    // The admin sees it all.
    let mut ann = client(&s, "ann");
    let shown = rows(&mut ann, "SHOW SEGMENTS");
    let by_mail = shown.iter().find(|r| r[0] == t("by_mail")).expect("listed");
    assert_eq!(by_mail[2], t("email = 'one@example.com'"));
}

#[test]
fn counts_below_min_audience_are_suppressed_in_every_result_kind() {
    let s = start();
    let mut ada = client(&s, "ada");
    let below = || t("< 3");
    // A count, and an aggregate over fewer than 3 profiles.
    assert_eq!(
        rows(&mut ada, "SELECT COUNT(*) FROM p"),
        vec![vec![t("12")]]
    );
    assert_eq!(
        rows(&mut ada, "SELECT COUNT(*) FROM p WHERE country = 'LU'"),
        vec![vec![below()]]
    );
    assert_eq!(
        rows(
            &mut ada,
            "SELECT AVG(age), MAX(age) FROM p WHERE country = 'LU'"
        ),
        vec![vec![below(), below()]]
    );
    assert_eq!(
        rows(&mut ada, "SELECT MIN(age) FROM p WHERE country = 'BE'"),
        vec![vec![t("30")]]
    );
    // Group buckets.
    let mut groups = rows(
        &mut ada,
        "SELECT country, COUNT(*), MAX(age) FROM p GROUP BY country",
    );
    groups.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(
        groups,
        vec![
            vec![t("BE"), t("4"), t("50")],
            vec![t("LU"), below(), below()],
            vec![t("NL"), t("6"), t("42")],
        ]
    );
    // Venn regions and pairs.
    let results = ada
        .execute("OVERLAP (interests HAS 'tea'), (interests HAS 'yoga') ON p")
        .expect("overlap");
    let regions: Vec<Vec<Value>> = results[0].rows.clone();
    assert!(
        regions.contains(&vec![Value::Bool(true), Value::Bool(false), t("3")]),
        "{regions:?}"
    );
    assert!(
        regions.contains(&vec![Value::Bool(true), Value::Bool(true), below()]),
        "{regions:?}"
    );
    assert_eq!(
        results[1].rows,
        vec![vec![
            t("interests HAS 'tea'"),
            t("interests HAS 'yoga'"),
            t("5"),
            t("5"),
            below(),
            below(),
            below(),
            below()
        ]]
    );
    let matrix = rows(
        &mut ada,
        "OVERLAP MATRIX (interests HAS 'tea'), (interests HAS 'yoga') ON p",
    );
    assert_eq!(matrix[0][1..], [t("5"), below()]);
    // TOP rows: tea is 3 of NL's 6, yoga 2, chess 1.
    assert_eq!(
        rows(&mut ada, "TOP 3 interests FROM p WHERE country = 'NL'"),
        vec![
            vec![
                t("tea"),
                t("3"),
                t("0.5"),
                t("5"),
                t("0.4166666666666667"),
                t("120")
            ],
            vec![
                t("yoga"),
                below(),
                below(),
                t("5"),
                t("0.4166666666666667"),
                below()
            ],
            vec![
                t("chess"),
                below(),
                below(),
                t("4"),
                t("0.3333333333333333"),
                below()
            ],
        ]
    );
    // Segment sizes and table sizes.
    let shown = rows(&mut ada, "SHOW SEGMENTS");
    let size = |name: &str| shown.iter().find(|r| r[0] == t(name)).expect("listed")[4].clone();
    assert_eq!(size("tea_lovers"), t("5"));
    assert_eq!(size("luxembourg"), below());
    assert_eq!(
        rows(&mut ada, "SHOW TABLES"),
        vec![vec![t("p"), Value::Int(5), t("12")]]
    );
    // The reach curve of a look-alike: the 10 candidates at 0 %, fewer above.
    let curve = rows(&mut ada, "LOOKALIKE REACH luxembourg");
    assert_eq!(curve.len(), 21);
    assert_eq!(curve[20][2], t("10"));
    assert!(curve.iter().all(|r| r[2] == below()
        || matches!(&r[2], Value::Text(n) if n.parse::<u64>().is_ok_and(|n| n >= 3))));
    // The admin sees the numbers.
    let mut ann = client(&s, "ann");
    assert_eq!(
        rows(&mut ann, "SELECT COUNT(*) FROM p WHERE country = 'LU'"),
        vec![vec![Value::Int(2)]]
    );
}
