//! `cohortdb check --data-dir DIR`: verifies every file read-only and prints
//! a summary per table; exits 1 naming the first damaged file and offset.

use crate::engine::check::check;
use std::path::Path;
use std::process::ExitCode;

pub fn run(data_dir: &Path) -> ExitCode {
    if !data_dir.is_dir() {
        eprintln!("cohortdb check: {} is not a directory", data_dir.display());
        return ExitCode::from(2);
    }
    // A running database may checkpoint (and delete files) while we read.
    if let Ok(lock) = std::fs::File::open(data_dir.join("LOCK")) {
        if lock.try_lock_shared().is_err() {
            eprintln!(
                "warning: {} is open by a running CohortDB; files may change while they are checked, \
                 so a reported problem may be a false alarm — stop the server for a definitive check",
                data_dir.display()
            );
        }
    }
    match check(data_dir) {
        Ok(report) => {
            println!(
                "{}: OK — checkpoint at LSN {}, {} WAL records after it in {} segment(s), {} part file(s), {} bytes",
                data_dir.display(),
                report.checkpoint_lsn,
                report.wal_records_replayed,
                report.wal_segments,
                report.part_files,
                report.part_bytes
            );
            if let Some((file, offset, reason)) = &report.torn_tail {
                println!(
                    "note: torn WAL tail at {}:{offset} ({reason}); the next open cuts it off",
                    file.display()
                );
            }
            println!(
                "{:<24} {:>8} {:>12} {:>7} {:>6} {:>14}",
                "table", "columns", "profiles", "shards", "parts", "part bytes"
            );
            for t in &report.tables {
                println!(
                    "{:<24} {:>8} {:>12} {:>7} {:>6} {:>14}",
                    t.name, t.columns, t.profiles, t.shards, t.parts, t.part_bytes
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: DAMAGED — {e}", data_dir.display());
            ExitCode::FAILURE
        }
    }
}
