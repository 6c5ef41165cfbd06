//! Shared test support: a plain in-memory model of a table (a BTreeMap of
//! profiles) with the engine's write semantics, random batch generation, and
//! a checker that compares every value and every bitmap of a database with
//! the model.
#![allow(dead_code)]

use cohortdb::engine::{Batch, Change, Value, WriteOp};
use cohortdb::{ColumnType, Database, TableSchema};
use rand::rngs::StdRng;
use rand::Rng;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, BTreeSet};

pub const TABLE: &str = "profiles";

pub fn schema() -> TableSchema {
    TableSchema::new(TABLE, "id")
        .column("country", ColumnType::Text)
        .column("tags", ColumnType::TextSet)
        .column("age", ColumnType::Int)
        .column("seen", ColumnType::Timestamp)
        .column("ltv", ColumnType::Float)
        .column("ok", ColumnType::Bool)
}

/// The model: id -> one value per column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub rows: BTreeMap<String, Vec<Value>>,
}

fn normalise_set(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags.dedup();
    tags
}

impl Model {
    pub fn apply(&mut self, schema: &TableSchema, batch: &Batch) {
        for op in &batch.ops {
            match op {
                WriteOp::Delete { id } => {
                    self.rows.remove(id);
                }
                WriteOp::Update { id, .. } if !self.rows.contains_key(id) => {}
                WriteOp::Upsert { id, changes } | WriteOp::Update { id, changes } => {
                    let row = self
                        .rows
                        .entry(id.clone())
                        .or_insert_with(|| vec![Value::Null; schema.columns.len()]);
                    for (name, change) in changes {
                        let c = schema.column_index(name).expect("known column");
                        let ty = schema.columns[c].ty;
                        row[c] = match change {
                            Change::Set(v) => match (ty, v.clone()) {
                                (_, Value::Null) => Value::Null,
                                (ColumnType::TextSet, Value::Set(t)) => {
                                    Value::Set(normalise_set(t))
                                }
                                (ColumnType::Timestamp, Value::Int(v)) => Value::Timestamp(v),
                                (ColumnType::Float, Value::Int(v)) => Value::Float(v as f64),
                                (_, v) => v,
                            },
                            Change::Add(tags) => {
                                let mut cur = match &row[c] {
                                    Value::Set(t) => t.clone(),
                                    _ => Vec::new(),
                                };
                                cur.extend(tags.iter().cloned());
                                Value::Set(normalise_set(cur))
                            }
                            Change::Remove(tags) => match &row[c] {
                                Value::Set(t) => Value::Set(
                                    t.iter().filter(|x| !tags.contains(x)).cloned().collect(),
                                ),
                                other => other.clone(),
                            },
                        };
                    }
                }
            }
        }
    }
}

pub const COUNTRIES: &[&str] = &["NL", "BE", "US", "DE", "FR", "secret-country"];
pub const TAGS: &[&str] = &[
    "baking", "tea", "keto", "golf", "cars", "news", "music", "art",
];

pub fn random_value(rng: &mut StdRng, ty: ColumnType) -> Value {
    if rng.random_bool(0.1) {
        return Value::Null;
    }
    match ty {
        ColumnType::Text => Value::Text(COUNTRIES[rng.random_range(0..COUNTRIES.len())].into()),
        ColumnType::TextSet => {
            let n = rng.random_range(0..4);
            Value::Set(
                (0..n)
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())].to_string())
                    .collect(),
            )
        }
        ColumnType::Int => Value::Int(match rng.random_range(0..4) {
            0 => rng.random_range(13..90),
            1 => rng.random_range(-1000..1000),
            2 => rng.random_range(i64::MIN / 2..i64::MAX / 2),
            _ => rng.random_range(0..3),
        }),
        ColumnType::Timestamp => Value::Int(1_790_000_000 + rng.random_range(0..8_000_000)),
        ColumnType::Float => Value::Float(rng.random_range(0..100_000) as f64 / 100.0),
        ColumnType::Bool => Value::Bool(rng.random_bool(0.5)),
    }
}

