//! Randomized differential test of CohortQL: random schemas, random data
//! written with INSERT / UPDATE / DELETE statements, and random queries, all
//! run both through `Database::execute` and through a naive model (a
//! `BTreeMap` of plain Rust values, tests/differential/model.rs) that
//! implements the documented semantics row by row. Every answer must agree
//! exactly; only FLOAT SUM / AVG get a relative tolerance of 1e-9.
//!
//! What it proves, for the generated space (tests/differential/gen.rs):
//!
//! - Predicates: AND / OR / NOT / parenthesised trees up to depth 4 over
//!   `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `IN`, `NOT IN`, `BETWEEN`,
//!   `NOT BETWEEN` (TEXT, INT, TIMESTAMP, FLOAT; BOOL takes `=`, `!=`, `IN`),
//!   `HAS`, `HAS ANY`, `HAS ALL` (SET<TEXT>), `IS [NOT] NULL` (every column)
//!   and `=`, `!=`, `IN`, `NOT IN`, `IS [NOT] NULL` on the key, with
//!   two-valued NULL semantics, values absent from the data, and reversed
//!   BETWEEN bounds.
//! - Events: `EVENTS<TEXT>` columns written with `EVENT(v, t)` and
//!   `[EVENT(...), ...]` (INSERT adds to a profile's events, `UPDATE SET`
//!   replaces them, NULL clears them; `[]` and other literals refused) and
//!   read back as their `day:value` tags; `HAS 'v'` with `WITHIN n DAYS`,
//!   `SINCE t`, `BETWEEN t AND u` and `ON AT LEAST k DAYS`, in every place
//!   a predicate goes, with the statement's now from `AS OF` (ISO-8601,
//!   `TIMESTAMP '...'` or seconds) before, inside and after the events'
//!   days, no day after today counted, and a table's `retention_days`
//!   clamping the days at query time. Tables with a short retention are
//!   never checkpointed (expiry is by the wall clock, months after the
//!   generated days; tests/events.rs covers it).
//! - Queries: `COUNT(*)`; `SUM`, `AVG`, `MIN`, `MAX`, `COUNT(c)`,
//!   `COUNT(id)`; `GROUP BY` one or two TEXT / SET<TEXT> / BOOL columns with
//!   aggregates, aliases, `ORDER BY` (position, name, alias, aggregate,
//!   ASC / DESC) and `LIMIT`; row queries (`SELECT *` or a column list) with
//!   and without `LIMIT`; SUM overflow reported as an error.
//! - Audience analytics: `IN segment` anywhere a predicate goes (writes'
//!   WHERE too, segments inside segments), `CREATE [OR REPLACE] SEGMENT
//!   ... [MATERIALIZED]` (plain and materialized must agree, also after the
//!   rows change), `DROP SEGMENT [IF EXISTS]`, refusals (a cycle, a name
//!   taken, a segment others use, one that does not exist) that change
//!   nothing; `OVERLAP` of 2-16 segments or predicates with and without a
//!   base (every Venn region, every pair) and `OVERLAP MATRIX`, duplicate
//!   names refused; `TOP n` of TEXT / SET<TEXT> columns by count and by
//!   lift, with `WITHIN` and `MIN COUNT`.
//! - Privacy and activation: tables with `consent_column` (a SET<TEXT>
//!   column) and `min_audience`; `EXPORT` of a segment or predicate with
//!   `COLUMNS`, `FOR PURPOSE` (required with consent, NULL consent holds
//!   nothing) and `LIMIT`, each success logged as the last `SHOW EXPORTS`
//!   row; `LOOKALIKE ... LIMIT n` (scores and ranking, ties in any order)
//!   and `LOOKALIKE REACH` computed naively from the log-odds weights of
//!   src/query/lookalike.rs, an empty seed refused; a quarter of the
//!   queries run as an analyst: rows, exports, look-alike lists and id
//!   conditions refused, counts below `min_audience` (and what is computed
//!   from them) read `< k`, the other numbers as text.
//! - Writes: upserting INSERT (duplicate ids within and across statements,
//!   NULLs, empty sets), UPDATE with `c = v`, `s = s + [...]`,
//!   `s = s - [...]` with and without WHERE, DELETE, and the affected
//!   counts; scripts of several statements, a query seeing the write before
//!   it, and a failing INSERT (empty id, wrong type) that changes nothing
//!   and stops its script; DROP TABLE and CREATE TABLE under the same name.
//! - Storage paths: occasional checkpoints (part files, then overlays on
//!   top) and reopens (with and without a checkpoint on close: WAL replay),
//!   and some tables of thousands of profiles.
//! - Shards: a shard holds 2^20 rows, more than the generated tables, so a
//!   second test runs seeds whose table is pushed into a second shard a
//!   third of the way in (a shard's worth of profiles inserted and deleted;
//!   rows are not reused): every later answer merges two shards' parts.
//! - Spelling: ISO-8601 timestamps in several forms (`Z`, offset, no zone,
//!   date only, no seconds) and as `TIMESTAMP '...'`, integers for FLOAT and
//!   TIMESTAMP columns, floats with exponents, strings with quotes,
//!   backslashes, newlines and non-ASCII (written with `''` or backslash
//!   escapes), i64 extremes, identifiers plain, upper-case or double-quoted,
//!   alternative type names.
//!
//! Run it longer or reproduce a failure:
//!
//! ```sh
//! COHORT_DIFF_CASES=20 cargo test --release --test cohortql_differential   # 20x the seeds
//! COHORT_DIFF_SEED=1234 cargo test --test cohortql_differential           # one seed
//! COHORT_DIFF_TWO_SHARD_SEED=1234 cargo test --test cohortql_differential  # one two-shard seed
//! COHORT_DIFF_VERBOSE=1 ...                      # print every query and the engine's answer
//! ```
//!
//! A failure prints the seed, the failing SQL, the expected and the actual
//! answer, and the path of a file with every statement the seed ran before
//! it. The other tests here show that the model and the comparison can fail:
//! hand-computed answers on a hand-built table, and deliberately wrong
//! answers that the comparison must reject.

mod differential;

use cohortdb::query::{Output, Principal, Role};
use cohortdb::{Database, Durability, Options, Value};
use differential::gen::{Features, Gen};
use differential::model::{
    Assign, Column, IdentStyle, Lit, Model, Op, Pred, Range, Schema, Target, Ty, Write,
};
use differential::query::{
    check, check_types, Agg, AsOf, Expectation, Expected, Func, GItem, Order, OrderKey,
    OverlapItem, Query, Stmt,
};
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// i64 extremes in INT / TIMESTAMP data (SUM may then overflow and must say so).
const GENERATE_INT_EXTREMES: bool = true;

/// Seeds run by default (times `COHORT_DIFF_CASES`); each seed is one table.
const DEFAULT_SEEDS: u64 = 300;
/// Statements (writes, checkpoints, reopens) per seed; each is followed by 1-3 queries.
const STEPS_PER_SEED: usize = 120;
/// The share of random queries run as an analyst.
const ANALYST_QUERIES: f64 = 0.25;
/// The first seed; seed `i` is `BASE_SEED + i`.
const BASE_SEED: u64 = 0xC0_4027;
/// Seeds (times `COHORT_DIFF_CASES`) whose table spans two shards, and
/// their first seed.
const TWO_SHARD_SEEDS: u64 = 4;
const TWO_SHARD_BASE_SEED: u64 = 0x25_4A4D;
/// Steps per two-shard seed.
const TWO_SHARD_STEPS: usize = 60;

