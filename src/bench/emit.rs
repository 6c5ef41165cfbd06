//! `--emit-csv FILE`: writes the generated audience as gen_profiles.py's CSV
//! (header included), so the generator can be compared with the Python one
//! byte for byte (`sha256sum` of both files) or the file fed to other tools.
//!
//! Invariant: the file holds exactly what
//! `gen_profiles.py --profiles N --seed S --format csv` writes.

use super::audience::CSV_HEADER;
use super::stream::BlockStream;
use super::BenchError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes the `(profiles, seed)` audience to `path`; returns the bytes written.
pub fn write_csv(profiles: u64, seed: u64, threads: usize, path: &Path) -> Result<u64, BenchError> {
    let fail = |e| BenchError::Write(path.to_path_buf(), e);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(fail)?);
    let mut line = Vec::with_capacity(4 << 20);
    line.extend_from_slice(CSV_HEADER.as_bytes());
    line.push(b'\n');
    let mut written = 0u64;
    for block in BlockStream::new(profiles, seed, threads)? {
        let block = block?;
        for p in block.profiles() {
            p.write_csv(&mut line);
            if line.len() >= 1 << 20 {
                out.write_all(&line).map_err(fail)?;
                written += line.len() as u64;
                line.clear();
            }
        }
    }
    out.write_all(&line).map_err(fail)?;
    written += line.len() as u64;
    out.flush().map_err(fail)?;
    Ok(written)
}
