//! Randomized model test: thousands of random batches applied to the engine
//! and to a plain BTreeMap model; after checkpoints and reopens every value
//! and every bitmap must agree exactly. `COHORT_MODEL_BATCHES` raises the
//! number of batches; `COHORT_SEED` picks another seed.

mod common;

use cohortdb::engine::{Batch, Value};
use cohortdb::{Database, Durability, Options};
use common::{
    assert_matches, random_batch, random_rows, random_value, rows_and_upserts, schema, Model, TABLE,
};
use rand::{Rng, SeedableRng};

fn options() -> Options {
    Options {
        durability: Durability::Off,
        background: false,
        checkpoint_wal_bytes: u64::MAX,
        ..Options::default()
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A new database in a temporary directory with the model's table.
fn fresh_database() -> (tempfile::TempDir, cohortdb::TableSchema, Database) {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let db = Database::open(dir.path(), options()).unwrap();
    db.create_table(schema.clone()).unwrap();
    (dir, schema, db)
}

#[test]
fn random_batches_agree_with_the_model_across_checkpoints_and_reopens() {
    let seed = env_u64("COHORT_SEED", 20261123);
    let batches = env_u64("COHORT_MODEL_BATCHES", 3000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (dir, schema, mut db) = fresh_database();
    let mut model = Model::default();
    for i in 0..batches {
        if rng.random_bool(0.3) {
            let (rows, same) = random_rows(&mut rng, &schema, 400, 12);
            model.apply(&schema, &same);
            db.insert_rows(TABLE, rows).unwrap();
        } else {
            let batch = random_batch(&mut rng, &schema, 400, 12);
            model.apply(&schema, &batch);
            db.write(TABLE, batch).unwrap();
        }
        match rng.random_range(0..100) {
            0..=2 => {
                db.checkpoint().unwrap();
            }
            3 => {
                // Reopen from the WAL alone (no checkpoint on close).
                let opts = Options {
                    checkpoint_on_close: false,
                    ..options()
                };
                drop(db);
                db = Database::open(dir.path(), opts).unwrap();
            }
            4 => {
                db.close().unwrap();
                db = Database::open(dir.path(), options()).unwrap();
                assert_matches(&db, &model);
            }
            _ => {}
        }
        if i % 250 == 0 {
            assert_matches(&db, &model);
        }
    }
    assert_matches(&db, &model);
    db.checkpoint().unwrap();
    drop(db);
    let db = Database::open(dir.path(), options()).unwrap();
    assert_matches(&db, &model);
    assert_eq!(
        db.recovery_report().replayed,
        0,
        "a clean close leaves nothing to replay"
    );
}

/// `n` new profiles `b{from}..` as a column-wise batch over a random subset
/// of the columns (every value NULL with probability 1/8), and the same
/// writes as upserts for the model.
fn fresh_rows(
    rng: &mut rand::rngs::StdRng,
    schema: &cohortdb::TableSchema,
    from: u32,
    n: u32,
) -> (cohortdb::RowsBatch, Batch) {
    let columns: Vec<usize> = (0..schema.columns.len())
        .filter(|_| rng.random_bool(0.8))
        .collect();
    let named: Vec<(String, cohortdb::ColumnType)> = columns
        .iter()
        .map(|&c| (schema.columns[c].name.clone(), schema.columns[c].ty))
        .collect();
    let rows: Vec<(String, Vec<Value>)> = (from..from + n)
        .map(|i| {
            let values = columns
                .iter()
                .map(|&c| {
                    if rng.random_bool(0.125) {
                        Value::Null
                    } else {
                        random_value(rng, schema.columns[c].ty)
                    }
                })
                .collect();
            (format!("b{i}"), values)
        })
        .collect();
    rows_and_upserts(named, &rows)
}

/// Bulk loads past column-block (65,536 rows) boundaries, with updates,
/// deletes and single inserts of profiles in between (rows that shadow the
/// column-wise tail, or leave gaps in it), and checkpoints that cut a block
/// in two; the model must agree throughout.
#[test]
fn bulk_loads_across_blocks_agree_with_the_model() {
    let seed = env_u64("COHORT_SEED", 20261124);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (dir, schema, mut db) = fresh_database();
    let mut model = Model::default();
    let mut loaded = 0u32;
    let mut round = 0;
    while loaded < 320_000 {
        let n = rng.random_range(5_000..40_000);
        let (rows, same) = fresh_rows(&mut rng, &schema, loaded, n);
        model.apply(&schema, &same);
        db.insert_rows(TABLE, rows).unwrap();
        loaded += n;
        // Updates and deletes of loaded profiles, and new ones one by one.
        for _ in 0..rng.random_range(0..4) {
            let mut batch = random_batch(&mut rng, &schema, 50, 6);
            for op in &mut batch.ops {
                let id = match op {
                    cohortdb::engine::WriteOp::Upsert { id, .. }
                    | cohortdb::engine::WriteOp::Update { id, .. }
                    | cohortdb::engine::WriteOp::Delete { id } => id,
                };
                *id = format!(
                    "b{}",
                    rng.random_range(loaded.saturating_sub(200_000)..loaded + 3)
                );
            }
            model.apply(&schema, &batch);
            db.write(TABLE, batch).unwrap();
        }
        match rng.random_range(0..6) {
            0 | 1 => {
                db.checkpoint().unwrap();
            }
            2 if round % 3 == 0 => {
                let opts = Options {
                    checkpoint_on_close: false,
                    ..options()
                };
                drop(db);
                db = Database::open(dir.path(), opts).unwrap();
            }
            _ => {}
        }
        round += 1;
    }
    assert_matches(&db, &model);
    db.checkpoint().unwrap();
    assert_matches(&db, &model);
    drop(db);
    let db = Database::open(dir.path(), options()).unwrap();
    assert_matches(&db, &model);
}