fn options(checkpoint_on_close: bool) -> Options {
    Options {
        durability: Durability::Off,
        background: false,
        checkpoint_wal_bytes: u64::MAX,
        checkpoint_on_close,
        ..Options::default()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// `COHORT_DIFF_VERBOSE=1` prints every query and its answer.
fn verbose() -> bool {
    std::env::var_os("COHORT_DIFF_VERBOSE").is_some()
}

/// Runs one SELECT. The inner result is the engine's answer (rows, or its
/// error as text); the outer `Err` is a malformed answer (not exactly one row
/// result, or a value that does not have its column's type).
fn engine_rows(db: &Database, sql: &str) -> Result<Result<Vec<Vec<Value>>, String>, String> {
    match db.execute(sql) {
        Ok(outs) => rows_of(outs),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Runs one query as the analyst `ada` (like [`engine_rows`]).
fn analyst_rows(db: &Database, sql: &str) -> Result<Result<Vec<Vec<Value>>, String>, String> {
    let ada = Principal {
        user: "ada".into(),
        role: Role::Analyst,
    };
    match db.execute_as(&ada, sql) {
        Ok(outs) => rows_of(outs),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// The rows of a query's results in sequence (OVERLAP gives two results),
/// each result's values checked against its column types.
fn rows_of(outs: Vec<Output>) -> Result<Result<Vec<Vec<Value>>, String>, String> {
    if outs.is_empty() {
        return Err("no output for a query".into());
    }
    let mut all = Vec::new();
    for out in outs {
        let Output::Rows(rows) = out else {
            return Err(format!("a query returned {out:?}"));
        };
        let columns = rows.columns.clone();
        match rows.collect_all() {
            Ok(rows) => {
                check_types(&columns, &rows)?;
                all.extend(rows);
            }
            Err(e) => return Ok(Err(e.to_string())),
        }
    }
    Ok(Ok(all))
}

/// One seed: a database in a temporary directory, its model, and the generator.
struct Case {
    seed: u64,
    dir: tempfile::TempDir,
    db: Option<Database>,
    gen: Gen,
    model: Model,
    create: String,
    /// Every write statement, checkpoint and reopen so far, for the failure report.
    log: Vec<String>,
    step: usize,
    statements: u64,
    queries: u64,
    /// Queries whose answer is not empty (nor all NULL / 0).
    informative: u64,
    /// Whether the open database checkpoints when it is closed.
    checkpoint_on_close: bool,
    /// Successful EXPORTs so far: the rows `_exports` must hold.
    exports: usize,
    /// The variable that reruns this seed alone.
    rerun_env: &'static str,
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut gen = Gen::new(
            seed,
            Features {
                int_extremes: GENERATE_INT_EXTREMES,
            },
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let checkpoint_on_close = gen.rng.random_bool(0.5) && !gen.schema.expiry_risk();
        let db = Database::open(dir.path(), options(checkpoint_on_close)).expect("open");
        let create = gen.create_sql();
        let case = Case {
            seed,
            dir,
            db: Some(db),
            gen,
            model: Model::default(),
            create: create.clone(),
            log: vec![format!("{create};")],
            step: 0,
            statements: 0,
            queries: 0,
            informative: 0,
            checkpoint_on_close,
            exports: 0,
            rerun_env: "COHORT_DIFF_SEED",
        };
        if verbose() {
            eprintln!("[seed {seed}] {create}");
        }
        if let Err(e) = case.db().execute(&create) {
            case.fail(&create, format!("CREATE TABLE failed: {e}"));
        }
        case
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("open database")
    }

    fn fail(&self, sql: &str, detail: String) -> ! {
        let path = std::env::temp_dir().join(format!("cohortql-diff-seed-{}.sql", self.seed));
        let mut script = self.log.join("\n");
        script.push_str(&format!("\n-- failing statement:\n{sql};\n"));
        let saved = match std::fs::write(&path, script) {
            Ok(()) => path.display().to_string(),
            Err(e) => format!("(could not write {}: {e})", path.display()),
        };
        panic!(
            "CohortQL differential mismatch: seed {seed} step {step} \
             (rerun: {env}={seed} cargo test --test cohortql_differential)\n\
             schema: {create}\nSQL: {sql}\n{detail}\n\
             statements before it (writes, checkpoints, reopens): {saved}",
            seed = self.seed,
            env = self.rerun_env,
            step = self.step,
            create = self.create,
        );
    }

    /// Runs write statements as one script and applies them to the model.
    fn write(&mut self, writes: &[Write]) {
        let schema = &self.gen.schema;
        let sql = writes
            .iter()
            .map(|w| w.sql(schema))
            .collect::<Vec<_>>()
            .join("; ");
        let affected: Vec<u64> = writes.iter().map(|w| self.model.apply(schema, w)).collect();
        let outs = match self.db().execute(&sql) {
            Ok(outs) => outs,
            Err(e) => self.fail(&sql, format!("the write failed: {e}")),
        };
        let got: Vec<Option<u64>> = outs
            .iter()
            .map(|o| match o {
                Output::Done { affected, .. } => Some(*affected),
                Output::Rows(_) => None,
            })
            .collect();
        let want: Vec<Option<u64>> = affected.into_iter().map(Some).collect();
        if got != want {
            self.fail(
                &sql,
                format!("affected counts: expected {want:?}, actual {got:?}"),
            );
        }
        self.log.push(format!("{sql};"));
        self.statements += writes.len() as u64;
    }

    /// A script `good; bad; good` whose middle INSERT must fail: the first
    /// statement stays done, the failing one and the ones after it change nothing.
    fn failing_write(&mut self) {
        let before = self.gen.write();
        let bad = self.gen.bad_write();
        let after = self.gen.write();
        let schema = &self.gen.schema;
        let sql = [&before, &bad, &after]
            .iter()
            .map(|w| w.sql(schema))
            .collect::<Vec<_>>()
            .join(";\n");
        self.model.apply(schema, &before);
        match self.db().execute(&sql) {
            Ok(outs) => self.fail(
                &sql,
                format!("the script should fail at its second statement, it gave {outs:?}"),
            ),
            Err(e) => {
                if verbose() {
                    eprintln!("[seed {}] {sql}\n    -> {e}", self.seed);
                }
            }
        }
        self.log.push(format!(
            "{};\n-- (refused, as expected) {};\n-- (not run) {};",
            before.sql(schema),
            bad.sql(schema),
            after.sql(schema)
        ));
        self.statements += 3;
    }

    /// A write and a query in one script: the query sees the write.
    fn write_then_query(&mut self) {
        let w = self.gen.write();
        let q = self.gen.query();
        let schema = &self.gen.schema;
        let sql = format!("{}; {}", w.sql(schema), q.sql(schema));
        let affected = self.model.apply(schema, &w);
        let exp = q.expect(schema, &self.model);
        let result = self.db().execute(&sql);
        if matches!(q.query, Query::Export { .. }) && !matches!(exp.expected, Expected::Error(_)) {
            self.exports += 1;
        }
        self.log.push(format!("{};", w.sql(schema)));
        self.statements += 1;
        self.queries += 1;
        self.informative += u64::from(exp.informative());
        if let Expected::Error(why) = &exp.expected {
            // The query fails (SUM overflow); the write before it stays done.
            match result {
                Err(_) => return,
                Ok(outs) => self.fail(&sql, format!("expected an error ({why}), got {outs:?}")),
            }
        }
        let mut outs = match result {
            Ok(outs) => outs,
            Err(e) => self.fail(&sql, format!("the script failed: {e}")),
        };
        if outs.len() < 2 {
            self.fail(&sql, format!("outputs: {outs:?}"));
        }
        let answers = outs.split_off(1);
        if !matches!(outs[0], Output::Done { affected: a, .. } if a == affected) {
            self.fail(
                &sql,
                format!("expected {affected} affected, got {:?}", outs[0]),
            );
        }
        let actual = match rows_of(answers) {
            Ok(actual) => actual,
            Err(e) => self.fail(&sql, e),
        };
        if let Err(why) = check(&exp, &actual) {
            self.fail(
                &sql,
                format!("{why}\nexpected: {:?}\nactual:   {actual:?}", exp.expected),
            );
        }
    }

    /// CREATE / REPLACE / DROP SEGMENT: the engine must do what the model
    /// does, and refuse (changing nothing) what the model refuses.
    fn segment_op(&mut self) {
        let op = self.gen.segment_op();
        let sql = op.sql(&self.gen.schema);
        let want = op.apply(&mut self.gen.schema);
        match (want, self.db().execute(&sql)) {
            (Ok(()), Ok(_)) => self.log.push(format!("{sql};")),
            (Err(_), Err(e)) => {
                if verbose() {
                    eprintln!("[seed {}] {sql}\n    -> {e}", self.seed);
                }
                self.log.push(format!("-- (refused, as expected) {sql};"));
            }
            (Ok(()), Err(e)) => self.fail(&sql, format!("the segment statement failed: {e}")),
            (Err(why), Ok(outs)) => {
                self.fail(&sql, format!("expected a refusal ({why}), got {outs:?}"))
            }
        }
        self.statements += 1;
    }

    fn query(&mut self, q: &Stmt) {
        self.query_as(q, false);
    }

    /// Runs a query as admin, or as an analyst (refusals and suppression,
    /// [`Stmt::expect_analyst`]).
    fn query_as(&mut self, q: &Stmt, analyst: bool) {
        let sql = q.sql(&self.gen.schema);
        let (exp, actual) = if analyst {
            (
                q.expect_analyst(&self.gen.schema, &self.model),
                analyst_rows(self.db(), &sql),
            )
        } else {
            (
                q.expect(&self.gen.schema, &self.model),
                engine_rows(self.db(), &sql),
            )
        };
        let actual = match actual {
            Ok(actual) => actual,
            Err(e) => self.fail(&sql, e),
        };
        if verbose() {
            let who = if analyst { " (as analyst)" } else { "" };
            eprintln!("[seed {}]{who} {sql}\n    -> {actual:?}", self.seed);
        }
        if let Err(why) = check(&exp, &actual) {
            self.fail(
                &sql,
                format!("{why}\nexpected: {:?}\nactual:   {actual:?}", exp.expected),
            );
        }
        self.queries += 1;
        self.informative += u64::from(exp.informative());
        if let Query::Export { purpose, .. } = &q.query {
            if !analyst && !matches!(exp.expected, Expected::Error(_)) {
                self.check_export_log(purpose.as_deref(), actual.map_or(0, |r| r.len()));
            }
        }
    }

    /// After a successful EXPORT of `profiles` profiles: `SHOW EXPORTS`
    /// has one more row, the last, saying so.
    fn check_export_log(&mut self, purpose: Option<&str>, profiles: usize) {
        self.exports += 1;
        let sql = "SHOW EXPORTS";
        let log = match engine_rows(self.db(), sql) {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => self.fail(sql, format!("SHOW EXPORTS failed: {e}")),
            Err(e) => self.fail(sql, e),
        };
        let want = vec![
            text("embedded"),
            text(&self.gen.schema.table),
            purpose.map_or(Value::Null, text),
            Value::Int(profiles as i64),
        ];
        let last = log.last().map(|r| {
            [1, 2, 4, 5]
                .iter()
                .map(|i| r.get(*i).cloned().unwrap_or(Value::Null))
                .collect::<Vec<_>>()
        });
        if log.len() != self.exports || last.as_ref() != Some(&want) {
            self.fail(
                sql,
                format!(
                    "expected {} logged exports, the last (user, table, purpose, profiles) {want:?}; got {} rows, the last {last:?}",
                    self.exports,
                    log.len()
                ),
            );
        }
    }

    /// Fills the rest of the table's first shard with profiles and deletes
    /// them again. Rows are never reused, so the profiles written before
    /// stay in the first shard and new ones get rows in the second: every
    /// query from here on merges two shards' answers.
    fn spread_over_two_shards(&mut self) {
        let table = self.gen.schema.table.clone();
        // One more than a shard holds: the last is in the second shard
        // whatever the table held before.
        let fillers = cohortdb::engine::SHARD_ROWS as usize + 1;
        let ids: Vec<String> = (0..fillers).map(|i| format!("filler{i}")).collect();
        for chunk in ids.chunks(100_000) {
            let rows: Vec<(String, Vec<Value>)> =
                chunk.iter().map(|id| (id.clone(), Vec::new())).collect();
            let batch = match cohortdb::engine::RowsBatch::from_values(Vec::new(), &rows) {
                Ok(b) => b,
                Err(e) => self.fail("-- filler rows", format!("encoding fillers failed: {e}")),
            };
            if let Err(e) = self.db().insert_rows(&table, batch) {
                self.fail("-- filler rows", format!("inserting fillers failed: {e}"));
            }
            let mut delete = cohortdb::Batch::new();
            for id in chunk {
                delete.delete(id.clone());
            }
            if let Err(e) = self.db().write(&table, delete) {
                self.fail("-- filler rows", format!("deleting fillers failed: {e}"));
            }
        }
        let shards = self.db().snapshot().table(&table).map(|t| t.shard_count());
        if !matches!(shards, Ok(2)) {
            self.fail(
                "-- filler rows",
                format!("expected 2 shards, got {shards:?}"),
            );
        }
        self.log.push(format!(
            "-- {fillers} filler profiles inserted and deleted (the next rows are in shard 1)"
        ));
    }

    /// A checkpoint, unless it would expire events (see [`Schema::expiry_risk`]).
    fn checkpoint(&mut self) {
        if self.gen.schema.expiry_risk() {
            return;
        }
        if let Err(e) = self.db().checkpoint() {
            self.fail("-- db.checkpoint()", format!("checkpoint failed: {e}"));
        }
        self.log.push("-- db.checkpoint()".into());
    }

    /// DROP TABLE and CREATE TABLE again under the same name with a new
    /// random schema: nothing of the old table may show through.
    fn recreate(&mut self) {
        let drop = format!("DROP TABLE {}", self.gen.schema.table_ref());
        self.gen.new_schema();
        let create = self.gen.create_sql();
        let sql = format!("{drop}; {create}");
        if let Err(e) = self.db().execute(&sql) {
            self.fail(&sql, format!("recreating the table failed: {e}"));
        }
        if verbose() {
            eprintln!("[seed {}] {sql}", self.seed);
        }
        self.model = Model::default();
        self.create = create;
        self.log.push(format!("{sql};"));
    }

    /// Closes and reopens the database, unless closing would checkpoint
    /// (and so expire events, see [`Schema::expiry_risk`]).
    fn reopen(&mut self) {
        let risk = self.gen.schema.expiry_risk();
        if risk && self.checkpoint_on_close {
            return;
        }
        let checkpoint_on_close = self.gen.rng.random_bool(0.5) && !risk;
        self.checkpoint_on_close = checkpoint_on_close;
        drop(self.db.take());
        match Database::open(self.dir.path(), options(checkpoint_on_close)) {
            Ok(db) => self.db = Some(db),
            Err(e) => self.fail("-- reopen", format!("reopen failed: {e}")),
        }
        self.log.push("-- drop and Database::open".into());
    }

    /// Returns (write statements, queries, informative queries).
    fn run(mut self, steps: usize, two_shards: bool) -> (u64, u64, u64) {
        if two_shards {
            self.rerun_env = "COHORT_DIFF_TWO_SHARD_SEED";
        }
        for w in self.gen.bulk_load() {
            self.write(&[w]);
        }
        if self.gen.big && self.gen.rng.random_bool(0.5) {
            self.checkpoint();
        }
        for step in 0..steps {
            self.step = step;
            // A third of the way in: the rows so far stay in the first shard.
            if two_shards && step == steps / 3 {
                self.spread_over_two_shards();
            }
            match self.gen.rng.random_range(0..100) {
                0..=54 => {
                    let w = self.gen.write();
                    self.write(&[w]);
                }
                55..=59 => {
                    let ws = [self.gen.write(), self.gen.write()];
                    self.write(&ws);
                }
                60..=63 => self.write_then_query(),
                64..=65 => self.failing_write(),
                66..=67 => self.checkpoint(),
                68..=69 => self.reopen(),
                70 => self.recreate(),
                71..=76 => self.segment_op(),
                _ => {}
            }
            for _ in 0..self.gen.rng.random_range(1..=3) {
                let mut q = self.gen.query();
                let analyst = self.gen.rng.random_bool(ANALYST_QUERIES);
                // Mostly what an analyst may run; sometimes a refusal.
                if analyst
                    && matches!(q.query, Query::Rows { .. } | Query::Export { .. })
                    && self.gen.rng.random_bool(0.8)
                {
                    q = self.gen.query();
                }
                self.query_as(&q, analyst);
            }
            if step % 20 == 19 {
                let q = self.gen.everything();
                self.query(&q);
            }
        }
        self.step = steps;
        self.checkpoint();
        self.reopen();
        let q = self.gen.everything();
        self.query(&q);
        for _ in 0..3 {
            let q = self.gen.query();
            self.query(&q);
        }
        (self.statements, self.queries, self.informative)
    }
}

#[test]
fn random_cohortql_agrees_with_the_model() {
    let seeds = seeds("COHORT_DIFF_SEED", DEFAULT_SEEDS, BASE_SEED);
    run_seeds(&seeds, STEPS_PER_SEED, false);
}

/// The same over tables whose profiles sit in two shards (a shard holds
/// 2^20 rows, more than the generated tables have): how shards' partial
/// answers merge (counts, groups, OVERLAP regions, TOP's counts and base
/// counts, rankings and limits).
#[test]
fn random_cohortql_agrees_with_the_model_across_two_shards() {
    let seeds = seeds(
        "COHORT_DIFF_TWO_SHARD_SEED",
        TWO_SHARD_SEEDS,
        TWO_SHARD_BASE_SEED,
    );
    run_seeds(&seeds, TWO_SHARD_STEPS, true);
}

/// The one seed `one_seed_env` names, or `count` (times `COHORT_DIFF_CASES`)
/// seeds from `base`.
fn seeds(one_seed_env: &str, count: u64, base: u64) -> Vec<u64> {
    match env_u64(one_seed_env) {
        Some(seed) => vec![seed],
        None => {
            let n = count * env_u64("COHORT_DIFF_CASES").unwrap_or(1).max(1);
            (0..n).map(|i| base + i).collect()
        }
    }
}

/// Runs `seeds` on all cores, `steps` each; stops at the first failure.
fn run_seeds(seeds: &[u64], steps: usize, two_shards: bool) {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let statements = AtomicU64::new(0);
    let queries = AtomicU64::new(0);
    let informative = AtomicU64::new(0);
    /// Stops the other workers once one panics.
    struct StopOnPanic<'a>(&'a AtomicBool);
    impl Drop for StopOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _stop = StopOnPanic(&failed);
                while !failed.load(Ordering::Relaxed) {
                    let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let (s, q, i) = Case::new(seed).run(steps, two_shards);
                    statements.fetch_add(s, Ordering::Relaxed);
                    queries.fetch_add(q, Ordering::Relaxed);
                    informative.fetch_add(i, Ordering::Relaxed);
                }
            });
        }
    });
    eprintln!(
        "cohortql differential{}: {} seeds, {} write statements, {} queries ({} with a non-empty answer) in {:.1?}",
        if two_shards { " (two shards)" } else { "" },
        seeds.len(),
        statements.load(Ordering::Relaxed),
        queries.load(Ordering::Relaxed),
        informative.load(Ordering::Relaxed),
        started.elapsed()
    );
}

