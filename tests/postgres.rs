//! End-to-end tests of the PostgreSQL wire protocol (docs/postgres.md):
//! the real `cohortdb serve --pg-listen` binary driven by the real clients
//! — `psql` (connect, CREATE TABLE, INSERT, COUNT, OVERLAP, `\dt`, `\d`,
//! COPY in and out, errors with their SQLSTATE and position, SCRAM and
//! cleartext authentication, analyst restrictions), psycopg 3 (the
//! extended protocol with parameters, prepared statements, COPY; a Python
//! script, tests/postgres/psycopg_check.py), node-postgres (a Node script,
//! tests/postgres/node_pg_check.js), pgjdbc (tests/postgres/JdbcCheck.java)
//! and `pgbench` (8 clients, no
//! failed transaction) — and a raw client for what no driver sends.
//!
//! `.ci/run` installs psql/pgbench (postgresql-client) and psycopg when
//! they are missing; a test whose client cannot be found says so and
//! passes without running (so `cargo test` works on a bare machine).
//! Outputs are parsed (`psql -A -t`), not just exit codes.

mod support_server;

use cohortdb::pg::codec::{Backend, Frontend, Startup, Target};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support_server::Server;

/// Whether a client program runs here; says why not when it does not.
fn have(program: &str, arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: `{program}` is not installed (.ci/run installs it: apt-get install postgresql-client / pip install \"psycopg[binary]\")");
    }
    ok
}

