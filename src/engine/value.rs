//! Values as callers see them, and the write batches they send.
//!
//! A [`Batch`] is a list of upserts (by external id: set a column, add tags
//! to / remove tags from a SET<TEXT> column) and deletes (by id), applied
//! atomically and in order. An upsert of an unknown id creates the profile
//! with the columns it names (others NULL); of a known id it changes only the
//! columns it names.

use crate::storage::columnar::RowsEncoder;
use crate::storage::schema::ColumnType;
use std::fmt;

/// One cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    /// A set of tags; order and duplicates are not kept.
    Set(Vec<String>),
    Int(i64),
    /// Seconds since the Unix epoch, UTC.
    Timestamp(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// A short description used in type errors.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Text(s) => format!("TEXT {s:?}"),
            Value::Set(_) => "a SET".into(),
            Value::Int(v) => format!("INT {v}"),
            Value::Timestamp(v) => format!("TIMESTAMP {v}"),
            Value::Float(v) => format!("FLOAT {v}"),
            Value::Bool(v) => format!("BOOL {v}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Text(s) => f.write_str(s),
            Value::Set(tags) => write!(f, "[{}]", tags.join(",")),
            Value::Int(v) => write!(f, "{v}"),
            Value::Timestamp(v) => match chrono::DateTime::from_timestamp(*v, 0) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
                None => write!(f, "{v}"),
            },
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// Writes `value` as cell `c` of a column of type `ty` (a value of another
/// type is written as NULL).
pub fn write_cell(e: &mut RowsEncoder, c: usize, ty: ColumnType, value: Option<&Value>) {
    match (ty, value) {
        (ColumnType::Text, Some(Value::Text(s))) => e.text(c, s),
        (ColumnType::TextSet, Some(Value::Set(tags))) => e.set(c, tags.iter().map(String::as_str)),
        (ColumnType::Int, Some(Value::Int(v)))
        | (ColumnType::Timestamp, Some(Value::Timestamp(v) | Value::Int(v))) => e.int(c, *v),
        (ColumnType::Float, Some(Value::Float(v))) => e.float(c, *v),
        (ColumnType::Bool, Some(Value::Bool(v))) => e.bool(c, *v),
        _ => e.null(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_display_as_iso8601_utc() {
        assert_eq!(
            Value::Timestamp(1_793_491_200).to_string(),
            "2026-11-01T00:00:00Z"
        );
        assert_eq!(Value::Timestamp(i64::MAX).to_string(), i64::MAX.to_string());
        assert_eq!(
            Value::Set(vec!["a".into(), "b".into()]).to_string(),
            "[a,b]"
        );
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl<S: Into<String>> From<Vec<S>> for Value {
    fn from(v: Vec<S>) -> Self {
        Value::Set(v.into_iter().map(Into::into).collect())
    }
}

/// A profile read back: its external id and one value per non-key column.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub values: Vec<Value>,
}

/// What an upsert does to one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Replace the value (a whole set for SET<TEXT>); `Value::Null` clears it.
    Set(Value),
    /// Add these tags to a SET<TEXT> column (a NULL set becomes these tags).
    Add(Vec<String>),
    /// Remove these tags from a SET<TEXT> column.
    Remove(Vec<String>),
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Upsert {
        id: String,
        changes: Vec<(String, Change)>,
    },
    /// Like `Upsert`, but only if the profile exists when the batch applies
    /// (UPDATE ... WHERE never brings a deleted profile back).
    Update {
        id: String,
        changes: Vec<(String, Change)>,
    },
    Delete {
        id: String,
    },
}

/// An atomic group of writes to one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub ops: Vec<WriteOp>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts an upsert of profile `id`; chain [`Upsert::set`], [`Upsert::add`], [`Upsert::remove`].
    pub fn upsert(&mut self, id: impl Into<String>) -> Upsert<'_> {
        self.ops.push(WriteOp::Upsert {
            id: id.into(),
            changes: Vec::new(),
        });
        Upsert { batch: self }
    }

    /// Starts an update of profile `id`, applied only if it exists.
    pub fn update(&mut self, id: impl Into<String>) -> Upsert<'_> {
        self.ops.push(WriteOp::Update {
            id: id.into(),
            changes: Vec::new(),
        });
        Upsert { batch: self }
    }

    /// Deletes profile `id` (a no-op if it does not exist).
    pub fn delete(&mut self, id: impl Into<String>) -> &mut Self {
        self.ops.push(WriteOp::Delete { id: id.into() });
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Builder for the changes of one upsert or update.
pub struct Upsert<'a> {
    batch: &'a mut Batch,
}

impl Upsert<'_> {
    fn push(self, column: &str, change: Change) -> Self {
        if let Some(WriteOp::Upsert { changes, .. } | WriteOp::Update { changes, .. }) =
            self.batch.ops.last_mut()
        {
            changes.push((column.to_string(), change));
        }
        self
    }
    pub fn set(self, column: &str, value: impl Into<Value>) -> Self {
        self.push(column, Change::Set(value.into()))
    }
    pub fn add<S: Into<String>>(self, column: &str, tags: impl IntoIterator<Item = S>) -> Self {
        self.push(
            column,
            Change::Add(tags.into_iter().map(Into::into).collect()),
        )
    }
    pub fn remove<S: Into<String>>(self, column: &str, tags: impl IntoIterator<Item = S>) -> Self {
        self.push(
            column,
            Change::Remove(tags.into_iter().map(Into::into).collect()),
        )
    }
}
