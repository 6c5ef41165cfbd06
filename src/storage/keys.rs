//! The key table of a part: the external id of every row of the shard, and an
//! open-addressing hash table from id to local row id, read in place from the
//! memory map (layout in docs/storage.md, "Keys section").
//!
//! Lookup costs one hash, a short linear probe over 8-byte slots, and one key
//! comparison: no key set is loaded into memory at start-up.
//!
//! Invariants (checked by [`KeyTableView::parse`]): the offsets are
//! non-decreasing and end inside the key bytes, on character boundaries of
//! the UTF-8 key bytes; the slot count is a power of two; every occupied slot
//! names a row below `row_len` (the writer only fills slots for rows with a
//! key; a slot naming a keyless row reads as a miss).

use super::codec::ByteReader;
use super::error::DecodeError;
use xxhash_rust::xxh3::xxh3_64;

/// Marks an empty slot.
const EMPTY: u32 = u32::MAX;

/// The 64-bit hash of an external id (xxh3, stable across builds).
pub fn key_hash(key: &str) -> u64 {
    key_hash_bytes(key.as_bytes())
}

/// [`key_hash`] of an id's UTF-8 bytes.
pub fn key_hash_bytes(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// An encoded key table in its four pieces, in file order: the header
/// (row count, slot count), the offsets, the slots and the key bytes.
/// Written as one section without being joined first ([`KeyTableParts::pieces`]):
/// a shard's table is tens of megabytes.
pub struct KeyTableParts {
    header: [u8; 8],
    offsets: Vec<u8>,
    slots: Vec<u8>,
    keys: Vec<u8>,
}

impl KeyTableParts {
    /// The pieces in file order.
    pub fn pieces(&self) -> [&[u8]; 4] {
        [&self.header, &self.offsets, &self.slots, &self.keys]
    }

    /// The table as one byte string.
    pub fn joined(&self) -> Vec<u8> {
        self.pieces().concat()
    }
}

/// Encodes a key table for `row_len` rows; `keys` holds `(local_row, id)`
/// for the live rows in increasing row order.
pub fn encode_keys(row_len: u32, keys: &[(u32, &str)]) -> KeyTableParts {
    let capacity = (keys.len() * 2).next_power_of_two().max(2);
    let mut offsets = Vec::with_capacity((row_len as usize + 1) * 4);
    let mut bytes: Vec<u8> = Vec::with_capacity(keys.iter().map(|(_, k)| k.len()).sum());
    let mut slots = vec![0u8; capacity * 8];
    for slot in slots.chunks_exact_mut(8) {
        slot[4..].copy_from_slice(&EMPTY.to_le_bytes());
    }
    let mut next = 0u32;
    offsets.extend_from_slice(&0u32.to_le_bytes());
    for &(row, key) in keys {
        while next < row {
            offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            next += 1;
        }
        bytes.extend_from_slice(key.as_bytes());
        offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        let hash = key_hash(key);
        let mut i = hash as usize & (capacity - 1);
        while read_u32(&slots, i * 8 + 4) != EMPTY {
            i = (i + 1) & (capacity - 1);
        }
        slots[i * 8..i * 8 + 4].copy_from_slice(&((hash >> 32) as u32).to_le_bytes());
        slots[i * 8 + 4..i * 8 + 8].copy_from_slice(&row.to_le_bytes());
        next = row + 1;
    }
    while next < row_len {
        offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        next += 1;
    }
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&row_len.to_le_bytes());
    header[4..].copy_from_slice(&(capacity as u32).to_le_bytes());
    KeyTableParts {
        header,
        offsets,
        slots,
        keys: bytes,
    }
}

/// A validated view of an encoded key table.
#[derive(Debug, Clone, Copy)]
pub struct KeyTableView {
    row_len: u32,
    capacity: u32,
    offsets_at: usize,
    slots_at: usize,
    keys_at: usize,
}

impl KeyTableView {
    /// Validates `bytes` (a keys section at `base` in its file).
    pub fn parse(bytes: &[u8], base: u64) -> Result<Self, DecodeError> {
        let mut r = ByteReader::new(bytes, base);
        let row_len = r.u32("key table row count")?;
        let at = r.offset();
        let capacity = r.u32("key table capacity")?;
        if !capacity.is_power_of_two() {
            return Err(DecodeError::new(
                at,
                format!("key table capacity {capacity} is not a power of two"),
            ));
        }
        let offsets_at = 8usize;
        let slots_at = offsets_at + (row_len as usize + 1) * 4;
        let keys_at = slots_at + capacity as usize * 8;
        if keys_at > bytes.len() {
            return Err(DecodeError::new(
                base,
                "key table is shorter than its counts say",
            ));
        }
        let view = KeyTableView {
            row_len,
            capacity,
            offsets_at,
            slots_at,
            keys_at,
        };
        let keys = &bytes[keys_at..];
        let text = std::str::from_utf8(keys).map_err(|e| {
            DecodeError::new(
                base + keys_at as u64 + e.valid_up_to() as u64,
                "key bytes are not valid UTF-8",
            )
        })?;
        let mut prev = 0u32;
        for i in 0..=row_len as usize {
            let o = read_u32(bytes, offsets_at + i * 4);
            if o < prev || o as usize > keys.len() || !text.is_char_boundary(o as usize) {
                return Err(DecodeError::new(
                    base + (offsets_at + i * 4) as u64,
                    format!("key offset {o} of row {i} is out of order or out of bounds"),
                ));
            }
            prev = o;
        }
        for i in 0..capacity as usize {
            let row = read_u32(bytes, slots_at + i * 8 + 4);
            // A slot naming a row without a key is caught at lookup (no
            // key to compare: a miss), so opening reads the slots in order
            // and never jumps into the offsets.
            if row != EMPTY && row >= row_len {
                return Err(DecodeError::new(
                    base + (slots_at + i * 8) as u64,
                    format!("hash slot {i} names row {row}, beyond the {row_len} rows"),
                ));
            }
        }
        Ok(view)
    }