/// A random batch over ids `u0..u{id_space}`.
pub fn random_batch(
    rng: &mut StdRng,
    schema: &TableSchema,
    id_space: u32,
    max_ops: usize,
) -> Batch {
    random_batch_in(rng, schema, "u", id_space, max_ops)
}

/// A random batch over ids `{prefix}0..{prefix}{id_space}`.
pub fn random_batch_in(
    rng: &mut StdRng,
    schema: &TableSchema,
    prefix: &str,
    id_space: u32,
    max_ops: usize,
) -> Batch {
    let mut batch = Batch::new();
    let ops = rng.random_range(1..=max_ops);
    for _ in 0..ops {
        let id = format!("{prefix}{}", rng.random_range(0..id_space));
        if rng.random_bool(0.15) {
            batch.delete(id);
            continue;
        }
        let mut changes = Vec::new();
        for (c, col) in schema.columns.iter().enumerate() {
            if !rng.random_bool(0.5) {
                continue;
            }
            let change = if col.ty == ColumnType::TextSet && rng.random_bool(0.4) {
                let tags: Vec<String> = (0..rng.random_range(1..3))
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())].to_string())
                    .collect();
                if rng.random_bool(0.5) {
                    Change::Add(tags)
                } else {
                    Change::Remove(tags)
                }
            } else {
                Change::Set(random_value(rng, col.ty))
            };
            changes.push((schema.columns[c].name.clone(), change));
        }
        if rng.random_bool(0.2) {
            batch.ops.push(WriteOp::Update { id, changes });
        } else {
            batch.ops.push(WriteOp::Upsert { id, changes });
        }
    }
    batch
}

/// A random column-wise batch over ids `u0..u{id_space}` (a random subset of
/// the columns, in random order; ids may repeat), and the same writes as a
/// [`Batch`] of upserts for the model.
pub fn random_rows(
    rng: &mut StdRng,
    schema: &TableSchema,
    id_space: u32,
    max_rows: usize,
) -> (cohortdb::RowsBatch, Batch) {
    random_rows_in(rng, schema, "u", id_space, max_rows)
}

/// [`random_rows`] over ids `{prefix}0..{prefix}{id_space}`.
pub fn random_rows_in(
    rng: &mut StdRng,
    schema: &TableSchema,
    prefix: &str,
    id_space: u32,
    max_rows: usize,
) -> (cohortdb::RowsBatch, Batch) {
    let mut columns: Vec<usize> = (0..schema.columns.len())
        .filter(|_| rng.random_bool(0.7))
        .collect();
    // A random order: the batch names columns in any order.
    for i in (1..columns.len()).rev() {
        columns.swap(i, rng.random_range(0..=i));
    }
    let named: Vec<(String, ColumnType)> = columns
        .iter()
        .map(|&c| (schema.columns[c].name.clone(), schema.columns[c].ty))
        .collect();
    let rows: Vec<(String, Vec<Value>)> = (0..rng.random_range(1..=max_rows))
        .map(|_| {
            let id = format!("{prefix}{}", rng.random_range(0..id_space));
            let values = columns
                .iter()
                .map(|&c| random_value(rng, schema.columns[c].ty))
                .collect();
            (id, values)
        })
        .collect();
    rows_and_upserts(named, &rows)
}

/// `rows` (an id and one value per `named` column) as a column-wise batch,
/// and the same writes as a [`Batch`] of upserts for the model.
pub fn rows_and_upserts(
    named: Vec<(String, ColumnType)>,
    rows: &[(String, Vec<Value>)],
) -> (cohortdb::RowsBatch, Batch) {
    let mut batch = Batch::new();
    for (id, values) in rows {
        let mut upsert = batch.upsert(id.clone());
        for ((name, _), v) in named.iter().zip(values) {
            upsert = upsert.set(name, v.clone());
        }
    }
    // Half the batches dictionary-code their TEXT and SET<TEXT> columns
    // (protocol version 3): both encodings must apply alike.
    let rows = if rows.len() % 2 == 1 {
        cohortdb::RowsBatch::from_values_coded(named, rows)
    } else {
        cohortdb::RowsBatch::from_values(named, rows)
    }
    .expect("generated rows fit");
    (rows, batch)
}