fn pg_server(extra: &[&str]) -> (Server, String, String) {
    let mut args = vec!["--pg-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let pg = server
        .pg_addr
        .clone()
        .expect("the ready line names the pg address");
    let (host, port) = pg.rsplit_once(':').expect("host:port");
    (server, host.to_string(), port.to_string())
}

/// Runs psql as `user` with `password`, `args` after the connection options.
fn psql(
    host: &str,
    port: &str,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut child = Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-U",
            user,
            "-d",
            "cohort",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("psql output")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// psql `-c` commands that must succeed; their output lines.
fn ok(host: &str, port: &str, user: &str, password: &str, commands: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for c in commands {
        args.push("-c");
        args.push(c);
    }
    let o = psql(host, port, user, password, &args, None);
    let (out, err) = text(&o);
    assert!(o.status.success(), "psql {commands:?} failed: {err}\n{out}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn psql_creates_loads_counts_describes_and_copies() {
    if !have("psql", "--version") {
        return;
    }
    let (_server, h, p) = pg_server(&[]);
    let (h, p) = (h.as_str(), p.as_str());
    let lines = ok(h, p, "admin", "", &[
        "SELECT version()",
        "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, age INT, interests SET<TEXT>, last_seen TIMESTAMP, ltv FLOAT, consent BOOL)",
        "INSERT INTO profiles (id, country, age, interests, last_seen, ltv, consent) VALUES ('u1', 'NL', 34, ['baking', 'tea'], '2026-11-01T10:00:00Z', 12.5, TRUE), ('u2', 'FR', 51, ['tea'], NULL, NULL, FALSE), ('u3', 'NL', 22, [], NULL, 3.25, NULL)",
        "SELECT COUNT(*) FROM profiles WHERE country = 'NL'",
        "SELECT id, interests, last_seen, ltv, consent FROM profiles WHERE id = 'u1'",
    ]);
    assert!(
        lines[0].starts_with("PostgreSQL 15.0 (CohortDB "),
        "{lines:?}"
    );
    assert_eq!(
        lines[1..],
        [
            "CREATE TABLE",
            "INSERT 0 3",
            "2",
            "u1|{baking,tea}|2026-11-01 10:00:00+00|12.5|t"
        ]
    );

    // OVERLAP: the Venn regions, then the pairs, both shown by psql.
    let lines = ok(
        h,
        p,
        "admin",
        "",
        &["OVERLAP (interests HAS 'tea') AS tea, (country = 'NL') AS nl ON profiles"],
    );
    assert_eq!(
        lines,
        [
            "t|f|1",
            "f|t|1",
            "t|t|1",
            "tea|nl|2|2|1|0.5|0.5|0.3333333333333333"
        ]
    );

    // \dt and \d profiles answer from the catalog.
    let lines = ok(h, p, "admin", "", &["\\dt"]);
    assert_eq!(lines, ["public|profiles|table|admin"]);
    let lines = ok(h, p, "admin", "", &["\\d profiles"]);
    assert_eq!(
        lines,
        [
            "id|text||not null|",
            "country|text|||",
            "age|bigint|||",
            "interests|text[]|||",
            "last_seen|timestamp with time zone|||",
            "ltv|double precision|||",
            "consent|boolean|||",
        ]
    );

    // COPY FROM STDIN (csv, header), arrays either way, then COPY TO STDOUT.
    let csv = "id,country,age,interests\nu4,DE,40,\"{golf,tea}\"\nu5,DE,41,baking|golf\nu6,FR,,\n";
    let o = psql(
        h,
        p,
        "admin",
        "",
        &[
            "-c",
            "COPY profiles (id, country, age, interests) FROM STDIN (FORMAT csv, HEADER)",
        ],
        Some(csv),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.trim(), "COPY 3");
    let lines = ok(
        h,
        p,
        "admin",
        "",
        &["COPY (SELECT id, interests FROM profiles WHERE country = 'DE') TO STDOUT"],
    );
    assert_eq!(lines, ["u4\t{golf,tea}", "u5\t{baking,golf}"]);
    let lines = ok(h, p, "admin", "", &["COPY (SELECT id, age FROM profiles WHERE country = 'FR') TO STDOUT WITH (FORMAT csv, HEADER)"]);
    assert_eq!(lines, ["id,age", "u2,51", "u6,"]);
    let lines = ok(
        h,
        p,
        "admin",
        "",
        &[
            "SELECT COUNT(*) FROM profiles",
            "SELECT COUNT(*) FROM profiles WHERE interests HAS 'golf'",
        ],
    );
    assert_eq!(lines, ["6", "2"]);

    // An error shows its SQLSTATE and where it is; nothing of the request ran.
    let o = psql(
        h,
        p,
        "admin",
        "",
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "INSERT INTO profiles (id) VALUES ('u9'); SELECT COUNT(*) FRM profiles",
        ],
        None,
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("ERROR:  42601:"), "{err}");
    // psql draws its caret under the position we report.
    let line = err
        .lines()
        .position(|l| l.starts_with("LINE 1: "))
        .expect("a LINE");
    let lines: Vec<&str> = err.lines().collect();
    let caret = lines[line + 1].find('^').expect("a caret");
    assert_eq!(&lines[line][caret..caret + 3], "FRM", "{err}");
    let o = psql(
        h,
        p,
        "admin",
        "",
        &["-v", "VERBOSITY=verbose", "-c", "SELECT COUNT(*) FROM nope"],
        None,
    );
    assert!(
        text(&o)
            .1
            .contains("ERROR:  42P01: table nope does not exist"),
        "{}",
        text(&o).1
    );
    let o = psql(
        h,
        p,
        "admin",
        "",
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT COUNT(*) FROM profiles WHERE shoe = 1",
        ],
        None,
    );
    assert!(text(&o).1.contains("ERROR:  42703:"), "{}", text(&o).1);
    assert_eq!(
        ok(
            h,
            p,
            "admin",
            "",
            &["SELECT COUNT(*) FROM profiles WHERE id = 'u9'"]
        ),
        ["0"]
    );

    // Session commands drivers send.
    let lines = ok(
        h,
        p,
        "admin",
        "",
        &[
            "SET application_name = 'cohort-test'",
            "SHOW application_name",
            "SHOW standard_conforming_strings",
            "BEGIN",
            "COMMIT",
            "SELECT current_setting('server_version_num'), 1, current_user",
        ],
    );
    assert_eq!(
        lines,
        [
            "SET",
            "cohort-test",
            "on",
            "BEGIN",
            "COMMIT",
            "150000|1|admin"
        ]
    );
}

#[test]
fn psql_authenticates_with_scram_and_enforces_roles() {
    if !have("psql", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("users");
    let legacy = cohortdb::query::users::hash_password("oldpw").unwrap();
    std::fs::write(
        &auth,
        format!("ann:admin:annpw\nbob:analyst:bobpw\nold:admin:{legacy}\n"),
    )
    .unwrap();
    let (_server, h, p) = pg_server(&["--auth", auth.to_str().unwrap()]);
    let (h, p) = (h.as_str(), p.as_str());
    ok(h, p, "ann", "annpw", &[
        "CREATE TABLE crm (id TEXT PRIMARY KEY, country TEXT, email TEXT PII) WITH (min_audience = 2)",
        "INSERT INTO crm (id, country, email) VALUES ('c1', 'NL', 'a@x'), ('c2', 'NL', 'b@x'), ('c3', 'FR', 'c@x')",
        "CREATE USER carol PASSWORD 'carolpw' ROLE writer",
    ]);
    // Wrong password, unknown user: refused (SCRAM).
    for (user, password) in [("ann", "wrong"), ("nobody", "x")] {
        let o = psql(h, p, user, password, &["-c", "SELECT 1"], None);
        let (_, err) = text(&o);
        assert!(!o.status.success());
        assert!(
            err.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{err}"
        );
    }
    // A user created with CREATE USER logs in by SCRAM too.
    assert_eq!(ok(h, p, "carol", "carolpw", &["SHOW TABLES"]), ["crm|3|3"]);
    // A user with only an argon2 hash: cleartext over loopback.
    assert_eq!(
        ok(h, p, "old", "oldpw", &["SELECT COUNT(*) FROM crm"]),
        ["3"]
    );
    // The analyst: aggregates with suppression, no rows, no PII.
    assert_eq!(
        ok(
            h,
            p,
            "bob",
            "bobpw",
            &["SELECT country, COUNT(*) FROM crm GROUP BY country ORDER BY 1"]
        ),
        ["FR|< 2", "NL|2"]
    );
    let o = psql(
        h,
        p,
        "bob",
        "bobpw",
        &["-v", "VERBOSITY=verbose", "-c", "SELECT id FROM crm"],
        None,
    );
    assert!(
        text(&o).1.contains("ERROR:  42501: permission denied"),
        "{}",
        text(&o).1
    );
    let lines = ok(h, p, "bob", "bobpw", &["\\d crm"]);
    assert_eq!(lines, ["id|text||not null|", "country|text|||"]);
}

/// Runs a driver's check script (`program args...`, with `env`) against a
/// server with one admin user, connection settings in PG* variables; the
/// script must exit 0 and print `all <name> checks passed`.
fn run_driver_checks(name: &str, program: &str, args: &[&str], env: &[(&str, &std::path::Path)]) {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("users");
    std::fs::write(&auth, "app:admin:app-secret\n").unwrap();
    let (_server, h, p) = pg_server(&["--auth", auth.to_str().unwrap()]);
    let mut command = Command::new(program);
    command
        .args(args)
        .env("PGHOST", &h)
        .env("PGPORT", &p)
        .env("PGUSER", "app")
        .env("PGPASSWORD", "app-secret");
    for (key, value) in env {
        command.env(key, value);
    }
    let o = command
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{name} checks failed:\n{out}\n{err}");
    assert!(out.contains(&format!("all {name} checks passed")), "{out}");
}

/// node-postgres from the npm registry, installed once per test run into a
/// temporary directory; skipped (with a message) when node or npm is
/// missing or the registry cannot be reached.
#[test]
fn node_postgres_runs_untyped_parameters_and_prepared_statements() {
    let modules = tempfile::tempdir().unwrap();
    let installed = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(modules.path())
        .arg("pg@8")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "SKIPPED: node-postgres could not be installed (needs node, npm and the npm registry)"
        );
        return;
    }
    run_driver_checks(
        "node-postgres",
        "node",
        &[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/postgres/node_pg_check.js"
        )],
        &[("NODE_PATH", &modules.path().join("node_modules"))],
    );
}

