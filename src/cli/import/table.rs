//! The target table as the server describes it (`DESCRIBE t`: column, type,
//! primary_key, pii) and the [`Layout`] of an import: which table columns the
//! file fills, in which order, and the columns of the InsertRows messages
//! that carry them (the primary key first).
//!
//! Invariants of a [`Layout`]: it names the primary key exactly once, every
//! column at most once, and only columns of a type the importer can write;
//! `order` is a permutation of `0..targets.len()` with the key at 0.
//! Names are matched case-insensitively (as CohortQL resolves them) and sent
//! with the server's spelling.

use crate::client::Client;
use crate::engine::Value;
use crate::protocol::message::ColumnInfo;
use crate::storage::schema::ColumnType;

/// What a column holds, as far as the importer is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The primary key: a non-empty TEXT profile id.
    Key,
    Text,
    Set,
    /// `EVENTS<TEXT>`: sent as a SET of event tags (`YYYY-MM-DD:value`).
    Events,
    Int,
    Timestamp,
    Float,
    Bool,
}

impl Kind {
    /// The column type the value is sent as.
    pub fn column_type(self) -> ColumnType {
        match self {
            Kind::Key | Kind::Text => ColumnType::Text,
            Kind::Set | Kind::Events => ColumnType::TextSet,
            Kind::Int => ColumnType::Int,
            Kind::Timestamp => ColumnType::Timestamp,
            Kind::Float => ColumnType::Float,
            Kind::Bool => ColumnType::Bool,
        }
    }

    /// The kind of a column whose type DESCRIBE spells `name`.
    fn of(name: &str) -> Option<Kind> {
        Some(match name.to_ascii_uppercase().as_str() {
            "TEXT" => Kind::Text,
            "SET<TEXT>" => Kind::Set,
            "EVENTS<TEXT>" => Kind::Events,
            "INT" => Kind::Int,
            "TIMESTAMP" => Kind::Timestamp,
            "FLOAT" => Kind::Float,
            "BOOL" => Kind::Bool,
            _ => return None,
        })
    }
}

/// One column of the table.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub name: String,
    /// The type as DESCRIBE spells it (`SET<TEXT>`).
    pub type_name: String,
    /// `None` for a type this importer does not know.
    pub kind: Option<Kind>,
}

/// The table, from `DESCRIBE`.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<TableColumn>,
}

/// One column an import fills.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub kind: Kind,
}

/// The columns an import fills, in file order, and how they are sent.
#[derive(Debug, Clone)]
pub struct Layout {
    pub table: String,
    pub targets: Vec<Target>,
    /// The InsertRows columns: the primary key, then the others in file order.
    pub columns: Vec<ColumnInfo>,
    /// `order[i]`: the InsertRows column of `targets[i]`.
    pub order: Vec<usize>,
}