/// Asserts that every profile, value and index of `db` equals the model.
pub fn assert_matches(db: &Database, model: &Model) {
    let snapshot = db.snapshot();
    let table = snapshot.table(TABLE).expect("table exists");
    let schema = table.schema().clone();
    assert_eq!(table.row_count(), model.rows.len() as u64, "row count");
    // Every modelled profile reads back exactly, and lookups agree.
    for (id, values) in &model.rows {
        let row = table
            .get(id)
            .expect("read")
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(&row.values, values, "values of {id}");
    }
    // Every index agrees with the values of the rows it names.
    let mut seen_ids = BTreeSet::new();
    let mut value_counts: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); schema.columns.len()];
    for shard in table.shards() {
        // (false rows, true rows) of each BOOL column, built once per shard.
        let bools: Vec<Option<(RoaringBitmap, RoaringBitmap)>> = (0..schema.columns.len())
            .map(|c| Some((shard.bool_bitmap(c, false)?, shard.bool_bitmap(c, true)?)))
            .collect();
        for row in shard.live().iter() {
            let id = shard.id(row).expect("id").expect("live row has an id");
            assert!(seen_ids.insert(id.clone()), "{id} appears twice");
            let values = model
                .rows
                .get(&id)
                .unwrap_or_else(|| panic!("{id} should not exist"));
            for (c, col) in schema.columns.iter().enumerate() {
                let v = &values[c];
                assert_eq!(
                    shard.exists(c).unwrap().contains(row),
                    !v.is_null(),
                    "exists {id}.{}",
                    col.name
                );
                match (col.ty, v) {
                    (
                        ColumnType::Int | ColumnType::Timestamp,
                        Value::Int(x) | Value::Timestamp(x),
                    ) => {
                        assert_eq!(
                            shard.bsi(c).unwrap().get(row),
                            Some(*x),
                            "bsi {id}.{}",
                            col.name
                        )
                    }
                    (ColumnType::Bool, Value::Bool(b)) => {
                        let (falses, trues) = bools[c].as_ref().expect("BOOL bitmaps");
                        assert_eq!(trues.contains(row), *b, "true rows {id}.{}", col.name);
                        assert_eq!(falses.contains(row), !*b, "false rows {id}.{}", col.name);
                    }
                    _ => {}
                }
            }
        }
        for (c, col) in schema.columns.iter().enumerate() {
            if !col.ty.is_dictionary() {
                continue;
            }
            for (value, bitmap) in shard.values(c) {
                assert!(
                    bitmap.is_subset(shard.live()),
                    "value bitmap outside live rows"
                );
                *value_counts[c].entry(value.to_string()).or_default() += bitmap.len();
                for row in bitmap.iter() {
                    let id = shard.id(row).unwrap().unwrap();
                    let holds = match &model.rows[&id][c] {
                        Value::Text(s) => s == value,
                        Value::Set(t) => t.iter().any(|x| x == value),
                        _ => false,
                    };
                    assert!(
                        holds,
                        "{id} is in the bitmap of {}={value} but does not hold it",
                        col.name
                    );
                }
            }
        }
    }
    assert_eq!(seen_ids.len(), model.rows.len());
    // Each value's bitmaps together hold exactly the rows holding it.
    for (c, col) in schema.columns.iter().enumerate() {
        if !col.ty.is_dictionary() {
            continue;
        }
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for values in model.rows.values() {
            match &values[c] {
                Value::Text(s) => *want.entry(s.clone()).or_default() += 1,
                Value::Set(t) => t
                    .iter()
                    .for_each(|x| *want.entry(x.clone()).or_default() += 1),
                _ => {}
            }
        }
        assert_eq!(value_counts[c], want, "value counts of {}", col.name);
    }
}
