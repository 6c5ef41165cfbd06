//! Behaviour of the embedded engine through its public API: upsert and
//! delete semantics, DDL errors, checkpoint and reopen at a few hundred
//! thousand profiles with every value and bitmap identical, and atomic
//! visibility of batches to concurrent readers.

mod common;

use cohortdb::engine::{Error, Value};
use cohortdb::{Batch, ColumnType, Database, Durability, Options, TableSchema};
use common::{assert_matches, random_batch_in, random_rows_in, schema, Model, TABLE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};

fn quiet() -> Options {
    Options {
        durability: Durability::Off,
        background: false,
        checkpoint_wal_bytes: u64::MAX,
        ..Options::default()
    }
}

#[test]
fn upsert_sets_only_the_named_columns_and_delete_removes_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).unwrap();
    db.create_table(schema()).unwrap();
    let mut b = Batch::new();
    b.upsert("u1")
        .set("country", "NL")
        .set("age", 34i64)
        .set("tags", vec!["tea", "baking"]);
    db.write(TABLE, b).unwrap();
    let mut b = Batch::new();
    b.upsert("u1")
        .set("age", 35i64)
        .add("tags", ["golf"])
        .remove("tags", ["tea"]);
    db.write(TABLE, b).unwrap();
    let row = db.get(TABLE, "u1").unwrap().unwrap();
    assert_eq!(
        row.values[0],
        Value::Text("NL".into()),
        "untouched column kept"
    );
    assert_eq!(
        row.values[1],
        Value::Set(vec!["baking".into(), "golf".into()])
    );
    assert_eq!(row.values[2], Value::Int(35));
    assert_eq!(row.values[3], Value::Null);
    let mut b = Batch::new();
    b.upsert("u1").set("country", Value::Null);
    b.delete("nobody");
    let summary = db.write(TABLE, b).unwrap();
    assert_eq!((summary.upserted, summary.deleted), (1, 0));
    assert_eq!(db.get(TABLE, "u1").unwrap().unwrap().values[0], Value::Null);
    let snap = db.snapshot();
    let shard = snap.table(TABLE).unwrap().shards().next().unwrap();
    assert!(
        shard.exists(0).unwrap().is_empty(),
        "NULL leaves the existence bitmap"
    );
    assert!(shard.value_bitmap(0, "NL").unwrap().is_empty());
    let mut b = Batch::new();
    b.delete("u1");
    assert_eq!(db.write(TABLE, b).unwrap().deleted, 1);
    assert_eq!(db.get(TABLE, "u1").unwrap(), None);
    let snap = db.snapshot();
    let shard = snap.table(TABLE).unwrap().shards().next().unwrap();
    assert!(shard.live().is_empty());
    assert!(shard.value_bitmap(1, "golf").unwrap().is_empty());
    assert!(shard.bsi(2).unwrap().exists().is_empty());
    // Re-inserting a deleted id starts from an empty profile.
    let mut b = Batch::new();
    b.upsert("u1").set("ok", true);
    db.write(TABLE, b).unwrap();
    let row = db.get(TABLE, "u1").unwrap().unwrap();
    assert_eq!(row.values[2], Value::Null);
    assert_eq!(row.values[5], Value::Bool(true));
}

#[test]
fn a_batch_is_applied_in_order_and_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).unwrap();
    db.create_table(schema()).unwrap();
    let mut b = Batch::new();
    b.upsert("a").set("age", 1i64);
    b.delete("a");
    b.upsert("a").set("country", "BE");
    b.upsert("b").set("age", 2i64);
    db.write(TABLE, b).unwrap();
    let a = db.get(TABLE, "a").unwrap().unwrap();
    assert_eq!(
        a.values[2],
        Value::Null,
        "the delete in between cleared age"
    );
    assert_eq!(a.values[0], Value::Text("BE".into()));
    // A type error anywhere refuses the whole batch.
    let mut b = Batch::new();
    b.upsert("c").set("age", 3i64);
    b.upsert("d").set("age", "old");
    let err = db.write(TABLE, b).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert_eq!(db.get(TABLE, "c").unwrap(), None);
    assert_eq!(db.snapshot().table(TABLE).unwrap().row_count(), 2);
}

