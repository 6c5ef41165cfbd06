//! Writing CohortQL literals (docs/cohortql.md, "Lexical rules") into a batch
//! statement, and turning CSV text into them by column type.
//!
//! Every value is checked here, on the client, so the server almost never
//! refuses a batch: a bad value becomes a rejected row with a reason such as
//! `column age is INT, 'abc' is not an integer`.
//!
//! Invariants of what is written: strings are single-quoted with `'` doubled
//! and `\`, newline and carriage return escaped (so a statement is always one
//! line and the server's error columns point into it); integers are plain
//! `-?digits`; floats are in the grammar's number form and finite; timestamps
//! are written as integer seconds (ISO-8601 input is converted here).

use super::table::{Kind, Target};
use crate::engine::{MAX_ID_BYTES, MAX_TEXT_BYTES};
use std::io::Write;

/// Appends `s` as a single-quoted CohortQL string.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'\'');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'\'' => b"''",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\'');
}

/// Appends an integer.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{v}");
}

/// Appends a finite float in the grammar's number form (`1.5`, `1e300`, `3.0`).
pub fn write_float(out: &mut Vec<u8>, v: f64) {
    // Debug never prints `inf`/`NaN` for finite values, and always prints a
    // `.` or an exponent, so the server reads it back as this float.
    let _ = write!(out, "{v:?}");
}

pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"TRUE" } else { b"FALSE" });
}

pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"NULL");
}

/// A value as shown in a message: quoted, escaped, and cut when long.
pub fn show(value: &str) -> String {
    const MAX: usize = 60;
    let mut s = String::with_capacity(value.len().min(MAX) + 8);
    s.push('\'');
    for (n, c) in value.chars().enumerate() {
        if n == MAX {
            s.push_str("...");
            break;
        }
        s.extend(c.escape_debug());
    }
    s.push('\'');
    s
}

/// Checks a profile id.
pub fn check_key(column: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("the primary key {column} is empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "the primary key {column} is {} bytes, more than the {MAX_ID_BYTES} allowed",
            id.len()
        ));
    }
    Ok(())
}

/// Checks the length of a TEXT value or a tag.
pub fn check_text(column: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "column {column} has a value of {} bytes, more than the {MAX_TEXT_BYTES} allowed",
            s.len()
        ));
    }
    Ok(())
}

/// True when `s` matches the grammar's `number` rule:
/// `-? digits ("." digits)? ([eE] [+-]? digits)?`.
fn is_grammar_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// Writes an integer given as text; `Err` says why it is not one.
fn int_text(out: &mut Vec<u8>, t: &str) -> Result<(), String> {
    match t.parse::<i64>() {
        // `parse` accepts exactly `[+-]?digits`: copy it without a `+`.
        Ok(_) => {
            out.extend_from_slice(t.strip_prefix('+').unwrap_or(t).as_bytes());
            Ok(())
        }
        Err(e) => Err(match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                format!("{} does not fit a 64-bit integer", show(t))
            }
            _ => format!("{} is not an integer", show(t)),
        }),
    }
}

/// Writes a TIMESTAMP given as whole seconds or ISO-8601 text.
pub fn timestamp_text(out: &mut Vec<u8>, column: &str, t: &str) -> Result<(), String> {
    if t.parse::<i64>().is_ok() {
        out.extend_from_slice(t.strip_prefix('+').unwrap_or(t).as_bytes());
        return Ok(());
    }
    match crate::query::bind::parse_timestamp(t) {
        Some(seconds) => {
            write_int(out, seconds);
            Ok(())
        }
        None => Err(format!(
            "column {column} is TIMESTAMP, {} is neither whole seconds nor an ISO-8601 timestamp (e.g. 2026-11-01T10:00:00Z or 2026-11-01)",
            show(t)
        )),
    }
}

/// Writes a FLOAT given as text.
fn float_text(out: &mut Vec<u8>, column: &str, t: &str) -> Result<(), String> {
    let v: f64 = t
        .parse()
        .map_err(|_| format!("column {column} is FLOAT, {} is not a number", show(t)))?;
    if !v.is_finite() {
        return Err(format!(
            "column {column} is FLOAT, {} is not a finite number",
            show(t)
        ));
    }
    // The server reads digits without `.`/`e` as an integer: copy the text
    // only when it reads back the same way.
    if is_grammar_number(t) && (t.contains(['.', 'e', 'E']) || t.parse::<i64>().is_ok()) {
        out.extend_from_slice(t.as_bytes());
    } else {
        write_float(out, v);
    }
    Ok(())
}

/// Parses a BOOL given as text: `true`/`false`/`1`/`0`, any case.
fn bool_text(column: &str, t: &str) -> Result<bool, String> {
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Ok(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Ok(false)
    } else {
        Err(format!(
            "column {column} is BOOL, {} is not true, false, 1 or 0",
            show(t)
        ))
    }
}