    pub fn row_len(&self) -> u32 {
        self.row_len
    }

    /// The id of `row`, if the row had one when the part was written.
    pub fn key_of<'a>(&self, bytes: &'a [u8], row: u32) -> Option<&'a str> {
        // Validated by `parse`: in bounds, on character boundaries of valid UTF-8.
        std::str::from_utf8(self.key_bytes(bytes, row)?).ok()
    }

    /// The bytes of `row`'s id (comparing them needs no UTF-8 check).
    pub fn key_bytes<'a>(&self, bytes: &'a [u8], row: u32) -> Option<&'a [u8]> {
        if row >= self.row_len {
            return None;
        }
        let start = read_u32(bytes, self.offsets_at + row as usize * 4) as usize;
        let end = read_u32(bytes, self.offsets_at + row as usize * 4 + 4) as usize;
        if start >= end {
            return None;
        }
        bytes.get(self.keys_at + start..self.keys_at + end)
    }

    /// The fingerprints (high 32 bits of [`key_hash`]) of every key in the table.
    pub fn fingerprints<'a>(&self, bytes: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        let slots_at = self.slots_at;
        (0..self.capacity as usize).filter_map(move |i| {
            let at = slots_at + i * 8;
            (read_u32(bytes, at + 4) != EMPTY).then(|| read_u32(bytes, at))
        })
    }

    /// The local row holding `key`, if any.
    pub fn find(&self, bytes: &[u8], key: &str, hash: u64) -> Option<u32> {
        let mask = self.capacity as usize - 1;
        let fingerprint = (hash >> 32) as u32;
        let mut i = hash as usize & mask;
        for _ in 0..self.capacity {
            let at = self.slots_at + i * 8;
            let row = read_u32(bytes, at + 4);
            if row == EMPTY {
                return None;
            }
            if read_u32(bytes, at) == fingerprint
                && self.key_bytes(bytes, row) == Some(key.as_bytes())
            {
                return Some(row);
            }
            i = (i + 1) & mask;
        }
        None
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_and_absent_ones_are_not() {
        let keys: Vec<(u32, String)> = (0..5000u32)
            .filter(|r| r % 7 != 3)
            .map(|r| (r, format!("user-{r}")))
            .collect();
        let pairs: Vec<(u32, &str)> = keys.iter().map(|(r, k)| (*r, k.as_str())).collect();
        let bytes = encode_keys(5003, &pairs).joined();
        let view = KeyTableView::parse(&bytes, 0).unwrap();
        assert_eq!(view.row_len(), 5003);
        for (r, k) in &keys {
            assert_eq!(view.find(&bytes, k, key_hash(k)), Some(*r));
            assert_eq!(view.key_of(&bytes, *r), Some(k.as_str()));
        }
        assert_eq!(view.key_of(&bytes, 3), None);
        assert_eq!(view.key_of(&bytes, 5002), None);
        assert_eq!(view.find(&bytes, "user-3", key_hash("user-3")), None);
        assert_eq!(view.find(&bytes, "nobody", key_hash("nobody")), None);
    }

    #[test]
    fn the_pieces_are_the_documented_layout() {
        // Rows 0 and 2 hold ids, row 1 none: header, 4 offsets, 4 slots, bytes.
        let keys = [(0u32, "ab"), (2, "c")];
        let table = encode_keys(3, &keys).joined();
        let mut expected = Vec::new();
        for v in [3u32, 4, 0, 2, 2, 3] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        let mut slots = [(0u32, EMPTY); 4];
        for (row, key) in keys {
            let hash = key_hash(key);
            let mut i = hash as usize & 3;
            while slots[i].1 != EMPTY {
                i = (i + 1) & 3;
            }
            slots[i] = ((hash >> 32) as u32, row);
        }
        for (fingerprint, row) in slots {
            expected.extend_from_slice(&fingerprint.to_le_bytes());
            expected.extend_from_slice(&row.to_le_bytes());
        }
        expected.extend_from_slice(b"abc");
        assert_eq!(table, expected);
    }

    #[test]
    fn empty_table_works() {
        let bytes = encode_keys(0, &[]).joined();
        let view = KeyTableView::parse(&bytes, 0).unwrap();
        assert_eq!(view.find(&bytes, "x", key_hash("x")), None);
    }

    #[test]
    fn damaged_tables_are_refused_not_panicking() {
        let keys = [(0u32, "ä"), (1, "bb")];
        let good = encode_keys(2, &keys).joined();
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                if let Ok(view) = KeyTableView::parse(&bad, 0) {
                    // Whatever survives validation must still be safe to query.
                    let _ = view.find(&bad, "bb", key_hash("bb"));
                    let _ = view.key_of(&bad, 1);
                }
            }
        }
        for cut in 0..good.len() {
            let _ = KeyTableView::parse(&good[..cut], 0);
        }
    }
}