// ---- hand-built checks: the model and the comparison can fail -------------

const T0: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z

fn hand_schema() -> Schema {
    let col = |name: &str, ty| Column {
        name: name.into(),
        ty,
    };
    Schema {
        table: "t".into(),
        key: "id".into(),
        columns: vec![
            col("country", Ty::Text),
            col("tags", Ty::Set),
            col("age", Ty::Int),
            col("seen", Ty::Ts),
            col("ltv", Ty::Float),
            col("ok", Ty::Bool),
        ],
        style: IdentStyle::Plain,
        segments: Default::default(),
        retention: None,
        consent: None,
        min_audience: None,
    }
}
const COUNTRY: usize = 0;
const TAGS: usize = 1;
const AGE: usize = 2;
const SEEN: usize = 3;
const LTV: usize = 4;
const OK: usize = 5;

fn s(v: &str) -> Lit {
    Lit::Str(v.into())
}
fn tags(v: &[&str]) -> Lit {
    Lit::Set(v.iter().map(|x| x.to_string()).collect())
}
fn text(v: &str) -> Value {
    Value::Text(v.into())
}
fn count_where(p: Pred) -> Query {
    Query::Aggs {
        items: vec![(Agg::COUNT_STAR, None)],
        filter: Some(p),
    }
}
fn agg(func: Func, c: usize) -> (Agg, Option<String>) {
    (
        Agg {
            func,
            arg: Some(Target::Col(c)),
        },
        None,
    )
}
fn group(keys: &[usize], order: Vec<Order>) -> Query {
    let mut items: Vec<GItem> = keys.iter().map(|k| GItem::Key(*k, None)).collect();
    items.push(GItem::Agg(Agg::COUNT_STAR, None));
    Query::Groups {
        keys: keys.to_vec(),
        items,
        filter: None,
        order,
        limit: None,
    }
}

