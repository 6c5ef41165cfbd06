//! The write-ahead log: segment files of length-prefixed, checksummed,
//! LSN-numbered records (layout in docs/storage.md, "WAL").
//!
//! A segment is `wal/<first LSN, 20 digits>.wal`: a 28-byte header (magic,
//! version, flags, first LSN, CRC32 of the header), then records
//! `[payload length u32][CRC32 u32][LSN u64][payload]`, the CRC covering the
//! LSN bytes and the payload. LSNs are consecutive across all segments.
//!
//! Recovery policy (tolerate a torn tail): a record that is cut short or fails
//! its checksum *and has no valid record after it* is a torn write from a
//! crash — the scan stops there and reports it so the caller can truncate.
//! Damage followed by any valid record, damage in a segment that is not the
//! last, or an out-of-sequence LSN is corruption and refuses to open.

use super::codec::{crc32, ByteReader, ByteWriter};
use super::error::{Result, StorageError};
use super::fs;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const WAL_MAGIC: [u8; 8] = *b"CHRTWAL\0";
pub const WAL_VERSION: u32 = 1;
/// Bytes of the segment header.
pub const HEADER_LEN: usize = 28;
/// Bytes of a record header (length, CRC, LSN).
pub const RECORD_HEADER_LEN: usize = 16;
/// The largest record payload accepted (a larger batch must be split).
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// File name of the segment whose first record has `first_lsn`.
pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

/// The first LSN encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, as `(first_lsn, path)` sorted by LSN.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out: Vec<(u64, PathBuf)> = fs::list(dir)?
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|lsn| (lsn, dir.join(name))))
        .collect();
    out.sort();
    Ok(out)
}

fn encode_header(first_lsn: u64) -> Vec<u8> {
    let mut w = ByteWriter::with_capacity(HEADER_LEN);
    w.bytes(&WAL_MAGIC);
    w.u32(WAL_VERSION);
    w.u32(0);
    w.u64(first_lsn);
    let crc = crc32(&[w.as_slice()]);
    w.u32(crc);
    w.into_inner()
}

/// Appends records to one segment. Records are buffered by [`append`] and
/// reach the file with [`flush`]; they are durable after [`sync`].
///
/// [`append`]: WalWriter::append
/// [`flush`]: WalWriter::flush
/// [`sync`]: WalWriter::sync
#[derive(Debug)]
pub struct WalWriter {
    path: PathBuf,
    file: File,
    first_lsn: u64,
    buffer: Vec<u8>,
    len: u64,
}

impl WalWriter {
    /// Creates a new segment starting at `first_lsn`, its header durable.
    pub fn create(dir: &Path, first_lsn: u64) -> Result<Self> {
        let path = dir.join(segment_name(first_lsn));
        let mut file = fs::create_new(&path)?;
        let header = encode_header(first_lsn);
        file.write_all(&header)
            .map_err(|e| StorageError::io(&path, e))?;
        file.sync_all().map_err(|e| StorageError::io(&path, e))?;
        fs::sync_dir(dir)?;
        Ok(WalWriter {
            path,
            file,
            first_lsn,
            buffer: Vec::new(),
            len: HEADER_LEN as u64,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn first_lsn(&self) -> u64 {
        self.first_lsn
    }
    /// Bytes in the segment, buffered records included.
    pub fn len(&self) -> u64 {
        self.len + self.buffer.len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN as u64
    }

    /// Buffers one record.
    pub fn append(&mut self, lsn: u64, payload: &[u8]) {
        let lsn_bytes = lsn.to_le_bytes();
        let crc = crc32(&[&lsn_bytes, payload]);
        self.buffer
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buffer.extend_from_slice(&crc.to_le_bytes());
        self.buffer.extend_from_slice(&lsn_bytes);
        self.buffer.extend_from_slice(payload);
    }

    /// Writes the buffered records to the file (not yet durable).
    pub fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = match super::faults::check(&self.path, super::faults::Op::Write) {
            None => self.file.write_all(&self.buffer),
            Some(fault) => {
                if fault == super::faults::Fault::ShortWrite {
                    let half = self.buffer.len() / 2;
                    let _ = self.file.write_all(&self.buffer[..half]);
                }
                Err(super::faults::error(fault))
            }
        };
        // Whatever happened, the buffer is either in the file or must not be retried
        // blindly: a partial write leaves the file in an unknown state.
        let written = self.buffer.len() as u64;
        self.buffer.clear();
        result.map_err(|e| StorageError::io(&self.path, e))?;
        self.len += written;
        Ok(())
    }

    /// Makes every flushed record durable (fdatasync).
    pub fn sync(&mut self) -> Result<()> {
        if let Some(fault) = super::faults::check(&self.path, super::faults::Op::Sync) {
            return Err(StorageError::io(&self.path, super::faults::error(fault)));
        }
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.path, e))
    }
}

/// Where and why a scan stopped early at a torn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub offset: u64,
    pub reason: String,
}