#[test]
fn ddl_errors_are_clear_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).unwrap();
    db.create_table(schema()).unwrap();
    assert!(matches!(
        db.create_table(schema()),
        Err(Error::TableExists(_))
    ));
    assert!(matches!(
        db.drop_table("nope"),
        Err(Error::TableNotFound(_))
    ));
    let bad = TableSchema::new("t", "id")
        .column("x", ColumnType::Int)
        .column("X", ColumnType::Text);
    assert!(matches!(db.create_table(bad), Err(Error::InvalidSchema(_))));
    let mut b = Batch::new();
    b.upsert("u").set("nope", 1i64);
    assert_eq!(
        db.write(TABLE, b).unwrap_err().to_string(),
        "table profiles has no column nope"
    );
    assert!(matches!(
        db.write("nope", Batch::new()),
        Err(Error::TableNotFound(_))
    ));
    assert_eq!(db.tables().len(), 1);
    db.drop_table("PROFILES").unwrap();
    assert!(db.tables().is_empty());
    db.create_table(schema()).unwrap();
    assert_eq!(db.snapshot().table(TABLE).unwrap().row_count(), 0);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).unwrap();
    assert!(matches!(
        Database::open(dir.path(), quiet()),
        Err(Error::Locked { .. })
    ));
    drop(db);
    Database::open(dir.path(), quiet()).unwrap();
}

#[test]
fn dropped_tables_leave_the_directory_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).unwrap();
    db.create_table(schema()).unwrap();
    let mut b = Batch::new();
    b.upsert("u1").set("country", "NL");
    db.write(TABLE, b).unwrap();
    db.checkpoint().unwrap();
    let tables = dir.path().join("tables");
    assert_eq!(std::fs::read_dir(&tables).unwrap().count(), 1);
    db.drop_table(TABLE).unwrap();
    db.checkpoint().unwrap();
    assert_eq!(std::fs::read_dir(&tables).unwrap().count(), 0);
    drop(db);
    let db = Database::open(dir.path(), quiet()).unwrap();
    assert!(db.tables().is_empty());
}

/// A profile per row id, spread over several shards.
fn big_batches(rng: &mut rand::rngs::StdRng, start: u32, n: u32) -> Batch {
    let mut b = Batch::new();
    for i in start..start + n {
        let tags: Vec<String> = (0..rng.random_range(0..6))
            .map(|_| format!("i{:04}", rng.random_range(1..200)))
            .collect();
        b.upsert(format!("user-{i}"))
            .set("country", common::COUNTRIES[rng.random_range(0..5)])
            .set("tags", tags)
            .set("age", rng.random_range(13..90i64))
            .set(
                "seen",
                Value::Timestamp(1_790_000_000 + rng.random_range(0..7_776_000)),
            )
            .set("ltv", rng.random_range(0..10_000) as f64 / 100.0)
            .set("ok", rng.random_bool(0.8));
    }
    b
}

#[test]
fn hundreds_of_thousands_of_profiles_survive_checkpoint_and_reopen_identical() {
    const PROFILES: u32 = 300_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let mut model = Model::default();
    {
        let db = Database::open(dir.path(), quiet()).unwrap();
        db.create_table(schema.clone()).unwrap();
        let mut i = 0;
        while i < PROFILES {
            let batch = big_batches(&mut rng, i, 10_000);
            model.apply(&schema, &batch);
            db.write(TABLE, batch).unwrap();
            i += 10_000;
            if i == 150_000 {
                db.checkpoint().unwrap();
            }
        }
        // Updates and deletes across shards, some after the checkpoint.
        let mut b = Batch::new();
        for i in (0..PROFILES).step_by(997) {
            b.delete(format!("user-{i}"));
            b.upsert(format!("user-{}", i + 1))
                .add("tags", ["late"])
                .set("age", Value::Null);
        }
        model.apply(&schema, &b);
        db.write(TABLE, b).unwrap();
        assert_eq!(db.snapshot().table(TABLE).unwrap().shard_count(), 1);
        assert_matches(&db, &model);
        db.close().unwrap();
    }
    let db = Database::open(dir.path(), quiet()).unwrap();
    assert_eq!(db.recovery_report().replayed, 0);
    assert_matches(&db, &model);
}