/// Four profiles: u1 (NL, [a,b], 30, T0, 1.5, true), u2 (BE, [], -5, 0,
/// 2.25, false), u3 (all NULL), u4 (NL, [b], 30, T0 + 1 day, NULL, true).
fn hand_built() -> (tempfile::TempDir, Database, Schema, Model) {
    let schema = hand_schema();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(true)).unwrap();
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, country TEXT, tags SET<TEXT>, age INT, seen TIMESTAMP, ltv FLOAT, ok BOOL)")
        .unwrap();
    let all: Vec<Target> = std::iter::once(Target::Key)
        .chain((0..6).map(Target::Col))
        .collect();
    let ts = |text: &str, secs, keyword| Lit::Ts {
        text: text.into(),
        secs,
        keyword,
    };
    let writes = vec![
        Write::Insert {
            targets: all.clone(),
            rows: vec![
                vec![
                    s("u1"),
                    s("NL"),
                    tags(&["b", "a"]),
                    Lit::Int(30),
                    ts("2026-11-01T00:00:00Z", T0, false),
                    Lit::Float("1.50".into()),
                    Lit::Bool(true),
                ],
                vec![
                    s("u2"),
                    s("BE"),
                    tags(&[]),
                    Lit::Int(-5),
                    Lit::Int(0),
                    Lit::Float("2.25".into()),
                    Lit::Bool(false),
                ],
                vec![
                    s("u4"),
                    s("NL"),
                    tags(&["b", "b"]),
                    Lit::Int(30),
                    ts("2026-11-02", T0 + 86_400, true),
                    Lit::Null,
                    Lit::Bool(false),
                ],
            ],
        },
        Write::Insert {
            targets: vec![Target::Key],
            rows: vec![vec![s("u3")], vec![s("u5")]],
        },
        // An upsert of one column keeps the others.
        Write::Insert {
            targets: vec![Target::Col(OK), Target::Key],
            rows: vec![vec![Lit::Bool(true), s("u4")]],
        },
        // Removing from a NULL set leaves it NULL.
        Write::Update {
            assigns: vec![Assign::Remove(TAGS, vec!["zz".into()])],
            filter: Some(Pred::IsNull(Target::Col(TAGS), false)),
        },
        Write::Delete {
            filter: Some(Pred::Cmp(Target::Key, Op::Eq, s("u5"))),
        },
    ];
    let mut model = Model::default();
    for w in &writes {
        let want = model.apply(&schema, w);
        let outs = db.execute(&w.sql(&schema)).unwrap();
        assert!(
            matches!(outs[..], [Output::Done { affected, .. }] if affected == want),
            "{}: {outs:?}, expected {want} affected",
            w.sql(&schema)
        );
    }
    (dir, db, schema, model)
}

