//! PostgreSQL types for CohortDB values: the type OID of each column type,
//! values written in PostgreSQL's text and binary formats, and bound
//! parameters turned into CohortQL literals.
//!
//! | CohortDB | PostgreSQL | OID |
//! | --- | --- | --- |
//! | TEXT | text | 25 |
//! | INT (and COUNT) | int8 | 20 |
//! | FLOAT | float8 | 701 |
//! | BOOL | bool | 16 |
//! | TIMESTAMP | timestamptz | 1184 |
//! | SET<TEXT>, EVENTS<TEXT> | text[] | 1009 |
//!
//! Invariants: text output is what PostgreSQL itself prints for the value
//! (so drivers parse it unchanged); a parameter becomes a literal that
//! CohortQL reads back as exactly that value (quotes and backslashes
//! escaped), or an error naming the parameter.

use super::codec::Field;
use super::PgError;
use crate::engine::Value;
use crate::storage::schema::ColumnType;

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const NAME: u32 = 19;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const UNKNOWN: u32 = 705;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const TEXT_ARRAY: u32 = 1009;
pub const VARCHAR_ARRAY: u32 = 1015;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const NUMERIC: u32 = 1700;

/// Seconds from 1970-01-01 to 2000-01-01 (PostgreSQL's binary epoch).
const PG_EPOCH_OFFSET: i64 = 946_684_800;

/// The OID of a column type.
pub fn oid(ty: ColumnType) -> u32 {
    match ty {
        ColumnType::Text => TEXT,
        ColumnType::TextSet => TEXT_ARRAY,
        ColumnType::Int => INT8,
        ColumnType::Timestamp => TIMESTAMPTZ,
        ColumnType::Float => FLOAT8,
        ColumnType::Bool => BOOL,
    }
}

/// `typlen` of a type: its fixed size, or -1.
pub fn size(oid: u32) -> i16 {
    match oid {
        BOOL => 1,
        INT2 => 2,
        INT4 | OID | FLOAT4 => 4,
        INT8 | FLOAT8 | TIMESTAMPTZ | TIMESTAMP => 8,
        NAME => 64,
        _ => -1,
    }
}

/// PostgreSQL's name for a type (what `format_type` prints).
pub fn type_name(oid: u32) -> &'static str {
    match oid {
        BOOL => "boolean",
        INT8 => "bigint",
        INT4 => "integer",
        INT2 => "smallint",
        FLOAT8 => "double precision",
        TIMESTAMPTZ => "timestamp with time zone",
        TEXT_ARRAY => "text[]",
        NAME => "name",
        OID => "oid",
        _ => "text",
    }
}

/// A RowDescription field.
pub fn field(name: &str, oid: u32, format: i16) -> Field {
    Field {
        name: name.to_string(),
        table_oid: 0,
        column: 0,
        type_oid: oid,
        type_size: size(oid),
        type_modifier: -1,
        format,
    }
}

