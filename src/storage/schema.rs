//! Table schemas as the storage layer persists them: column names, types and
//! flags, and table options. The manifest and WAL encode them with
//! [`TableSchema::encode`] / [`TableSchema::decode`] (docs/storage.md, "Schema").
//!
//! Invariants of a valid schema ([`TableSchema::validate`]): a non-empty
//! name of at most 128 bytes, a key column, 0..=4096 non-key columns, column
//! names unique (case-insensitive) and distinct from the key column.

use super::codec::{ByteReader, ByteWriter};
use super::error::DecodeError;
use std::collections::BTreeMap;
use std::fmt;

/// The type of a non-key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Categorical text: dictionary-encoded, one bitmap per distinct value.
    Text,
    /// A set of text tags: one bitmap per value.
    TextSet,
    /// 64-bit signed integer with a bit-sliced index.
    Int,
    /// Seconds since the Unix epoch (UTC) as a 64-bit integer, with a bit-sliced index.
    Timestamp,
    /// 64-bit float, stored column only.
    Float,
    /// Boolean: a bitmap of the true rows.
    Bool,
}

impl ColumnType {
    /// The code written on disk.
    pub fn code(self) -> u8 {
        match self {
            ColumnType::Text => 1,
            ColumnType::TextSet => 2,
            ColumnType::Int => 3,
            ColumnType::Timestamp => 4,
            ColumnType::Float => 5,
            ColumnType::Bool => 6,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => ColumnType::Text,
            2 => ColumnType::TextSet,
            3 => ColumnType::Int,
            4 => ColumnType::Timestamp,
            5 => ColumnType::Float,
            6 => ColumnType::Bool,
            _ => return None,
        })
    }

    /// True for the types indexed by a dictionary and value bitmaps.
    pub fn is_dictionary(self) -> bool {
        matches!(self, ColumnType::Text | ColumnType::TextSet)
    }

    /// True for the types indexed by a bit-sliced index.
    pub fn is_integer(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Timestamp)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Text => "TEXT",
            ColumnType::TextSet => "SET<TEXT>",
            ColumnType::Int => "INT",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Float => "FLOAT",
            ColumnType::Bool => "BOOL",
        })
    }
}

/// One non-key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    /// Personal data: kept, but shown to admins only (enforced by the query layer).
    pub pii: bool,
    /// An `EVENTS<TEXT>` column: stored as SET<TEXT> whose tags are events
    /// `YYYY-MM-DD:value` (UTC day, then the value); only with `TextSet`.
    pub events: bool,
}

impl ColumnDef {
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        ColumnDef {
            name: name.into(),
            ty,
            pii: false,
            events: false,
        }
    }

    /// An `EVENTS<TEXT>` column.
    pub fn events(name: impl Into<String>) -> Self {
        ColumnDef {
            events: true,
            ..ColumnDef::new(name, ColumnType::TextSet)
        }
    }

    /// The type as CohortQL names it (`EVENTS<TEXT>` for event columns).
    pub fn type_name(&self) -> String {
        if self.events {
            "EVENTS<TEXT>".to_string()
        } else {
            self.ty.to_string()
        }
    }
}

/// A table: its name, its TEXT primary key column, and its other columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    /// Name of the primary-key column (the external profile id, TEXT).
    pub key_column: String,
    pub columns: Vec<ColumnDef>,
    /// Table options (`WITH (k = v)`), kept as text.
    pub options: BTreeMap<String, String>,
}

/// The most columns a table may have.
pub const MAX_COLUMNS: usize = 4096;
/// The longest table or column name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

impl TableSchema {
    pub fn new(name: impl Into<String>, key_column: impl Into<String>) -> Self {
        TableSchema {
            name: name.into(),
            key_column: key_column.into(),
            columns: Vec::new(),
            options: BTreeMap::new(),
        }
    }

    /// Adds a column (builder style).
    pub fn column(mut self, name: impl Into<String>, ty: ColumnType) -> Self {
        self.columns.push(ColumnDef::new(name, ty));
        self
    }

