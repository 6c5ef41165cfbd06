//! Checkpoints: dirty shards become new immutable part files, a new manifest
//! makes them current, and the WAL before them is dropped
//! (protocol in docs/storage.md, "Checkpoint").
//!
//! Steps: (0) remove event tags past their table's retention (an ordinary
//! write, engine/events.rs); (1) with writers paused for an instant, take a snapshot at LSN L,
//! start a new WAL segment at L+1 and freeze the key indexes' writer layers;
//! (2) with nothing locked, write and fsync
//! a part for every dirty shard of the snapshot, then re-open each to verify
//! it; (3) write the manifest (temp file, fsync, rename, fsync directory);
//! (4) build the next key filters while writers run, then, with writers
//! paused, make the next key indexes (the frozen layers dropped) and install
//! the new parts in the live state (overlay entries at or below L and tail
//! rows below the part's row count are dropped: the part has them) with the
//! new key index; (5) delete WAL segments and part files the manifest no
//! longer needs.
//!
//! Invariants: readers never wait for a checkpoint (they keep reading the
//! snapshot they hold); a crash at any step leaves either the old manifest
//! with all the WAL it needs, or the new one; after step 5 no byte of a
//! profile deleted at or below L is left in any file of the directory.

use super::base::BasePart;
use super::error::Result;
use super::keyfilter::KeyFilter;
use super::shard::CompactBitmaps;
use super::table::{KeyIndex, TableState};
use super::{Inner, TABLES_DIR, WAL_DIR};
use crate::storage::fs;
use crate::storage::manifest::{write_manifest, Manifest, PartRef, TableEntry};
use crate::storage::wal::{list_segments, WalWriter};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The LSN the new parts include (0 when nothing needed doing).
    pub lsn: u64,
    pub parts_written: usize,
    pub bytes_written: u64,
    /// Column blocks copied unchanged from the parts the new ones replace
    /// (no row of the block changed since), not decoded and re-encoded.
    pub blocks_copied: u64,
    pub wal_segments_removed: usize,
    pub parts_removed: usize,
}

/// A part a checkpoint wrote, ready to install in its shard.
struct Installed {
    shard: u32,
    base: Arc<BasePart>,
    /// Compact copies of the shard's bitmaps as the part holds them.
    compact: CompactBitmaps,
}

/// Part file name (relative to the data directory).
fn part_file(table_id: u32, shard: u32, generation: u64) -> String {
    format!("{TABLES_DIR}/{table_id:08}/s{shard:06}-g{generation:012}.part")
}

