//! Session settings as PostgreSQL clients expect them: the parameters sent
//! at startup (ParameterStatus), `SET`, `SHOW`, `RESET`, and the
//! transaction statements, which CohortDB accepts as no-ops because every
//! statement commits on its own.
//!
//! Invariants: `statement_timeout` is the session's query timeout (the same
//! limit as the native SetOption `timeout_ms`); `client_encoding` stays
//! UTF8 (anything else is refused); timestamps are always sent in UTC, so
//! `TimeZone` is remembered and shown but does not change output.

use super::errors::{PgErrorResponse, INVALID_PARAMETER, UNDEFINED_OBJECT};
use std::collections::BTreeMap;
use std::time::Duration;

/// The PostgreSQL version CohortDB presents itself as (what psql, pgbench
/// and drivers check features against).
pub const SERVER_VERSION: &str = "15.0";

/// Parameters reported with ParameterStatus when they change.
const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
    "integer_datetimes",
    "server_encoding",
    "server_version",
    "is_superuser",
    "session_authorization",
];

/// What a statement handled here answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// CommandComplete with this tag; then ParameterStatus for each change.
    Command {
        tag: String,
        reports: Vec<(String, String)>,
        notice: Option<String>,
    },
    /// One text column `name` with one row.
    Show { name: String, value: String },
    /// `SHOW ALL`: name, setting, description.
    ShowAll(Vec<(String, String)>),
}

