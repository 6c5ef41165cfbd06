//! Reading NDJSON rows (one JSON object per line) into batches.
//!
//! Each line is parsed by serde_json straight into typed cells: a
//! `DeserializeSeed` walks the object and writes every value into a reused
//! per-column buffer, so no `serde_json::Value` tree and no per-row strings
//! are built. Keys name table columns (case-insensitive); a key that is not a
//! column, a value of the wrong JSON type, invalid UTF-8 or malformed JSON
//! rejects that line. A column with no key in an object is NULL; the primary
//! key must be present. Blank lines are skipped but counted.

use super::batch::BatchBuilder;
use super::cells::{
    begin_set, check_key, check_text, event_tag_text, show, timestamp_text, write_bool,
    write_float, write_int, write_null, write_string, write_tag,
};
use super::table::{Kind, Layout, Target};
use super::{RowSource, Step};
use serde::de::{self, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::BufRead;

/// An NDJSON input.
pub struct NdjsonSource<R: BufRead> {
    input: R,
    layout: Layout,
    /// Table columns the importer cannot write: (name, type).
    unsupported: Vec<(String, String)>,
    line_buf: Vec<u8>,
    line: u64,
    position: u64,
    slots: Vec<Vec<u8>>,
    seen: Vec<bool>,
}

impl<R: BufRead> NdjsonSource<R> {
    pub fn new(input: R, layout: Layout, unsupported: Vec<(String, String)>) -> Self {
        let n = layout.targets.len();
        NdjsonSource {
            input,
            layout,
            unsupported,
            line_buf: Vec::with_capacity(1 << 12),
            line: 0,
            position: 0,
            slots: vec![Vec::with_capacity(64); n],
            seen: vec![false; n],
        }
    }

    /// Parses one object into `slots`; `Err` is the reason for rejecting it.
    fn parse(&mut self, text: &str) -> Result<(), String> {
        self.seen.iter_mut().for_each(|s| *s = false);
        let mut reason = None;
        let seed = RowSeed {
            layout: &self.layout,
            unsupported: &self.unsupported,
            slots: &mut self.slots,
            seen: &mut self.seen,
            reason: &mut reason,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let result = seed.deserialize(&mut de).and_then(|()| de.end());
        if let Some(reason) = reason {
            return Err(reason);
        }
        result.map_err(|e| json_reason(&e))?;
        for (i, target) in self.layout.targets.iter().enumerate() {
            if !self.seen[i] {
                if target.kind == Kind::Key {
                    return Err(format!("the primary key {} is missing", target.name));
                }
                self.slots[i].clear();
                if target.kind == Kind::Events {
                    // No key: no events to add (NULL would clear them).
                    begin_set(&mut self.slots[i]);
                } else {
                    write_null(&mut self.slots[i]);
                }
            }
        }
        Ok(())
    }
}

/// serde_json's message without its "at line 1 column N" (every line is its
/// own document), with the column put back in a readable place.
fn json_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    match e.classify() {
        serde_json::error::Category::Data if e.column() == 0 => message.to_string(),
        serde_json::error::Category::Data => format!("{message} (column {})", e.column()),
        _ => format!("invalid JSON at column {}: {message}", e.column()),
    }
}

impl<R: BufRead + Send> RowSource for NdjsonSource<R> {
    fn next_row(&mut self, b: &mut BatchBuilder, spill: &mut Vec<u8>) -> Result<Step, String> {
        let (start, end) = loop {
            self.line_buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.line_buf)
                .map_err(|e| format!("cannot read the input: {e}"))?;
            if n == 0 {
                return Ok(Step::End);
            }
            self.line += 1;
            self.position += n as u64;
            let buf = &self.line_buf;
            let mut start = 0;
            if self.line == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
            let mut end = buf.len();
            while start < end && buf[start].is_ascii_whitespace() {
                start += 1;
            }
            while end > start && buf[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            if start < end {
                break (start, end);
            }
        };
        let line = self.line;
        // Take the line out while the slots (also in `self`) are written.
        let line_buf = std::mem::take(&mut self.line_buf);
        let parsed = match std::str::from_utf8(&line_buf[start..end]) {
            Ok(text) => self.parse(text),
            Err(e) => Err(format!(
                "the line is not valid UTF-8 (bad byte at column {})",
                start + e.valid_up_to() + 1
            )),
        };
        self.line_buf = line_buf;
        if let Err(reason) = parsed {
            b.reject(line, reason);
            return Ok(Step::Row(b.fullness(), line));
        }
        let out = b.begin_row();
        for slot in &self.slots {
            out.extend_from_slice(slot);
        }
        Ok(Step::Row(b.end_row(line, spill), line))
    }

    fn position(&self) -> u64 {
        self.position
    }
}

/// Walks one object, writing each value as a cell into its column's slot.
struct RowSeed<'a> {
    layout: &'a Layout,
    unsupported: &'a [(String, String)],
    slots: &'a mut [Vec<u8>],
    seen: &'a mut [bool],
    reason: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(i) = map.next_key_seed(KeySeed {
            layout: self.layout,
            unsupported: self.unsupported,
            reason: &mut *self.reason,
        })? {
            let target = &self.layout.targets[i];
            if std::mem::replace(&mut self.seen[i], true) {
                *self.reason = Some(format!("key {} appears twice", target.name));
                return Err(A::Error::custom("duplicate key"));
            }
            let slot = &mut self.slots[i];
            slot.clear();
            map.next_value_seed(ValueSeed {
                target,
                out: slot,
                reason: &mut *self.reason,
            })?;
        }
        Ok(())
    }
}

