//! The query layer: CohortQL text → parse (pest, [`parse`]) → AST ([`ast`])
//! → bind against the catalog of a snapshot ([`bind`]) → run per shard in
//! parallel and merge ([`exec`], [`group`], [`run`]) → [`Output`].
//! `EXPLAIN` renders the plan ([`explain`]). The reference is docs/cohortql.md.
//!
//! Invariants: a script is parsed whole before anything runs, so a syntax
//! error anywhere runs nothing; each statement is bound just before it runs
//! (so it sees the tables earlier statements created) and is one atomic
//! batch; a statement that fails changes nothing; no input panics.

pub mod ast;
pub mod bind;
pub mod error;
pub mod events;
pub mod exec;
pub mod explain;
pub mod group;
pub mod output;
pub mod overlap;
pub mod parse;
pub mod run;
pub mod segments;
pub mod top;
pub mod users;

pub use bind::OutColumn;
pub use error::{Position, QueryError, QueryResult};
pub use output::{Output, Rows};

use crate::engine::{Batch, Database, Error as EngineError, Value};
use crate::storage::schema::ColumnType;
use bind::Bound;

impl Database {
    /// Runs a script of `;`-separated CohortQL statements and returns their
    /// outputs in order: one per statement, except `OVERLAP` (without
    /// `MATRIX`), which gives two (its Venn regions, then its pairs). The
    /// script is parsed whole first; statements then run in order, each
    /// atomically, and the first failure stops the script (statements before
    /// it stay done).
    pub fn execute(&self, sql: &str) -> QueryResult<Vec<Output>> {
        let statements = parse::parse(sql)?;
        let mut outputs = Vec::with_capacity(statements.len());
        for s in &statements {
            outputs.extend(self.execute_statement(sql, &s.statement)?);
        }
        Ok(outputs)
    }

