//! Value dictionary of one TEXT or SET<TEXT> column in one shard: maps each
//! distinct string to a dense `u32` value id and back.
//!
//! Invariants: ids are stable for the life of the shard's in-memory state;
//! a slot may be a hole (`None`) when the value was dropped at a checkpoint
//! because no row held it any more (so no byte of it stays on disk); `index`
//! maps exactly the non-hole slots. Encoding: docs/storage.md, "Dictionary".

use super::codec::{ByteReader, ByteWriter};
use super::error::DecodeError;
use super::hash::FastMap;

/// Marks a hole in the encoded dictionary.
const HOLE: u32 = u32::MAX;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dictionary {
    values: Vec<Option<Box<str>>>,
    index: FastMap<Box<str>, u32>,
}

impl Dictionary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Id of `value`, if present.
    pub fn get(&self, value: &str) -> Option<u32> {
        self.index.get(value).copied()
    }

    /// Id of `value`, adding it if absent.
    pub fn get_or_insert(&mut self, value: &str) -> u32 {
        if let Some(id) = self.index.get(value) {
            return *id;
        }
        let id = self.values.len() as u32;
        let boxed: Box<str> = value.into();
        self.values.push(Some(boxed.clone()));
        self.index.insert(boxed, id);
        id
    }

    /// The string of `id`, if the slot is not a hole.
    pub fn value(&self, id: u32) -> Option<&str> {
        self.values.get(id as usize).and_then(|v| v.as_deref())
    }

    /// Number of slots (holes included): every id is below this.
    pub fn slots(&self) -> usize {
        self.values.len()
    }

    /// Iterates `(id, value)` over the non-hole slots.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_deref().map(|v| (i as u32, v)))
    }

    /// Encodes the dictionary, writing holes for the ids `keep` rejects.
    pub fn encode(&self, w: &mut ByteWriter, keep: impl Fn(u32) -> bool) {
        w.u32(self.values.len() as u32);
        for (i, v) in self.values.iter().enumerate() {
            match v {
                Some(v) if keep(i as u32) => w.str(v),
                _ => w.u32(HOLE),
            }
        }
    }

    pub fn decode(r: &mut ByteReader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(4, "dictionary size")?;
        let mut dict = Dictionary {
            values: Vec::with_capacity(n),
            index: FastMap::with_capacity_and_hasher(n, Default::default()),
        };
        for i in 0..n {
            let at = r.offset();
            let len = r.u32("dictionary entry length")?;
            if len == HOLE {
                dict.values.push(None);
                continue;
            }
            let bytes = r.take(len as usize, "dictionary entry")?;
            let s = std::str::from_utf8(bytes)
                .map_err(|_| DecodeError::new(at, "dictionary entry is not valid UTF-8"))?;
            let boxed: Box<str> = s.into();
            if dict.index.insert(boxed.clone(), i as u32).is_some() {
                return Err(DecodeError::new(
                    at,
                    format!("dictionary holds {s:?} twice"),
                ));
            }
            dict.values.push(Some(boxed));
        }
        Ok(dict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_stable() {
        let mut d = Dictionary::new();
        assert_eq!(d.get_or_insert("NL"), 0);
        assert_eq!(d.get_or_insert("US"), 1);
        assert_eq!(d.get_or_insert("NL"), 0);
        assert_eq!(d.get("US"), Some(1));
        assert_eq!(d.get("BE"), None);
        assert_eq!(d.value(1), Some("US"));
    }

    #[test]
    fn holes_survive_encoding_and_keep_ids() {
        let mut d = Dictionary::new();
        for v in ["a", "secret", "c"] {
            d.get_or_insert(v);
        }
        let mut w = ByteWriter::new();
        d.encode(&mut w, |id| id != 1);
        let bytes = w.into_inner();
        assert!(!bytes.windows(6).any(|x| x == b"secret"));
        let back = Dictionary::decode(&mut ByteReader::new(&bytes, 0)).unwrap();
        assert_eq!(back.value(0), Some("a"));
        assert_eq!(back.value(1), None);
        assert_eq!(back.get("c"), Some(2));
        assert_eq!(back.slots(), 3);
    }

    #[test]
    fn duplicate_entries_are_corruption() {
        let mut w = ByteWriter::new();
        w.u32(2);
        w.str("x");
        w.str("x");
        let bytes = w.into_inner();
        assert!(Dictionary::decode(&mut ByteReader::new(&bytes, 0)).is_err());
    }
}