/// What a scan of one segment found.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    pub path: PathBuf,
    pub first_lsn: u64,
    /// LSN of the last whole record, if any.
    pub last_lsn: Option<u64>,
    pub records: u64,
    /// Bytes up to the end of the last whole record.
    pub valid_len: u64,
    pub file_len: u64,
    /// Set when the segment ends in a torn write (only possible for the last segment).
    pub torn: Option<TornTail>,
}

/// Reads every whole record of a segment in order, calling
/// `on_record(lsn, payload_offset, payload)`.
///
/// `is_last` says whether this is the newest segment: only there may a torn
/// tail be tolerated. The segment's first record must carry `first_lsn` from
/// the header, and LSNs must be consecutive.
pub fn scan_segment<E: From<StorageError>>(
    path: &Path,
    is_last: bool,
    mut on_record: impl FnMut(u64, u64, &[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<SegmentScan, E> {
    let bytes = fs::read(path).map_err(E::from)?;
    let file_len = bytes.len() as u64;
    let named_lsn = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_name);
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
        first_lsn: named_lsn.unwrap_or(0),
        last_lsn: None,
        records: 0,
        valid_len: 0,
        file_len,
        torn: None,
    };
    // Header.
    let header_problem = if bytes.len() < HEADER_LEN {
        Some(format!(
            "segment header needs {HEADER_LEN} bytes, file has {}",
            bytes.len()
        ))
    } else {
        let stored = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        if bytes[..8] != WAL_MAGIC {
            Some("not a WAL segment (bad magic number)".to_string())
        } else if crc32(&[&bytes[..24]]) != stored {
            Some("segment header checksum mismatch".to_string())
        } else {
            None
        }
    };
    if let Some(reason) = header_problem {
        if is_last && bytes.len() <= HEADER_LEN {
            // Crash while creating the segment: nothing after the header was ever written.
            scan.torn = Some(TornTail { offset: 0, reason });
            return Ok(scan);
        }
        return Err(StorageError::corrupted(path, 0, reason).into());
    }
    let mut r = ByteReader::new(&bytes[8..HEADER_LEN], 8);
    let version = r.u32("version").map_err(|e| E::from(e.in_file(path)))?;
    if version != WAL_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: WAL_VERSION,
        }
        .into());
    }
    let _flags = r.u32("flags").map_err(|e| E::from(e.in_file(path)))?;
    let first_lsn = r.u64("first LSN").map_err(|e| E::from(e.in_file(path)))?;
    if named_lsn.is_some_and(|n| n != first_lsn) {
        return Err(StorageError::corrupted(
            path,
            16,
            format!("header says first LSN {first_lsn}, file name says otherwise"),
        )
        .into());
    }
    scan.first_lsn = first_lsn;
    scan.valid_len = HEADER_LEN as u64;

    let mut pos = HEADER_LEN;
    let mut expected = first_lsn;
    while pos < bytes.len() {
        let problem = match read_record(&bytes, pos) {
            RecordAt::Whole { lsn, payload, end } => {
                if lsn != expected {
                    return Err(StorageError::corrupted(
                        path,
                        pos as u64 + 8,
                        format!("expected LSN {expected}, found {lsn}"),
                    )
                    .into());
                }
                on_record(lsn, (pos + RECORD_HEADER_LEN) as u64, payload)?;
                scan.records += 1;
                scan.last_lsn = Some(lsn);
                scan.valid_len = end as u64;
                expected += 1;
                pos = end;
                continue;
            }
            RecordAt::Damaged(reason) => reason,
        };
        // Damage at `pos`: a torn tail only if nothing valid follows.
        if let Some(later) = find_valid_record(&bytes, pos + 1, expected) {
            return Err(StorageError::corrupted(
                path,
                pos as u64,
                format!("{problem}; a valid record follows at offset {later}, so this is not a torn tail"),
            )
            .into());
        }
        if !is_last {
            return Err(StorageError::corrupted(
                path,
                pos as u64,
                format!("{problem} in a segment that is not the newest"),
            )
            .into());
        }
        scan.torn = Some(TornTail {
            offset: pos as u64,
            reason: problem,
        });
        break;
    }
    Ok(scan)
}

enum RecordAt<'a> {
    Whole {
        lsn: u64,
        payload: &'a [u8],
        end: usize,
    },
    Damaged(String),
}

fn read_record(bytes: &[u8], pos: usize) -> RecordAt<'_> {
    let left = bytes.len() - pos;
    if left < RECORD_HEADER_LEN {
        return RecordAt::Damaged(format!("record header cut short ({left} bytes)"));
    }
    let h = &bytes[pos..pos + RECORD_HEADER_LEN];
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let lsn_bytes = &h[8..16];
    if len > MAX_RECORD_BYTES || len > left - RECORD_HEADER_LEN {
        return RecordAt::Damaged(format!(
            "record of {len} bytes runs past the end of the file ({} left)",
            left - RECORD_HEADER_LEN
        ));
    }
    let start = pos + RECORD_HEADER_LEN;
    let payload = &bytes[start..start + len];
    if crc32(&[lsn_bytes, payload]) != crc {
        return RecordAt::Damaged("record checksum mismatch".to_string());
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(lsn_bytes);
    RecordAt::Whole {
        lsn: u64::from_le_bytes(lsn),
        payload,
        end: start + len,
    }
}

