//! `cohortdb import` end to end: the real server and the real binary, with
//! tables created and results checked through the Rust client. Covers the
//! sample CSV, NDJSON and CSV value forms (NULL, empty sets, quoting,
//! timestamps, booleans), bad rows reported by line, the `--max-errors`
//! budget and its exact counts at any batch size, invalid UTF-8, standard
//! input, setup errors (exit 2), authentication, and batches the server
//! refuses as too large (split and retried).

mod support_server;

use cohortdb::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support_server::Server;

const COLUMNS: &str = "(id TEXT PRIMARY KEY, country TEXT, gender TEXT, age INT, \
     interests SET<TEXT>, last_seen TIMESTAMP, ltv FLOAT, consent BOOL)";

/// What one run of `cohortdb import` did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn summary(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

fn import_with(addr: &str, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohortdb"));
    cmd.args(["import", "--addr", addr])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run cohortdb import");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for import");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn import(server: &Server, args: &[&str]) -> Run {
    import_with(&server.addr, args, None, &[])
}

fn create(server: &Server, table: &str) {
    server
        .client()
        .execute(&format!("CREATE TABLE {table} {COLUMNS}"))
        .expect("create table");
}

fn rows(server: &Server, sql: &str) -> Vec<Vec<Value>> {
    let mut results = server.client().execute(sql).expect(sql);
    results.pop().expect("a result").rows
}

fn count(server: &Server, table: &str) -> i64 {
    match rows(server, &format!("SELECT COUNT(*) FROM {table}"))[0][0] {
        Value::Int(n) => n,
        ref other => panic!("count is {other:?}"),
    }
}

fn ids(server: &Server, table: &str) -> Vec<String> {
    let mut ids: Vec<String> = rows(server, &format!("SELECT id FROM {table}"))
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(s) => s.clone(),
            other => panic!("id is {other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write input file");
    path
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn set(tags: &[&str]) -> Value {
    Value::Set(tags.iter().map(|t| t.to_string()).collect())
}

fn sample_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/profiles.csv")
}

#[test]
fn sample_csv_loads_every_profile_with_its_values() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let sample = sample_csv();
    let run = import(
        &server,
        &["--table", "profiles", sample.to_str().expect("utf-8 path")],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let lines: Vec<String> = std::fs::read_to_string(&sample)
        .expect("sample")
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    let n = lines.len();
    assert!(
        run.summary()
            .starts_with(&format!("imported {n} rows, rejected 0, in ")),
        "{}",
        run.stdout
    );
    assert!(run.summary().ends_with(" rows/s)"), "{}", run.stdout);
    assert_eq!(run.stderr, "", "no progress bar or messages off a terminal");
    assert_eq!(count(&server, "profiles"), n as i64);

    // Every value of every row, compared with the file.
    let got = rows(&server, "SELECT * FROM profiles");
    assert_eq!(got.len(), n);
    for (line, row) in lines.iter().zip(&got) {
        let f: Vec<&str> = line.split(',').collect();
        let tags: Vec<&str> = f[4].split('|').filter(|t| !t.is_empty()).collect();
        let expected = vec![
            text(f[0]),
            text(f[1]),
            text(f[2]),
            Value::Int(f[3].parse().expect("age")),
            set(&tags),
            Value::Timestamp(f[5].parse().expect("last_seen")),
            Value::Float(f[6].parse().expect("ltv")),
            Value::Bool(f[7] == "true"),
        ];
        assert_eq!(row, &expected, "line {line}");
    }
}