/// pgjdbc from Debian's libpostgresql-jdbc-java (installed by `.ci/run`),
/// run as a single-file Java program; skipped (with a message) when java or
/// the driver's jar is missing.
#[test]
fn jdbc_runs_prepared_statements_and_lists_tables() {
    const JAR: &str = "/usr/share/java/postgresql.jar";
    let java = Command::new("java")
        .arg("-version")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !java || !std::path::Path::new(JAR).exists() {
        eprintln!("SKIPPED: java or {JAR} is missing (.ci/run installs libpostgresql-jdbc-java)");
        return;
    }
    run_driver_checks(
        "JDBC",
        "java",
        &[
            "-cp",
            JAR,
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/JdbcCheck.java"),
        ],
        &[],
    );
}

#[test]
fn psycopg_runs_parameterised_queries_and_copy() {
    let found = Command::new("python3")
        .args(["-c", "import psycopg"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: python3 with psycopg is not installed (.ci/run installs it: pip install \"psycopg[binary]\")");
        return;
    }
    run_driver_checks(
        "psycopg",
        "python3",
        &[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/postgres/psycopg_check.py"
        )],
        &[],
    );
}

#[test]
fn pgbench_runs_eight_clients_without_failures() {
    if !have("pgbench", "--version") || !have("psql", "--version") {
        return;
    }
    let (_server, h, p) = pg_server(&[]);
    let mut rows = String::new();
    for i in 0..3000 {
        rows.push_str(&format!("b{i},c{},{}\n", i % 3, 18 + i % 53));
    }
    ok(
        &h,
        &p,
        "admin",
        "",
        &["CREATE TABLE bench (id TEXT PRIMARY KEY, country TEXT, age INT)"],
    );
    let o = psql(
        &h,
        &p,
        "admin",
        "",
        &["-c", "COPY bench FROM STDIN (FORMAT csv)"],
        Some(&rows),
    );
    assert_eq!(text(&o).0.trim(), "COPY 3000", "{}", text(&o).1);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/bench.sql");
    let o = Command::new("pgbench")
        .args([
            "-h", &h, "-p", &p, "-U", "admin", "-n", "-f", script, "-c", "8", "-j", "2", "-T", "5",
            "cohort",
        ])
        .output()
        .expect("run pgbench");
    let (out, err) = text(&o);
    assert!(o.status.success(), "pgbench failed:\n{out}\n{err}");
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in pgbench output:\n{out}"))
    };
    assert_eq!(field("number of failed transactions: "), 0, "{out}");
    assert!(
        field("number of transactions actually processed: ") > 0,
        "{out}"
    );
}