/// The hand-written answers of the hand-built table.
fn hand_cases() -> Vec<(Query, Expected)> {
    let col = Target::Col;
    let one = |n: i64| Expected::Ordered(vec![vec![Value::Int(n)]]);
    vec![
        // A negative comparison is false on NULL; NOT of a comparison is true on NULL.
        (
            count_where(Pred::Cmp(col(COUNTRY), Op::Ne, s("NL"))),
            one(1),
        ),
        (
            count_where(Pred::Not(Box::new(Pred::Cmp(
                col(COUNTRY),
                Op::Eq,
                s("NL"),
            )))),
            one(2),
        ),
        (
            count_where(Pred::In(col(COUNTRY), vec![s("BE")], true)),
            one(2),
        ),
        // NULL is not the empty set.
        (count_where(Pred::IsNull(col(TAGS), false)), one(1)),
        (
            count_where(Pred::Between(AGE, Lit::Int(0), Lit::Int(100), true)),
            one(1),
        ),
        (
            count_where(Pred::Between(AGE, Lit::Int(100), Lit::Int(0), false)),
            one(0),
        ),
        (
            count_where(Pred::Cmp(
                col(SEEN),
                Op::Ge,
                Lit::Ts {
                    text: "2026-11-01T01:00:00+01:00".into(),
                    secs: T0,
                    keyword: false,
                },
            )),
            one(2),
        ),
        (
            count_where(Pred::Cmp(
                col(SEEN),
                Op::Eq,
                Lit::Ts {
                    text: "2026-11-02".into(),
                    secs: T0 + 86_400,
                    keyword: true,
                },
            )),
            one(1),
        ),
        (count_where(Pred::IsNull(Target::Key, false)), one(0)),
        (
            count_where(Pred::Cmp(col(LTV), Op::Gt, Lit::Int(2))),
            one(1),
        ),
        (
            count_where(Pred::HasAll(TAGS, vec![s("a"), s("b")])),
            one(1),
        ),
        (
            count_where(Pred::HasAny(TAGS, vec![s("b"), s("zz")])),
            one(2),
        ),
        (
            count_where(Pred::Cmp(col(OK), Op::Ne, Lit::Bool(true))),
            one(1),
        ),
        // GROUP BY a set: once per tag; NULL and [] form the NULL group.
        (
            group(&[TAGS], vec![]),
            Expected::Ordered(vec![
                vec![text("a"), Value::Int(1)],
                vec![text("b"), Value::Int(2)],
                vec![Value::Null, Value::Int(2)],
            ]),
        ),
        (
            group(&[COUNTRY, TAGS], vec![]),
            Expected::Ordered(vec![
                vec![text("BE"), Value::Null, Value::Int(1)],
                vec![text("NL"), text("a"), Value::Int(1)],
                vec![text("NL"), text("b"), Value::Int(2)],
                vec![Value::Null, Value::Null, Value::Int(1)],
            ]),
        ),
        // Ties keep the key order.
        (
            group(
                &[COUNTRY],
                vec![Order {
                    key: OrderKey::Pos(2),
                    desc: Some(true),
                }],
            ),
            Expected::Ordered(vec![
                vec![text("NL"), Value::Int(2)],
                vec![text("BE"), Value::Int(1)],
                vec![Value::Null, Value::Int(1)],
            ]),
        ),
        (
            group(
                &[OK],
                vec![Order {
                    key: OrderKey::Name("ok".into()),
                    desc: Some(true),
                }],
            ),
            Expected::Ordered(vec![
                vec![Value::Null, Value::Int(1)],
                vec![Value::Bool(true), Value::Int(2)],
                vec![Value::Bool(false), Value::Int(1)],
            ]),
        ),
        (
            Query::Aggs {
                items: vec![
                    agg(Func::Sum, AGE),
                    agg(Func::Avg, AGE),
                    agg(Func::Min, AGE),
                    agg(Func::Max, AGE),
                    agg(Func::Count, AGE),
                ],
                filter: None,
            },
            Expected::Ordered(vec![vec![
                Value::Int(55),
                Value::Float(55.0 / 3.0),
                Value::Int(-5),
                Value::Int(30),
                Value::Int(3),
            ]]),
        ),
        (
            Query::Aggs {
                items: vec![
                    agg(Func::Sum, SEEN),
                    agg(Func::Min, SEEN),
                    agg(Func::Max, LTV),
                    agg(Func::Sum, LTV),
                    agg(Func::Min, COUNTRY),
                    agg(Func::Max, COUNTRY),
                    agg(Func::Count, TAGS),
                ],
                filter: None,
            },
            Expected::Ordered(vec![vec![
                Value::Int(2 * T0 + 86_400),
                Value::Timestamp(0),
                Value::Float(2.25),
                Value::Float(3.75),
                text("BE"),
                text("NL"),
                Value::Int(3),
            ]]),
        ),
        // Over no rows: SUM / MIN are NULL, COUNT is 0.
        (
            Query::Aggs {
                items: vec![
                    agg(Func::Sum, AGE),
                    agg(Func::Min, COUNTRY),
                    agg(Func::Count, AGE),
                    (Agg::COUNT_STAR, None),
                ],
                filter: Some(Pred::Cmp(col(COUNTRY), Op::Eq, s("zz"))),
            },
            Expected::Ordered(vec![vec![
                Value::Null,
                Value::Null,
                Value::Int(0),
                Value::Int(0),
            ]]),
        ),
        (
            Query::Rows {
                fields: Some(vec![Target::Key, col(TAGS)]),
                filter: Some(Pred::IsNull(col(TAGS), true)),
                limit: None,
            },
            Expected::Unordered(vec![
                vec![text("u1"), Value::Set(vec!["a".into(), "b".into()])],
                vec![text("u2"), Value::Set(vec![])],
                vec![text("u4"), Value::Set(vec!["b".into()])],
            ]),
        ),
    ]
}

#[test]
fn the_model_and_the_engine_give_hand_computed_answers() {
    let (_dir, db, schema, model) = hand_built();
    for (q, answer) in hand_cases() {
        let sql = q.sql(&schema);
        let exp = q.expect(&schema, &model);
        assert_eq!(exp.expected, answer, "the model's answer to {sql}");
        let actual = engine_rows(&db, &sql).unwrap();
        if let Err(why) = check(&exp, &actual) {
            panic!("{sql}: {why}");
        }
    }
}