#[test]
fn ndjson_values_nulls_escapes_and_missing_keys() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = write_file(
        tmp.path(),
        "people.ndjson",
        concat!(
            r#"{"id":"n1","country":"NL","gender":"f","age":34,"interests":["baking","tea"],"last_seen":"2026-11-01T10:00:00Z","ltv":120.5,"consent":true}"#,
            "\n",
            r#"{"id":"n2","country":null,"age":null,"interests":[],"last_seen":1790000000,"ltv":7,"consent":false}"#,
            "\n",
            "   \n",
            r#"{"id":"it's \"q\" \\ back\nslash","country":"Ünïcödé ✓","interests":["a'b","c\\d","\u00e9"]}"#,
            "\r\n",
            r#"{"CONSENT":null,"Id":"n4","age":-9223372036854775808,"ltv":1e300,"last_seen":"2026-11-01"}"#,
            "\n",
        )
        .as_bytes(),
    );
    let run = import(
        &server,
        &["--table", "profiles", file.to_str().expect("path")],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.summary().starts_with("imported 4 rows, rejected 0"),
        "{}",
        run.stdout
    );
    let got = rows(&server, "SELECT * FROM profiles");
    assert_eq!(
        got,
        vec![
            vec![
                text("n1"),
                text("NL"),
                text("f"),
                Value::Int(34),
                set(&["baking", "tea"]),
                Value::Timestamp(1_793_491_200 + 10 * 3600),
                Value::Float(120.5),
                Value::Bool(true),
            ],
            vec![
                text("n2"),
                Value::Null,
                Value::Null,
                Value::Null,
                set(&[]),
                Value::Timestamp(1_790_000_000),
                Value::Float(7.0),
                Value::Bool(false),
            ],
            vec![
                text("it's \"q\" \\ back\nslash"),
                text("Ünïcödé ✓"),
                Value::Null,
                Value::Null,
                set(&["a'b", "c\\d", "é"]),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                text("n4"),
                Value::Null,
                Value::Null,
                Value::Int(i64::MIN),
                Value::Null,
                Value::Timestamp(1_793_491_200),
                Value::Float(1e300),
                Value::Null,
            ],
        ]
    );
}

#[test]
fn csv_quoting_nulls_timestamps_booleans_and_partial_columns() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = write_file(
        tmp.path(),
        "mixed.csv",
        concat!(
            "consent,ID,last_seen,interests,country,ltv,age\n",
            "1,c1,2026-11-01,a|b,\"Hello, \"\"world\"\"\",1e3,7\n",
            "FALSE,c2,,,,,\n",
            "True,c3,1790000000,\"x|y\nz\",NL,-2.5,+5\n",
            "0,c4,2026-11-01 10:00:00,|,BE,3, -12 \n",
        )
        .as_bytes(),
    );
    let run = import(
        &server,
        &["--table", "profiles", file.to_str().expect("path")],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.summary().starts_with("imported 4 rows, rejected 0"));
    let sql = "SELECT id, consent, last_seen, interests, country, ltv, age, gender FROM profiles";
    let expected = vec![
        vec![
            text("c1"),
            Value::Bool(true),
            Value::Timestamp(1_793_491_200),
            set(&["a", "b"]),
            text("Hello, \"world\""),
            Value::Float(1000.0),
            Value::Int(7),
            Value::Null,
        ],
        vec![
            text("c2"),
            Value::Bool(false),
            Value::Null,
            set(&[]),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![
            text("c3"),
            Value::Bool(true),
            Value::Timestamp(1_790_000_000),
            set(&["x", "y\nz"]),
            text("NL"),
            Value::Float(-2.5),
            Value::Int(5),
            Value::Null,
        ],
        vec![
            text("c4"),
            Value::Bool(false),
            Value::Timestamp(1_793_491_200 + 10 * 3600),
            set(&[]),
            text("BE"),
            Value::Float(3.0),
            Value::Int(-12),
            Value::Null,
        ],
    ];
    assert_eq!(rows(&server, sql), expected);

    // A file with fewer columns updates only those (INSERT is an upsert).
    let update = write_file(tmp.path(), "ages.csv", b"id,age\nc1,99\nc5,1\n");
    let run = import(
        &server,
        &["--table", "profiles", update.to_str().expect("path")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        rows(
            &server,
            "SELECT id, country, age FROM profiles WHERE id IN ('c1', 'c5')"
        ),
        vec![
            vec![text("c1"), text("Hello, \"world\""), Value::Int(99)],
            vec![text("c5"), Value::Null, Value::Int(1)],
        ]
    );
}

/// Ten data rows (lines 2..=11); line 4 has a bad age, line 8 a missing field.
const BAD_CSV: &str = "id,age,consent
r02,1,true
r03,2,false
r04,abc,true
r05,4,true
r06,5,1
r07,6,0
r08,7
r09,8,TRUE
r10,9,false
r11,10,true
";

/// One `--max-errors` setting and what it must do with [`BAD_CSV`].
#[derive(Clone, Copy)]
struct Case<'a> {
    max_errors: &'a str,
    code: i32,
    summary: &'a str,
    imported: &'a [&'a str],
    stop: Option<&'a str>,
}