/// A float as PostgreSQL prints float8 (shortest exact digits; exponent
/// form below 1e-4 and from 1e15).
pub fn float_text(v: f64, out: &mut String) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
    } else if v.abs() < 1e-4 || v.abs() >= 1e15 {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A timestamp (seconds since 1970, UTC) as PostgreSQL prints a
/// timestamptz in the UTC time zone: `2026-11-01 10:00:00+00`.
pub fn timestamp_text(seconds: i64, out: &mut String) {
    use std::fmt::Write;
    match chrono::DateTime::from_timestamp(seconds, 0) {
        Some(t) if (0..=9999).contains(&chrono::Datelike::year(&t)) => {
            let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S+00"));
        }
        _ => {
            let _ = write!(out, "{seconds}");
        }
    }
}

/// An array element as PostgreSQL quotes it in `{...}`.
fn array_element(tag: &str, out: &mut String) {
    let plain = !tag.is_empty()
        && !tag.eq_ignore_ascii_case("NULL")
        && !tag
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if plain {
        out.push_str(tag);
        return;
    }
    out.push('"');
    for c in tag.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A set as a PostgreSQL text[] literal: `{a,b,"c d"}`.
pub fn array_text(tags: &[String], out: &mut String) {
    out.push('{');
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        array_element(t, out);
    }
    out.push('}');
}

/// A non-NULL value in the text format (`None` for NULL).
pub fn text(value: &Value) -> Option<String> {
    let mut s = String::new();
    match value {
        Value::Null => return None,
        Value::Text(t) => s.push_str(t),
        Value::Set(tags) => array_text(tags, &mut s),
        Value::Int(v) => s = v.to_string(),
        Value::Timestamp(v) => timestamp_text(*v, &mut s),
        Value::Float(v) => float_text(*v, &mut s),
        Value::Bool(b) => s.push(if *b { 't' } else { 'f' }),
    }
    Some(s)
}

/// Appends a non-NULL value of a column of type `ty` in the binary format.
pub fn binary(value: &Value, ty: ColumnType, out: &mut Vec<u8>) {
    match value {
        Value::Null => {}
        Value::Text(t) => out.extend_from_slice(t.as_bytes()),
        Value::Int(v) if ty == ColumnType::Timestamp => timestamp_binary(*v, out),
        Value::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Timestamp(v) => timestamp_binary(*v, out),
        Value::Float(v) => out.extend_from_slice(&v.to_bits().to_be_bytes()),
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Set(tags) => {
            // ndim, has-nulls flag, element type, then per dimension size and lower bound.
            let ndim: i32 = if tags.is_empty() { 0 } else { 1 };
            out.extend_from_slice(&ndim.to_be_bytes());
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&TEXT.to_be_bytes());
            if ndim == 1 {
                out.extend_from_slice(&(tags.len() as i32).to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                for t in tags {
                    out.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
            }
        }
    }
}

fn timestamp_binary(seconds: i64, out: &mut Vec<u8>) {
    let micros = seconds
        .saturating_sub(PG_EPOCH_OFFSET)
        .saturating_mul(1_000_000);
    out.extend_from_slice(&micros.to_be_bytes());
}

/// A string as a CohortQL literal.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The type a cast such as `::int` or `::bigint` names, if CohortDB knows it.
pub fn cast_type(name: &str) -> Option<u32> {
    Some(match name.to_ascii_lowercase().as_str() {
        "int" | "int2" | "int4" | "int8" | "integer" | "bigint" | "smallint" => INT8,
        "float" | "float4" | "float8" | "real" | "double precision" | "numeric" | "decimal" => {
            FLOAT8
        }
        "bool" | "boolean" => BOOL,
        "text" | "varchar" | "name" | "bpchar" | "char" => TEXT,
        "timestamp" | "timestamptz" => TIMESTAMPTZ,
        "text[]" | "varchar[]" => TEXT_ARRAY,
        _ => return None,
    })
}

fn bad(n: usize, why: impl Into<String>) -> PgError {
    PgError::Param {
        index: n,
        message: why.into(),
    }
}

/// Parameter `$n` (`n` 1-based) of type `oid` in `format` (0 text, 1
/// binary) as a CohortQL literal; `None` bytes are NULL.
pub fn param_literal(
    n: usize,
    oid: u32,
    format: i16,
    bytes: Option<&[u8]>,
) -> Result<String, PgError> {
    let Some(bytes) = bytes else {
        return Ok("NULL".to_string());
    };
    if format == 1 {
        return binary_param(n, oid, bytes);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad(n, "is not valid UTF-8"))?;
    let number = |t: &str| -> Result<String, PgError> {
        let t = t.trim();
        if t.parse::<i64>().is_ok() || t.parse::<f64>().is_ok_and(f64::is_finite) {
            Ok(t.to_string())
        } else {
            Err(bad(n, format!("{t:?} is not a number")))
        }
    };
    match oid {
        INT2 | INT4 | INT8 | OID => {
            let t = text.trim();
            t.parse::<i64>()
                .map(|v| v.to_string())
                .map_err(|_| bad(n, format!("{t:?} is not an integer")))
        }
        FLOAT4 | FLOAT8 | NUMERIC => number(text),
        BOOL => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "on" | "y" => Ok("TRUE".into()),
            "f" | "false" | "0" | "no" | "off" | "n" => Ok("FALSE".into()),
            other => Err(bad(n, format!("{other:?} is not a boolean"))),
        },
        TIMESTAMPTZ | TIMESTAMP => Ok(string_literal(&normalise_timestamp(text))),
        TEXT_ARRAY | VARCHAR_ARRAY => {
            let tags = parse_array(text).ok_or_else(|| bad(n, "is not a text[] literal"))?;
            Ok(set_literal(&tags))
        }
        _ => Ok(string_literal(text)),
    }
}

fn binary_param(n: usize, oid: u32, b: &[u8]) -> Result<String, PgError> {
    let fixed = |len: usize| -> Result<&[u8], PgError> {
        if b.len() == len {
            Ok(b)
        } else {
            Err(bad(
                n,
                format!("binary value of {} bytes, expected {len}", b.len()),
            ))
        }
    };
    Ok(match oid {
        INT2 => i16::from_be_bytes(fixed(2)?.try_into().unwrap_or([0; 2])).to_string(),
        INT4 | OID => i32::from_be_bytes(fixed(4)?.try_into().unwrap_or([0; 4])).to_string(),
        INT8 => i64::from_be_bytes(fixed(8)?.try_into().unwrap_or([0; 8])).to_string(),
        FLOAT4 | FLOAT8 => {
            let v = if oid == FLOAT4 {
                f64::from(f32::from_be_bytes(fixed(4)?.try_into().unwrap_or([0; 4])))
            } else {
                f64::from_be_bytes(fixed(8)?.try_into().unwrap_or([0; 8]))
            };
            if !v.is_finite() {
                return Err(bad(n, "is not a finite number"));
            }
            let mut s = String::new();
            float_text(v, &mut s);
            s
        }
        BOOL => match fixed(1)?[0] {
            0 => "FALSE".into(),
            _ => "TRUE".into(),
        },
        TIMESTAMPTZ | TIMESTAMP => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().unwrap_or([0; 8]));
            (micros.div_euclid(1_000_000) + PG_EPOCH_OFFSET).to_string()
        }
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | 0 | BYTEA => {
            let t = std::str::from_utf8(b).map_err(|_| bad(n, "is not valid UTF-8"))?;
            string_literal(t)
        }
        other => {
            return Err(bad(
                n,
                format!("binary parameters of type OID {other} are not supported; send it as text"),
            ))
        }
    })
}