#[test]
fn rows_spread_over_several_shards_are_found_and_survive_reopen() {
    // More than 2^20 rows would be slow in a debug test; instead check the
    // shard arithmetic with a real multi-shard table of modest width.
    let dir = tempfile::tempdir().unwrap();
    let narrow = TableSchema::new("wide", "id").column("flag", ColumnType::Bool);
    let total = (1u32 << 20) + 5_000;
    {
        let db = Database::open(dir.path(), quiet()).unwrap();
        db.create_table(narrow).unwrap();
        let mut i = 0;
        while i < total {
            let mut b = Batch::new();
            for j in i..(i + 50_000).min(total) {
                b.upsert(format!("k{j}")).set("flag", j % 3 == 0);
            }
            db.write("wide", b).unwrap();
            i += 50_000;
        }
        db.close().unwrap();
    }
    let db = Database::open(dir.path(), quiet()).unwrap();
    let snap = db.snapshot();
    let t = snap.table("wide").unwrap();
    assert_eq!(t.shard_count(), 2);
    assert_eq!(t.row_count(), total as u64);
    let trues: u64 = t
        .shards()
        .map(|s| s.bool_bitmap(0, true).unwrap().len())
        .sum();
    assert_eq!(trues, (0..total).filter(|j| j % 3 == 0).count() as u64);
    for j in [0, 1 << 20, (1 << 20) - 1, total - 1] {
        let row = t.get(&format!("k{j}")).unwrap().unwrap();
        assert_eq!(row.values[0], Value::Bool(j % 3 == 0), "k{j}");
    }
    assert_eq!(t.lookup(&format!("k{}", 1u32 << 20)), Some(1 << 20));
    assert!(t.get("k-missing").unwrap().is_none());
}

#[test]
fn a_shard_that_fills_up_is_checkpointed_without_waiting_for_the_wal_threshold() {
    // A bulk load should write each shard's part once, when it is full,
    // rather than at every WAL threshold the shard straddles.
    let dir = tempfile::tempdir().unwrap();
    let narrow = TableSchema::new("narrow", "id").column("flag", ColumnType::Bool);
    let half = 1u32 << 19;
    {
        let db = Database::open(
            dir.path(),
            Options {
                durability: Durability::Off,
                checkpoint_wal_bytes: u64::MAX,
                checkpoint_on_close: false,
                ..Options::default()
            },
        )
        .unwrap();
        db.create_table(narrow).unwrap(); // LSN 1
        for (first, count) in [(0, half), (half, half), (2 * half, 10)] {
            let mut b = Batch::new();
            for j in first..first + count {
                b.upsert(format!("k{j}")).set("flag", j % 2 == 0);
            }
            db.write("narrow", b).unwrap(); // LSNs 2, 3 (shard 0 now full), 4
        }
        // Close hands the background thread its stop only after it has
        // taken the checkpoint request the full shard made.
        db.close().unwrap();
    }
    let db = Database::open(dir.path(), quiet()).unwrap();
    let report = db.recovery_report();
    assert!(
        report.checkpoint_lsn >= 3,
        "no checkpoint took the full shard: {report:?}"
    );
    assert_eq!(report.last_lsn, 4);
    assert_eq!(report.replayed, 4 - report.checkpoint_lsn);
    let snap = db.snapshot();
    assert_eq!(
        snap.table("narrow").unwrap().row_count(),
        u64::from(2 * half + 10)
    );
}

