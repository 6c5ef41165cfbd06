//! Column blocks: the stored values of up to [`BLOCK_ROWS`] consecutive rows
//! of one column in one shard, as fixed-width little-endian arrays, zstd
//! compressed (layout in docs/storage.md, "Column blocks").
//!
//! Invariants: a decoded block has exactly the row count its position
//! implies; a stored length that disagrees with the type and row count is
//! corruption; decompression never allocates more than the bytes actually
//! produced (a forged length cannot make it reserve gigabytes).

use super::codec::{ByteReader, ByteWriter};
use super::error::DecodeError;
use super::schema::ColumnType;
use std::io::Read;

/// Rows per block: a shard of 2^20 rows has 16 blocks per column.
pub const BLOCK_ROWS: u32 = 1 << 16;
/// Value id of a NULL TEXT cell, and count of a NULL SET cell.
pub const NULL_ID: u32 = u32::MAX;
const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
/// zstd level used for blocks: fast to write at checkpoint, still compact.
const ZSTD_LEVEL: i32 = 1;
/// Largest decoded SET block accepted.
const MAX_SET_BLOCK_BYTES: usize = 1 << 30;

/// The values of one block, by column type.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockValues {
    /// Value id per row, [`NULL_ID`] for NULL.
    Text(Vec<u32>),
    /// Per row a count ([`NULL_ID`] for NULL) and the start of its ids in `ids`.
    Set {
        counts: Vec<u32>,
        starts: Vec<u32>,
        ids: Vec<u32>,
    },
    /// Value per row (NULL rows hold 0; the column's existence bitmap tells).
    Int(Vec<i64>),
    /// Value per row (NULL rows hold 0.0).
    Float(Vec<f64>),
    /// 0 = false, 1 = true, 2 = NULL.
    Bool(Vec<u8>),
}

impl BlockValues {
    pub fn rows(&self) -> usize {
        match self {
            BlockValues::Text(v) => v.len(),
            BlockValues::Set { counts, .. } => counts.len(),
            BlockValues::Int(v) => v.len(),
            BlockValues::Float(v) => v.len(),
            BlockValues::Bool(v) => v.len(),
        }
    }

    /// The ids of the set at `i`, or `None` when it is NULL.
    pub fn set_at(&self, i: usize) -> Option<&[u32]> {
        match self {
            BlockValues::Set {
                counts,
                starts,
                ids,
            } => {
                let count = *counts.get(i)?;
                if count == NULL_ID {
                    return None;
                }
                let start = starts[i] as usize;
                ids.get(start..start + count as usize)
            }
            _ => None,
        }
    }
}

/// Builds a SET block row by row.
#[derive(Debug, Default)]
pub struct SetBlockBuilder {
    counts: Vec<u32>,
    starts: Vec<u32>,
    ids: Vec<u32>,
}

impl SetBlockBuilder {
    pub fn push(&mut self, set: Option<&[u32]>) {
        self.starts.push(self.ids.len() as u32);
        match set {
            None => self.counts.push(NULL_ID),
            Some(ids) => {
                self.counts.push(ids.len() as u32);
                self.ids.extend_from_slice(ids);
            }
        }
    }
    pub fn finish(self) -> BlockValues {
        BlockValues::Set {
            counts: self.counts,
            starts: self.starts,
            ids: self.ids,
        }
    }
}

/// Encodes a block, compressed unless `compress` is false.
/// Whether an encoded block (as [`encode_block`] wrote it) is compressed.
pub fn block_is_compressed(encoded: &[u8]) -> bool {
    encoded.first() == Some(&CODEC_ZSTD)
}

pub fn encode_block(values: &BlockValues, compress: bool) -> Vec<u8> {
    let mut raw = ByteWriter::new();
    match values {
        BlockValues::Text(ids) => ids.iter().for_each(|v| raw.u32(*v)),
        BlockValues::Set { counts, ids, .. } => {
            counts.iter().for_each(|v| raw.u32(*v));
            ids.iter().for_each(|v| raw.u32(*v));
        }
        BlockValues::Int(vs) => vs.iter().for_each(|v| raw.i64(*v)),
        BlockValues::Float(vs) => vs.iter().for_each(|v| raw.f64(*v)),
        BlockValues::Bool(vs) => raw.bytes(vs),
    }
    let raw = raw.into_inner();
    let mut out = ByteWriter::with_capacity(raw.len() / 2 + 8);
    let compressed = if compress {
        zstd::bulk::compress(&raw, ZSTD_LEVEL).ok()
    } else {
        None
    };
    match compressed {
        Some(data) => {
            out.u8(CODEC_ZSTD);
            out.u32(raw.len() as u32);
            out.bytes(&data);
        }
        None => {
            out.u8(CODEC_RAW);
            out.u32(raw.len() as u32);
            out.bytes(&raw);
        }
    }
    out.into_inner()
}