/// A session's settings and transaction state.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    defaults: BTreeMap<String, String>,
    /// The per-query timeout (`statement_timeout`).
    pub timeout: Option<Duration>,
    default_timeout: Option<Duration>,
    /// Inside BEGIN ... COMMIT (reported as `T` in ReadyForQuery).
    pub in_transaction: bool,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Settings {
    pub fn new(user: &str, superuser: bool, timeout: Option<Duration>) -> Settings {
        let mut values = BTreeMap::new();
        for (k, v) in [
            ("server_version", SERVER_VERSION),
            ("server_version_num", "150000"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("application_name", ""),
            ("is_superuser", if superuser { "on" } else { "off" }),
            ("session_authorization", user),
            ("transaction_isolation", "read committed"),
            ("default_transaction_isolation", "read committed"),
            ("transaction_read_only", "off"),
            ("default_transaction_read_only", "off"),
            ("in_hot_standby", "off"),
            ("search_path", "\"$user\", public"),
            ("extra_float_digits", "1"),
            ("max_identifier_length", "63"),
            ("lc_messages", "C"),
            ("lc_monetary", "C"),
            ("lc_numeric", "C"),
            ("lc_time", "C"),
            ("lc_collate", "C"),
            ("lc_ctype", "C"),
            ("bytea_output", "hex"),
            ("escape_string_warning", "on"),
            ("statement_timeout", "0"),
        ] {
            values.insert(key(k), v.to_string());
        }
        let mut s = Settings {
            defaults: values.clone(),
            values,
            timeout,
            default_timeout: timeout,
            in_transaction: false,
        };
        s.values.insert(
            key("statement_timeout"),
            timeout.map_or(0, |t| t.as_millis()).to_string(),
        );
        s.defaults = s.values.clone();
        s
    }

    /// The value of a setting.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&key(name)).map(String::as_str)
    }

    /// The settings sent with ParameterStatus after authentication.
    pub fn reported(&self) -> Vec<(String, String)> {
        REPORTED
            .iter()
            .filter_map(|n| self.get(n).map(|v| (n.to_string(), v.to_string())))
            .collect()
    }

    /// Applies a startup parameter (`application_name`, `client_encoding`,
    /// `options` is ignored); errors refuse the connection.
    pub fn startup(&mut self, name: &str, value: &str) -> Result<(), PgErrorResponse> {
        match name {
            "user" | "database" | "replication" | "options" => Ok(()),
            _ => self.set(name, value).map(|_| ()),
        }
    }

    /// Sets `name` to `value`; returns the ParameterStatus to send, if any.
    pub fn set(
        &mut self,
        name: &str,
        value: &str,
    ) -> Result<Option<(String, String)>, PgErrorResponse> {
        let k = key(name);
        let value = match k.as_str() {
            "client_encoding" | "names" => {
                let v = value.to_ascii_uppercase().replace('-', "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(PgErrorResponse::new(
                        INVALID_PARAMETER,
                        format!(
                            "CohortDB speaks UTF8 only; client_encoding {value:?} is not supported"
                        ),
                    ));
                }
                "UTF8".to_string()
            }
            "statement_timeout" => {
                let ms = parse_millis(value).ok_or_else(|| {
                    PgErrorResponse::new(
                        INVALID_PARAMETER,
                        format!("invalid value for parameter \"statement_timeout\": {value:?}"),
                    )
                })?;
                self.timeout = (ms > 0).then(|| Duration::from_millis(ms));
                ms.to_string()
            }
            _ => value.to_string(),
        };
        let k = if k == "names" {
            "client_encoding".to_string()
        } else {
            k
        };
        self.values.insert(k.clone(), value.clone());
        Ok(REPORTED
            .iter()
            .find(|r| key(r) == k)
            .map(|r| (r.to_string(), value)))
    }

    fn reset(&mut self, name: &str) -> Option<(String, String)> {
        let k = key(name);
        if k == "statement_timeout" {
            self.timeout = self.default_timeout;
        }
        match self.defaults.get(&k) {
            Some(v) => {
                self.values.insert(k.clone(), v.clone());
            }
            None => {
                self.values.remove(&k);
            }
        }
        let v = self.values.get(&k).cloned().unwrap_or_default();
        REPORTED
            .iter()
            .find(|r| key(r) == k)
            .map(|r| (r.to_string(), v))
    }

    /// Handles `SET`, `SHOW`, `RESET` and transaction statements; `None`
    /// for any other statement. `words` are the statement's first words.
    pub fn handle(&mut self, text: &str) -> Option<Result<Outcome, PgErrorResponse>> {
        let t = text.trim().trim_end_matches(';').trim();
        let lower = t.to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let first = *words.first()?;
        let command = |tag: &str| {
            Some(Ok(Outcome::Command {
                tag: tag.to_string(),
                reports: Vec::new(),
                notice: None,
            }))
        };
        match first {
            "begin" | "start" => {
                self.in_transaction = true;
                command(if first == "start" {
                    "START TRANSACTION"
                } else {
                    "BEGIN"
                })
            }
            "commit" | "end" => {
                self.in_transaction = false;
                command("COMMIT")
            }
            "rollback" | "abort" => {
                if words.get(1) == Some(&"to") || words.get(2) == Some(&"to") {
                    return command("ROLLBACK");
                }
                let was = std::mem::replace(&mut self.in_transaction, false);
                Some(Ok(Outcome::Command {
                    tag: "ROLLBACK".into(),
                    reports: Vec::new(),
                    notice: was.then(|| {
                        "CohortDB has no multi-statement transactions: statements since BEGIN were each committed and stay applied".to_string()
                    }),
                }))
            }
            "savepoint" => command("SAVEPOINT"),
            "release" => command("RELEASE"),
            "unlisten" => command("UNLISTEN"),
            "set" => Some(self.set_statement(t)),
            "reset" => {
                let name = t.split_whitespace().nth(1)?;
                let mut reports = Vec::new();
                if name.eq_ignore_ascii_case("all") {
                    let names: Vec<String> = self.values.keys().cloned().collect();
                    for n in names {
                        reports.extend(self.reset(&n));
                    }
                } else {
                    reports.extend(self.reset(name));
                }
                Some(Ok(Outcome::Command {
                    tag: "RESET".into(),
                    reports,
                    notice: None,
                }))
            }
            "show" => {
                let rest = t[4..].trim();
                let name = rest.trim_matches('"');
                if matches!(
                    words.get(1).copied(),
                    Some("tables" | "segments" | "exports")
                ) && words.len() == 2
                {
                    return None;
                }
                Some(self.show(name))
            }
            _ => None,
        }
    }

    fn show(&self, name: &str) -> Result<Outcome, PgErrorResponse> {
        let lower = name.to_ascii_lowercase();
        if lower == "all" {
            return Ok(Outcome::ShowAll(
                self.values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        }
        let lookup = match lower.as_str() {
            "transaction isolation level" => "transaction_isolation",
            "time zone" => "timezone",
            other => other,
        };
        match self.get(lookup) {
            Some(v) => Ok(Outcome::Show {
                name: REPORTED
                    .iter()
                    .find(|r| key(r) == lookup)
                    .map_or(lookup.to_string(), |r| r.to_string()),
                value: v.to_string(),
            }),
            None => Err(PgErrorResponse::new(
                UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            )),
        }
    }

    /// `SET [SESSION | LOCAL] name {TO | =} value [, ...]`, `SET TIME ZONE
    /// value`, `SET NAMES value`, `SET SESSION CHARACTERISTICS ...`.
    fn set_statement(&mut self, t: &str) -> Result<Outcome, PgErrorResponse> {
        let mut rest = t[3..].trim_start();
        for scope in ["session ", "local "] {
            if starts_with_ignore_case(rest, scope) {
                rest = rest[scope.len()..].trim_start();
            }
        }
        let lower = rest.to_ascii_lowercase();
        let done = |reports: Vec<(String, String)>| Outcome::Command {
            tag: "SET".into(),
            reports,
            notice: None,
        };
        if lower.starts_with("characteristics") || lower.starts_with("transaction") {
            return Ok(done(Vec::new()));
        }
        let (name, value) = if lower.starts_with("time zone") {
            ("TimeZone", rest[9..].trim())
        } else if lower.starts_with("names") {
            ("client_encoding", rest[5..].trim())
        } else {
            let split = rest
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(rest.len());
            let name = rest[..split].trim_matches('"');
            let mut value = rest[split..].trim_start();
            if let Some(v) = value.strip_prefix('=') {
                value = v.trim_start();
            } else if starts_with_ignore_case(value, "to ") {
                value = value[3..].trim_start();
            } else {
                return Err(PgErrorResponse::new(
                    super::errors::SYNTAX,
                    "expected SET name TO value or SET name = value",
                ));
            }
            (name, value)
        };
        if value.eq_ignore_ascii_case("default") {
            return Ok(done(self.reset(name).into_iter().collect()));
        }
        let value = unquote_list(value);
        Ok(done(self.set(name, &value)?.into_iter().collect()))
    }
}

/// Whether `s` starts with the ASCII `prefix`, in any case (never slices
/// inside a character).
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `'a', b, "c"` → `a, b, c`.
fn unquote_list(value: &str) -> String {
    value
        .split(',')
        .map(|v| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            v.replace("''", "'")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `5000`, `'5s'`, `100ms`, `1min` → milliseconds.
fn parse_millis(value: &str) -> Option<u64> {
    let v = value.trim().trim_matches('\'').trim().to_ascii_lowercase();
    let digits = v.chars().take_while(|c| c.is_ascii_digit()).count();
    let n: u64 = v[..digits].parse().ok()?;
    let factor = match v[digits..].trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &mut Settings, text: &str) -> Outcome {
        s.handle(text).expect("handled").expect("ok")
    }

    #[test]
    fn set_show_reset() {
        let mut s = Settings::new("ann", true, None);
        assert_eq!(
            cmd(&mut s, "SHOW server_version"),
            Outcome::Show {
                name: "server_version".into(),
                value: "15.0".into()
            }
        );
        assert_eq!(
            cmd(&mut s, "SET application_name = 'psql'"),
            Outcome::Command {
                tag: "SET".into(),
                reports: vec![("application_name".into(), "psql".into())],
                notice: None
            }
        );
        assert_eq!(s.get("application_name"), Some("psql"));
        cmd(&mut s, "set statement_timeout to '2s'");
        assert_eq!(s.timeout, Some(Duration::from_secs(2)));
        cmd(&mut s, "SET SESSION statement_timeout = 0");
        assert_eq!(s.timeout, None);
        cmd(&mut s, "SET search_path TO public, \"$user\"");
        cmd(&mut s, "SET TIME ZONE 'Europe/Paris'");
        assert_eq!(s.get("timezone"), Some("Europe/Paris"));
        cmd(&mut s, "RESET ALL");
        assert_eq!(s.get("timezone"), Some("UTC"));
        assert!(s.handle("SET client_encoding = 'LATIN1'").unwrap().is_err());
        assert!(s.handle("SET statement_timeout = 'soon'").unwrap().is_err());
        let e = s.handle("SHOW nonsense").unwrap().unwrap_err();
        assert_eq!(e.code, "42704");
        assert!(matches!(
            cmd(&mut s, "SHOW TRANSACTION ISOLATION LEVEL"),
            Outcome::Show { value, .. } if value == "read committed"
        ));
        assert!(s.handle("SHOW TABLES").is_none());
        assert!(s.handle("SELECT 1").is_none());
    }

    #[test]
    fn transactions_are_no_ops_with_state() {
        let mut s = Settings::new("ann", true, None);
        cmd(&mut s, "BEGIN");
        assert!(s.in_transaction);
        cmd(&mut s, "COMMIT");
        assert!(!s.in_transaction);
        cmd(&mut s, "begin isolation level read committed");
        match cmd(&mut s, "ROLLBACK") {
            Outcome::Command { notice, .. } => assert!(notice.is_some()),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_millis("1min"), Some(60_000));
        // Non-ASCII text never splits a character.
        for text in [
            "SET aéééé = 1",
            "SET éé",
            "SET x éé",
            "SHOW é",
            "SET TIME ZONE é",
        ] {
            let _ = s.handle(text);
        }
    }
}