#[test]
fn the_comparison_detects_wrong_answers() {
    let (_dir, db, schema, model) = hand_built();
    // A model with three-valued NOT (NULL excluded) would expect 1 here; the engine says 2.
    let q = count_where(Pred::Not(Box::new(Pred::Cmp(
        Target::Col(COUNTRY),
        Op::Eq,
        s("NL"),
    ))));
    let actual = engine_rows(&db, &q.sql(&schema)).unwrap();
    let right = q.expect(&schema, &model);
    assert!(check(&right, &actual).is_ok());
    let wrong = Expectation {
        expected: Expected::Ordered(vec![vec![Value::Int(1)]]),
        approx: vec![false],
    };
    assert!(check(&wrong, &actual).is_err());
    // Group rows in another order are detected.
    let q = group(&[TAGS], vec![]);
    let actual = engine_rows(&db, &q.sql(&schema)).unwrap();
    let mut exp = q.expect(&schema, &model);
    assert!(check(&exp, &actual).is_ok());
    if let Expected::Ordered(rows) = &mut exp.expected {
        rows.reverse();
    }
    assert!(check(&exp, &actual).is_err());
    // A missing or extra row of an unordered result is detected; order is not.
    let q = Query::Rows {
        fields: None,
        filter: None,
        limit: None,
    };
    let actual = engine_rows(&db, &q.sql(&schema)).unwrap();
    let exp = q.expect(&schema, &model);
    assert!(check(&exp, &actual).is_ok());
    let Expected::Unordered(all) = exp.expected.clone() else {
        panic!("row queries are unordered");
    };
    let mut reversed = all.clone();
    reversed.reverse();
    let ok = |e: Expected| {
        check(
            &Expectation {
                expected: e,
                approx: exp.approx.clone(),
            },
            &actual,
        )
    };
    assert!(ok(Expected::Unordered(reversed)).is_ok());
    assert!(ok(Expected::Unordered(all[1..].to_vec())).is_err());
    // LIMIT: the right number of rows, each one of the matching rows.
    let limited = Ok(all[..2].to_vec());
    let subset = |n, all: Vec<Vec<Value>>| Expectation {
        expected: Expected::Subset { all, n },
        approx: exp.approx.clone(),
    };
    assert!(check(&subset(2, all.clone()), &limited).is_ok());
    assert!(check(&subset(3, all.clone()), &limited).is_err());
    assert!(check(&subset(2, all[1..].to_vec()), &limited).is_err());
    // Exact values: types matter, FLOAT sums get a relative tolerance only where allowed.
    let one = |v: Value, approx| Expectation {
        expected: Expected::Ordered(vec![vec![v]]),
        approx: vec![approx],
    };
    assert!(check(
        &one(Value::Int(5), false),
        &Ok(vec![vec![Value::Timestamp(5)]])
    )
    .is_err());
    let near = Ok(vec![vec![Value::Float(0.1 + 0.2)]]);
    assert!(check(&one(Value::Float(0.3), true), &near).is_ok());
    assert!(check(&one(Value::Float(0.3), false), &near).is_err());
    assert!(check(&one(Value::Float(0.3001), true), &near).is_err());
    // An expected error must be an error, and an error is never expected otherwise.
    let err = Expectation {
        expected: Expected::Error("overflow".into()),
        approx: vec![false],
    };
    assert!(check(&err, &Ok(vec![vec![Value::Int(1)]])).is_err());
    assert!(check(&one(Value::Int(1), false), &Err("boom".into())).is_err());
}

#[test]
fn sum_overflow_is_an_error_in_the_model_and_the_engine() {
    let schema = Schema {
        table: "t".into(),
        key: "id".into(),
        columns: vec![Column {
            name: "n".into(),
            ty: Ty::Int,
        }],
        style: IdentStyle::Plain,
        segments: Default::default(),
        retention: None,
        consent: None,
        min_audience: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(true)).unwrap();
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INT)")
        .unwrap();
    let w = Write::Insert {
        targets: vec![Target::Key, Target::Col(0)],
        rows: vec![vec![s("a"), Lit::Int(i64::MAX)], vec![s("b"), Lit::Int(1)]],
    };
    let mut model = Model::default();
    model.apply(&schema, &w);
    db.execute(&w.sql(&schema)).unwrap();
    let q = Query::Aggs {
        items: vec![agg(Func::Sum, 0), agg(Func::Max, 0)],
        filter: None,
    };
    let exp = q.expect(&schema, &model);
    assert!(matches!(exp.expected, Expected::Error(_)), "{exp:?}");
    let actual = engine_rows(&db, &q.sql(&schema)).unwrap();
    assert!(actual.is_err(), "{actual:?}");
    // AVG does not overflow: it is computed in floating point from an exact sum.
    let q = Query::Aggs {
        items: vec![agg(Func::Avg, 0)],
        filter: None,
    };
    let exp = q.expect(&schema, &model);
    assert_eq!(
        exp.expected,
        Expected::Ordered(vec![vec![Value::Float(
            (i128::from(i64::MAX) + 1) as f64 / 2.0
        )]])
    );
    check(&exp, &engine_rows(&db, &q.sql(&schema)).unwrap()).unwrap();
}

#[test]
fn iso8601_renderings_name_the_right_instant() {
    use differential::model::iso8601;
    assert_eq!(iso8601(T0, 0), "2026-11-01T00:00:00Z");
    assert_eq!(iso8601(T0, 1), "2026-11-01 00:00:00");
    assert_eq!(iso8601(T0, 2), "2026-11-01T01:00:00+01:00");
    assert_eq!(iso8601(T0, 3), "2026-11-01");
    assert_eq!(iso8601(T0 + 59, 3), "2026-11-01T00:00:59Z");
    assert_eq!(iso8601(T0 + 3600, 4), "2026-11-01T01:00");
    assert_eq!(iso8601(-86_400, 0), "1969-12-31T00:00:00Z");
    assert_eq!(iso8601(951_782_400, 3), "2000-02-29");
    // And the engine reads them as the same instants.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(true)).unwrap();
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, at TIMESTAMP)")
        .unwrap();
    for secs in [T0, T0 + 59, T0 + 3600, -86_400, 951_782_400, 0] {
        for style in 0..5 {
            let text = iso8601(secs, style);
            let rows = db
                .execute(&format!(
                    "INSERT INTO t (id, at) VALUES ('x', '{text}'); SELECT at FROM t WHERE id = 'x'"
                ))
                .unwrap()
                .pop()
                .unwrap()
                .into_rows()
                .unwrap();
            assert_eq!(rows, vec![vec![Value::Timestamp(secs)]], "{text}");
        }
    }
}

// ---- EVENTS<TEXT>: the model on the hand-built table of tests/events.rs ----

const VISITS: usize = 1;

/// 2026-11-`day` at `hour`:00 UTC (day 0 is October 31st, and so on back).
fn nov(day: i64, hour: i64) -> i64 {
    T0 + (day - 1) * 86_400 + hour * 3600
}

fn time(secs: i64) -> Lit {
    use differential::model::iso8601;
    Lit::Ts {
        text: iso8601(secs, if secs % 86_400 == 0 { 3 } else { 0 }),
        secs,
        keyword: false,
    }
}

fn events(e: &[(&str, i64)]) -> Lit {
    Lit::Events {
        events: e.iter().map(|(v, t)| (s(v), time(*t))).collect(),
        list: true,
    }
}

fn has(v: &str, min_days: Option<u64>, range: Option<Range>) -> Pred {
    Pred::Events {
        col: VISITS,
        value: s(v),
        min_days,
        range,
    }
}

fn ids_where(p: Pred, today: i64) -> Stmt {
    Stmt {
        query: Query::Rows {
            fields: Some(vec![Target::Key]),
            filter: Some(p),
            limit: None,
        },
        as_of: Some(AsOf(time(today))),
    }
}