#[test]
fn bad_rows_are_reported_by_line_and_max_errors_decides_exactly() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().expect("tmp");
    let file = write_file(tmp.path(), "bad.csv", BAD_CSV.as_bytes());
    let file = file.to_str().expect("path");
    let before_4 = ["r02", "r03"];
    let before_8 = ["r02", "r03", "r05", "r06", "r07"];
    let all_good = ["r02", "r03", "r05", "r06", "r07", "r09", "r10", "r11"];
    let cases = [
        Case {
            max_errors: "0",
            code: 1,
            summary: "imported 2 rows, rejected 1,",
            imported: &before_4,
            stop: Some("stopped at line 4"),
        },
        Case {
            max_errors: "1",
            code: 1,
            summary: "imported 5 rows, rejected 2,",
            imported: &before_8,
            stop: Some("stopped at line 8"),
        },
        Case {
            max_errors: "2",
            code: 0,
            summary: "imported 8 rows, rejected 2,",
            imported: &all_good,
            stop: None,
        },
    ];
    let mut table = 0;
    for batch in ["1", "3", "10000"] {
        for Case {
            max_errors,
            code,
            summary,
            imported,
            stop,
        } in cases
        {
            table += 1;
            let name = format!("t{table}");
            create(&server, &name);
            let run = import(
                &server,
                &[
                    "--table",
                    &name,
                    "--batch",
                    batch,
                    "--max-errors",
                    max_errors,
                    file,
                ],
            );
            let context = format!(
                "batch {batch} max-errors {max_errors}:\n{}{}",
                run.stdout, run.stderr
            );
            assert_eq!(run.code, code, "{context}");
            assert!(run.summary().starts_with(summary), "{context}");
            assert!(
                run.stderr
                    .contains("line 4: column age is INT, 'abc' is not an integer\n"),
                "{context}"
            );
            assert_eq!(
                run.stderr
                    .contains("line 8: expected 3 fields (as in the header), found 2\n"),
                max_errors != "0",
                "{context}"
            );
            match stop {
                Some(s) => assert!(run.stderr.contains(s), "{context}"),
                None => assert!(!run.stderr.contains("stopped"), "{context}"),
            }
            assert_eq!(ids(&server, &name), imported, "{context}");
        }
    }
}

