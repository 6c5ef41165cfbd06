//! Column-wise upserts: the bulk-load path. A [`RowsBatch`] carries many
//! profiles in the columnar encoding of [`crate::storage::columnar`] (the
//! profile id first, then one column per named table column); at commit it
//! is parsed and checked once, logged as those same bytes, and applied from
//! that parse without building a value per cell.
//!
//! Semantics: each row is an upsert of the named columns (exactly like
//! `Batch::upsert(id).set(column, value)` for each of them, NULL included);
//! columns not named keep their values (NULL for a new profile); a later row
//! with the same id in the same batch sees the earlier one. EVENTS<TEXT>
//! columns are the exception: like an INSERT, a row adds its events to the
//! profile's (`.add`), and NULL clears them.
//!
//! Invariants: a batch is logged only if it parses for its column types,
//! every id is non-NULL, non-empty and at most [`MAX_ID_BYTES`], and every
//! text at most [`MAX_TEXT_BYTES`] ([`RowsBatch::view`]).

use super::error::{Error, Result};
use super::record::{MAX_ID_BYTES, MAX_TEXT_BYTES};
use super::value::Value;
use crate::storage::columnar::{parse_coded_rows, ColumnView, RowsEncoder, RowsView};
use crate::storage::schema::ColumnType;
use std::collections::HashMap;

/// Profiles to upsert, column by column.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsBatch {
    columns: Vec<(String, ColumnType)>,
    /// Payload column `c` is dictionary-coded when `coded[c]` (empty: none).
    coded: Vec<bool>,
    rows: usize,
    payload: Vec<u8>,
}

impl RowsBatch {
    /// A batch from an encoded payload whose first column is the profile id
    /// (TEXT) followed by `columns`. The payload is checked whole when the
    /// batch is committed ([`RowsBatch::view`]), so it is parsed once.
    pub fn from_payload(columns: Vec<(String, ColumnType)>, payload: Vec<u8>) -> Result<Self> {
        let rows = payload
            .first_chunk::<4>()
            .map(|b| u32::from_le_bytes(*b) as usize)
            .ok_or_else(|| Error::InvalidWrite("bad rows payload: no row count".into()))?;
        Ok(RowsBatch {
            rows,
            columns,
            coded: Vec::new(),
            payload,
        })
    }

    /// The same batch whose payload column `c` is dictionary-coded when
    /// `coded[c]` (docs/protocol.md, InsertRows version 3): at most one flag
    /// per payload column, never the profile id column, only TEXT and
    /// SET<TEXT> columns.
    pub fn with_coded(mut self, coded: Vec<bool>) -> Result<Self> {
        if coded.len() > self.columns.len() + 1 {
            return Err(Error::InvalidWrite(format!(
                "{} column codings for {} payload columns",
                coded.len(),
                self.columns.len() + 1
            )));
        }
        if coded.first() == Some(&true) {
            return Err(Error::InvalidWrite(
                "the profile id column cannot be dictionary-coded".into(),
            ));
        }
        for ((name, ty), c) in self.columns.iter().zip(coded.iter().skip(1)) {
            if *c && !matches!(ty, ColumnType::Text | ColumnType::TextSet) {
                return Err(Error::InvalidWrite(format!(
                    "column {name} is {ty}; only TEXT and SET<TEXT> columns can be dictionary-coded"
                )));
            }
        }
        self.coded = if coded.iter().any(|c| *c) {
            coded
        } else {
            Vec::new()
        };
        Ok(self)
    }

    /// Which payload columns are dictionary-coded (empty: none).
    pub fn coded(&self) -> &[bool] {
        &self.coded
    }