/// Resolves a key to its column's position in the layout.
struct KeySeed<'a> {
    layout: &'a Layout,
    unsupported: &'a [(String, String)],
    reason: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        if let Some(i) = self.layout.position(key) {
            return Ok(i);
        }
        *self.reason = Some(
            match self
                .unsupported
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
            {
                Some((name, ty)) => format!("column {name} is {ty}, which import cannot load yet"),
                None => format!(
                    "key {} is not a column of table {}",
                    show(key),
                    self.layout.table
                ),
            },
        );
        Err(E::custom("unknown key"))
    }
}

fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Key | Kind::Text => "TEXT",
        Kind::Set => "SET<TEXT>",
        Kind::Events => "EVENTS<TEXT>",
        Kind::Int => "INT",
        Kind::Timestamp => "TIMESTAMP",
        Kind::Float => "FLOAT",
        Kind::Bool => "BOOL",
    }
}

/// Writes one value as the cell for its column.
struct ValueSeed<'a> {
    target: &'a Target,
    out: &'a mut Vec<u8>,
    reason: &'a mut Option<String>,
}

impl ValueSeed<'_> {
    fn refuse<E: de::Error>(self, reason: String) -> Result<(), E> {
        *self.reason = Some(reason);
        Err(E::custom("bad value"))
    }

    fn mismatch<E: de::Error>(self, found: String) -> Result<(), E> {
        let reason = if self.target.kind == Kind::Key {
            format!(
                "the primary key {} must be a non-empty string, not {found}",
                self.target.name
            )
        } else {
            format!(
                "column {} is {}, {found} does not fit it",
                self.target.name,
                type_name(self.target.kind)
            )
        };
        self.refuse(reason)
    }

    fn int<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.target.kind {
            Kind::Int | Kind::Timestamp => {
                write_int(self.out, v);
                Ok(())
            }
            Kind::Float => {
                write_float(self.out, v as f64);
                Ok(())
            }
            _ => self.mismatch(format!("the number {v}")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value for column {}", self.target.name)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.target.kind == Kind::Key {
            return self.mismatch("null".into());
        }
        write_null(self.out);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        if self.target.kind == Kind::Bool {
            write_bool(self.out, v);
            return Ok(());
        }
        self.mismatch(format!("{v}"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.int(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => match self.target.kind {
                Kind::Float => {
                    write_float(self.out, v as f64);
                    Ok(())
                }
                Kind::Int | Kind::Timestamp => {
                    let reason = format!(
                        "column {} is {}, {v} does not fit a 64-bit integer",
                        self.target.name,
                        type_name(self.target.kind)
                    );
                    self.refuse(reason)
                }
                _ => self.mismatch(format!("the number {v}")),
            },
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.target.kind {
            Kind::Float if v.is_finite() => {
                write_float(self.out, v);
                Ok(())
            }
            Kind::Int | Kind::Timestamp => {
                let reason = format!(
                    "column {} is {}, {v} is not an integer",
                    self.target.name,
                    type_name(self.target.kind)
                );
                self.refuse(reason)
            }
            _ => self.mismatch(format!("the number {v}")),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let column = self.target.name.as_str();
        let checked = match self.target.kind {
            Kind::Key => check_key(column, v).map(|()| write_string(self.out, v)),
            Kind::Text => check_text(column, v).map(|()| write_string(self.out, v)),
            Kind::Timestamp => timestamp_text(self.out, column, v.trim()),
            _ => return self.mismatch(format!("the string {}", show(v))),
        };
        match checked {
            Ok(()) => Ok(()),
            Err(reason) => self.refuse(reason),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !matches!(self.target.kind, Kind::Set | Kind::Events) {
            return self.mismatch("an array".into());
        }
        let at = begin_set(self.out);
        while seq
            .next_element_seed(TagSeed {
                column: &self.target.name,
                events: self.target.kind == Kind::Events,
                out: &mut *self.out,
                at,
                reason: &mut *self.reason,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        self.mismatch("an object".into())
    }
}

/// Writes one tag of a SET<TEXT> array, or one `value@time` event of an
/// EVENTS<TEXT> array.
struct TagSeed<'a> {
    column: &'a str,
    events: bool,
    out: &'a mut Vec<u8>,
    /// Where the SET cell's count sits.
    at: usize,
    reason: &'a mut Option<String>,
}

impl TagSeed<'_> {
    fn refuse<E: de::Error>(self, found: String) -> Result<(), E> {
        let ty = if self.events {
            "EVENTS<TEXT>"
        } else {
            "SET<TEXT>"
        };
        *self.reason = Some(format!(
            "column {} is {ty}, its elements must be strings, not {found}",
            self.column
        ));
        Err(E::custom("bad tag"))
    }
}

impl<'de> DeserializeSeed<'de> for TagSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TagSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string tag for column {}", self.column)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let tag = if self.events {
            event_tag_text(self.column, v)
        } else {
            check_text(self.column, v).map(|()| v.to_string())
        };
        match tag {
            Ok(tag) => {
                write_tag(self.out, self.at, &tag);
                Ok(())
            }
            Err(reason) => {
                *self.reason = Some(reason);
                Err(E::custom("bad tag"))
            }
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.refuse("null".into())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.refuse(format!("{v}"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.refuse(format!("{v}"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.refuse(format!("{v}"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.refuse(format!("{v}"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        self.refuse("an array".into())
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        self.refuse("an object".into())
    }
}
