//! Opening a data directory: load the manifest's parts, then replay the WAL
//! after the checkpoint LSN (protocol in docs/storage.md, "Recovery").
//!
//! Recovery policy: a torn tail of the newest WAL segment (a record cut short
//! or failing its checksum with nothing valid after it) is cut off, synced
//! and reported; any other damage — a corrupt record followed by valid ones,
//! a gap in the LSNs, a damaged part or manifest — refuses to open with an
//! error naming the file and offset. The same replay code serves
//! `cohortdb check`, which changes nothing on disk.

use super::base::BasePart;
use super::error::{Error, Result};
use super::record::Record;
use super::shard::ShardState;
use super::state::{table_key, DbState};
use super::table::{KeyIndex, TableState};
use super::{TABLES_DIR, WAL_DIR};
use crate::storage::error::StorageError;
use crate::storage::fs;
use crate::storage::manifest::{read_manifest, write_manifest, Manifest, MANIFEST_FILE};
use crate::storage::wal::{list_segments, scan_segment, truncate_segment, HEADER_LEN};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The LSN the manifest's parts include.
    pub checkpoint_lsn: u64,
    /// WAL records replayed on top of the parts.
    pub replayed: u64,
    /// Replayed records that failed the same way they failed when first applied.
    pub skipped: u64,
    /// The last LSN recovered.
    pub last_lsn: u64,
    /// A torn WAL tail that was cut off: file, offset, reason.
    pub torn_tail: Option<(PathBuf, u64, String)>,
    /// Whether `MANIFEST` had to be created (a new database).
    pub created: bool,
}

/// Reads the manifest, or makes a new database when `create` and the directory has no data.
pub(crate) fn load_manifest(dir: &Path, create: bool) -> Result<(Manifest, bool)> {
    if let Some(m) = read_manifest(dir)? {
        return Ok((m, false));
    }
    let has_data = [WAL_DIR, TABLES_DIR].iter().any(|d| dir.join(d).exists());
    if has_data || !create {
        return Err(Error::NotADatabase {
            dir: dir.to_path_buf(),
            reason: if has_data {
                format!("{MANIFEST_FILE} is missing but data files are present; refusing to start empty over them")
            } else {
                format!("there is no {MANIFEST_FILE}")
            },
        });
    }
    let manifest = Manifest {
        next_table_id: 1,
        ..Manifest::default()
    };
    write_manifest(dir, &manifest)?;
    Ok((manifest, true))
}

/// Builds the state the manifest describes, opening and verifying every part.
pub(crate) fn load_state(dir: &Path, manifest: &Manifest) -> Result<DbState> {
    let mut state = DbState {
        next_table_id: manifest.next_table_id,
        last_lsn: manifest.checkpoint_lsn,
        ..DbState::default()
    };
    for entry in &manifest.tables {
        let mut table = TableState::new(entry.id, entry.schema.clone());
        table.next_row = entry.next_row;
        let mut bases: Vec<Option<Arc<BasePart>>> = Vec::new();
        for part in &entry.parts {
            if part.file.contains("..") || Path::new(&part.file).is_absolute() {
                return Err(StorageError::corrupted(
                    dir.join(MANIFEST_FILE),
                    0,
                    format!("part path {:?} leaves the data directory", part.file),
                )
                .into());
            }
        }
        let types = table.types.clone();
        let panicked = || Error::Internal("a part loading thread panicked".into());
        let loaded = crate::parallel::map(
            &entry.parts,
            |part| {
                let base = Arc::new(BasePart::open(
                    &dir.join(&part.file),
                    entry.id,
                    part.shard,
                    &types,
                )?);
                let shard = ShardState::load(base.clone(), &types)?;
                Ok((base, shard))
            },
            panicked,
        )?;
        for (part, (base, shard)) in entry.parts.iter().zip(loaded) {
            let n = part.shard as usize;
            while table.shards.len() <= n {
                let number = table.shards.len() as u32;
                table
                    .shards
                    .push(Arc::new(ShardState::empty(number, &table.types)));
                bases.push(None);
            }
            table.shards[n] = Arc::new(shard);
            bases[n] = Some(base);
        }
        table.keys = Arc::new(KeyIndex::new(bases));
        state
            .tables
            .insert(table_key(&entry.schema.name), Arc::new(table));
    }
    Ok(state)
}

/// Where replay stopped.
pub(crate) struct Replayed {
    pub report: RecoveryReport,
    /// The newest segment, if it holds no record (it can be reused or removed).
    pub empty_last_segment: Option<PathBuf>,
}

/// Replays every WAL record after `state.last_lsn`. With `repair`, a torn
/// tail is truncated on disk; without, it is only reported.
pub(crate) fn replay(dir: &Path, state: &mut DbState, repair: bool) -> Result<Replayed> {
    let mut report = RecoveryReport {
        checkpoint_lsn: state.last_lsn,
        last_lsn: state.last_lsn,
        ..RecoveryReport::default()
    };
    let segments = list_segments(&dir.join(WAL_DIR))?;
    let mut expected = state.last_lsn + 1;
    let mut empty_last_segment = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        if let Some((next, _)) = segments.get(i + 1) {
            if *next <= expected {
                continue; // every record of this segment is in the checkpoint
            }
        }
        if *first > expected {
            return Err(StorageError::corrupted(
                path,
                0,
                format!("WAL records {expected}..{} are missing", first - 1),
            )
            .into());
        }
        let scan = scan_segment(path, is_last, |lsn, offset, payload| -> Result<()> {
            if lsn < expected {
                return Ok(());
            }
            let record = Record::decode(payload, offset).map_err(|e| e.in_file(path))?;
            match state.apply(lsn, &record) {
                Ok(_) => {}
                Err(e @ (Error::Storage(_) | Error::Internal(_))) => return Err(e),
                Err(_) => report.skipped += 1,
            }
            state.last_lsn = lsn;
            report.replayed += 1;
            expected = lsn + 1;
            Ok(())
        })?;
        if let Some(torn) = &scan.torn {
            report.torn_tail = Some((path.clone(), torn.offset, torn.reason.clone()));
            if repair {
                if scan.valid_len <= HEADER_LEN as u64 {
                    fs::remove_file(path)?;
                    fs::sync_dir(&dir.join(WAL_DIR))?;
                    continue;
                }
                truncate_segment(path, scan.valid_len)?;
            }
        }
        if is_last && scan.records == 0 {
            empty_last_segment = Some(path.clone());
        }
    }
    report.last_lsn = state.last_lsn;
    Ok(Replayed {
        report,
        empty_last_segment,
    })
}
