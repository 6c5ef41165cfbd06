//! `cohortdb shell` end to end: the real server binary and the real shell
//! binary, with statements from `-c`, `-f` and piped stdin; table, CSV and
//! JSON output checked exactly; errors with a caret; exit statuses; results
//! written per statement as they complete; authentication; and (when the
//! `script` utility is there to provide a terminal) the interactive mode.

mod support_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support_server::Server;

const SETUP: &str = "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, age INT, \
    interests SET<TEXT>, seen TIMESTAMP, ltv FLOAT);
INSERT INTO profiles (id, country, age, interests, seen, ltv) VALUES
  ('u1', 'NL', 34, ['baking', 'tea'], '2026-11-01T00:00:00Z', 120.5),
  ('u2', 'BE', 41, [], NULL, 7),
  ('u3', NULL, NULL, NULL, NULL, NULL);";

const SELECT_ALL: &str = "SELECT id, country, age, interests, seen, ltv FROM profiles";

fn shell_command(addr: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohortdb"));
    cmd.args(["shell", "--addr", addr])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs the shell to the end, with `stdin` piped in if given.
fn shell(addr: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = shell_command(addr, args);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("start cohortdb shell");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("shell output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A server holding the three sample profiles.
fn server_with_profiles() -> Server {
    let server = Server::start(&[]);
    let o = shell(&server.addr, &["-c", SETUP], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "CREATE TABLE 0\nINSERT 3\n");
    server
}

const TABLE: &str = "\
\x20id | country | age  |  interests   |         seen         |  ltv
----+---------+------+--------------+----------------------+-------
 u1 | NL      |   34 | [baking,tea] | 2026-11-01T00:00:00Z | 120.5
 u2 | BE      |   41 | []           | NULL                 |     7
 u3 | NULL    | NULL | NULL         | NULL                 |  NULL
(3 rows)

";

#[test]
fn c_statements_print_aligned_tables_and_write_tags() {
    let server = server_with_profiles();
    let o = shell(
        &server.addr,
        &[
            "-c",
            &format!(
                "{SELECT_ALL}; UPDATE profiles SET age = 35 WHERE id = 'u1'; \
                 SELECT COUNT(*) FROM profiles WHERE age > 30"
            ),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{TABLE}UPDATE 1\n count\n-------\n     2\n(1 row)\n\n")
    );
    assert_eq!(stderr(&o), "");
}

#[test]
fn csv_and_json_formats() {
    let server = server_with_profiles();
    let o = shell(&server.addr, &["--format", "csv", "-c", SELECT_ALL], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "id,country,age,interests,seen,ltv\n\
         u1,NL,34,baking|tea,2026-11-01T00:00:00Z,120.5\n\
         u2,BE,41,,,7\n\
         u3,,,,,\n"
    );
    // Writes print nothing in csv and json, so the output stays parseable.
    let o = shell(
        &server.addr,
        &[
            "--format",
            "json",
            "-c",
            &format!("INSERT INTO profiles (id, country) VALUES ('u4', 'a\"b'); {SELECT_ALL}"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        r#"{"id":"u1","country":"NL","age":34,"interests":["baking","tea"],"seen":"2026-11-01T00:00:00Z","ltv":120.5}
{"id":"u2","country":"BE","age":41,"interests":[],"seen":null,"ltv":7.0}
{"id":"u3","country":null,"age":null,"interests":null,"seen":null,"ltv":null}
{"id":"u4","country":"a\"b","age":null,"interests":null,"seen":null,"ltv":null}
"#
    );
    for line in stdout(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(v.is_object());
    }
}

#[test]
fn f_file_runs_a_multi_line_script_with_comments() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("setup.sql");
    std::fs::write(
        &file,
        format!(
            "-- the sample; with a semicolon in a comment\n{SETUP}\n\
             /* a block; comment */\n\
             SELECT country, COUNT(*)\n  FROM profiles\n  WHERE id != 'x;y'\n  GROUP BY country\n"
        ),
    )
    .unwrap();
    let o = shell(&server.addr, &["-f", file.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "CREATE TABLE 0\nINSERT 3\n \
         country | count\n\
         ---------+-------\n \
         BE      |     1\n \
         NL      |     1\n \
         NULL    |     1\n\
         (3 rows)\n\n"
    );
}

#[test]
fn statements_on_stdin_and_meta_commands() {
    let server = server_with_profiles();
    let o = shell(
        &server.addr,
        &[],
        Some("SELECT COUNT(*)\nFROM profiles;\n\\d\n\\d profiles\nSELECT MAX(age) FROM profiles"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        " count\n-------\n     3\n(1 row)\n\n\
         \x20 table   | columns | profiles\n\
         ----------+---------+----------\n \
         profiles |       6 |        3\n\
         (1 row)\n\n \
         \x20column   |   type    | primary_key |  pii\n\
         -----------+-----------+-------------+-------\n \
         id        | TEXT      | true        | false\n \
         country   | TEXT      | false       | false\n \
         age       | INT       | false       | false\n \
         interests | SET<TEXT> | false       | false\n \
         seen      | TIMESTAMP | false       | false\n \
         ltv       | FLOAT     | false       | false\n\
         (6 rows)\n\n \
         max(age)\n\
         ----------\n \
         \x20     41\n\
         (1 row)\n\n"
    );
    // \timing adds a line per statement; \q stops reading.
    let o = shell(
        &server.addr,
        &[
            "-c",
            "\\timing\nSELECT COUNT(*) FROM profiles;\n\\q\nSELECT nonsense",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Timing is on.");
    assert_eq!(&lines[1..6], [" count", "-------", "     3", "(1 row)", ""]);
    assert!(
        lines[6].starts_with("Time: ") && lines[6].contains(" ms (server "),
        "{out}"
    );
    assert_eq!(lines.len(), 7, "{out}");
    // An unknown meta-command is an error.
    let o = shell(&server.addr, &["-c", "\\frobnicate"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "ERROR: unknown meta-command \\frobnicate; \\help lists them\n"
    );
}

#[test]
fn the_first_failing_statement_stops_the_script_with_exit_1_and_a_caret() {
    let server = server_with_profiles();
    let script = "SELECT COUNT(*) FROM profiles;\n\
                  SELECT COUNT(*)\n  FROM profiles\n  WHERE shoe_size > 40;\n\
                  INSERT INTO profiles (id) VALUES ('never');\n";
    let o = shell(&server.addr, &["-c", script], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), " count\n-------\n     3\n(1 row)\n\n");
    assert_eq!(
        stderr(&o),
        "ERROR: 3:9: table profiles has no column shoe_size\n  WHERE shoe_size > 40\n        ^\n"
    );
    // From a file (or stdin), the error is also located in the input.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.sql");
    std::fs::write(&file, script).unwrap();
    let o = shell(&server.addr, &["-f", file.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "ERROR: 3:9: table profiles has no column shoe_size\n  WHERE shoe_size > 40\n        ^\nat {}:4:9\n",
            file.display()
        )
    );
    // A statement that starts in the middle of a line.
    let o = shell(
        &server.addr,
        &[],
        Some("SELECT COUNT(*) FROM profiles;  SELECT COUNT(*) FROM profiles WHERE age = 'x'"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), " count\n-------\n     3\n(1 row)\n\n");
    assert_eq!(
        stderr(&o),
        "ERROR: 1:43: column age is INT, 'x' is TEXT\n\
         SELECT COUNT(*) FROM profiles WHERE age = 'x'\n\
         \x20                                         ^\n\
         at <stdin>:1:75\n"
    );
    // The statement that failed never ran, nor any after it.
    let o = shell(
        &server.addr,
        &["-c", "SELECT COUNT(*) FROM profiles WHERE id = 'never'"],
        None,
    );
    assert_eq!(stdout(&o), " count\n-------\n     0\n(1 row)\n\n");
}

#[test]
fn each_result_is_written_as_soon_as_its_statement_completes() {
    let server = server_with_profiles();
    let mut child = shell_command(&server.addr, &["--format", "csv"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start the shell");
    let mut input = child.stdin.take().expect("stdin");
    let mut output = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    for (statement, expected) in [
        ("SELECT COUNT(*) FROM profiles;\n", ["count\n", "3\n"]),
        ("SELECT MIN(age) FROM profiles;\n", ["min(age)\n", "34\n"]),
    ] {
        input.write_all(statement.as_bytes()).unwrap();
        input.flush().unwrap();
        // The shell is still running (stdin is open) and the result is there.
        for want in expected {
            line.clear();
            output.read_line(&mut line).unwrap();
            assert_eq!(line, want);
        }
        assert!(child.try_wait().unwrap().is_none());
    }
    drop(input);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    output.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

#[test]
fn connection_failure_names_the_address_and_exits_2() {
    // A port that was free a moment ago.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let o = shell(&addr, &["-c", "SHOW TABLES"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("cohortdb shell: cannot connect to {addr}: ")),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
}

#[test]
fn users_log_in_with_a_password_from_the_environment() {
    let server = Server::start(&[]);
    let o = shell(
        &server.addr,
        &["-c", "CREATE USER ann PASSWORD 's3cret' ROLE analyst"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = shell_command(
        &server.addr,
        &[
            "--user",
            "ann",
            "--password-env",
            "SHELL_TEST_PW",
            "-c",
            "SHOW TABLES",
        ],
    )
    .env("SHELL_TEST_PW", "s3cret")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("(0 rows)\n\n"), "{}", stdout(&o));
    let o = shell_command(
        &server.addr,
        &[
            "--user",
            "ann",
            "--password-env",
            "SHELL_TEST_PW",
            "-c",
            "SHOW TABLES",
        ],
    )
    .env("SHELL_TEST_PW", "wrong")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(&format!(
            "cohortdb shell: cannot connect to {}: ",
            server.addr
        )),
        "{}",
        stderr(&o)
    );
    let o = shell_command(
        &server.addr,
        &[
            "--user",
            "ann",
            "--password-env",
            "SHELL_TEST_UNSET",
            "-c",
            "SHOW TABLES",
        ],
    )
    .env_remove("SHELL_TEST_UNSET")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("SHELL_TEST_UNSET"), "{}", stderr(&o));
}

/// Interactive mode in a pseudo-terminal provided by util-linux `script`;
/// skipped where `script` is not installed.
#[test]
fn interactive_mode_in_a_terminal() {
    let script_ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !script_ok {
        eprintln!("skipped: no `script` utility for a pseudo-terminal");
        return;
    }
    let server = server_with_profiles();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let command = format!(
        "{} shell --addr {}",
        env!("CARGO_BIN_EXE_cohortdb"),
        server.addr
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("COHORTDB_HISTORY", &history)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = stdout;
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let wait_for = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {needle:?} in the terminal output:\n{seen}"),
            }
        }
    };
    wait_for("cohort> ", &mut seen);
    for (typed, expect) in [
        ("SELECT COUNT(*)\r", "     -> "),
        ("FROM profiles;\r", "(1 row)"),
        ("SELECT nope FROM profiles;\r", "^"),
        ("\\timing\r", "Timing is on."),
        ("\\d\r", "profiles |       6 |        3"),
        ("\\q\r", "\n"),
    ] {
        seen.clear();
        input.write_all(typed.as_bytes()).unwrap();
        input.flush().unwrap();
        wait_for(expect, &mut seen);
        if typed.starts_with("SELECT nope") {
            wait_for("ERROR: 1:8: table profiles has no column nope", &mut seen);
        }
        if typed.starts_with("\\d") {
            wait_for("Time: ", &mut seen);
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let saved = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(
        saved.contains("FROM profiles;") && saved.contains("\\timing"),
        "history file: {saved:?}"
    );
}