/// `2026-11-01 10:00:00+00` (PostgreSQL's output) in a form CohortQL's
/// timestamp parser reads: a bare `+HH` offset becomes `+HH:00`.
pub fn normalise_timestamp(t: &str) -> String {
    let t = t.trim();
    let bytes = t.as_bytes();
    if bytes.len() > 3 {
        let tail = &t[t.len() - 3..];
        let sign = tail.as_bytes()[0];
        if (sign == b'+' || sign == b'-')
            && tail[1..].bytes().all(|c| c.is_ascii_digit())
            && t.contains(':')
        {
            return format!("{t}:00");
        }
    }
    t.to_string()
}

/// Tags as a CohortQL set literal.
pub fn set_literal(tags: &[String]) -> String {
    let items: Vec<String> = tags.iter().map(|t| string_literal(t)).collect();
    format!("[{}]", items.join(", "))
}

/// Reads a one-dimensional text[] literal `{a,"b c",NULL}` (NULL elements
/// are dropped: a set holds none); `None` if it is not one.
pub fn parse_array(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut tags = Vec::new();
    if inner.trim().is_empty() {
        return Some(tags);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if matches!(c, '{' | '}' | '"') {
                    return None;
                }
                if c == '\\' {
                    chars.next();
                    item.push(chars.next()?);
                    continue;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
        }
        if quoted || !item.eq_ignore_ascii_case("NULL") {
            tags.push(item);
        }
        match chars.next() {
            None => return Some(tags),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Value) -> String {
        text(&v).unwrap()
    }

    #[test]
    fn column_types_map_to_oids() {
        assert_eq!(oid(ColumnType::Text), 25);
        assert_eq!(oid(ColumnType::Int), 20);
        assert_eq!(oid(ColumnType::Float), 701);
        assert_eq!(oid(ColumnType::Bool), 16);
        assert_eq!(oid(ColumnType::Timestamp), 1184);
        assert_eq!(oid(ColumnType::TextSet), 1009);
        assert_eq!(size(INT8), 8);
        assert_eq!(size(TEXT), -1);
    }

    #[test]
    fn text_format_is_postgres() {
        assert_eq!(text(&Value::Null), None);
        assert_eq!(t(Value::Int(-42)), "-42");
        assert_eq!(t(Value::Bool(true)), "t");
        assert_eq!(t(Value::Bool(false)), "f");
        assert_eq!(t(Value::Float(1.5)), "1.5");
        assert_eq!(t(Value::Float(2.0)), "2");
        assert_eq!(t(Value::Float(0.1 + 0.2)), "0.30000000000000004");
        assert_eq!(t(Value::Float(1e20)), "1e+20");
        assert_eq!(t(Value::Float(1.5e-5)), "1.5e-05");
        assert_eq!(t(Value::Float(f64::NAN)), "NaN");
        assert_eq!(t(Value::Float(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(t(Value::Timestamp(1_793_491_200)), "2026-11-01 00:00:00+00");
        assert_eq!(
            t(Value::Set(vec![
                "a".into(),
                "b c".into(),
                "".into(),
                "q\"\\".into(),
                "null".into()
            ])),
            r#"{a,"b c","","q\"\\","null"}"#
        );
        assert_eq!(t(Value::Set(vec![])), "{}");
    }

    #[test]
    fn arrays_parse_back() {
        let tags: Vec<String> = ["a", "b c", "", "q\"\\", "null", "{x}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut s = String::new();
        array_text(&tags, &mut s);
        assert_eq!(parse_array(&s), Some(tags));
        assert_eq!(parse_array("{}"), Some(vec![]));
        assert_eq!(parse_array("{ a , b }"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(parse_array("{a,NULL}"), Some(vec!["a".into()]));
        assert_eq!(parse_array("a,b"), None);
        assert_eq!(parse_array("{\"a}"), None);
        assert_eq!(parse_array("{a\"b}"), None);
    }

    #[test]
    fn binary_format() {
        let bin = |v: Value, ty| {
            let mut out = Vec::new();
            binary(&v, ty, &mut out);
            out
        };
        assert_eq!(bin(Value::Int(1), ColumnType::Int), 1i64.to_be_bytes());
        assert_eq!(bin(Value::Bool(true), ColumnType::Bool), [1]);
        assert_eq!(
            bin(Value::Float(1.5), ColumnType::Float),
            1.5f64.to_be_bytes()
        );
        assert_eq!(
            bin(Value::Timestamp(PG_EPOCH_OFFSET + 1), ColumnType::Timestamp),
            1_000_000i64.to_be_bytes()
        );
        let set = bin(Value::Set(vec!["ab".into()]), ColumnType::TextSet);
        assert_eq!(
            set,
            [
                &1i32.to_be_bytes()[..],
                &0i32.to_be_bytes(),
                &25u32.to_be_bytes(),
                &1i32.to_be_bytes(),
                &1i32.to_be_bytes(),
                &2i32.to_be_bytes(),
                b"ab"
            ]
            .concat()
        );
    }

    #[test]
    fn parameters_become_literals() {
        let p = |oid, text: &str| param_literal(1, oid, 0, Some(text.as_bytes()));
        assert_eq!(p(0, "it's \\ here").unwrap(), r"'it''s \\ here'");
        assert_eq!(p(TEXT, "FR").unwrap(), "'FR'");
        assert_eq!(p(INT4, " 42").unwrap(), "42");
        assert!(p(INT8, "42; DROP TABLE x").is_err());
        assert!(p(FLOAT8, "1e999").is_err());
        assert_eq!(p(NUMERIC, "2.5").unwrap(), "2.5");
        assert_eq!(p(BOOL, "t").unwrap(), "TRUE");
        assert_eq!(p(TEXT_ARRAY, "{a,b}").unwrap(), "['a', 'b']");
        assert_eq!(
            p(TIMESTAMPTZ, "2026-11-01 10:00:00+00").unwrap(),
            "'2026-11-01 10:00:00+00:00'"
        );
        assert_eq!(param_literal(1, INT8, 0, None).unwrap(), "NULL");
        let b = |oid, bytes: &[u8]| param_literal(2, oid, 1, Some(bytes));
        assert_eq!(b(INT4, &7i32.to_be_bytes()).unwrap(), "7");
        assert_eq!(b(INT2, &(-3i16).to_be_bytes()).unwrap(), "-3");
        assert_eq!(b(INT8, &9i64.to_be_bytes()).unwrap(), "9");
        assert_eq!(b(FLOAT8, &0.5f64.to_be_bytes()).unwrap(), "0.5");
        assert_eq!(b(BOOL, &[1]).unwrap(), "TRUE");
        assert_eq!(b(TEXT, b"x'y").unwrap(), "'x''y'");
        assert!(b(INT4, &[1, 2]).is_err());
        assert!(b(NUMERIC, &[0; 8]).is_err());
        assert_eq!(cast_type("BIGINT"), Some(INT8));
        assert_eq!(cast_type("widget"), None);
    }
}
