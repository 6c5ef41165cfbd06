//! Reading CSV rows into batches. The `csv` crate parses records (quoted
//! fields, doubled quotes, newlines inside quotes); records are read as bytes
//! into one reused `ByteRecord`, so invalid UTF-8 becomes a rejected row, not
//! a failed import, and no row allocates.
//!
//! The first record is the header; it is read before anything is imported so
//! that a header naming an unknown column stops the import up front. A
//! record's line is the line it starts on.

use super::batch::BatchBuilder;
use super::cells::csv_field;
use super::table::Layout;
use super::{RowSource, Step};
use std::io::Read;

/// A CSV input positioned after its header.
pub struct CsvSource<R: Read> {
    reader: csv::Reader<R>,
    record: csv::ByteRecord,
    layout: Layout,
}

/// Opens `input` and reads the header: the column names, trimmed.
pub fn read_header<R: Read>(input: R) -> Result<(csv::Reader<R>, Vec<String>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let found = reader
        .read_byte_record(&mut record)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    if !found {
        return Err(
            "the input is empty; a CSV file starts with a header line naming the columns".into(),
        );
    }
    let mut names = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let name = std::str::from_utf8(raw)
            .map_err(|_| format!("header field {} is not valid UTF-8", i + 1))?;
        names.push(name.trim().to_string());
    }
    Ok((reader, names))
}

impl<R: Read> CsvSource<R> {
    pub fn new(reader: csv::Reader<R>, layout: Layout) -> CsvSource<R> {
        CsvSource {
            reader,
            record: csv::ByteRecord::new(),
            layout,
        }
    }
}

impl<R: Read + Send> RowSource for CsvSource<R> {
    fn next_row(&mut self, b: &mut BatchBuilder, spill: &mut Vec<u8>) -> Result<Step, String> {
        let found = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| format!("cannot read the input: {e}"))?;
        if !found {
            return Ok(Step::End);
        }
        let line = self.record.position().map_or(0, |p| p.line());
        let targets = &self.layout.targets;
        if self.record.len() != targets.len() {
            b.reject(
                line,
                format!(
                    "expected {} fields (as in the header), found {}",
                    targets.len(),
                    self.record.len()
                ),
            );
            return Ok(Step::Row(b.fullness(), line));
        }
        let out = b.begin_row();
        for (raw, target) in self.record.iter().zip(targets) {
            if let Err(reason) = csv_field(out, target, raw) {
                b.abort_row();
                b.reject(line, reason);
                return Ok(Step::Row(b.fullness(), line));
            }
        }
        Ok(Step::Row(b.end_row(line, spill), line))
    }

    fn position(&self) -> u64 {
        self.reader.position().byte()
    }
}