/// Writes `name` as a double-quoted CohortQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl TableInfo {
    /// Asks the server for the table's columns.
    pub fn describe(client: &mut Client, table: &str) -> Result<TableInfo, String> {
        let results = client
            .execute(&format!("DESCRIBE {}", quote_ident(table)))
            .map_err(|e| format!("cannot describe table {table}: {e}"))?;
        let result = results
            .into_iter()
            .next()
            .ok_or_else(|| format!("DESCRIBE {table} returned no result"))?;
        let mut columns = Vec::with_capacity(result.rows.len());
        for row in result.rows {
            let (name, type_name, key) = match row.as_slice() {
                [Value::Text(name), Value::Text(ty), Value::Bool(key), ..] => {
                    (name.clone(), ty.clone(), *key)
                }
                other => {
                    return Err(format!(
                        "DESCRIBE {table} returned an unexpected row: {other:?}"
                    ))
                }
            };
            let kind = if key {
                Some(Kind::Key)
            } else {
                Kind::of(&type_name)
            };
            columns.push(TableColumn {
                name,
                type_name,
                kind,
            });
        }
        if !columns.iter().any(|c| c.kind == Some(Kind::Key)) {
            return Err(format!("DESCRIBE {table} shows no primary key column"));
        }
        Ok(TableInfo {
            name: table.to_string(),
            columns,
        })
    }

    /// The column called `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }

    /// The primary key column's name.
    pub fn key_name(&self) -> &str {
        self.columns
            .iter()
            .find(|c| c.kind == Some(Kind::Key))
            .map_or("id", |c| c.name.as_str())
    }

    /// `id, country, age` for messages.
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        names.join(", ")
    }

    /// The layout of a file whose fields are `names` (a CSV header).
    pub fn layout_for(&self, names: &[String]) -> Result<Layout, String> {
        let mut targets: Vec<Target> = Vec::with_capacity(names.len());
        for name in names {
            let trimmed = name.trim();
            let column = self.find(trimmed).ok_or_else(|| {
                if trimmed.is_empty() {
                    format!(
                        "the header has an empty column name (table {} has columns {})",
                        self.name,
                        self.column_list()
                    )
                } else {
                    format!(
                        "table {} has no column {trimmed} (its columns: {})",
                        self.name,
                        self.column_list()
                    )
                }
            })?;
            if targets.iter().any(|t| t.name == column.name) {
                return Err(format!(
                    "column {} is named twice in the header",
                    column.name
                ));
            }
            let kind = column.kind.ok_or_else(|| {
                format!(
                    "column {} is {}, which import cannot load yet",
                    column.name, column.type_name
                )
            })?;
            targets.push(Target {
                name: column.name.clone(),
                kind,
            });
        }
        if !targets.iter().any(|t| t.kind == Kind::Key) {
            return Err(format!(
                "the header must name the primary key column {} (the profile id)",
                self.key_name()
            ));
        }
        Ok(self.layout(targets))
    }

    /// The layout that fills every column the importer can write (NDJSON).
    pub fn full_layout(&self) -> Layout {
        let targets = self
            .columns
            .iter()
            .filter_map(|c| {
                c.kind.map(|kind| Target {
                    name: c.name.clone(),
                    kind,
                })
            })
            .collect();
        self.layout(targets)
    }

    fn layout(&self, targets: Vec<Target>) -> Layout {
        let info = |t: &Target| ColumnInfo {
            name: t.name.clone(),
            ty: t.kind.column_type(),
        };
        let mut columns: Vec<ColumnInfo> = targets
            .iter()
            .filter(|t| t.kind == Kind::Key)
            .map(info)
            .collect();
        let mut order = Vec::with_capacity(targets.len());
        for t in &targets {
            if t.kind == Kind::Key {
                order.push(0);
            } else {
                order.push(columns.len());
                columns.push(info(t));
            }
        }
        Layout {
            table: self.name.clone(),
            targets,
            columns,
            order,
        }
    }
}

impl Layout {
    /// The position of the column called `name` (case-insensitive).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.targets
            .iter()
            .position(|t| t.name == name)
            .or_else(|| {
                self.targets
                    .iter()
                    .position(|t| t.name.eq_ignore_ascii_case(name))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableInfo {
        let col = |name: &str, type_name: &str, kind| TableColumn {
            name: name.into(),
            type_name: type_name.into(),
            kind,
        };
        TableInfo {
            name: "profiles".into(),
            columns: vec![
                col("id", "TEXT", Some(Kind::Key)),
                col("age", "INT", Some(Kind::Int)),
                col("visits", "EVENTS<TEXT>", None),
            ],
        }
    }

    #[test]
    fn header_columns_resolve_case_insensitively() {
        let l = table()
            .layout_for(&["AGE".to_string(), "Id".to_string()])
            .unwrap();
        let names: Vec<&str> = l.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "age"]);
        assert_eq!(l.order, [1, 0]);
        assert_eq!(l.position("ID"), Some(1));
    }

    #[test]
    fn header_errors_are_clear() {
        let t = table();
        let e = t.layout_for(&["id".into(), "shoe".into()]).unwrap_err();
        assert!(e.contains("no column shoe"), "{e}");
        let e = t.layout_for(&["age".into()]).unwrap_err();
        assert!(e.contains("primary key column id"), "{e}");
        let e = t.layout_for(&["id".into(), "id".into()]).unwrap_err();
        assert!(e.contains("named twice"), "{e}");
        let e = t.layout_for(&["id".into(), "visits".into()]).unwrap_err();
        assert!(e.contains("EVENTS<TEXT>"), "{e}");
    }

    #[test]
    fn full_layout_skips_unknown_types() {
        let l = table().full_layout();
        assert_eq!(l.targets.len(), 2);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