/// Five profiles (tests/events.rs): u1 baking 11-20, 11-21 (twice), golf
/// 10-01; u2 baking 09-01, 11-22 (late); u3 golf 11-22, baking 11-23; u4
/// none; u5 baking 11-01, 11-10, 11-15. Today is 2026-11-22.
fn hand_built_events(retention: Option<i64>) -> (tempfile::TempDir, Database, Schema, Model) {
    let schema = Schema {
        table: "t".into(),
        key: "id".into(),
        columns: vec![
            Column {
                name: "country".into(),
                ty: Ty::Text,
            },
            Column {
                name: "visits".into(),
                ty: Ty::Events,
            },
        ],
        style: IdentStyle::Plain,
        segments: Default::default(),
        retention,
        consent: None,
        min_audience: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(false)).unwrap();
    let with = retention
        .map(|r| format!(" WITH (retention_days = {r})"))
        .unwrap_or_default();
    db.execute(&format!(
        "CREATE TABLE t (id TEXT PRIMARY KEY, country TEXT, visits EVENTS<TEXT>){with}"
    ))
    .unwrap();
    let row = |id: &str, country: &str, visits: Lit| vec![s(id), s(country), visits];
    let w = Write::Insert {
        targets: vec![Target::Key, Target::Col(0), Target::Col(VISITS)],
        rows: vec![
            row(
                "u1",
                "NL",
                events(&[
                    ("baking", nov(20, 10)),
                    ("baking", nov(21, 9)),
                    ("baking", nov(21, 22)),
                    ("golf", nov(-30, 0)),
                ]),
            ),
            row(
                "u2",
                "NL",
                events(&[("baking", nov(-60, 0)), ("baking", nov(23, 0) - 1)]),
            ),
            row(
                "u3",
                "BE",
                events(&[("golf", nov(22, 8)), ("baking", nov(23, 1))]),
            ),
            row("u4", "BE", Lit::Null),
            row(
                "u5",
                "DE",
                events(&[
                    ("baking", nov(1, 0)),
                    ("baking", nov(10, 0)),
                    ("baking", nov(15, 0)),
                ]),
            ),
        ],
    };
    let mut model = Model::default();
    model.apply(&schema, &w);
    db.execute(&w.sql(&schema)).unwrap();
    (dir, db, schema, model)
}

/// The model's answer is the hand-computed one, and the engine's too.
fn check_ids(db: &Database, schema: &Schema, model: &Model, q: &Stmt, want: &[&str]) {
    let sql = q.sql(schema);
    let exp = q.expect(schema, model);
    let rows = want.iter().map(|id| vec![text(id)]).collect();
    assert_eq!(
        exp.expected,
        Expected::Unordered(rows),
        "the model's answer to {sql}"
    );
    if let Err(why) = check(&exp, &engine_rows(db, &sql).unwrap()) {
        panic!("{sql}: {why}");
    }
}

#[test]
fn the_model_gives_hand_computed_event_answers() {
    let (_dir, db, schema, mut model) = hand_built_events(None);
    let today = nov(22, 12);
    let within = |n| Some(Range::Within(n));
    let since = |secs| Some(Range::Since(time(secs)));
    let between = |a, b| Some(Range::Between(time(a), time(b)));
    let cases: Vec<(Pred, &[&str])> = vec![
        (has("baking", None, None), &["u1", "u2", "u5"]),
        (has("golf", None, None), &["u1", "u3"]),
        (has("tennis", None, None), &[]),
        (has("baking", None, within(7)), &["u1", "u2"]),
        (has("baking", None, within(1)), &["u2"]),
        (has("golf", None, within(53)), &["u1", "u3"]),
        (has("golf", None, within(52)), &["u3"]),
        (has("baking", None, since(nov(10, 0))), &["u1", "u2", "u5"]),
        (has("baking", None, since(nov(16, 23))), &["u1", "u2"]),
        (
            has("baking", None, between(nov(-60, 0), nov(2, 0) - 1)),
            &["u2", "u5"],
        ),
        (has("baking", None, between(nov(2, 0), nov(9, 0))), &[]),
        (has("baking", None, between(nov(20, 0), nov(10, 0))), &[]),
        (has("baking", Some(2), None), &["u1", "u2", "u5"]),
        (has("baking", Some(3), None), &["u5"]),
        (has("baking", Some(2), within(30)), &["u1", "u5"]),
        (has("baking", Some(2), since(nov(15, 0))), &["u1"]),
        (
            has("baking", Some(2), between(nov(10, 0), nov(20, 0))),
            &["u5"],
        ),
        (
            Pred::And(vec![
                has("baking", None, within(30)),
                Pred::Not(Box::new(has("golf", None, None))),
            ]),
            &["u2", "u5"],
        ),
        (
            Pred::Or(vec![
                has("golf", None, None),
                Pred::Cmp(Target::Col(0), Op::Eq, s("DE")),
            ]),
            &["u1", "u3", "u5"],
        ),
        (Pred::IsNull(Target::Col(VISITS), false), &["u4"]),
    ];
    for (p, want) in &cases {
        check_ids(&db, &schema, &model, &ids_where(p.clone(), today), want);
    }
    // A day later u3's baking counts.
    let q = ids_where(has("baking", None, None), nov(23, 0));
    check_ids(&db, &schema, &model, &q, &["u1", "u2", "u3", "u5"]);
    // Read back as sorted day:value tags.
    let q = Stmt {
        query: Query::Rows {
            fields: Some(vec![Target::Col(VISITS)]),
            filter: Some(Pred::Cmp(Target::Key, Op::Eq, s("u1"))),
            limit: None,
        },
        as_of: None,
    };
    let want = Value::Set(vec![
        "2026-10-01:golf".into(),
        "2026-11-20:baking".into(),
        "2026-11-21:baking".into(),
    ]);
    assert_eq!(
        q.expect(&schema, &model).expected,
        Expected::Unordered(vec![vec![want]])
    );
    check(
        &q.expect(&schema, &model),
        &engine_rows(&db, &q.sql(&schema)).unwrap(),
    )
    .unwrap();
    // INSERT adds events, UPDATE replaces them, NULL clears them.
    let writes = [
        Write::Insert {
            targets: vec![Target::Col(VISITS), Target::Key],
            rows: vec![vec![
                Lit::Events {
                    events: vec![(s("tea"), time(nov(22, 8)))],
                    list: false,
                },
                s("u1"),
            ]],
        },
        Write::Update {
            assigns: vec![Assign::Set(VISITS, events(&[("golf", nov(22, 0))]))],
            filter: Some(Pred::Cmp(Target::Key, Op::Eq, s("u5"))),
        },
        Write::Update {
            assigns: vec![Assign::Set(VISITS, Lit::Null)],
            filter: Some(Pred::Cmp(Target::Key, Op::Eq, s("u2"))),
        },
    ];
    for w in &writes {
        model.apply(&schema, w);
        db.execute(&w.sql(&schema)).unwrap();
    }
    let cases: Vec<(Pred, &[&str])> = vec![
        (has("tea", None, None), &["u1"]),
        (has("baking", None, within(7)), &["u1"]),
        (has("golf", None, within(1)), &["u3", "u5"]),
        (Pred::IsNull(Target::Col(VISITS), false), &["u2", "u4"]),
    ];
    for (p, want) in &cases {
        check_ids(&db, &schema, &model, &ids_where(p.clone(), today), want);
    }
    let all = Stmt {
        query: Query::Rows {
            fields: None,
            filter: None,
            limit: None,
        },
        as_of: None,
    };
    check(
        &all.expect(&schema, &model),
        &engine_rows(&db, &all.sql(&schema)).unwrap(),
    )
    .unwrap();
}

#[test]
fn the_model_clamps_events_to_the_retention() {
    // Today 11-22 and the 29 days before: from 10-24 on.
    let (_dir, db, schema, model) = hand_built_events(Some(30));
    let today = nov(22, 12);
    let cases: Vec<(Pred, &[&str])> = vec![
        (has("baking", None, None), &["u1", "u2", "u5"]),
        (has("golf", None, None), &["u3"]),
        (
            has(
                "baking",
                None,
                Some(Range::Between(time(nov(-60, 0)), time(nov(2, 0)))),
            ),
            &["u5"],
        ),
        (
            has("golf", None, Some(Range::Since(time(nov(-40, 0))))),
            &["u3"],
        ),
        (has("baking", Some(2), None), &["u1", "u5"]),
    ];
    for (p, want) in &cases {
        check_ids(&db, &schema, &model, &ids_where(p.clone(), today), want);
    }
    // On 12-13 the days from 11-14 count; on 12-22 those from 11-23.
    let q = ids_where(has("baking", None, None), nov(43, 0));
    check_ids(&db, &schema, &model, &q, &["u1", "u2", "u3", "u5"]);
    let q = ids_where(has("baking", None, None), nov(52, 0));
    check_ids(&db, &schema, &model, &q, &["u3"]);
}

