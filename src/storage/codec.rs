//! Little-endian byte encoding shared by every on-disk format (WAL records,
//! part files, the manifest).
//!
//! Invariants: all integers are little-endian regardless of the host; every
//! read is bounds-checked and fails with a [`DecodeError`] carrying the
//! absolute file offset, never a panic; lengths read from disk are checked
//! against the bytes actually present before anything is allocated for them.

use super::error::DecodeError;
use roaring::RoaringBitmap;

/// Appends little-endian values to a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct ByteWriter {
    buf: Vec<u8>,
}

impl ByteWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        ByteWriter {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A `u32` length followed by the UTF-8 bytes.
    pub fn str(&mut self, v: &str) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v.as_bytes());
    }
    /// A `u32` length followed by the portable roaring serialization.
    pub fn bitmap(&mut self, bitmap: &RoaringBitmap) {
        self.u32(bitmap.serialized_size() as u32);
        // Writing into a Vec cannot fail.
        let _ = bitmap.serialize_into(&mut self.buf);
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian values from a byte slice that sits at `base` in its file.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> ByteReader<'a> {
    /// A reader over `buf`, which starts at byte `base` of its file (used for error offsets).
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        ByteReader { buf, pos: 0, base }
    }

    /// Absolute file offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(self.offset(), reason)
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "{what}: needs {n} bytes, only {} left",
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: &str) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array(what)?)))
    }

    /// A count of items that each take at least `min_item_bytes`; refused if
    /// the buffer could not possibly hold that many (guards allocations).
    pub fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize, DecodeError> {
        let at = self.offset();
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::new(
                at,
                format!(
                    "{what}: count {n} exceeds the bytes left ({})",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    pub fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let len = self.u32(what)? as usize;
        let at = self.offset();
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::new(at, format!("{what}: not valid UTF-8")))
    }

    pub fn bitmap(&mut self, what: &str) -> Result<RoaringBitmap, DecodeError> {
        let len = self.u32(what)? as usize;
        let at = self.offset();
        let bytes = self.take(len, what)?;
        RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| DecodeError::new(at, format!("{what}: bad bitmap: {e}")))
    }
}

/// CRC32 (IEEE, as crc32fast computes it) of several slices in order.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let mut w = ByteWriter::new();
        w.u8(7);
        w.u16(65000);
        w.u32(1 << 30);
        w.u64(u64::MAX - 3);
        w.i64(-42);
        w.f64(2.5);
        w.str("héllo");
        let bitmap: RoaringBitmap = [1u32, 5, 1 << 20].into_iter().collect();
        w.bitmap(&bitmap);
        let bytes = w.into_inner();
        let mut r = ByteReader::new(&bytes, 100);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u16("b").unwrap(), 65000);
        assert_eq!(r.u32("c").unwrap(), 1 << 30);
        assert_eq!(r.u64("d").unwrap(), u64::MAX - 3);
        assert_eq!(r.i64("e").unwrap(), -42);
        assert_eq!(r.f64("f").unwrap(), 2.5);
        assert_eq!(r.str("g").unwrap(), "héllo");
        assert_eq!(r.bitmap("h").unwrap(), bitmap);
        assert!(r.is_at_end());
    }

    #[test]
    fn truncation_is_an_error_with_offset() {
        let mut w = ByteWriter::new();
        w.str("abcdef");
        let bytes = w.into_inner();
        for cut in 0..bytes.len() {
            let mut r = ByteReader::new(&bytes[..cut], 10);
            let err = r.str("name").unwrap_err();
            assert!(err.offset >= 10, "offset is absolute");
        }
    }

    #[test]
    fn huge_count_is_refused_before_allocating() {
        let mut w = ByteWriter::new();
        w.u32(u32::MAX);
        let bytes = w.into_inner();
        let mut r = ByteReader::new(&bytes, 0);
        assert!(r.count(4, "items").is_err());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let bytes = [2u8, 0, 0, 0, 0xff, 0xfe];
        assert!(ByteReader::new(&bytes, 0).str("s").is_err());
    }
}