    /// Parses and checks every value: the rows as the commit applies them.
    pub fn view(&self) -> Result<RowsView<'_>> {
        let types = payload_types(self.columns.iter().map(|(_, t)| *t));
        let view = parse_coded_rows(&types, &self.coded, &self.payload, 0).map_err(|e| {
            Error::InvalidWrite(format!(
                "bad rows payload at byte {}: {}",
                e.offset, e.reason
            ))
        })?;
        check_view(&view, |c| self.columns[c].0.as_str())?;
        Ok(view)
    }

    /// A batch from rows of values: `(id, one value per column)`.
    pub fn from_values(
        columns: Vec<(String, ColumnType)>,
        rows: &[(String, Vec<Value>)],
    ) -> Result<Self> {
        Self::encode_values(columns, rows, false)
    }

    /// [`RowsBatch::from_values`] with every TEXT and SET<TEXT> column
    /// dictionary-coded (its distinct values in order of first appearance).
    pub fn from_values_coded(
        columns: Vec<(String, ColumnType)>,
        rows: &[(String, Vec<Value>)],
    ) -> Result<Self> {
        Self::encode_values(columns, rows, true)
    }

    fn encode_values(
        columns: Vec<(String, ColumnType)>,
        rows: &[(String, Vec<Value>)],
        coded: bool,
    ) -> Result<Self> {
        let mut e = RowsEncoder::new(columns.len() + 1);
        // Per coded column: each distinct text's code.
        let mut codes: Vec<Option<HashMap<&str, u32>>> = columns
            .iter()
            .map(|(_, ty)| {
                (coded && matches!(ty, ColumnType::Text | ColumnType::TextSet)).then(HashMap::new)
            })
            .collect();
        for (_, values) in rows {
            for (code_of, v) in codes.iter_mut().zip(values) {
                let (Some(code_of), Value::Text(_) | Value::Set(_)) = (code_of, v) else {
                    continue;
                };
                let texts: Box<dyn Iterator<Item = &str>> = match v {
                    Value::Text(s) => Box::new(std::iter::once(s.as_str())),
                    Value::Set(tags) => Box::new(tags.iter().map(String::as_str)),
                    _ => Box::new(std::iter::empty()),
                };
                for t in texts {
                    let next = code_of.len() as u32;
                    code_of.entry(t).or_insert(next);
                }
            }
        }
        for (c, code_of) in codes.iter().enumerate() {
            if let Some(code_of) = code_of {
                let mut entries: Vec<(&str, u32)> = code_of.iter().map(|(t, c)| (*t, *c)).collect();
                entries.sort_unstable_by_key(|(_, code)| *code);
                e.dictionary(c + 1, entries.into_iter().map(|(t, _)| t));
            }
        }
        for (id, values) in rows {
            if values.len() != columns.len() {
                return Err(Error::InvalidWrite(format!(
                    "profile {id} has {} values for {} columns",
                    values.len(),
                    columns.len()
                )));
            }
            e.text(0, id);
            for (c, ((name, ty), v)) in columns.iter().zip(values).enumerate() {
                match (ty, v, &codes[c]) {
                    (_, Value::Null, _) => e.null(c + 1),
                    (ColumnType::Text, Value::Text(s), Some(code_of)) => {
                        e.code(c + 1, code_of[s.as_str()])
                    }
                    (ColumnType::TextSet, Value::Set(tags), Some(code_of)) => {
                        e.codes(c + 1, tags.iter().map(|t| code_of[t.as_str()]))
                    }
                    (ty, v, _) => Self::encode_plain(&mut e, c + 1, name, *ty, v)?,
                }
            }
        }
        let coded_columns = e.coded();
        let batch = Self::from_payload(columns, e.finish())?.with_coded(coded_columns)?;
        batch.view()?;
        Ok(batch)
    }

    /// Writes `v` as a plain cell of column `c` (named `name`, of type `ty`).
    fn encode_plain(
        e: &mut RowsEncoder,
        c: usize,
        name: &str,
        ty: ColumnType,
        v: &Value,
    ) -> Result<()> {
        match (ty, v) {
            (_, Value::Null) => e.null(c),
            (ColumnType::Text, Value::Text(s)) => e.text(c, s),
            (ColumnType::TextSet, Value::Set(tags)) => e.set(c, tags.iter().map(String::as_str)),
            (ColumnType::Int, Value::Int(v))
            | (ColumnType::Timestamp, Value::Timestamp(v) | Value::Int(v)) => e.int(c, *v),
            (ColumnType::Float, Value::Float(v)) => e.float(c, *v),
            (ColumnType::Float, Value::Int(v)) => e.float(c, *v as f64),
            (ColumnType::Bool, Value::Bool(v)) => e.bool(c, *v),
            (ty, v) => {
                return Err(Error::TypeMismatch {
                    column: name.to_string(),
                    expected: ty,
                    found: v.describe(),
                })
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The named columns (the profile id column is not among them).
    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// The types of a payload: the id column, then `columns`.
pub(crate) fn payload_types(columns: impl Iterator<Item = ColumnType>) -> Vec<ColumnType> {
    std::iter::once(ColumnType::Text).chain(columns).collect()
}

/// Checks ids and text lengths of parsed rows; `name(c)` names value column `c`.
pub(crate) fn check_view<'n>(view: &RowsView<'_>, name: impl Fn(usize) -> &'n str) -> Result<()> {
    let Some(ColumnView::Text(ids)) = view.columns.first() else {
        return Err(Error::InvalidWrite(
            "the first column of a rows batch must be the TEXT profile id".into(),
        ));
    };
    for (i, id) in ids.iter().enumerate() {
        match id {
            None => {
                return Err(Error::InvalidWrite(format!(
                    "row {} has a NULL profile id",
                    i + 1
                )))
            }
            Some("") => {
                return Err(Error::InvalidWrite(format!(
                    "row {} has an empty profile id",
                    i + 1
                )))
            }
            Some(id) if id.len() > MAX_ID_BYTES => {
                return Err(Error::InvalidWrite(format!(
                    "row {}: profile id of {} bytes is longer than the {MAX_ID_BYTES} allowed",
                    i + 1,
                    id.len()
                )))
            }
            Some(_) => {}
        }
    }
    for (c, column) in view.columns.iter().enumerate().skip(1) {
        let long = column
            .texts()
            .map(str::len)
            .max()
            .filter(|len| *len > MAX_TEXT_BYTES);
        if let Some(len) = long {
            return Err(Error::InvalidWrite(format!(
                "value of {len} bytes for column {} is longer than the {MAX_TEXT_BYTES} allowed",
                name(c - 1)
            )));
        }
    }
    Ok(())
}