// ---- privacy and activation: the docs' example (docs/cohortql.md) ----------

/// The `crm` table of docs/cohortql.md without its PII column (which is
/// never a feature nor exported): k1..k6, consent in `consent`.
fn crm(min_audience: Option<u64>) -> (tempfile::TempDir, Database, Schema, Model) {
    let col = |name: &str, ty| Column {
        name: name.into(),
        ty,
    };
    let schema = Schema {
        table: "crm".into(),
        key: "id".into(),
        columns: vec![
            col("country", Ty::Text),
            col("interests", Ty::Set),
            col("mobile", Ty::Bool),
            col("consent", Ty::Set),
        ],
        style: IdentStyle::Plain,
        segments: Default::default(),
        retention: None,
        consent: Some(3),
        min_audience,
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(true)).unwrap();
    let k = min_audience
        .map(|k| format!(", min_audience = {k}"))
        .unwrap_or_default();
    db.execute(&format!(
        "CREATE TABLE crm (id TEXT PRIMARY KEY, country TEXT, interests SET<TEXT>, \
         mobile BOOL, consent SET<TEXT>) WITH (consent_column = 'consent'{k})"
    ))
    .unwrap();
    let row = |id: &str, c: &str, i: &[&str], m: bool, consent: &[&str]| {
        vec![s(id), s(c), tags(i), Lit::Bool(m), tags(consent)]
    };
    let w = Write::Insert {
        targets: std::iter::once(Target::Key)
            .chain((0..4).map(Target::Col))
            .collect(),
        rows: vec![
            row("k1", "NL", &["tea", "baking"], true, &["ads"]),
            row("k2", "NL", &["tea"], true, &["ads", "analytics"]),
            row("k3", "NL", &["tea", "baking"], false, &[]),
            row("k4", "BE", &["golf"], false, &["ads"]),
            row("k5", "BE", &["tea", "golf"], true, &["ads"]),
            row("k6", "NL", &["baking"], true, &["ads"]),
        ],
    };
    let mut model = Model::default();
    model.apply(&schema, &w);
    db.execute(&w.sql(&schema)).unwrap();
    (dir, db, schema, model)
}

#[test]
fn the_model_gives_the_documented_export_and_lookalike_answers() {
    let (_dir, db, schema, model) = crm(None);
    let bakers = OverlapItem::Pred(Pred::Has(1, s("baking")));
    let export = |purpose: Option<&str>, columns: Vec<usize>| Stmt {
        query: Query::Export {
            audience: bakers.clone(),
            on_table: true,
            columns,
            purpose: purpose.map(String::from),
            limit: None,
        },
        as_of: None,
    };
    let cases = [
        (
            export(Some("ads"), vec![0]),
            Expected::Unordered(vec![
                vec![text("k1"), text("NL")],
                vec![text("k6"), text("NL")],
            ]),
        ),
        (export(Some("email"), vec![]), Expected::Unordered(vec![])),
        (
            export(None, vec![]),
            Expected::Error("the table keeps consent: no purpose".into()),
        ),
    ];
    for (q, want) in cases {
        let sql = q.sql(&schema);
        let exp = q.expect(&schema, &model);
        assert_eq!(exp.expected, want, "the model's answer to {sql}");
        check(&exp, &engine_rows(&db, &sql).unwrap()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let seed = OverlapItem::Pred(Pred::And(vec![
        Pred::Cmp(Target::Col(0), Op::Eq, s("NL")),
        Pred::Has(1, s("tea")),
    ]));
    let lookalike = |limit| Stmt {
        query: Query::Lookalike {
            seed: seed.clone(),
            on_table: true,
            within: None,
            purpose: Some("ads".into()),
            limit,
        },
        as_of: None,
    };
    let q = lookalike(Some(3));
    let exp = q.expect(&schema, &model);
    let scored = |id: &str, score: f64| vec![text(id), Value::Float(score)];
    assert_eq!(
        exp.expected,
        Expected::Ranked {
            all: vec![
                scored("k6", 1.791988),
                scored("k5", -1.435084),
                scored("k4", -2.639285),
            ],
            n: 3
        }
    );
    check(&exp, &engine_rows(&db, &q.sql(&schema)).unwrap()).unwrap();
    // A wrong score or order is detected.
    let mut wrong = engine_rows(&db, &q.sql(&schema)).unwrap().unwrap();
    wrong.swap(0, 1);
    assert!(check(&exp, &Ok(wrong.clone())).is_err());
    wrong.swap(0, 1);
    wrong[2][1] = Value::Float(-2.639284);
    assert!(check(&exp, &Ok(wrong)).is_err());
    // The reach curve: the docs' levels.
    let q = lookalike(None);
    let exp = q.expect(&schema, &model);
    let Expected::Ordered(rows) = &exp.expected else {
        panic!("{exp:?}")
    };
    assert_eq!(rows.len(), 21);
    assert_eq!(
        rows[1],
        vec![Value::Int(95), Value::Float(1.570424), Value::Int(1)]
    );
    assert_eq!(
        rows[15],
        vec![Value::Int(25), Value::Float(-1.531467), Value::Int(2)]
    );
    check(&exp, &engine_rows(&db, &q.sql(&schema)).unwrap()).unwrap();
}

#[test]
fn the_model_suppresses_small_counts_for_analysts() {
    let (_dir, db, schema, model) = crm(Some(3));
    let t = |v: &str| text(v);
    let cases = [
        // NL has 4 profiles, BE 2: BE's aggregates read "< 3".
        (
            Query::Groups {
                keys: vec![0],
                items: vec![
                    GItem::Key(0, None),
                    GItem::Agg(Agg::COUNT_STAR, None),
                    GItem::Agg(
                        Agg {
                            func: Func::Max,
                            arg: Some(Target::Col(0)),
                        },
                        None,
                    ),
                ],
                filter: None,
                order: vec![],
                limit: None,
            },
            Expected::Ordered(vec![
                vec![t("BE"), t("< 3"), t("< 3")],
                vec![t("NL"), t("4"), t("NL")],
            ]),
        ),
        // COUNT(mobile) is a count too; COUNT(*) is 6.
        (
            Query::Aggs {
                items: vec![
                    (
                        Agg {
                            func: Func::Count,
                            arg: Some(Target::Col(2)),
                        },
                        None,
                    ),
                    (Agg::COUNT_STAR, None),
                ],
                filter: Some(Pred::Cmp(Target::Col(0), Op::Eq, s("BE"))),
            },
            Expected::Ordered(vec![vec![t("< 3"), t("< 3")]]),
        ),
        (
            Query::Rows {
                fields: None,
                filter: None,
                limit: None,
            },
            Expected::Error("analysts may not read rows".into()),
        ),
        (
            count_where(Pred::Cmp(Target::Key, Op::Eq, s("k1"))),
            Expected::Error("analysts may not select profiles by their id".into()),
        ),
    ];
    for (q, want) in cases {
        let q = Stmt {
            query: q,
            as_of: None,
        };
        let sql = q.sql(&schema);
        let exp = q.expect_analyst(&schema, &model);
        assert_eq!(exp.expected, want, "the model's answer to {sql}");
        check(&exp, &analyst_rows(&db, &sql).unwrap()).unwrap_or_else(|e| panic!("{sql}: {e}"));
        // The admin gets the numbers.
        let exp = q.expect(&schema, &model);
        check(&exp, &engine_rows(&db, &sql).unwrap()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for sql in ["EXPLAIN SELECT COUNT(*) FROM crm", "SHOW EXPORTS"] {
        assert!(analyst_rows(&db, sql).unwrap().is_err(), "{sql}");
    }
}