    /// Position of a column by name (case-insensitive), the key column excluded.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Checks the invariants in the module doc; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        check_name("table", &self.name)?;
        check_name("key column", &self.key_column)?;
        if self.columns.len() > MAX_COLUMNS {
            return Err(format!(
                "table {} has {} columns; at most {MAX_COLUMNS} are allowed",
                self.name,
                self.columns.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        seen.insert(self.key_column.to_ascii_lowercase());
        for column in &self.columns {
            check_name("column", &column.name)?;
            if column.events && column.ty != ColumnType::TextSet {
                return Err(format!(
                    "column {} is marked EVENTS but stored as {}",
                    column.name, column.ty
                ));
            }
            if !seen.insert(column.name.to_ascii_lowercase()) {
                return Err(format!(
                    "column {} appears twice in table {}",
                    column.name, self.name
                ));
            }
        }
        Ok(())
    }

    pub fn encode(&self, w: &mut ByteWriter) {
        w.str(&self.name);
        w.str(&self.key_column);
        w.u32(self.columns.len() as u32);
        for column in &self.columns {
            w.str(&column.name);
            w.u8(column.ty.code());
            w.u8(u8::from(column.pii) | (u8::from(column.events) << 1));
        }
        w.u32(self.options.len() as u32);
        for (k, v) in &self.options {
            w.str(k);
            w.str(v);
        }
    }

    pub fn decode(r: &mut ByteReader<'_>) -> Result<Self, DecodeError> {
        let name = r.str("table name")?.to_string();
        let key_column = r.str("key column name")?.to_string();
        let n = r.count(6, "column count")?;
        let mut columns = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str("column name")?.to_string();
            let at = r.offset();
            let code = r.u8("column type")?;
            let ty = ColumnType::from_code(code)
                .ok_or_else(|| DecodeError::new(at, format!("unknown column type code {code}")))?;
            let flags = r.u8("column flags")?;
            columns.push(ColumnDef {
                name,
                ty,
                pii: flags & 1 == 1,
                events: flags & 2 == 2,
            });
        }
        let n = r.count(8, "option count")?;
        let mut options = BTreeMap::new();
        for _ in 0..n {
            let k = r.str("option name")?.to_string();
            let v = r.str("option value")?.to_string();
            options.insert(k, v);
        }
        let schema = TableSchema {
            name,
            key_column,
            columns,
            options,
        };
        schema
            .validate()
            .map_err(|e| r.error(format!("invalid schema: {e}")))?;
        Ok(schema)
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} name {name:?} is {} bytes; at most {MAX_NAME_BYTES} are allowed",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!("{what} name {name:?} contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableSchema {
        let mut s = TableSchema::new("profiles", "id")
            .column("country", ColumnType::Text)
            .column("interests", ColumnType::TextSet)
            .column("age", ColumnType::Int)
            .column("seen", ColumnType::Timestamp)
            .column("ltv", ColumnType::Float)
            .column("consent", ColumnType::Bool);
        s.columns[0].pii = true;
        s.options.insert("retention_days".into(), "90".into());
        s
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = sample();
        let mut w = ByteWriter::new();
        s.encode(&mut w);
        let bytes = w.into_inner();
        let mut r = ByteReader::new(&bytes, 0);
        assert_eq!(TableSchema::decode(&mut r).unwrap(), s);
        assert!(r.is_at_end());
    }

    #[test]
    fn validate_refuses_duplicates_and_empty_names() {
        assert!(sample().validate().is_ok());
        let dup = sample().column("COUNTRY", ColumnType::Int);
        assert!(dup.validate().unwrap_err().contains("twice"));
        let key_dup = TableSchema::new("t", "id").column("ID", ColumnType::Int);
        assert!(key_dup.validate().is_err());
        assert!(TableSchema::new("", "id").validate().is_err());
    }

    #[test]
    fn column_lookup_is_case_insensitive() {
        assert_eq!(sample().column_index("AGE"), Some(2));
        assert_eq!(sample().column_index("nope"), None);
    }
}