#[test]
fn invalid_utf8_rejects_the_row_only() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = write_file(
        tmp.path(),
        "latin1.csv",
        b"id,country\nv1,NL\nv2,Espa\xf1a\nv3,BE\n",
    );
    let run = import(
        &server,
        &[
            "--table",
            "profiles",
            "--max-errors",
            "1",
            csv.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("line 3: column country is not valid UTF-8"),
        "{}",
        run.stderr
    );
    assert!(run.summary().starts_with("imported 2 rows, rejected 1,"));
    let json = write_file(
        tmp.path(),
        "latin1.ndjson",
        b"{\"id\":\"j1\"}\n{\"id\":\"j2\",\"country\":\"Espa\xf1a\"}\n{\"id\":\"j3\"}\n",
    );
    let run = import(
        &server,
        &[
            "--table",
            "profiles",
            "--max-errors",
            "1",
            json.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("line 2: the line is not valid UTF-8 (bad byte at column 27)"),
        "{}",
        run.stderr
    );
    assert_eq!(ids(&server, "profiles"), ["j1", "j3", "v1", "v3"]);
}

#[test]
fn ndjson_bad_rows_each_have_a_reason() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let tmp = tempfile::tempdir().expect("tmp");
    let lines = [
        r#"{"id":"ok1","age":1}"#,
        r#"{"id":"b2","shoe_size":44}"#,
        r#"{"id":"b3","age":"34"}"#,
        r#"{"id":"b4","age":3.5}"#,
        r#"{"id":"b5","interests":["a",3]}"#,
        r#"{"id":"b6","consent":"yes"}"#,
        r#"{"id":"b7","age":1"#,
        r#"{"country":"NL"}"#,
        r#"{"id":"","age":1}"#,
        r#"{"id":"b10","age":1,"age":2}"#,
        r#"["id","b11"]"#,
        r#"{"id":"b12","last_seen":"last week"}"#,
        r#"{"id":"b13"} trailing"#,
        r#"{"id":"ok14","interests":null}"#,
    ];
    let file = write_file(tmp.path(), "bad.jsonl", lines.join("\n").as_bytes());
    let run = import(
        &server,
        &[
            "--table",
            "profiles",
            "--max-errors",
            "100",
            file.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.summary().starts_with("imported 2 rows, rejected 12,"),
        "{}",
        run.stdout
    );
    let expected = [
        "line 2: key 'shoe_size' is not a column of table profiles",
        "line 3: column age is INT, the string '34' does not fit it",
        "line 4: column age is INT, 3.5 is not an integer",
        "line 5: column interests is SET<TEXT>, its elements must be strings, not 3",
        "line 6: column consent is BOOL, the string 'yes' does not fit it",
        "line 7: invalid JSON at column 18: EOF while parsing an object",
        "line 8: the primary key id is missing",
        "line 9: the primary key id is empty",
        "line 10: key age appears twice",
        "line 11: invalid type: sequence, expected a JSON object\n",
        "line 12: column last_seen is TIMESTAMP, 'last week' is neither whole seconds nor an ISO-8601 timestamp",
        "line 13: invalid JSON at column 14: trailing characters",
    ];
    for e in expected {
        assert!(run.stderr.contains(e), "missing {e:?} in:\n{}", run.stderr);
    }
    assert_eq!(ids(&server, "profiles"), ["ok1", "ok14"]);
}

#[test]
fn dash_reads_standard_input() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let csv = b"id,country,interests\ns1,NL,a|b\ns2,BE,\n";
    let run = import_with(&server.addr, &["--table", "profiles", "-"], Some(csv), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.summary().starts_with("imported 2 rows, rejected 0,"));
    let json = b"{\"id\":\"s3\",\"country\":\"US\"}\n";
    let run = import_with(
        &server.addr,
        &["--table", "profiles", "--format", "ndjson", "-"],
        Some(json),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.summary().starts_with("imported 1 row, rejected 0,"));
    assert_eq!(
        rows(&server, "SELECT id, country, interests FROM profiles"),
        vec![
            vec![text("s1"), text("NL"), set(&["a", "b"])],
            vec![text("s2"), text("BE"), set(&[])],
            vec![text("s3"), text("US"), Value::Null],
        ]
    );
}

