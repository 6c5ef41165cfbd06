//! Meta-commands: lines starting with `\` typed where a new statement would
//! start (`\d`, `\timing`, `\format`, `\help`, `\q`). They work the same in
//! the interactive shell and in `-c`, `-f` and stdin input.

use super::render::Format;
use super::{RunError, Session};
use clap::ValueEnum;
use std::io::Write;

/// What the shell does after a meta-command.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Quit,
}

/// The help text of `\help`.
pub const HELP: &str = "\
Statements (end each with ';'; a statement may span lines):
  CREATE TABLE t (id TEXT PRIMARY KEY, col TYPE [PII], ...) [WITH (option = value, ...)]
  DROP TABLE [IF EXISTS] t
  SHOW TABLES
  DESCRIBE t
  INSERT INTO t (id, col, ...) VALUES (...), (...)
  UPDATE t SET col = value, tags = tags + ['x'], tags = tags - ['y'] [WHERE condition]
  DELETE FROM t [WHERE condition]
  SELECT COUNT(*) | aggregates | columns | * FROM t [WHERE condition]
         [GROUP BY col, ...] [ORDER BY ... [ASC|DESC]] [LIMIT n]
  EXPLAIN SELECT ...
  CREATE USER name PASSWORD '...' ROLE role
  DROP USER [IF EXISTS] name
  Types: TEXT, SET<TEXT>, INT, TIMESTAMP, FLOAT, BOOL. Reference: docs/cohortql.md

Meta-commands (on a line of their own):
  \\d                        list tables (SHOW TABLES)
  \\d TABLE                  describe a table (DESCRIBE TABLE)
  \\timing [on|off]          show the time each statement takes
  \\format [table|csv|json]  show or set the output format
  \\help, \\?                 this help
  \\q                        quit (also Ctrl-D)

Ctrl-C cancels the running statement, or clears the statement being typed.";

/// Whether `line` is a meta-command (when no statement is pending).
pub fn is_meta(line: &str) -> bool {
    line.trim_start().starts_with('\\')
}

/// A failed meta-command: the error, and the statement it ran, if any.
pub type MetaError = (RunError, Option<String>);

/// Runs the meta-command on `line`.
pub fn run(session: &mut Session, line: &str) -> Result<Outcome, MetaError> {
    let line = line.trim().trim_end_matches(';').trim_end();
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("\\");
    let args: Vec<&str> = words.collect();
    // The arguments as typed (a quoted table name may hold spaces).
    let rest = line.get(command.len()..).unwrap_or("").trim();
    let too_many = |usage: &str| -> MetaError {
        (
            RunError::Meta(format!("{command}: too many arguments; usage: {usage}")),
            None,
        )
    };
    match command {
        "\\q" | "\\quit" => {
            if !args.is_empty() {
                return Err(too_many("\\q"));
            }
            Ok(Outcome::Quit)
        }
        "\\timing" => {
            session.timing = match args.as_slice() {
                [] => !session.timing,
                [a] if a.eq_ignore_ascii_case("on") => true,
                [a] if a.eq_ignore_ascii_case("off") => false,
                [a] => {
                    return Err((
                        RunError::Meta(format!("\\timing: expected on or off, got {a}")),
                        None,
                    ))
                }
                _ => return Err(too_many("\\timing [on|off]")),
            };
            let state = if session.timing { "on" } else { "off" };
            info(session, &format!("Timing is {state}."))?;
            Ok(Outcome::Continue)
        }
        "\\format" => {
            match args.as_slice() {
                [] => {}
                [f] => {
                    session.format = Format::from_str(f, true).map_err(|_| {
                        (
                            RunError::Meta(format!(
                                "\\format: unknown format {f}; expected table, csv or json"
                            )),
                            None,
                        )
                    })?;
                }
                _ => return Err(too_many("\\format [table|csv|json]")),
            }
            let name = session.format.name();
            info(session, &format!("Output format is {name}."))?;
            Ok(Outcome::Continue)
        }
        "\\d" => {
            let statement = if rest.is_empty() {
                "SHOW TABLES".to_string()
            } else {
                format!("DESCRIBE {rest}")
            };
            session
                .execute(&statement)
                .map_err(|e| (e, Some(statement)))?;
            Ok(Outcome::Continue)
        }
        "\\help" | "\\?" | "\\h" => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{HELP}")
                .and_then(|()| out.flush())
                .map_err(|e| (RunError::Output(e), None))?;
            Ok(Outcome::Continue)
        }
        other => Err((
            RunError::Meta(format!("unknown meta-command {other}; \\help lists them")),
            None,
        )),
    }
}

fn info(session: &Session, line: &str) -> Result<(), MetaError> {
    session.info(line).map_err(|e| (RunError::Output(e), None))
}
