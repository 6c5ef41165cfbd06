//! Part files: the immutable, memory-mapped image of one shard of one table
//! at one checkpoint (layout in docs/storage.md, "Part files").
//!
//! A part is a 36-byte header, a run of sections, a section directory, and a
//! 32-byte footer. Each directory entry names a section by `(kind, column,
//! item)` and carries its offset, length and CRC32. [`PartReader::open`]
//! verifies the footer, the directory, the header and the CRC of every
//! section before anything is decoded, so a damaged part is refused at open
//! with the file and offset of the damage.
//!
//! Invariants: parts are written once ([`PartWriter`], fsynced before they
//! are referenced by a manifest) and never modified, only deleted; that is
//! what makes mapping them read-only sound.

use super::codec::{crc32, ByteReader, ByteWriter};
use super::error::{Result, StorageError};
use super::fs;
use memmap2::Mmap;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const PART_MAGIC: [u8; 8] = *b"CHRTPART";
pub const PART_FOOTER_MAGIC: [u8; 8] = *b"CHRTPEND";
pub const PART_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 36;
pub const FOOTER_LEN: usize = 32;
const ENTRY_LEN: usize = 28;

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SectionKind {
    /// External ids of the shard's rows and the hash table over them.
    Keys = 1,
    /// Bitmap of the live rows.
    Live = 2,
    /// Bitmap of the rows where a column is not NULL.
    Exists = 3,
    /// A TEXT / SET<TEXT> column's dictionary.
    Dict = 4,
    /// A TEXT / SET<TEXT> column's bitmap per value id.
    Values = 5,
    /// An INT / TIMESTAMP column's bit-sliced index.
    Bsi = 6,
    /// A BOOL column's bitmap of true rows.
    BoolTrue = 7,
    /// One block of a column's stored values (`item` = block number).
    Block = 8,
}

impl SectionKind {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => SectionKind::Keys,
            2 => SectionKind::Live,
            3 => SectionKind::Exists,
            4 => SectionKind::Dict,
            5 => SectionKind::Values,
            6 => SectionKind::Bsi,
            7 => SectionKind::BoolTrue,
            8 => SectionKind::Block,
            _ => return None,
        })
    }
}

/// Identity of a part, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHeader {
    pub table_id: u32,
    pub shard: u32,
    /// Local row ids of the shard are below this.
    pub row_len: u32,
    /// The checkpoint generation that wrote the part.
    pub generation: u64,
}

impl PartHeader {
    fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::with_capacity(HEADER_LEN);
        w.bytes(&PART_MAGIC);
        w.u32(PART_VERSION);
        w.u32(self.table_id);
        w.u32(self.shard);
        w.u32(self.row_len);
        w.u64(self.generation);
        let crc = crc32(&[w.as_slice()]);
        w.u32(crc);
        w.into_inner()
    }
}

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionEntry {
    pub kind: SectionKind,
    pub column: u16,
    pub item: u32,
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

/// Writes a part file section by section.
pub struct PartWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    entries: Vec<SectionEntry>,
}

impl PartWriter {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(path: &Path, header: PartHeader) -> Result<Self> {
        let file = fs::create_new(path)?;
        let mut writer = PartWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            offset: 0,
            entries: Vec::new(),
        };
        writer.write(&header.encode())?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends one section.
    pub fn section(
        &mut self,
        kind: SectionKind,
        column: u16,
        item: u32,
        bytes: &[u8],
    ) -> Result<()> {
        self.section_of_pieces(kind, column, item, &[bytes])
    }

