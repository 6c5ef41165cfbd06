//! `cohortdb check`: verify a data directory without changing it — the
//! manifest, every part (every section checksum, every bitmap and block
//! decoded, cross-section invariants), and every WAL record replayed in
//! memory — and summarise what it holds.

use super::error::Result;
use super::recovery::{load_manifest, load_state, replay};
use super::WAL_DIR;
use crate::storage::wal::list_segments;
use std::path::{Path, PathBuf};

/// What `check` found in a healthy directory.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub checkpoint_lsn: u64,
    pub last_lsn: u64,
    pub tables: Vec<TableReport>,
    pub part_files: usize,
    pub part_bytes: u64,
    pub wal_segments: usize,
    pub wal_records_replayed: u64,
    /// A torn WAL tail (normal after a crash; cut off at the next open).
    pub torn_tail: Option<(PathBuf, u64, String)>,
}

#[derive(Debug, Clone)]
pub struct TableReport {
    pub name: String,
    pub columns: usize,
    pub profiles: u64,
    pub shards: usize,
    pub parts: usize,
    pub part_bytes: u64,
}

/// Verifies `dir` read-only. The first damage found is returned as the error.
pub fn check(dir: &Path) -> Result<CheckReport> {
    let (manifest, _) = load_manifest(dir, false)?;
    let mut state = load_state(dir, &manifest)?;
    let mut report = CheckReport {
        checkpoint_lsn: manifest.checkpoint_lsn,
        ..CheckReport::default()
    };
    for table in state.tables.values() {
        for shard in &table.shards {
            if let Some(base) = &shard.base {
                base.verify_blocks()?;
            }
        }
    }
    let sizes: Vec<(String, usize, u64)> = state
        .tables
        .values()
        .map(|t| {
            let parts: Vec<_> = t.shards.iter().filter_map(|s| s.base.as_ref()).collect();
            let bytes = parts.iter().map(|b| b.reader().file_len()).sum();
            (t.schema.name.clone(), parts.len(), bytes)
        })
        .collect();
    let replayed = replay(dir, &mut state, false)?;
    report.last_lsn = replayed.report.last_lsn;
    report.wal_records_replayed = replayed.report.replayed;
    report.torn_tail = replayed.report.torn_tail;
    report.wal_segments = list_segments(&dir.join(WAL_DIR))?.len();
    for table in state.tables.values() {
        let (parts, bytes) = sizes
            .iter()
            .find(|(n, _, _)| *n == table.schema.name)
            .map(|(_, p, b)| (*p, *b))
            .unwrap_or((0, 0));
        report.part_files += parts;
        report.part_bytes += bytes;
        report.tables.push(TableReport {
            name: table.schema.name.clone(),
            columns: table.schema.columns.len(),
            profiles: table.row_count(),
            shards: table.shards.len(),
            parts,
            part_bytes: bytes,
        });
    }
    Ok(report)
}