/// Decodes a block of `rows` rows of a `ty` column; `base` is its file offset.
pub fn decode_block(
    bytes: &[u8],
    base: u64,
    ty: ColumnType,
    rows: usize,
) -> Result<BlockValues, DecodeError> {
    let mut r = ByteReader::new(bytes, base);
    let codec = r.u8("block codec")?;
    let raw_len = r.u32("block length")? as usize;
    let width = match ty {
        ColumnType::Text => Some(4),
        ColumnType::TextSet => None,
        ColumnType::Int | ColumnType::Timestamp | ColumnType::Float => Some(8),
        ColumnType::Bool => Some(1),
    };
    let ok_len = match width {
        Some(w) => raw_len == rows * w,
        None => raw_len >= rows * 4 && raw_len <= MAX_SET_BLOCK_BYTES && raw_len.is_multiple_of(4),
    };
    if !ok_len {
        return Err(DecodeError::new(
            base + 1,
            format!("block length {raw_len} does not fit {rows} rows of {ty}"),
        ));
    }
    let data_at = r.offset();
    let data = r.take(r.remaining(), "block data")?;
    let raw: Vec<u8> = match codec {
        CODEC_RAW => data.to_vec(),
        CODEC_ZSTD => {
            let mut out = Vec::with_capacity(raw_len.min(1 << 24));
            let decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| DecodeError::new(data_at, format!("zstd: {e}")))?;
            decoder
                .take(raw_len as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::new(data_at, format!("zstd: {e}")))?;
            out
        }
        other => {
            return Err(DecodeError::new(
                base,
                format!("unknown block codec {other}"),
            ))
        }
    };
    if raw.len() != raw_len {
        return Err(DecodeError::new(
            data_at,
            format!(
                "block decodes to {} bytes, header says {raw_len}",
                raw.len()
            ),
        ));
    }
    let mut r = ByteReader::new(&raw, data_at);
    Ok(match ty {
        ColumnType::Text => BlockValues::Text(read_n(&mut r, rows, |r| r.u32("text id"))?),
        ColumnType::Int | ColumnType::Timestamp => {
            BlockValues::Int(read_n(&mut r, rows, |r| r.i64("int value"))?)
        }
        ColumnType::Float => BlockValues::Float(read_n(&mut r, rows, |r| r.f64("float value"))?),
        ColumnType::Bool => {
            let vs = r.take(rows, "bool values")?.to_vec();
            if let Some(i) = vs.iter().position(|v| *v > 2) {
                return Err(DecodeError::new(
                    data_at + i as u64,
                    "bool value is not 0, 1 or 2",
                ));
            }
            BlockValues::Bool(vs)
        }
        ColumnType::TextSet => {
            let counts = read_n(&mut r, rows, |r| r.u32("set count"))?;
            let mut starts = Vec::with_capacity(rows);
            let mut total = 0usize;
            for c in &counts {
                starts.push(total as u32);
                if *c != NULL_ID {
                    total += *c as usize;
                }
            }
            if total * 4 != r.remaining() {
                return Err(r.error(format!(
                    "set counts add up to {total} ids, block holds {}",
                    r.remaining() / 4
                )));
            }
            let ids = read_n(&mut r, total, |r| r.u32("set id"))?;
            BlockValues::Set {
                counts,
                starts,
                ids,
            }
        }
    })
}

fn read_n<T>(
    r: &mut ByteReader<'_>,
    n: usize,
    mut f: impl FnMut(&mut ByteReader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(f(r)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<(ColumnType, BlockValues)> {
        let mut set = SetBlockBuilder::default();
        set.push(Some(&[1, 2, 3]));
        set.push(None);
        set.push(Some(&[]));
        set.push(Some(&[9]));
        vec![
            (ColumnType::Text, BlockValues::Text(vec![0, NULL_ID, 5, 5])),
            (ColumnType::TextSet, set.finish()),
            (
                ColumnType::Int,
                BlockValues::Int(vec![i64::MIN, 0, 42, i64::MAX]),
            ),
            (
                ColumnType::Float,
                BlockValues::Float(vec![1.5, -0.0, f64::MAX, 0.0]),
            ),
            (ColumnType::Bool, BlockValues::Bool(vec![0, 1, 2, 1])),
        ]
    }

    #[test]
    fn blocks_round_trip_compressed_and_raw() {
        for (ty, values) in samples() {
            for compress in [true, false] {
                let bytes = encode_block(&values, compress);
                let back = decode_block(&bytes, 0, ty, 4).unwrap();
                assert_eq!(back, values, "{ty} compress={compress}");
            }
        }
    }

    #[test]
    fn set_access_distinguishes_null_and_empty() {
        let (_, set) = samples().remove(1);
        assert_eq!(set.set_at(0), Some(&[1, 2, 3][..]));
        assert_eq!(set.set_at(1), None);
        assert_eq!(set.set_at(2), Some(&[][..]));
        assert_eq!(set.set_at(3), Some(&[9][..]));
    }

    #[test]
    fn damaged_blocks_fail_cleanly() {
        for (ty, values) in samples() {
            for compress in [true, false] {
                let good = encode_block(&values, compress);
                for i in 0..good.len() {
                    let mut bad = good.clone();
                    bad[i] ^= 0x5a;
                    let _ = decode_block(&bad, 0, ty, 4);
                }
                for cut in 0..good.len() {
                    let _ = decode_block(&good[..cut], 0, ty, 4);
                }
                assert!(
                    decode_block(&good, 0, ty, 5).is_err(),
                    "row count is checked"
                );
            }
        }
    }

    #[test]
    fn a_forged_length_does_not_allocate_it() {
        let mut bytes = vec![CODEC_ZSTD];
        bytes.extend_from_slice(&(MAX_SET_BLOCK_BYTES as u32).to_le_bytes());
        bytes.extend_from_slice(&zstd::bulk::compress(&[0u8; 16], 1).unwrap());
        assert!(decode_block(&bytes, 0, ColumnType::TextSet, 4).is_err());
    }
}