    /// Appends one section whose bytes are `pieces` one after another
    /// (written in turn, never joined in memory).
    pub fn section_of_pieces(
        &mut self,
        kind: SectionKind,
        column: u16,
        item: u32,
        pieces: &[&[u8]],
    ) -> Result<()> {
        let entry = SectionEntry {
            kind,
            column,
            item,
            offset: self.offset,
            len: pieces.iter().map(|p| p.len() as u64).sum(),
            crc: crc32(pieces),
        };
        for piece in pieces {
            self.write(piece)?;
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the directory and footer and fsyncs the file. Returns its size.
    pub fn finish(mut self) -> Result<u64> {
        let mut dir = ByteWriter::with_capacity(4 + self.entries.len() * ENTRY_LEN);
        dir.u32(self.entries.len() as u32);
        for e in &self.entries {
            dir.u8(e.kind as u8);
            dir.u8(0);
            dir.u16(e.column);
            dir.u32(e.item);
            dir.u64(e.offset);
            dir.u64(e.len);
            dir.u32(e.crc);
        }
        let dir_offset = self.offset;
        let dir_bytes = dir.into_inner();
        self.write(&dir_bytes)?;
        let mut footer = ByteWriter::with_capacity(FOOTER_LEN);
        footer.u64(dir_offset);
        footer.u64(dir_bytes.len() as u64);
        footer.u32(crc32(&[&dir_bytes]));
        footer.u32(PART_VERSION);
        footer.bytes(&PART_FOOTER_MAGIC);
        self.write(footer.as_slice())?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| StorageError::io(&self.path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| StorageError::io(&self.path, e))?;
        Ok(self.offset)
    }
}

/// A verified, memory-mapped part file.
#[derive(Debug)]
pub struct PartReader {
    path: PathBuf,
    map: Mmap,
    header: PartHeader,
    entries: Vec<SectionEntry>,
    index: HashMap<(SectionKind, u16, u32), usize>,
}

impl PartReader {
    /// Maps `path` and verifies every checksum in it.
    pub fn open(path: &Path) -> Result<Self> {
        let file = fs::open_read(path)?;
        // SAFETY: part files are immutable once written (see the module doc) and
        // the database directory is locked against other writers, so the mapped
        // bytes do not change while mapped. Every read below is bounds-checked.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| StorageError::io(path, e))?;
        let (header, entries) = verify(path, &map)?;
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.kind, e.column, e.item), i))
            .collect();
        Ok(PartReader {
            path: path.to_path_buf(),
            map,
            header,
            entries,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &PartHeader {
        &self.header
    }
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }
    pub fn entries(&self) -> &[SectionEntry] {
        &self.entries
    }
    /// The whole mapped file.
    pub fn data(&self) -> &[u8] {
        &self.map
    }

    /// The bytes of a section and their offset in the file, if present.
    pub fn section(&self, kind: SectionKind, column: u16, item: u32) -> Option<(&[u8], u64)> {
        let entry = self.entries[*self.index.get(&(kind, column, item))?];
        let start = entry.offset as usize;
        Some((&self.map[start..start + entry.len as usize], entry.offset))
    }

    /// A section that must be present; its absence is corruption.
    pub fn required(&self, kind: SectionKind, column: u16, item: u32) -> Result<ByteReader<'_>> {
        match self.section(kind, column, item) {
            Some((bytes, offset)) => Ok(ByteReader::new(bytes, offset)),
            None => Err(StorageError::corrupted(
                &self.path,
                self.map.len() as u64,
                format!("section {kind:?} of column {column} (item {item}) is missing"),
            )),
        }
    }
}