#[test]
fn concurrent_writers_tables_and_checkpoints_lose_nothing() {
    // Groups log while the group before them applies; writers racing on
    // the same ids, a thread creating, writing to and dropping tables, and
    // frequent background checkpoints must still leave exactly the writes
    // made, applied in the order of their LSNs.
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        durability: Durability::Always,
        checkpoint_wal_bytes: 256 << 10,
        ..Options::default()
    };
    let db = Database::open(dir.path(), options.clone()).unwrap();
    let schema = schema();
    db.create_table(schema.clone()).unwrap();
    let logged: Vec<(u64, Batch)> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let (db, schema) = (&db, &schema);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(20261124 + w);
                    let mut logged = Vec::new();
                    for _ in 0..150 {
                        if rng.random_bool(0.5) {
                            let (rows, batch) = random_rows_in(&mut rng, schema, "u", 1_000, 400);
                            logged.push((db.insert_rows(TABLE, rows).unwrap().lsn, batch));
                        } else {
                            let batch = random_batch_in(&mut rng, schema, "u", 1_000, 200);
                            logged.push((db.write(TABLE, batch.clone()).unwrap().lsn, batch));
                        }
                    }
                    logged
                })
            })
            .collect();
        s.spawn(|| {
            for n in 0..30 {
                let name = format!("side{n}");
                db.create_table(TableSchema::new(&name, "id").column("n", ColumnType::Int))
                    .unwrap();
                let mut b = Batch::new();
                b.upsert("x").set("n", n as i64);
                // Checked against the catalog the CREATE just left, even
                // while another group is still applying.
                db.write(&name, b).unwrap();
                if n % 2 == 0 {
                    db.drop_table(&name).unwrap();
                }
            }
        });
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut logged = logged;
    logged.sort_by_key(|(lsn, _)| *lsn);
    let mut model = Model::default();
    for (_, batch) in &logged {
        model.apply(&schema, batch);
    }
    assert_matches(&db, &model);
    assert!(db.background_error().is_none());
    let sides = |db: &Database| {
        let mut names: Vec<String> = db
            .tables()
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n.starts_with("side"))
            .collect();
        names.sort();
        names
    };
    let mut expected_sides: Vec<String> = (1..30).step_by(2).map(|n| format!("side{n}")).collect();
    expected_sides.sort();
    assert_eq!(sides(&db), expected_sides);
    db.close().unwrap();
    let db = Database::open(dir.path(), options).unwrap();
    assert_matches(&db, &model);
    assert_eq!(sides(&db), expected_sides);
    let row = db.get("side29", "x").unwrap().unwrap();
    assert_eq!(row.values[0], Value::Int(29));
}

#[test]
fn readers_see_each_batch_whole_while_writers_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        Options {
            durability: Durability::Off,
            checkpoint_wal_bytes: 64 << 10,
            ..Options::default()
        },
    )
    .unwrap();
    db.create_table(schema()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Batch n inserts 50 profiles with age n and deletes batch n-1's.
            for n in 1..=300i64 {
                let mut b = Batch::new();
                for k in 0..50 {
                    b.upsert(format!("b{n}-{k}"))
                        .set("age", n)
                        .add("tags", ["x"]);
                    if n > 1 {
                        b.delete(format!("b{}-{k}", n - 1));
                    }
                }
                db.write(TABLE, b).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut checks = 0;
                while !done.load(Ordering::SeqCst) || checks == 0 {
                    let snap = db.snapshot();
                    let t = snap.table(TABLE).unwrap();
                    let count = t.row_count();
                    assert!(count == 0 || count == 50, "half a batch visible: {count}");
                    for shard in t.shards() {
                        let bsi = shard.bsi(2).unwrap();
                        if let (Some(lo), Some(hi)) = (bsi.min(shard.live()), bsi.max(shard.live()))
                        {
                            assert_eq!(lo, hi, "two batches visible at once");
                        }
                        assert_eq!(shard.value_bitmap(1, "x").map_or(0, |b| b.len()), count);
                    }
                    checks += 1;
                }
            });
        }
    });
    assert_eq!(db.snapshot().table(TABLE).unwrap().row_count(), 50);
    assert!(db.background_error().is_none());
}

#[test]
fn concurrent_writers_share_group_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), Options::default()).unwrap();
        db.create_table(schema()).unwrap();
        std::thread::scope(|s| {
            for w in 0..8 {
                let db = &db;
                s.spawn(move || {
                    for n in 0..40 {
                        let mut b = Batch::new();
                        b.upsert(format!("w{w}-{n}")).set("age", n as i64);
                        db.write(TABLE, b).unwrap();
                    }
                });
            }
        });
        drop(db);
    }
    let db = Database::open(dir.path(), quiet()).unwrap();
    assert_eq!(db.snapshot().table(TABLE).unwrap().row_count(), 320);
    assert_eq!(
        db.get(TABLE, "w7-39").unwrap().unwrap().values[2],
        Value::Int(39)
    );
}