    /// Runs one parsed statement of `sql` (used by `execute` and by
    /// sessions): its outputs (one, or two for `OVERLAP`).
    pub fn execute_statement(
        &self,
        sql: &str,
        statement: &ast::Statement,
    ) -> QueryResult<Vec<Output>> {
        let snapshot = self.snapshot();
        Ok(vec![match bind::bind(sql, &snapshot, statement)? {
            Bound::CreateTable(schema) => {
                self.create_table(schema)?;
                Output::Done {
                    tag: "CREATE TABLE",
                    affected: 0,
                }
            }
            Bound::DropTable { name, if_exists } => {
                // Segments store the table's declared name; `name` is as written.
                let declared = snapshot.table(&name).map(|t| t.schema().name.clone());
                match self.drop_table(&name) {
                    Ok(()) => {
                        segments::drop_segments_of(self, declared.as_deref().unwrap_or(&name))?
                    }
                    Err(EngineError::TableNotFound(_)) if if_exists => {}
                    Err(e) => return Err(e.into()),
                }
                Output::Done {
                    tag: "DROP TABLE",
                    affected: 0,
                }
            }
            Bound::CreateUser {
                name,
                password,
                role,
            } => {
                users::create_user(self, &name, &password, &role)?;
                Output::Done {
                    tag: "CREATE USER",
                    affected: 1,
                }
            }
            Bound::DropUser { name, if_exists } => {
                let dropped = users::drop_user(self, &name)?;
                if !dropped && !if_exists {
                    return Err(QueryError::Limit(format!("user {name} does not exist")));
                }
                Output::Done {
                    tag: "DROP USER",
                    affected: u64::from(dropped),
                }
            }
            Bound::ShowTables => {
                let rows = snapshot
                    .tables()
                    .into_iter()
                    .filter(|t| !t.name.starts_with('_'))
                    .map(|t| {
                        let profiles = snapshot.table(&t.name).map_or(0, |s| s.row_count());
                        vec![
                            Value::Text(t.name.clone()),
                            Value::Int(t.columns.len() as i64 + 1),
                            Value::Int(profiles as i64),
                        ]
                    })
                    .collect();
                Output::Rows(Rows::from_vec(
                    vec![
                        OutColumn {
                            name: "table".into(),
                            ty: ColumnType::Text,
                        },
                        OutColumn {
                            name: "columns".into(),
                            ty: ColumnType::Int,
                        },
                        OutColumn {
                            name: "profiles".into(),
                            ty: ColumnType::Int,
                        },
                    ],
                    rows,
                ))
            }
            Bound::Describe(name) => {
                let table = snapshot.table(&name)?;
                let schema = table.schema();
                let mut rows = vec![vec![
                    Value::Text(schema.key_column.clone()),
                    Value::Text("TEXT".into()),
                    Value::Bool(true),
                    Value::Bool(false),
                ]];
                for c in &schema.columns {
                    rows.push(vec![
                        Value::Text(c.name.clone()),
                        Value::Text(c.type_name()),
                        Value::Bool(false),
                        Value::Bool(c.pii),
                    ]);
                }
                Output::Rows(Rows::from_vec(
                    vec![
                        OutColumn {
                            name: "column".into(),
                            ty: ColumnType::Text,
                        },
                        OutColumn {
                            name: "type".into(),
                            ty: ColumnType::Text,
                        },
                        OutColumn {
                            name: "primary_key".into(),
                            ty: ColumnType::Bool,
                        },
                        OutColumn {
                            name: "pii".into(),
                            ty: ColumnType::Bool,
                        },
                    ],
                    rows,
                ))
            }
            Bound::Insert { table, batch } => {
                let summary = self.write(&table, batch)?;
                Output::Done {
                    tag: "INSERT",
                    affected: summary.upserted,
                }
            }
            Bound::Update {
                table,
                changes,
                filter,
            } => {
                let ids = run::matching_ids(&snapshot.table(&table)?, filter.as_ref())?;
                let mut batch = Batch::new();
                for id in ids {
                    let mut update = batch.update(id);
                    for (column, change) in &changes {
                        update = match change {
                            crate::engine::Change::Set(v) => update.set(column, v.clone()),
                            crate::engine::Change::Add(t) => update.add(column, t.iter().cloned()),
                            crate::engine::Change::Remove(t) => {
                                update.remove(column, t.iter().cloned())
                            }
                        };
                    }
                }
                let summary = self.write(&table, batch)?;
                Output::Done {
                    tag: "UPDATE",
                    affected: summary.upserted,
                }
            }
            Bound::Delete { table, filter } => {
                let ids = run::matching_ids(&snapshot.table(&table)?, filter.as_ref())?;
                let mut batch = Batch::new();
                for id in ids {
                    batch.delete(id);
                }
                let summary = self.write(&table, batch)?;
                Output::Done {
                    tag: "DELETE",
                    affected: summary.deleted,
                }
            }
            Bound::Select(query) => run::run_query(&snapshot, query)?,
            Bound::Explain(query) => explain::explain(&snapshot, &query)?,
            Bound::CreateSegment { def, replace } => {
                segments::store(self, &def)?;
                Output::Done {
                    tag: if replace {
                        "CREATE OR REPLACE SEGMENT"
                    } else {
                        "CREATE SEGMENT"
                    },
                    affected: 0,
                }
            }
            Bound::DropSegment { name, if_exists } => {
                let dropped = segments::drop_segment(self, &name.name, name.span, sql)?;
                if !dropped && !if_exists {
                    return Err(QueryError::Bind {
                        position: Position::of(sql, name.span.start),
                        message: format!("segment {} does not exist", name.name),
                    });
                }
                Output::Done {
                    tag: "DROP SEGMENT",
                    affected: 0,
                }
            }
            Bound::ShowSegments => segments::show(&snapshot)?,
            Bound::DescribeSegment(name) => segments::describe(&snapshot, &name, sql)?,
            Bound::Overlap(query) => return overlap::run(&snapshot, &query),
            Bound::Top(query) => top::run(&snapshot, &query)?,
        }])
    }
}
