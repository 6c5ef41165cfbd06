//! The query layer: CohortQL text → parse (pest, [`parse`]) → AST ([`ast`])
//! → bind against the catalog of a snapshot ([`bind`]) → run per shard in
//! parallel and merge ([`exec`], [`group`], [`run`]) → [`Output`].
//! `EXPLAIN` renders the plan ([`explain`]). The reference is docs/cohortql.md.
//!
//! Invariants: a script is parsed whole before anything runs, so a syntax
//! error anywhere runs nothing; each statement is bound just before it runs
//! (so it sees the tables earlier statements created) and is one atomic
//! batch; a statement that fails changes nothing; no input panics.

pub mod access;
pub mod activation;
pub mod ast;
pub mod bind;
pub mod error;
pub mod events;
pub mod exec;
pub mod explain;
pub mod forget;
pub mod group;
pub mod lookalike;
pub mod output;
pub mod overlap;
pub mod parse;
pub mod run;
pub mod segments;
pub mod suppress;
pub mod top;
pub mod top_groups;
pub mod users;

pub use access::{Principal, Role};
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
        self.execute_as(&Principal::admin("embedded"), sql)
    }

    /// [`Database::execute`] as `principal`: each statement is checked
    /// against its role before it runs (src/query/access.rs).
    pub fn execute_as(&self, principal: &Principal, sql: &str) -> QueryResult<Vec<Output>> {
        let statements = parse::parse(sql)?;
        let mut outputs = Vec::with_capacity(statements.len());
        for s in &statements {
            outputs.extend(self.execute_statement_as(principal, sql, &s.statement)?);
        }
        Ok(outputs)
    }

    /// Runs one parsed statement of `sql` as admin: its outputs (one, or
    /// two for `OVERLAP`).
    pub fn execute_statement(
        &self,
        sql: &str,
        statement: &ast::Statement,
    ) -> QueryResult<Vec<Output>> {
        self.execute_statement_as(&Principal::admin("embedded"), sql, statement)
    }

    /// Runs one parsed statement of `sql` as `principal` (what sessions
    /// call): refused before it runs if the role may not run it.
    pub fn execute_statement_as(
        &self,
        principal: &Principal,
        sql: &str,
        statement: &ast::Statement,
    ) -> QueryResult<Vec<Output>> {
        let snapshot = self.snapshot();
        let role = principal.role;
        let bound = bind::bind(sql, &snapshot, statement, role)?;
        access::check(role, &bound)?;
        if role == Role::Analyst {
            return self.execute_suppressed(&snapshot, sql, bound, principal);
        }
        self.execute_bound(&snapshot, sql, bound, principal)
    }

    /// Runs a bound statement for an analyst: counts below a table's
    /// `min_audience` are suppressed (src/query/suppress.rs).
    fn execute_suppressed(
        &self,
        snapshot: &crate::engine::Snapshot,
        sql: &str,
        bound: Bound,
        principal: &Principal,
    ) -> QueryResult<Vec<Output>> {
        use suppress::{apply, min_audience, Rule};
        let role = principal;
        let k_of_table = |name: &Value| match name {
            Value::Text(t) => snapshot
                .table(t)
                .ok()
                .and_then(|t| min_audience(t.schema())),
            _ => None,
        };
        match bound {
            Bound::Select(query) => {
                let Some(k) = min_audience(&query.schema) else {
                    return self.execute_bound(snapshot, sql, Bound::Select(query), role);
                };
                let (query, count_at, appended) = suppress::with_count(query);
                let rules = suppress::query_rules(&query, count_at);
                let out = run::run_query_within(snapshot, query, self.query_memory_limit())?;
                let out = apply(out, &rules, |_| Some(k))?;
                Ok(vec![if appended {
                    suppress::drop_last_column(out)?
                } else {
                    out
                }])
            }
            Bound::Overlap(query) => {
                let k = snapshot
                    .table(&query.table)
                    .ok()
                    .and_then(|t| min_audience(t.schema()));
                let matrix = query.matrix;
                let outputs = overlap::run(snapshot, &query)?;
                let Some(k) = k else {
                    return Ok(outputs);
                };
                outputs
                    .into_iter()
                    .enumerate()
                    .map(|(i, out)| {
                        let width = match &out {
                            Output::Rows(r) => r.columns.len(),
                            Output::Done { .. } => 0,
                        };
                        let rules: Vec<Rule> = if matrix {
                            (0..width)
                                .map(|c| if c == 0 { Rule::keep() } else { Rule::count() })
                                .collect()
                        } else if i == 0 {
                            (0..width)
                                .map(|c| {
                                    if c + 1 == width {
                                        Rule::count()
                                    } else {
                                        Rule::keep()
                                    }
                                })
                                .collect()
                        } else {
                            vec![
                                Rule::keep(),
                                Rule::keep(),
                                Rule::count(),
                                Rule::count(),
                                Rule::count(),
                                Rule::derived(&[2, 4]),
                                Rule::derived(&[3, 4]),
                                Rule::derived(&[2, 3, 4]),
                            ]
                        };
                        apply(out, &rules, |_| Some(k))
                    })
                    .collect()
            }
            Bound::Top(query) => {
                let k = snapshot
                    .table(&query.table)
                    .ok()
                    .and_then(|t| min_audience(t.schema()));
                let out = top::run(snapshot, &query)?;
                let Some(k) = k else {
                    return Ok(vec![out]);
                };
                let rules = [
                    Rule::keep(),
                    Rule::count(),
                    Rule::derived(&[1]),
                    Rule::count(),
                    Rule::derived(&[3]),
                    Rule::derived(&[1, 3]),
                ];
                Ok(vec![apply(out, &rules, |_| Some(k))?])
            }
            Bound::Lookalike(query) => {
                let k = snapshot
                    .table(&query.table)
                    .ok()
                    .and_then(|t| min_audience(t.schema()));
                let out = lookalike::run(snapshot, &query, principal)?;
                let Some(k) = k else {
                    return Ok(vec![out]);
                };
                let rules = [Rule::keep(), Rule::keep(), Rule::count()];
                Ok(vec![apply(out, &rules, |_| Some(k))?])
            }
            bound @ (Bound::ShowSegments | Bound::DescribeSegment(_)) => {
                let out = self.execute_bound(snapshot, sql, bound, role)?;
                let rules = [
                    Rule::keep(),
                    Rule::keep(),
                    Rule::keep(),
                    Rule::keep(),
                    Rule::count(),
                ];
                out.into_iter()
                    .map(|o| apply(o, &rules, |row| row.get(1).and_then(k_of_table)))
                    .collect()
            }
            Bound::ShowTables => {
                let out = self.execute_bound(snapshot, sql, Bound::ShowTables, role)?;
                let rules = [Rule::keep(), Rule::keep(), Rule::count()];
                out.into_iter()
                    .map(|o| apply(o, &rules, |row| row.first().and_then(k_of_table)))
                    .collect()
            }
            other => self.execute_bound(snapshot, sql, other, role),
        }
    }

    /// Runs a bound (and permitted) statement.
    fn execute_bound(
        &self,
        snapshot: &crate::engine::Snapshot,
        sql: &str,
        bound: Bound,
        principal: &Principal,
    ) -> QueryResult<Vec<Output>> {
        let role = principal.role;
        let snapshot = snapshot.clone();
        Ok(vec![match bound {
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
                // A role that may not write PII does not see that it exists.
                for c in schema
                    .columns
                    .iter()
                    .filter(|c| !c.pii || role.writes_pii())
                {
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
            Bound::Select(query) => {
                run::run_query_within(&snapshot, query, self.query_memory_limit())?
            }
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
            Bound::ShowSegments => segments::show(&snapshot, role)?,
            Bound::DescribeSegment(name) => segments::describe(&snapshot, &name, sql, role)?,
            Bound::Overlap(query) => return overlap::run(&snapshot, &query),
            Bound::Top(query) => top::run(&snapshot, &query)?,
            Bound::Export(export) => activation::run_export(self, &snapshot, principal, export)?,
            Bound::ShowExports => activation::show_exports(&snapshot)?,
            Bound::Forget { id, table } => forget::forget(self, principal, &id, table.as_deref())?,
            Bound::Lookalike(query) => lookalike::run(&snapshot, &query, principal)?,
        }])
    }
}