/// Writes one CSV field as the literal for `target`; `Err` is the reason the
/// row is rejected. Empty means NULL, except for SET<TEXT> (the empty set)
/// and the primary key (an error).
pub fn csv_field(out: &mut Vec<u8>, target: &Target, raw: &[u8]) -> Result<(), String> {
    let column = target.name.as_str();
    let field = std::str::from_utf8(raw).map_err(|e| {
        format!(
            "column {column} is not valid UTF-8 (bad byte at offset {} of the field)",
            e.valid_up_to()
        )
    })?;
    match target.kind {
        Kind::Key => {
            check_key(column, field)?;
            write_string(out, field);
        }
        Kind::Text => {
            if field.is_empty() {
                write_null(out);
            } else {
                check_text(column, field)?;
                write_string(out, field);
            }
        }
        Kind::Set => {
            out.push(b'[');
            let mut first = true;
            for tag in field.split('|').filter(|t| !t.is_empty()) {
                check_text(column, tag)?;
                if !first {
                    out.push(b',');
                }
                first = false;
                write_string(out, tag);
            }
            out.push(b']');
        }
        Kind::Int | Kind::Timestamp | Kind::Float | Kind::Bool => {
            let t = field.trim();
            if t.is_empty() {
                write_null(out);
                return Ok(());
            }
            match target.kind {
                Kind::Int => {
                    int_text(out, t).map_err(|why| format!("column {column} is INT, {why}"))?
                }
                Kind::Timestamp => timestamp_text(out, column, t)?,
                Kind::Float => float_text(out, column, t)?,
                _ => write_bool(out, bool_text(column, t)?),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: Kind, raw: &str) -> Result<String, String> {
        let target = Target {
            name: "c".into(),
            kind,
        };
        let mut out = Vec::new();
        csv_field(&mut out, &target, raw.as_bytes())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn strings_are_quoted_and_escaped() {
        let mut out = Vec::new();
        write_string(&mut out, "it's a\\b\nc\rd");
        assert_eq!(out, b"'it''s a\\\\b\\nc\\rd'");
        assert_eq!(field(Kind::Text, "").unwrap(), "NULL");
        assert_eq!(field(Kind::Text, "NL").unwrap(), "'NL'");
        assert!(field(Kind::Key, "").unwrap_err().contains("empty"));
    }

    #[test]
    fn sets_split_on_bars() {
        assert_eq!(field(Kind::Set, "").unwrap(), "[]");
        assert_eq!(field(Kind::Set, "a|b").unwrap(), "['a','b']");
        assert_eq!(field(Kind::Set, "|a||b|").unwrap(), "['a','b']");
    }

    #[test]
    fn numbers_are_checked_and_normalised() {
        assert_eq!(field(Kind::Int, " +42 ").unwrap(), "42");
        assert_eq!(field(Kind::Int, "").unwrap(), "NULL");
        assert_eq!(
            field(Kind::Int, "abc").unwrap_err(),
            "column c is INT, 'abc' is not an integer"
        );
        assert!(field(Kind::Int, "99999999999999999999")
            .unwrap_err()
            .contains("64-bit"));
        assert_eq!(field(Kind::Float, "20.09").unwrap(), "20.09");
        assert_eq!(field(Kind::Float, "7").unwrap(), "7");
        assert_eq!(field(Kind::Float, ".5").unwrap(), "0.5");
        assert_eq!(
            field(Kind::Float, "1e400").unwrap_err(),
            "column c is FLOAT, '1e400' is not a finite number"
        );
        assert_eq!(
            field(Kind::Float, "123456789012345678901234").unwrap(),
            "1.2345678901234569e23"
        );
        assert!(field(Kind::Float, "NaN").is_err());
        assert_eq!(field(Kind::Bool, "TRUE").unwrap(), "TRUE");
        assert_eq!(field(Kind::Bool, "0").unwrap(), "FALSE");
        assert!(field(Kind::Bool, "yes").is_err());
    }

    #[test]
    fn timestamps_become_seconds() {
        assert_eq!(field(Kind::Timestamp, "1791234567").unwrap(), "1791234567");
        assert_eq!(
            field(Kind::Timestamp, "2026-11-01T00:00:00Z").unwrap(),
            "1793491200"
        );
        assert_eq!(field(Kind::Timestamp, "2026-11-01").unwrap(), "1793491200");
        assert!(field(Kind::Timestamp, "yesterday").is_err());
    }

    #[test]
    fn invalid_utf8_is_a_reason() {
        let target = Target {
            name: "country".into(),
            kind: Kind::Text,
        };
        let e = csv_field(&mut Vec::new(), &target, b"N\xffL").unwrap_err();
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn grammar_numbers() {
        for ok in ["1", "-1", "1.5", "1e5", "1E-5", "-0.25e+3"] {
            assert!(is_grammar_number(ok), "{ok}");
        }
        for bad in ["", "+1", ".5", "1.", "1e", "inf", "1_0"] {
            assert!(!is_grammar_number(bad), "{bad}");
        }
    }
}