impl Inner {
    pub(crate) fn checkpoint(&self) -> Result<CheckpointStats> {
        let mut info = self.checkpoint_info.lock();
        // (0) Event days past their table's retention are removed first, so
        // the parts written below no longer hold them.
        self.expire_events(super::events::clock_now())?;
        // (1) Snapshot at L and a fresh WAL segment from L+1.
        let (snapshot, lsn) = {
            let mut wal = self.wal.lock();
            self.check_writable()?;
            let _applied = self.wait_applied(wal.last_lsn);
            let snapshot = self.state.read().clone();
            if wal.last_lsn == info.lsn {
                return Ok(CheckpointStats::default());
            }
            let next_lsn = wal.last_lsn + 1;
            let fresh = wal.writer.is_empty() && wal.writer.first_lsn() == next_lsn;
            let rotated = wal
                .writer
                .flush()
                .and_then(|()| wal.writer.sync())
                .and_then(|()| {
                    if fresh {
                        Ok(None) // the current segment already starts at L+1 and is empty
                    } else {
                        WalWriter::create(&self.dir.join(WAL_DIR), next_lsn).map(Some)
                    }
                });
            match rotated {
                Ok(Some(next)) => wal.writer = next,
                Ok(None) => {}
                Err(e) => {
                    *self.failure.lock() = Some(e.to_string());
                    return Err(e.into());
                }
            }
            wal.since_checkpoint = 0;
            wal.unsynced = false;
            // Ids given rows from here on go to fresh key-index layers;
            // the frozen ones are dropped whole when the parts are installed.
            self.rotate_key_indexes();
            (snapshot, wal.last_lsn)
        };
        let mut stats = CheckpointStats {
            lsn,
            ..CheckpointStats::default()
        };
        // (2) Parts for the dirty shards.
        // The generation is used up even if this checkpoint fails, so a retry
        // never collides with part files a failed attempt left behind.
        let generation = info.generation + 1;
        info.generation = generation;
        let mut manifest = Manifest {
            checkpoint_lsn: lsn,
            generation,
            next_table_id: snapshot.next_table_id,
            tables: Vec::with_capacity(snapshot.tables.len()),
        };
        let mut installed: HashMap<u32, Vec<Installed>> = HashMap::new();
        for table in snapshot.tables.values() {
            let mut parts = Vec::new();
            let mut wrote_any = false;
            for shard in &table.shards {
                if shard.is_dirty() || (shard.base.is_none() && shard.len > 0) {
                    let file = part_file(table.id, shard.number, generation);
                    let path = self.dir.join(&file);
                    if !wrote_any {
                        fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
                        wrote_any = true;
                    }
                    let written = shard.write_part(
                        &path,
                        table.id,
                        generation,
                        &table.types,
                        self.options.compress_blocks,
                    )?;
                    stats.bytes_written += written.bytes;
                    stats.blocks_copied += written.blocks_copied;
                    stats.parts_written += 1;
                    let base =
                        Arc::new(BasePart::open(&path, table.id, shard.number, &table.types)?);
                    installed.entry(table.id).or_default().push(Installed {
                        shard: shard.number,
                        base,
                        compact: shard.compact_bitmaps(),
                    });
                    parts.push(PartRef {
                        shard: shard.number,
                        file,
                    });
                } else if let Some(base) = &shard.base {
                    parts.push(PartRef {
                        shard: shard.number,
                        file: self.relative(base.path()),
                    });
                }
            }
            if wrote_any {
                fs::sync_dir(&self.dir.join(TABLES_DIR).join(format!("{:08}", table.id)))?;
                fs::sync_dir(&self.dir.join(TABLES_DIR))?;
            }
            manifest.tables.push(TableEntry {
                id: table.id,
                schema: (*table.schema).clone(),
                next_row: table.next_row,
                parts,
            });
        }
        // (3) The manifest makes them current.
        write_manifest(&self.dir, &manifest)?;
        info.lsn = lsn;
        // (4) Install in the live state.
        self.install(lsn, installed);
        // (5) Drop what the manifest no longer needs.
        let (segments, parts) = self.remove_obsolete_files(&manifest)?;
        stats.wal_segments_removed = segments;
        stats.parts_removed = parts;
        Ok(stats)
    }

    /// Freezes every table's key-index layer that writers add to and
    /// starts a new one (see `KeyIndex::rotated`). Called with writers
    /// paused, at the checkpoint's snapshot.
    fn rotate_key_indexes(&self) {
        let mut state = self.state.write();
        let rotated: Vec<(String, KeyIndex)> = state
            .tables
            .iter()
            .filter_map(|(name, table)| Some((name.clone(), table.keys.rotated()?)))
            .collect();
        if rotated.is_empty() {
            return;
        }
        let state = Arc::make_mut(&mut state);
        for (name, keys) in rotated {
            if let Some(table) = state.tables.get_mut(&name) {
                Arc::make_mut(table).keys = Arc::new(keys);
            }
        }
    }

