//! `cohortdb serve`: opens the data directory and reports what it holds.
//! The network server (native protocol, shell) is built by the next issues;
//! until then `serve` opens, recovers, checkpoints and exits cleanly.

use crate::engine::{Database, Durability, Options};
use std::path::Path;
use std::process::ExitCode;

pub fn run(data_dir: &Path, durability: &str) -> ExitCode {
    let durability: Durability = match durability.parse() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cohortdb serve: {e}");
            return ExitCode::from(2);
        }
    };
    let db = match Database::open(data_dir, Options::default().durability(durability)) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("cohortdb serve: cannot open {}: {e}", data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    let report = db.recovery_report().clone();
    let snapshot = db.snapshot();
    let tables = snapshot.tables();
    let profiles: u64 = tables
        .iter()
        .filter_map(|t| snapshot.table(&t.name).ok())
        .map(|t| t.row_count())
        .sum();
    println!(
        "cohortdb: opened {} ({}; {} tables, {} profiles; {} WAL records replayed{})",
        data_dir.display(),
        if report.created {
            "new database"
        } else {
            "existing database"
        },
        tables.len(),
        profiles,
        report.replayed,
        match &report.torn_tail {
            Some((file, offset, _)) =>
                format!(", torn WAL tail cut at {}:{offset}", file.display()),
            None => String::new(),
        }
    );
    println!(
        "cohortdb: the network server is not built yet; the storage engine is ready. Closing."
    );
    match db.close() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cohortdb serve: closing {} failed: {e}", data_dir.display());
            ExitCode::FAILURE
        }
    }
}