#[test]
fn a_query_over_its_memory_limit_fails_clearly_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = cohortdb::Database::open(
        dir.path(),
        cohortdb::Options {
            durability: cohortdb::Durability::Off,
            background: false,
            query_memory_limit: Some(256 << 10),
            ..cohortdb::Options::default()
        },
    )
    .expect("open");
    let values: Vec<String> = (0..5000)
        .map(|i| format!("('p{i}', 'note-{i}', '{}')", ["NL", "BE"][i % 2]))
        .collect();
    db.execute(&format!(
        "CREATE TABLE t (id TEXT PRIMARY KEY, note TEXT, country TEXT);
         INSERT INTO t (id, note, country) VALUES {}",
        values.join(", ")
    ))
    .expect("setup");
    // 5000 groups do not fit in 256 KiB...
    let e = db
        .execute("SELECT note, COUNT(*) FROM t GROUP BY note")
        .expect_err("over the limit")
        .to_string();
    assert!(
        e.starts_with("the query needs more than the 256 KiB a query may use ("),
        "{e}"
    );
    assert!(e.contains("raise --query-memory-limit"), "{e}");
    // ...two do, and rows stream whatever their number.
    assert_eq!(
        db.execute("SELECT country, COUNT(*) FROM t GROUP BY country")
            .expect("small group by")
            .len(),
        1
    );
    let rows = match db.execute("SELECT id FROM t").expect("rows").remove(0) {
        cohortdb::query::Output::Rows(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(rows.collect_all().expect("all rows").len(), 5000);
}

static RELEASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_release() {
    RELEASES.fetch_add(1, Ordering::SeqCst);
}

static BACKGROUND_RELEASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_background_release() {
    BACKGROUND_RELEASES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_background_checkpoint_releases_memory_once_writes_pause() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        Options {
            durability: Durability::Interval(std::time::Duration::from_millis(20)),
            checkpoint_wal_bytes: 4 << 10,
            release_memory: Some(count_background_release),
            ..Options::default()
        },
    )
    .unwrap();
    db.create_table(schema()).unwrap();
    for n in 0..50i64 {
        let mut b = Batch::new();
        for k in 0..20 {
            b.upsert(format!("u{n}-{k}")).set("age", n);
        }
        db.write(TABLE, b).unwrap();
    }
    // The WAL passed its threshold, so the background thread checkpoints;
    // with no more writes, two ticks later it hands memory back. Wait for
    // that (the deadline only bounds a failure).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while BACKGROUND_RELEASES.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no release 60 s after the writes stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(db.background_error().is_none());
}

#[test]
fn release_memory_is_called_after_each_checkpoint_that_installs_parts() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        release_memory: Some(count_release),
        ..quiet()
    };
    let db = Database::open(dir.path(), options).unwrap();
    db.create_table(schema()).unwrap();
    let before = RELEASES.load(Ordering::SeqCst);
    let mut b = Batch::new();
    b.upsert("u1").set("age", 34i64);
    db.write(TABLE, b).unwrap();
    db.checkpoint().unwrap();
    assert_eq!(RELEASES.load(Ordering::SeqCst), before + 1);
    // Nothing written since: the checkpoint has nothing to install.
    db.checkpoint().unwrap();
    assert_eq!(RELEASES.load(Ordering::SeqCst), before + 1);
    let mut b = Batch::new();
    b.upsert("u2").set("age", 35i64);
    db.write(TABLE, b).unwrap();
    db.checkpoint().unwrap();
    assert_eq!(RELEASES.load(Ordering::SeqCst), before + 2);
    assert!(db.get(TABLE, "u2").unwrap().is_some());
}

/// The block sections of the one part file of table 1's shard 0, by
/// (column, block).
fn shard0_blocks(dir: &std::path::Path) -> std::collections::BTreeMap<(u16, u32), Vec<u8>> {
    use cohortdb::storage::part::{PartReader, SectionKind};
    let mut parts: Vec<_> = std::fs::read_dir(dir.join("tables"))
        .unwrap()
        .flat_map(|t| std::fs::read_dir(t.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("s000000-")
        })
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let reader = PartReader::open(&parts.pop().unwrap()).unwrap();
    let mut blocks = std::collections::BTreeMap::new();
    for column in 0..16u16 {
        for block in 0..8u32 {
            if let Some((bytes, _)) = reader.section(SectionKind::Block, column, block) {
                blocks.insert((column, block), bytes.to_vec());
            }
        }
    }
    blocks
}

