//! Running a bound query against a snapshot: aggregates and groups are
//! computed per shard in parallel and merged; row queries stream shard by
//! shard, holding one shard's filter bitmap at a time.

use super::bind::{Field, Query, Shape};
use super::error::QueryResult;
use super::exec::{
    aggregate, count, eval, per_shard, read_fields, resolve_keys, AggState, Resolved,
};
use super::group::{finish, group_shard, merge, Groups};
use super::output::{Output, RowSource, Rows};
use super::top_groups;
use crate::engine::{write_cell, ShardSnapshot, Snapshot, TableSnapshot, Value};
use crate::storage::columnar::RowsEncoder;
use crate::storage::schema::ColumnType;
use roaring::RoaringBitmap;

/// The rows of `shard` the filter selects (all live rows without one).
pub fn selected(filter: Option<&Resolved>, shard: &ShardSnapshot) -> QueryResult<RoaringBitmap> {
    Ok(match filter {
        Some(f) => eval(f, shard, None)?.into_owned(),
        None => shard.live().clone(),
    })
}

pub fn run_query(snapshot: &Snapshot, query: Query) -> QueryResult<Output> {
    run_query_within(snapshot, query, None)
}

/// [`run_query`] with at most `memory_limit` bytes of intermediate results
/// (GROUP BY groups).
pub fn run_query_within(
    snapshot: &Snapshot,
    query: Query,
    memory_limit: Option<u64>,
) -> QueryResult<Output> {
    let table = snapshot.table(&query.table)?;
    let filter = query.filter.as_ref().map(|f| resolve_keys(f, &table));
    match query.shape {
        Shape::Aggregates(aggs) => {
            let count_star_only = aggs.iter().all(|a| a.column.is_none());
            let per: Vec<Vec<AggState>> = per_shard(&table, |shard| {
                if count_star_only {
                    let n = match &filter {
                        Some(f) => count(f, shard)?,
                        None => shard.live().len(),
                    };
                    return Ok(aggs.iter().map(|_| AggState::Count(n)).collect());
                }
                let rows = selected(filter.as_ref(), shard)?;
                aggs.iter().map(|a| aggregate(a, shard, &rows)).collect()
            })?;
            let mut total: Vec<AggState> = aggs.iter().map(AggState::new).collect();
            for shard_states in per {
                for (t, s) in total.iter_mut().zip(shard_states) {
                    t.merge(s);
                }
            }
            let row = total
                .iter()
                .zip(&aggs)
                .map(|(s, a)| s.finish(a))
                .collect::<QueryResult<Vec<Value>>>()?;
            Ok(Output::Rows(Rows::from_vec(query.columns, vec![row])))
        }
        Shape::Groups {
            keys,
            outputs,
            order,
            limit,
        } => {
            let schema = &query.schema;
            let per: Vec<Groups> = match top_groups::plan(schema, &keys, &outputs, &order, limit) {
                // The most common values first: only those that can make the cut.
                Some((column, n)) => vec![top_groups::groups(
                    schema,
                    &table,
                    filter.as_ref(),
                    column,
                    &outputs,
                    n,
                )?],
                None => per_shard(&table, |shard| {
                    let rows = selected(filter.as_ref(), shard)?;
                    group_shard(schema, &keys, &outputs, shard, &rows)
                })?,
            };
            let mut all = Groups::new();
            let mut budget = super::group::Budget {
                limit: memory_limit,
                used: 0,
            };
            for g in per {
                merge(&mut all, g, &mut budget)?;
            }
            let rows = finish(all, &outputs, &order, limit)?;
            Ok(Output::Rows(Rows::from_vec(query.columns, rows)))
        }
        Shape::Rows { fields, limit } => Ok(Output::Rows(Rows::new(
            query.columns,
            RowStream {
                table,
                filter,
                fields,
                next_shard: 0,
                current: None,
                remaining: limit,
                done: false,
            },
        ))),
    }
}

/// Streams the selected rows shard by shard.
struct RowStream {
    table: TableSnapshot,
    filter: Option<Resolved>,
    fields: Vec<Field>,
    next_shard: usize,
    current: Option<(ShardSnapshot, roaring::bitmap::IntoIter)>,
    remaining: Option<u64>,
    done: bool,
}

impl RowStream {
    /// The next selected row; the shard it is in is `self.current`.
    fn advance(&mut self) -> Option<QueryResult<u32>> {
        loop {
            if self.done || self.remaining == Some(0) {
                return None;
            }
            if let Some((_, rows)) = &mut self.current {
                if let Some(row) = rows.next() {
                    if let Some(n) = &mut self.remaining {
                        *n -= 1;
                    }
                    return Some(Ok(row));
                }
            }
            let shard = self.table.shard(self.next_shard)?;
            self.next_shard += 1;
            match selected(self.filter.as_ref(), &shard) {
                Ok(rows) => self.current = Some((shard, rows.into_iter())),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Ends the stream on an error.
    fn fail<T>(&mut self, e: impl Into<super::error::QueryError>) -> QueryResult<T> {
        self.done = true;
        Err(e.into())
    }
}

impl Iterator for RowStream {
    type Item = QueryResult<Vec<Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = match self.advance()? {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        let (shard, _) = self.current.as_ref()?;
        let result = read_fields(shard, row, &self.fields);
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

impl RowSource for RowStream {
    /// Writes ids straight from the parts' bytes and other fields as values:
    /// no row of values and no id string per row.
    fn encode_next(
        &mut self,
        max: usize,
        types: &[ColumnType],
        out: &mut RowsEncoder,
    ) -> QueryResult<usize> {
        let mut n = 0;
        while n < max {
            let row = match self.advance() {
                None => break,
                Some(Ok(row)) => row,
                Some(Err(e)) => return self.fail(e),
            };
            let Some((shard, _)) = self.current.as_ref() else {
                break;
            };
            for (c, field) in self.fields.iter().enumerate() {
                match field {
                    Field::Id => match shard.id_bytes(row) {
                        Ok(Some(id)) => out.text_bytes(c, id),
                        Ok(None) => out.null(c),
                        Err(e) => return self.fail(e),
                    },
                    Field::Column(col) => match shard.value(*col, row) {
                        Ok(v) => write_cell(out, c, types[c], Some(&v)),
                        Err(e) => return self.fail(e),
                    },
                }
            }
            n += 1;
        }
        Ok(n)
    }
}

/// Number of profiles of `table` satisfying `pred`.
pub fn count_rows(table: &TableSnapshot, pred: &super::bind::Pred) -> QueryResult<u64> {
    let resolved = resolve_keys(pred, table);
    Ok(per_shard(table, |shard| count(&resolved, shard))?
        .into_iter()
        .sum())
}

/// The ids of the profiles a filter selects (for UPDATE and DELETE).
pub fn matching_ids(
    table: &TableSnapshot,
    filter: Option<&super::bind::Pred>,
) -> QueryResult<Vec<String>> {
    let filter = filter.map(|f| resolve_keys(f, table));
    let per = per_shard(table, |shard| {
        let rows = selected(filter.as_ref(), shard)?;
        rows.iter()
            .filter_map(|row| shard.id(row).transpose())
            .collect::<Result<Vec<String>, _>>()
            .map_err(Into::into)
    })?;
    Ok(per.into_iter().flatten().collect())
}