#[test]
fn setup_errors_exit_2_before_importing_anything() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let tmp = tempfile::tempdir().expect("tmp");
    let path = |name: &str, bytes: &[u8]| {
        write_file(tmp.path(), name, bytes)
            .to_str()
            .expect("path")
            .to_string()
    };
    let unknown = path("unknown.csv", b"id,shoe_size\nx1,44\n");
    let no_key = path("nokey.csv", b"country\nNL\n");
    let twice = path("twice.csv", b"id,age,AGE\nx1,1,2\n");
    let empty = path("empty.csv", b"");
    let good = path("good.csv", b"id\nx1\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--table", "profiles", &unknown],
            "table profiles has no column shoe_size (its columns: id, country, gender, age, interests, last_seen, ltv, consent)",
        ),
        (
            vec!["--table", "profiles", &no_key],
            "the header must name the primary key column id",
        ),
        (vec!["--table", "profiles", &twice], "column age is named twice"),
        (vec!["--table", "profiles", &empty], "the input is empty"),
        (vec!["--table", "nosuch", &good], "cannot describe table nosuch"),
        (
            vec!["--table", "profiles", "/nonexistent/file.csv"],
            "cannot open /nonexistent/file.csv",
        ),
        (
            vec!["--table", "profiles", "--password-env", "COHORT_TEST_UNSET_VAR", &good],
            "COHORT_TEST_UNSET_VAR",
        ),
    ];
    for (args, message) in cases {
        let run = import(&server, &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{args:?}");
    }
    let run = import_with("127.0.0.1:1", &["--table", "profiles", &good], None, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot connect to 127.0.0.1:1"),
        "{}",
        run.stderr
    );
    // A bad --batch is a usage error too.
    let run = import(&server, &["--table", "profiles", "--batch", "0", &good]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(count(&server, "profiles"), 0);
}

#[test]
fn users_log_in_with_a_password_from_the_environment() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    server
        .client()
        .execute("CREATE USER loader PASSWORD 's3cret' ROLE writer; CREATE USER viewer PASSWORD 'v' ROLE analyst")
        .expect("users");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = write_file(tmp.path(), "p.csv", b"id,age\nw1,1\nw2,2\n");
    let file = file.to_str().expect("path");
    let args = [
        "--table",
        "profiles",
        "--user",
        "loader",
        "--password-env",
        "LOADER_PW",
        file,
    ];
    let run = import_with(&server.addr, &args, None, &[("LOADER_PW", "s3cret")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.summary().starts_with("imported 2 rows"));
    let run = import_with(&server.addr, &args, None, &[("LOADER_PW", "wrong")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn losing_the_server_mid_import_exits_2_and_counts_what_was_acknowledged() {
    let mut server = Server::start(&[]);
    create(&server, "profiles");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cohortdb"))
        .args([
            "import",
            "--addr",
            &server.addr,
            "--table",
            "profiles",
            "--batch",
            "2",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cohortdb import");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"id,age\nk1,1\nk2,2\nk3,3\nk4,4\n")
        .expect("write rows");
    stdin.flush().expect("flush");
    // Two full batches are sent as soon as they are read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&server, "profiles") < 4 {
        assert!(std::time::Instant::now() < deadline, "rows never arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(server.stop().success());
    stdin.write_all(b"k5,5\nk6,6\n").expect("write more rows");
    drop(stdin);
    let out = child.wait_with_output().expect("wait for import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("the import did not finish"), "{stderr}");
    assert!(
        stdout.starts_with("imported 4 rows, rejected 0,"),
        "{stdout}"
    );
}

#[test]
fn rows_over_the_batch_byte_limit_are_rejected_and_batches_cut_in_order() {
    let server = Server::start(&[]);
    create(&server, "profiles");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut csv = String::from("id,country,age\n");
    for i in 0..300 {
        let line = i + 2;
        match line {
            5 => csv.push_str("dup,FIRST,1\n"),
            101 => csv.push_str(&format!("big,{},1\n", "x".repeat(5000))),
            250 => csv.push_str("dup,LAST,2\n"),
            _ => csv.push_str(&format!("p{line},NL,{line}\n")),
        }
    }
    let file = write_file(tmp.path(), "wide.csv", csv.as_bytes());
    let run = import(
        &server,
        &[
            "--table",
            "profiles",
            "--batch-bytes",
            "4096",
            "--max-errors",
            "1",
            file.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.summary().starts_with("imported 299 rows, rejected 1,"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("line 101: the row takes 5022 bytes, more than --batch-bytes 4096"),
        "{}",
        run.stderr
    );
    assert_eq!(count(&server, "profiles"), 298, "297 p-ids and dup");
    assert_eq!(
        rows(
            &server,
            "SELECT country, age FROM profiles WHERE id = 'dup'"
        ),
        vec![vec![text("LAST"), Value::Int(2)]],
        "rows are applied in file order"
    );
}

#[test]
fn events_import_as_value_at_time_and_accumulate_per_profile() {
    let server = Server::start(&[]);
    server
        .client()
        .execute("CREATE TABLE ev (id TEXT PRIMARY KEY, visits EVENTS<TEXT>)")
        .expect("create");
    let tmp = tempfile::tempdir().expect("tmp");
    // One line per event (as a clickstream export gives them), several
    // events in one field, a bare date and epoch seconds, a value with '@',
    // and two bad rows.
    let csv = "id,visits\n\
               u1,baking@2026-11-20T10:00:00Z\n\
               u2,golf@2026-11-21|baking@2026-11-01T08:00:00Z\n\
               u1,baking@1795132800\n\
               u3,\n\
               u4,baking\n\
               u1,tea@shop@2026-11-22T00:00:00Z\n\
               u5,baking@yesterday\n";
    let file = write_file(tmp.path(), "events.csv", csv.as_bytes());
    let run = import(
        &server,
        &[
            "--table",
            "ev",
            "--max-errors",
            "5",
            file.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.summary().starts_with("imported 5 rows, rejected 2,"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("line 6: column visits is EVENTS<TEXT>, 'baking' is not value@time"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("line 8: column visits is EVENTS<TEXT>, the time 'yesterday'"),
        "{}",
        run.stderr
    );
    let visits = |id: &str| rows(&server, &format!("SELECT visits FROM ev WHERE id = '{id}'"));
    // u1's three lines added up; 1795132800 is 2026-11-20, the same day.
    assert_eq!(
        visits("u1"),
        vec![vec![set(&["2026-11-20:baking", "2026-11-22:tea@shop"])]]
    );
    assert_eq!(
        visits("u2"),
        vec![vec![set(&["2026-11-01:baking", "2026-11-21:golf"])]]
    );
    assert_eq!(visits("u3"), vec![vec![set(&[])]]);
    // NDJSON: arrays of the same "value@time" strings; they add to what is there.
    let json = "{\"id\":\"u3\",\"visits\":[\"golf@2026-11-22T09:00:00Z\"]}\n\
                {\"id\":\"u2\",\"visits\":[\"baking@2026-11-22\"]}\n\
                {\"id\":\"u6\",\"visits\":[\"golf@2026-11-22\",7]}\n\
                {\"id\":\"u7\",\"visits\":\"golf@2026-11-22\"}\n\
                {\"id\":\"u1\"}\n";
    let file = write_file(tmp.path(), "events.jsonl", json.as_bytes());
    let run = import(
        &server,
        &[
            "--table",
            "ev",
            "--max-errors",
            "5",
            file.to_str().expect("path"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.summary().starts_with("imported 3 rows, rejected 2,"),
        "{}",
        run.stdout
    );
    // A line without the column adds no events and clears none.
    assert_eq!(
        visits("u1"),
        vec![vec![set(&["2026-11-20:baking", "2026-11-22:tea@shop"])]]
    );
    assert!(
        run.stderr
            .contains("line 3: column visits is EVENTS<TEXT>, its elements must be strings, not 7"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "line 4: column visits is EVENTS<TEXT>, the string 'golf@2026-11-22' does not fit it"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        rows(
            &server,
            "SELECT COUNT(*) FROM ev WHERE visits HAS 'baking' ON AT LEAST 2 DAYS AS OF '2026-11-22T12:00:00Z'"
        ),
        vec![vec![Value::Int(1)]]
    );
    assert_eq!(
        rows(
            &server,
            "SELECT COUNT(*) FROM ev WHERE visits HAS 'golf' WITHIN 2 DAYS AS OF '2026-11-22T12:00:00Z'"
        ),
        vec![vec![Value::Int(2)]]
    );
}