#[test]
fn a_checkpoint_copies_unchanged_blocks_and_rewrites_changed_ones() {
    // A copied block must be byte for byte what re-encoding would write
    // (zstd is deterministic), so the bytes alone cannot tell a copy; the
    // checkpoint's `blocks_copied` says which way each block went.
    use cohortdb::storage::block::BLOCK_ROWS;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), quiet()).unwrap();
    db.create_table(schema()).unwrap();
    let write = |ids: std::ops::Range<u32>, age: i64| {
        for chunk in ids.collect::<Vec<_>>().chunks(10_000) {
            let mut b = Batch::new();
            for i in chunk {
                b.upsert(format!("u{i}"))
                    .set("country", ["NL", "US", "DE"][*i as usize % 3])
                    .set("age", age + i64::from(*i % 50));
            }
            db.write(TABLE, b).unwrap();
        }
    };
    // Blocks 0 and 1 full, block 2 partly.
    let first = 2 * BLOCK_ROWS + 100;
    write(0..first, 20);
    db.checkpoint().unwrap();
    let before = shard0_blocks(dir.path());
    // Change a row of block 0 and append rows to block 2.
    let mut b = Batch::new();
    b.upsert("u5").set("age", 99i64);
    db.write(TABLE, b).unwrap();
    write(first..first + 50, 20);
    let stats = db.checkpoint().unwrap();
    let after = shard0_blocks(dir.path());
    let full_unchanged = before.keys().filter(|(_, block)| *block == 1).count();
    assert!(full_unchanged > 0);
    assert_eq!(stats.blocks_copied, full_unchanged as u64);

    let columns: Vec<u16> = before.keys().map(|(c, _)| *c).collect();
    assert!(!columns.is_empty());
    for (key, bytes) in &before {
        match key.1 {
            // No row of block 1 changed: its stored bytes are copied as they were.
            1 => assert_eq!(after.get(key), Some(bytes), "column {} block 1", key.0),
            // Block 2 grew; it is written anew for every column.
            2 => assert_ne!(after.get(key), Some(bytes), "column {} block 2", key.0),
            _ => {}
        }
    }
    // Block 0 of the age column changed; the others' block 0 only were
    // rewritten with the same values (the row's overlay entry covers it).
    assert!(before
        .iter()
        .any(|(key, bytes)| key.1 == 0 && after.get(key) != Some(bytes)));
    drop(db);
    let db = Database::open(dir.path(), quiet()).unwrap();
    // `age` is the schema's third column.
    let age = |id: &str| db.get(TABLE, id).unwrap().unwrap().values[2].clone();
    assert_eq!(age("u5"), Value::Int(99));
    let u = BLOCK_ROWS + 7;
    assert_eq!(age(&format!("u{u}")), Value::Int(20 + i64::from(u % 50)));
    let v = first + 3;
    assert_eq!(age(&format!("u{v}")), Value::Int(20 + i64::from(v % 50)));
}

#[test]
fn a_snapshot_finds_its_profile_after_the_id_got_a_new_row() {
    // A snapshot taken before a profile was deleted, checkpointed away and
    // inserted again (with a new row) still finds the profile as it was.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    db.create_table(schema()).unwrap();
    let upsert_age = |id: &str, age: i64| {
        let mut b = Batch::new();
        b.upsert(id).set("age", age);
        db.write(TABLE, b).unwrap();
    };
    upsert_age("a", 1);
    upsert_age("b", 2);
    let before = db.snapshot();
    let mut b = Batch::new();
    b.delete("a");
    db.write(TABLE, b).unwrap();
    db.checkpoint().unwrap();
    upsert_age("a", 3);
    db.checkpoint().unwrap();
    upsert_age("c", 4);
    let old = before.table(TABLE).unwrap();
    let age = |row: Option<cohortdb::engine::Row>| row.map(|r| r.values[2].clone());
    assert_eq!(age(old.get("a").unwrap()), Some(Value::Int(1)));
    assert_eq!(age(old.get("c").unwrap()), None);
    let now = db.snapshot();
    let now = now.table(TABLE).unwrap();
    assert_eq!(age(now.get("a").unwrap()), Some(Value::Int(3)));
    assert_ne!(old.lookup("a"), now.lookup("a"), "the id got a new row");
}