fn verify(path: &Path, bytes: &[u8]) -> Result<(PartHeader, Vec<SectionEntry>)> {
    let bad = |offset: u64, reason: String| StorageError::corrupted(path, offset, reason);
    if bytes.len() < HEADER_LEN + FOOTER_LEN {
        return Err(bad(
            0,
            format!("file of {} bytes is too short to be a part", bytes.len()),
        ));
    }
    if bytes[..8] != PART_MAGIC {
        return Err(bad(0, "not a part file (bad magic number)".into()));
    }
    let footer_at = bytes.len() - FOOTER_LEN;
    let mut f = ByteReader::new(&bytes[footer_at..], footer_at as u64);
    let dir_offset = f.u64("directory offset").map_err(|e| e.in_file(path))?;
    let dir_len = f.u64("directory length").map_err(|e| e.in_file(path))?;
    let dir_crc = f.u32("directory checksum").map_err(|e| e.in_file(path))?;
    let footer_version = f.u32("footer version").map_err(|e| e.in_file(path))?;
    if bytes[bytes.len() - 8..] != PART_FOOTER_MAGIC {
        return Err(bad(
            bytes.len() as u64 - 8,
            "footer magic missing: the file is truncated or damaged".into(),
        ));
    }
    let header_crc = u32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]);
    if crc32(&[&bytes[..32]]) != header_crc {
        return Err(bad(32, "header checksum mismatch".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != PART_VERSION || footer_version != PART_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: if version != PART_VERSION {
                version
            } else {
                footer_version
            },
            supported: PART_VERSION,
        });
    }
    let mut h = ByteReader::new(&bytes[12..32], 12);
    let header = PartHeader {
        table_id: h.u32("table id").map_err(|e| e.in_file(path))?,
        shard: h.u32("shard").map_err(|e| e.in_file(path))?,
        row_len: h.u32("row count").map_err(|e| e.in_file(path))?,
        generation: h.u64("generation").map_err(|e| e.in_file(path))?,
    };
    if dir_offset < HEADER_LEN as u64
        || dir_offset
            .checked_add(dir_len)
            .is_none_or(|end| end != footer_at as u64)
    {
        return Err(bad(
            footer_at as u64,
            format!("directory at {dir_offset}+{dir_len} does not end at the footer"),
        ));
    }
    let dir = &bytes[dir_offset as usize..footer_at];
    if crc32(&[dir]) != dir_crc {
        return Err(bad(
            dir_offset,
            "section directory checksum mismatch".into(),
        ));
    }
    let mut r = ByteReader::new(dir, dir_offset);
    let n = r
        .count(ENTRY_LEN, "section count")
        .map_err(|e| e.in_file(path))?;
    let mut entries = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    for _ in 0..n {
        let at = r.offset();
        let code = r.u8("section kind").map_err(|e| e.in_file(path))?;
        let kind = SectionKind::from_code(code)
            .ok_or_else(|| bad(at, format!("unknown section kind {code}")))?;
        let _ = r.u8("reserved").map_err(|e| e.in_file(path))?;
        let entry = SectionEntry {
            kind,
            column: r.u16("section column").map_err(|e| e.in_file(path))?,
            item: r.u32("section item").map_err(|e| e.in_file(path))?,
            offset: r.u64("section offset").map_err(|e| e.in_file(path))?,
            len: r.u64("section length").map_err(|e| e.in_file(path))?,
            crc: r.u32("section checksum").map_err(|e| e.in_file(path))?,
        };
        let in_bounds = entry.offset >= HEADER_LEN as u64
            && entry
                .offset
                .checked_add(entry.len)
                .is_some_and(|end| end <= dir_offset);
        if !in_bounds {
            return Err(bad(
                at,
                format!(
                    "section {:?} at {}+{} lies outside the data area",
                    entry.kind, entry.offset, entry.len
                ),
            ));
        }
        if !seen.insert((entry.kind, entry.column, entry.item)) {
            return Err(bad(at, format!("section {:?} listed twice", entry.kind)));
        }
        let data = &bytes[entry.offset as usize..(entry.offset + entry.len) as usize];
        if crc32(&[data]) != entry.crc {
            return Err(bad(
                entry.offset,
                format!(
                    "checksum mismatch in section {:?} of column {} (item {})",
                    entry.kind, entry.column, entry.item
                ),
            ));
        }
        entries.push(entry);
    }
    Ok((header, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> PathBuf {
        let path = dir.join("p.part");
        let header = PartHeader {
            table_id: 3,
            shard: 1,
            row_len: 10,
            generation: 9,
        };
        let mut w = PartWriter::create(&path, header).unwrap();
        w.section(SectionKind::Live, 0, 0, b"live bytes").unwrap();
        w.section(SectionKind::Block, 2, 7, b"block").unwrap();
        w.finish().unwrap();
        path
    }

    #[test]
    fn sections_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let part = PartReader::open(&sample(dir.path())).unwrap();
        assert_eq!(part.header().generation, 9);
        assert_eq!(
            part.section(SectionKind::Live, 0, 0).unwrap().0,
            b"live bytes"
        );
        assert_eq!(part.section(SectionKind::Block, 2, 7).unwrap().0, b"block");
        assert!(part.section(SectionKind::Block, 2, 8).is_none());
        assert!(part.required(SectionKind::Keys, 0, 0).is_err());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let err = PartReader::open(&path).unwrap_err();
            assert!(err.is_corruption(), "flip at {i}: {err}");
        }
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(
                PartReader::open(&path).unwrap_err().is_corruption(),
                "cut {cut}"
            );
        }
    }
}