    fn install(&self, lsn: u64, installed: HashMap<u32, Vec<Installed>>) {
        // The next key filters are made while writers still run (adding the
        // frozen layers' fingerprints reads every id given a row since the
        // last checkpoint); only the swap happens with them paused.
        let filters: HashMap<u32, (Arc<KeyIndex>, Arc<OnceLock<KeyFilter>>)> = {
            let current = self.state.read().clone();
            current
                .tables
                .values()
                .filter_map(|table| {
                    let new_by_shard = new_parts_by_shard(installed.get(&table.id)?);
                    let filter = table.keys.next_filter(&next_parts(table, &new_by_shard));
                    Some((table.id, (Arc::clone(&table.keys), filter)))
                })
                .collect()
        };
        let writers_paused = self.wal.lock();
        let _applied = self.wait_applied(writers_paused.last_lsn);
        let mut filters = filters;
        let mut indexes: HashMap<u32, Arc<KeyIndex>> = HashMap::new();
        {
            let current = self.state.read().clone();
            for table in current.tables.values() {
                let Some(new_parts) = installed.get(&table.id) else {
                    continue;
                };
                let new_by_shard = new_parts_by_shard(new_parts);
                let parts = next_parts(table, &new_by_shard);
                // The filter made above fits only the index it was made from.
                let filter = match filters.remove(&table.id) {
                    Some((from, filter)) if Arc::ptr_eq(&from, &table.keys) => filter,
                    _ => table.keys.next_filter(&parts),
                };
                let next = table.keys.installed(parts, filter);
                // A profile deleted at or below L and upserted again after it
                // found its row through a frozen layer or the old part; the
                // new part does not hold it, so it joins the writers' layer
                // here, or the index would lose a live profile.
                for (shard_number, part) in &new_by_shard {
                    let Some(shard) = table.shards.get(*shard_number as usize) else {
                        continue;
                    };
                    for (local, entry) in shard.overlay.newer_than(lsn) {
                        let Some(image) = &entry.image else { continue };
                        if !part.has_key(local) {
                            let row = shard.first_row() | local;
                            let _ = next.find_or_insert(&image.key, next.hash(&image.key), row);
                        }
                    }
                }
                indexes.insert(table.id, Arc::new(next));
            }
        }
        let mut state = self.state.write();
        let state = Arc::make_mut(&mut state);
        let mut installed = installed;
        for table in state.tables.values_mut() {
            let (Some(new_parts), Some(index)) =
                (installed.remove(&table.id), indexes.remove(&table.id))
            else {
                continue;
            };
            let table = Arc::make_mut(table);
            for part in new_parts {
                if let Some(shard) = table.shards.get_mut(part.shard as usize) {
                    let shard = Arc::make_mut(shard);
                    shard.overlay.retain_newer_than(lsn);
                    shard.tail.drop_below(part.base.row_len());
                    shard.base = Some(part.base);
                    shard.adopt_compact(part.compact);
                }
            }
            table.keys = index;
        }
    }

    /// Deletes WAL segments wholly at or below the checkpoint, and part files
    /// and table directories the manifest does not name.
    pub(crate) fn remove_obsolete_files(&self, manifest: &Manifest) -> Result<(usize, usize)> {
        let wal_dir = self.dir.join(WAL_DIR);
        let segments = list_segments(&wal_dir)?;
        let mut removed_segments = 0;
        for (i, (first, path)) in segments.iter().enumerate() {
            // A segment ends where the next begins; it is obsolete if that is at or below L+1.
            let obsolete = segments
                .get(i + 1)
                .is_some_and(|(next, _)| *next <= manifest.checkpoint_lsn + 1)
                && *first <= manifest.checkpoint_lsn;
            if obsolete {
                fs::remove_file(path)?;
                removed_segments += 1;
            }
        }
        if removed_segments > 0 {
            fs::sync_dir(&wal_dir)?;
        }
        let referenced: HashSet<&str> = manifest
            .tables
            .iter()
            .flat_map(|t| t.parts.iter().map(|p| p.file.as_str()))
            .collect();
        let live_tables: HashSet<String> = manifest
            .tables
            .iter()
            .map(|t| format!("{:08}", t.id))
            .collect();
        let tables_dir = self.dir.join(TABLES_DIR);
        let mut removed_parts = 0;
        for table_dir in fs::list(&tables_dir)? {
            let path = tables_dir.join(&table_dir);
            if !live_tables.contains(&table_dir) {
                removed_parts += fs::list(&path)?.len();
                fs::remove_dir_all(&path)?;
                continue;
            }
            let mut removed_here = 0;
            for file in fs::list(&path)? {
                let relative = format!("{TABLES_DIR}/{table_dir}/{file}");
                if !referenced.contains(relative.as_str()) {
                    fs::remove_file(&path.join(&file))?;
                    removed_here += 1;
                }
            }
            if removed_here > 0 {
                fs::sync_dir(&path)?;
            }
            removed_parts += removed_here;
        }
        fs::sync_dir(&tables_dir)?;
        Ok((removed_segments, removed_parts))
    }
}

/// The new parts of one table, by shard number.
fn new_parts_by_shard(new_parts: &[Installed]) -> HashMap<u32, &Arc<BasePart>> {
    new_parts.iter().map(|i| (i.shard, &i.base)).collect()
}

/// Every shard's base part once the new parts are installed.
fn next_parts(
    table: &TableState,
    new_by_shard: &HashMap<u32, &Arc<BasePart>>,
) -> Vec<Option<Arc<BasePart>>> {
    table
        .shards
        .iter()
        .map(|s| match new_by_shard.get(&s.number) {
            Some(b) => Some(Arc::clone(b)),
            None => s.base.clone(),
        })
        .collect()
}
