//! Randomized model test: thousands of random batches applied to the engine
//! and to a plain BTreeMap model; after checkpoints and reopens every value
//! and every bitmap must agree exactly. `COHORT_MODEL_BATCHES` raises the
//! number of batches; `COHORT_SEED` picks another seed.

mod common;

use cohortdb::{Database, Durability, Options};
use common::{assert_matches, random_batch, random_rows, schema, Model, TABLE};
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

#[test]
fn random_batches_agree_with_the_model_across_checkpoints_and_reopens() {
    let seed = env_u64("COHORT_SEED", 20261123);
    let batches = env_u64("COHORT_MODEL_BATCHES", 3000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let mut db = Database::open(dir.path(), options()).unwrap();
    db.create_table(schema.clone()).unwrap();
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
