//! The manifest: the one file that says which checkpoint is current — the
//! catalog (tables and schemas), the part file of every shard, and the LSN the
//! parts include (layout in docs/storage.md, "Manifest").
//!
//! Invariants: the manifest is replaced only by [`write_manifest`] (write a
//! temporary file, fsync, rename over `MANIFEST`, fsync the directory), so a
//! reader sees the old checkpoint or the new one, never a mix; every part it
//! names was fsynced before it was written; the WAL holds every record after
//! `checkpoint_lsn` that was acknowledged.

use super::codec::{crc32, ByteReader, ByteWriter};
use super::error::{Result, StorageError};
use super::fs;
use super::schema::TableSchema;
use std::path::Path;

pub const MANIFEST_FILE: &str = "MANIFEST";
pub const MANIFEST_MAGIC: [u8; 8] = *b"CHRTMANI";
pub const MANIFEST_VERSION: u32 = 1;

/// The current checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Every WAL record with an LSN at or below this is contained in the parts.
    pub checkpoint_lsn: u64,
    /// Increases with every checkpoint; part file names carry it.
    pub generation: u64,
    /// The id the next created table gets.
    pub next_table_id: u32,
    pub tables: Vec<TableEntry>,
}

/// One table of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub id: u32,
    pub schema: TableSchema,
    /// The row id the next new profile gets.
    pub next_row: u32,
    pub parts: Vec<PartRef>,
}

/// The part file holding one shard, relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    pub shard: u32,
    pub file: String,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = ByteWriter::new();
        body.u64(self.checkpoint_lsn);
        body.u64(self.generation);
        body.u32(self.next_table_id);
        body.u32(self.tables.len() as u32);
        for t in &self.tables {
            body.u32(t.id);
            t.schema.encode(&mut body);
            body.u32(t.next_row);
            body.u32(t.parts.len() as u32);
            for p in &t.parts {
                body.u32(p.shard);
                body.str(&p.file);
            }
        }
        let body = body.into_inner();
        let mut w = ByteWriter::with_capacity(body.len() + 24);
        w.bytes(&MANIFEST_MAGIC);
        w.u32(MANIFEST_VERSION);
        w.u64(body.len() as u64);
        w.bytes(&body);
        let crc = crc32(&[w.as_slice()]);
        w.u32(crc);
        w.into_inner()
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |offset: u64, reason: &str| StorageError::corrupted(path, offset, reason);
        if bytes.len() < 24 {
            return Err(bad(0, "manifest is too short"));
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err(bad(0, "not a manifest (bad magic number)"));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let body_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or([0xff; 8]));
        if body_len != bytes.len() as u64 - 24 {
            return Err(bad(12, "manifest length does not match the file size"));
        }
        let crc_at = bytes.len() - 4;
        let stored = u32::from_le_bytes([
            bytes[crc_at],
            bytes[crc_at + 1],
            bytes[crc_at + 2],
            bytes[crc_at + 3],
        ]);
        if crc32(&[&bytes[..crc_at]]) != stored {
            return Err(bad(crc_at as u64, "manifest checksum mismatch"));
        }
        if version != MANIFEST_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: MANIFEST_VERSION,
            });
        }
        let mut r = ByteReader::new(&bytes[20..crc_at], 20);
        let decode =
            |r: &mut ByteReader<'_>| -> std::result::Result<Manifest, super::error::DecodeError> {
                let checkpoint_lsn = r.u64("checkpoint LSN")?;
                let generation = r.u64("generation")?;
                let next_table_id = r.u32("next table id")?;
                let n = r.count(16, "table count")?;
                let mut tables = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.u32("table id")?;
                    let schema = TableSchema::decode(r)?;
                    let next_row = r.u32("next row id")?;
                    let np = r.count(8, "part count")?;
                    let mut parts = Vec::with_capacity(np);
                    for _ in 0..np {
                        let shard = r.u32("shard")?;
                        let file = r.str("part file name")?.to_string();
                        parts.push(PartRef { shard, file });
                    }
                    tables.push(TableEntry {
                        id,
                        schema,
                        next_row,
                        parts,
                    });
                }
                if !r.is_at_end() {
                    return Err(r.error("trailing bytes after the last table"));
                }
                Ok(Manifest {
                    checkpoint_lsn,
                    generation,
                    next_table_id,
                    tables,
                })
            };
        decode(&mut r).map_err(|e| e.in_file(path))
    }
}

/// Reads `dir/MANIFEST`; `Ok(None)` when there is none.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = fs::read(&path)?;
    Manifest::decode(&path, &bytes).map(Some)
}

/// Replaces `dir/MANIFEST` atomically and durably.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    fs::write_atomic(&dir.join(MANIFEST_FILE), &manifest.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::ColumnType;

    fn sample() -> Manifest {
        Manifest {
            checkpoint_lsn: 77,
            generation: 3,
            next_table_id: 2,
            tables: vec![TableEntry {
                id: 1,
                schema: TableSchema::new("profiles", "id").column("age", ColumnType::Int),
                next_row: 12,
                parts: vec![PartRef {
                    shard: 0,
                    file: "tables/1/s0-g3.part".into(),
                }],
            }],
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_manifest(dir.path()).unwrap(), None);
        write_manifest(dir.path(), &sample()).unwrap();
        assert_eq!(read_manifest(dir.path()).unwrap(), Some(sample()));
    }

    #[test]
    fn any_damage_is_refused() {
        let good = sample().encode();
        let path = Path::new("MANIFEST");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(Manifest::decode(path, &bad).is_err(), "flip at {i}");
        }
        for cut in 0..good.len() {
            assert!(Manifest::decode(path, &good[..cut]).is_err(), "cut {cut}");
        }
    }
}