/// A client speaking the protocol by hand.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, messages: &[Frontend]) {
        let mut out = Vec::new();
        for m in messages {
            m.encode(&mut out);
        }
        self.stream.write_all(&out).unwrap();
    }

    fn read(&mut self) -> Backend {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let m = Backend::decode(self.buf[0], &self.buf[5..1 + len])
                        .expect("a valid message");
                    self.buf.drain(..1 + len);
                    return m;
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Messages up to and including ReadyForQuery.
    fn until_ready(&mut self) -> Vec<Backend> {
        let mut out = Vec::new();
        loop {
            let m = self.read();
            let done = matches!(m, Backend::ReadyForQuery(_));
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// SSLRequest (refused), then startup without a password (no users).
    fn started(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.stream.write_all(&Startup::SslRequest.encode()).unwrap();
        let mut n = [0u8; 1];
        raw.stream.read_exact(&mut n).unwrap();
        assert_eq!(&n, b"N");
        raw.stream
            .write_all(
                &Startup::Start {
                    params: vec![("user".into(), "raw".into())],
                }
                .encode(),
            )
            .unwrap();
        let start = raw.until_ready();
        assert_eq!(start[0], Backend::AuthenticationOk);
        assert!(start.contains(&Backend::ParameterStatus {
            name: "server_version".into(),
            value: "15.0".into()
        }));
        raw
    }
}

fn data_rows(messages: &[Backend]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            Backend::DataRow(v) => Some(
                v.iter()
                    .map(|f| f.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn extended_protocol_portals_errors_and_limits() {
    let (server, _, _) = pg_server(&["--max-frame-bytes", "65536"]);
    let addr = server.pg_addr.clone().unwrap();
    let mut c = Raw::started(&addr);
    c.send(&[Frontend::Query(
        "CREATE TABLE t (id TEXT PRIMARY KEY, n INT); INSERT INTO t (id, n) VALUES ('a', 1), ('b', 2), ('c', 3)".into(),
    )]);
    let got = c.until_ready();
    assert!(
        got.contains(&Backend::CommandComplete("INSERT 0 3".into())),
        "{got:?}"
    );

    // Parse/Bind/Describe/Execute with a row limit: the portal suspends and resumes.
    c.send(&[
        Frontend::Parse {
            name: "s".into(),
            query: "SELECT id FROM t WHERE n >= $1".into(),
            param_types: vec![20],
        },
        Frontend::Bind {
            portal: "p".into(),
            statement: "s".into(),
            param_formats: vec![1],
            params: vec![Some(2i64.to_be_bytes().to_vec())],
            result_formats: vec![],
        },
        Frontend::Describe {
            target: Target::Portal,
            name: "p".into(),
        },
        Frontend::Execute {
            portal: "p".into(),
            max_rows: 1,
        },
        Frontend::Execute {
            portal: "p".into(),
            max_rows: 0,
        },
        Frontend::Sync,
    ]);
    let got = c.until_ready();
    assert_eq!(got[0], Backend::ParseComplete);
    assert_eq!(got[1], Backend::BindComplete);
    assert!(
        matches!(&got[2], Backend::RowDescription(f) if f[0].name == "id" && f[0].type_oid == 25)
    );
    assert!(got.contains(&Backend::PortalSuspended), "{got:?}");
    assert_eq!(data_rows(&got).len(), 2);
    assert!(
        got.contains(&Backend::CommandComplete("SELECT 2".into())),
        "{got:?}"
    );

    // Untyped parameters (OID 0, as pgbench and node-postgres send them)
    // are typed by what binds: text for TEXT columns, a number for INT ones.
    c.send(&[
        Frontend::Parse {
            name: "".into(),
            query: "SELECT COUNT(*) FROM t WHERE n >= $1 AND id <> $2".into(),
            param_types: vec![],
        },
        Frontend::Bind {
            portal: "".into(),
            statement: "".into(),
            param_formats: vec![],
            params: vec![Some(b"2".to_vec()), Some(b"3".to_vec())],
            result_formats: vec![],
        },
        Frontend::Execute {
            portal: "".into(),
            max_rows: 0,
        },
        Frontend::Sync,
    ]);
    let got = c.until_ready();
    assert_eq!(data_rows(&got), [[Some("2".to_string())]], "{got:?}");

    // An error skips to Sync; the session goes on.
    c.send(&[
        Frontend::Parse {
            name: "".into(),
            query: "SELECT COUNT(*) FROM nope WHERE n = $1".into(),
            param_types: vec![],
        },
        Frontend::Bind {
            portal: "".into(),
            statement: "".into(),
            param_formats: vec![],
            params: vec![Some(b"1".to_vec())],
            result_formats: vec![],
        },
        Frontend::Describe {
            target: Target::Portal,
            name: "".into(),
        },
        Frontend::Execute {
            portal: "".into(),
            max_rows: 0,
        },
        Frontend::Sync,
        Frontend::Query("SELECT COUNT(*) FROM t".into()),
    ]);
    let got = c.until_ready();
    let error = got.iter().find_map(|m| match m {
        Backend::ErrorResponse(f) => Some(f.clone()),
        _ => None,
    });
    let error = error.expect("an error");
    assert!(error.contains(&(b'C', "42P01".into())), "{error:?}");
    assert!(
        error.contains(&(b'P', "22".into())),
        "position in the text sent: {error:?}"
    );
    assert!(
        !got.iter().any(|m| matches!(m, Backend::CommandComplete(_))),
        "{got:?}"
    );
    let got = c.until_ready();
    assert_eq!(data_rows(&got), [[Some("3".to_string())]]);

    // A message over --max-frame-bytes is refused and the connection closes.
    let mut big = Vec::new();
    Frontend::Query(format!("SELECT '{}'", "x".repeat(70_000))).encode(&mut big);
    c.stream.write_all(&big[..5]).unwrap();
    match c.read() {
        Backend::ErrorResponse(f) => assert!(f.contains(&(b'C', "54000".into())), "{f:?}"),
        other => panic!("expected an error, got {other:?}"),
    }
}