/// The offset of a whole, checksum-valid record at or after `from` whose LSN
/// is plausibly a successor of the damaged one, if any.
fn find_valid_record(bytes: &[u8], from: usize, expected: u64) -> Option<usize> {
    let mut pos = from;
    while pos + RECORD_HEADER_LEN <= bytes.len() {
        let lsn = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().ok()?);
        if lsn >= expected && lsn - expected < (1 << 32) {
            if let RecordAt::Whole { .. } = read_record(bytes, pos) {
                return Some(pos);
            }
        }
        pos += 1;
    }
    None
}

/// Cuts a segment back to `valid_len` bytes and makes that durable.
pub fn truncate_segment(path: &Path, valid_len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.set_len(valid_len)
        .map_err(|e| StorageError::io(path, e))?;
    file.sync_all().map_err(|e| StorageError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_records(dir: &Path, first: u64, payloads: &[&[u8]]) -> PathBuf {
        let mut w = WalWriter::create(dir, first).unwrap();
        for (i, p) in payloads.iter().enumerate() {
            w.append(first + i as u64, p);
        }
        w.flush().unwrap();
        w.sync().unwrap();
        w.path().to_path_buf()
    }

    type Records = Vec<(u64, Vec<u8>)>;

    fn collect(path: &Path, is_last: bool) -> Result<(Records, SegmentScan)> {
        let mut out = Vec::new();
        let scan = scan_segment(path, is_last, |lsn, _, p| {
            out.push((lsn, p.to_vec()));
            Ok::<(), StorageError>(())
        })?;
        Ok((out, scan))
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_records(dir.path(), 5, &[b"alpha", b"", b"gamma"]);
        let (records, scan) = collect(&path, true).unwrap();
        assert_eq!(
            records,
            vec![(5, b"alpha".to_vec()), (6, vec![]), (7, b"gamma".to_vec())]
        );
        assert_eq!(scan.torn, None);
        assert_eq!(scan.last_lsn, Some(7));
        assert_eq!(list_segments(dir.path()).unwrap()[0].0, 5);
    }

    #[test]
    fn every_cut_of_the_tail_recovers_the_whole_records_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8; 10 + i]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let path = write_records(dir.path(), 1, &refs);
        let full = std::fs::read(&path).unwrap();
        let ends: Vec<usize> = {
            let (_, scan) = collect(&path, true).unwrap();
            assert_eq!(scan.valid_len as usize, full.len());
            let mut ends = vec![HEADER_LEN];
            let mut pos = HEADER_LEN;
            for p in &payloads {
                pos += RECORD_HEADER_LEN + p.len();
                ends.push(pos);
            }
            ends
        };
        for cut in HEADER_LEN..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (records, scan) = collect(&path, true).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(records.len(), whole, "cut at {cut}");
            assert_eq!(scan.valid_len as usize, ends[whole]);
            assert_eq!(scan.torn.is_some(), cut != ends[whole]);
            // Not the last segment: a torn record there is corruption.
            if scan.torn.is_some() {
                assert!(collect(&path, false).is_err());
            }
        }
    }

    #[test]
    fn a_flipped_byte_mid_log_is_corruption_but_in_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_records(dir.path(), 1, &[b"first record", b"second record"]);
        let full = std::fs::read(&path).unwrap();
        let mut damaged = full.clone();
        damaged[HEADER_LEN + RECORD_HEADER_LEN + 2] ^= 0x40;
        std::fs::write(&path, &damaged).unwrap();
        let err = collect(&path, true).unwrap_err();
        assert!(
            matches!(err, StorageError::Corrupted { offset, .. } if offset == HEADER_LEN as u64)
        );
        let mut damaged = full.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x40;
        std::fs::write(&path, &damaged).unwrap();
        let (records, scan) = collect(&path, true).unwrap();
        assert_eq!(records.len(), 1);
        assert!(scan.torn.is_some());
    }

    #[test]
    fn a_damaged_length_field_mid_log_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_records(dir.path(), 1, &[b"aaaa", b"bbbb", b"cccc"]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN + 3] = 0x7f; // length of record 1 becomes huge
        std::fs::write(&path, &bytes).unwrap();
        assert!(collect(&path, true).is_err());
    }

    #[test]
    fn truncate_then_rescan_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_records(dir.path(), 1, &[b"aaaa", b"bbbb"]);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 2]).unwrap();
        let (_, scan) = collect(&path, true).unwrap();
        truncate_segment(&path, scan.valid_len).unwrap();
        let (records, again) = collect(&path, true).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(again.torn, None);
    }

    #[test]
    fn a_bad_header_is_refused_unless_it_is_an_empty_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        std::fs::write(&path, b"CHRTWAL").unwrap();
        let (_, scan) = collect(&path, true).unwrap();
        assert!(scan.torn.is_some());
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        assert!(collect(&path, true).is_err());
    }

    #[test]
    fn segment_names_parse() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.tmp"), None);
    }
}
