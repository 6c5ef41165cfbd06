//! `--csv FILE`: the audience read from a CSV file in gen_profiles.py's
//! format instead of generated, as blocks of up to [`BLOCK`] rows.
//!
//! The format is gen_profiles.py's exactly: the header
//! `id,country,gender,age,interests,last_seen,ltv,consent`, then one profile
//! per line with no quoting; `id` is `u<row>` with `row` the 0-based line
//! number after the header (the bench's Q7 check relies on it); country one
//! of the 50 codes; gender `f`/`m`/`u`; interests `|`-separated distinct tags
//! `i0001`..`i1000` (empty for none); ltv with exactly two decimals; consent
//! `true`/`false`. Anything else is an error naming the line.
//!
//! Invariant: the blocks partition the file's rows in order; every row of a
//! block satisfies the [`Block`] invariants (tags sorted and distinct).

use super::audience::{tag_index, Block, BLOCK, COUNTRIES, CSV_HEADER, GENDERS, MAX_INTERESTS};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why the CSV could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: the first line is not gen_profiles.py's header `{CSV_HEADER}`")]
    Header(PathBuf),
    #[error("{path}:{line}: {reason}")]
    Row {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// Counts the profiles of the file (its lines after the header).
pub fn count_rows(path: &Path) -> Result<u64, CsvError> {
    let io = |e| CsvError::Io(path.to_path_buf(), e);
    let mut file = File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Ok(lines.saturating_sub(1))
}

/// Reads the file block by block.
pub struct CsvBlocks {
    path: PathBuf,
    reader: BufReader<File>,
    line: String,
    /// Lines read so far (the header is line 1).
    line_no: u64,
    done: bool,
}

impl CsvBlocks {
    /// Opens the file and checks its header.
    pub fn open(path: &Path) -> Result<CsvBlocks, CsvError> {
        let io = |e| CsvError::Io(path.to_path_buf(), e);
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let mut header = String::new();
        reader.read_line(&mut header).map_err(io)?;
        if header.trim_end_matches(['\n', '\r']) != CSV_HEADER {
            return Err(CsvError::Header(path.to_path_buf()));
        }
        Ok(CsvBlocks {
            path: path.to_path_buf(),
            reader,
            line: String::new(),
            line_no: 1,
            done: false,
        })
    }

    fn read_block(&mut self) -> Result<Option<Block>, CsvError> {
        let row0 = self.line_no - 1;
        let mut block = Block {
            row0,
            tag_off: vec![0],
            ..Block::default()
        };
        while block.len() < BLOCK {
            self.line.clear();
            let n = self
                .reader
                .read_line(&mut self.line)
                .map_err(|e| CsvError::Io(self.path.clone(), e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line_no += 1;
            let row = self.line_no - 2;
            let text = self.line.trim_end_matches(['\n', '\r']);
            parse_row(text, row, &mut block).map_err(|reason| CsvError::Row {
                path: self.path.clone(),
                line: self.line_no,
                reason,
            })?;
        }
        Ok((!block.is_empty()).then_some(block))
    }
}

impl Iterator for CsvBlocks {
    type Item = Result<Block, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_block() {
            Ok(Some(block)) => Some(Ok(block)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Appends one CSV line (row number `row`) to the block.
fn parse_row(text: &str, row: u64, block: &mut Block) -> Result<(), String> {
    let fields: Vec<&str> = text.split(',').collect();
    let [id, country, gender, age, interests, last_seen, ltv, consent] = fields[..] else {
        return Err(format!("expected 8 fields, found {}", fields.len()));
    };
    if id.strip_prefix('u') != Some(row.to_string().as_str()) {
        return Err(format!(
            "id '{id}' is not u{row} (gen_profiles.py numbers profiles by line)"
        ));
    }
    let position = |list: &[&str], v: &str, what: &str| {
        list.iter()
            .position(|x| *x == v)
            .map(|i| i as u8)
            .ok_or_else(|| format!("unknown {what} '{v}'"))
    };
    let country = position(&COUNTRIES, country, "country")?;
    let gender = position(&GENDERS, gender, "gender")?;
    let age: u8 = age
        .parse()
        .map_err(|_| format!("age '{age}' is not a whole number 0..255"))?;
    let mut tags: Vec<u16> = Vec::new();
    if !interests.is_empty() {
        for t in interests.split('|') {
            let i = tag_index(t).ok_or_else(|| format!("'{t}' is not a tag i0001..i1000"))?;
            tags.push(i as u16);
        }
    }
    tags.sort_unstable();
    let count = tags.len();
    tags.dedup();
    if tags.len() != count {
        return Err("an interest is listed twice".into());
    }
    if tags.len() > MAX_INTERESTS {
        return Err(format!("more than {MAX_INTERESTS} interests"));
    }
    let last_seen: i64 = last_seen
        .parse()
        .map_err(|_| format!("last_seen '{last_seen}' is not whole seconds"))?;
    let ltv_cents = parse_cents(ltv).ok_or_else(|| format!("ltv '{ltv}' is not like 12.34"))?;
    let consent = match consent {
        "true" => true,
        "false" => false,
        other => return Err(format!("consent '{other}' is not true or false")),
    };
    block.country.push(country);
    block.gender.push(gender);
    block.age.push(age);
    block.tags.extend_from_slice(&tags);
    block.tag_off.push(block.tags.len() as u32);
    block.last_seen.push(last_seen);
    block.ltv_cents.push(ltv_cents);
    block.consent.push(consent);
    Ok(())
}

/// `12.34` → 1234; exactly two decimals.
fn parse_cents(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.')?;
    if frac.len() != 2 || !frac.bytes().all(|b| b.is_ascii_digit()) || whole.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    whole
        .checked_mul(100)?
        .checked_add(frac.parse::<i64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let mut b = Block {
            tag_off: vec![0],
            ..Block::default()
        };
        parse_row("u0,NL,m,34,i0020|i0001,1791234567,20.09,true", 0, &mut b).unwrap();
        parse_row("u1,US,f,13,,1791234567,0.05,false", 1, &mut b).unwrap();
        assert_eq!(b.profile(0).tags, &[0, 19]);
        assert_eq!(b.profile(1).tags, &[] as &[u16]);
        assert_eq!(b.ltv_cents, [2009, 5]);
        let bad = |line: &str| parse_row(line, 2, &mut b.clone()).unwrap_err();
        assert!(bad("u3,NL,m,34,,1,1.00,true").contains("not u2"));
        assert!(bad("u2,XX,m,34,,1,1.00,true").contains("country"));
        assert!(bad("u2,NL,m,34,i0001|i0001,1,1.00,true").contains("twice"));
        assert!(bad("u2,NL,m,34,,1,1.0,true").contains("ltv"));
        assert!(bad("u2,NL,m,34,,1,1.00").contains("8 fields"));
    }
}
