//! `cohortdb import`: bulk load a CSV or NDJSON file (or standard input) into
//! an existing table through the server. The user's guide is docs/import.md.
//!
//! How it runs:
//!
//! 1. connect (docs/protocol.md), `DESCRIBE` the table for its column types
//!    ([`table`]), and for CSV read the header and check every column before
//!    anything is imported;
//! 2. a reader thread parses the input ([`csv_source`], [`ndjson_source`]),
//!    checks every value and writes it as a typed cell ([`cells`]) straight
//!    into the next batch ([`batch`]); full batches go to the sender through
//!    a bounded channel (and come back empty for reuse), so the next batch is
//!    parsed while the server applies the current one and memory stays
//!    bounded however large the input;
//! 3. the main thread turns each batch into one columnar InsertRows message
//!    (the bulk-load message of docs/protocol.md: one atomic write on the
//!    server, no SQL text to parse), applies the `--max-errors` budget in
//!    input order and counts ([`sender`]), and shows progress on a terminal
//!    ([`progress`]).
//!
//! Exit codes: 0 when the whole input was read and at most `--max-errors`
//! rows were rejected; 1 when the import stopped because more were; 2 for
//! usage errors (bad arguments, unreadable file, bad header, no such table)
//! and for connection or server failures.

mod batch;
pub(crate) mod cells;
mod csv_source;
mod ndjson_source;
mod progress;
mod sender;
pub(crate) mod table;

use batch::{Batch, BatchBuilder, RowEnd};
use clap::{Args, ValueEnum};
use progress::Progress;
use sender::{Fatal, Flow, Sender};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, SyncSender};
use table::{Layout, TableInfo};

use crate::client::{Client, ConnectOptions};
use crate::storage::columnar::RowsEncoder;
use cells::transpose;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Server address
    #[arg(long, default_value = crate::client::DEFAULT_ADDR)]
    pub addr: String,
    /// User name (when the server has users)
    #[arg(long)]
    pub user: Option<String>,
    /// Name of the environment variable that holds the password
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// The table to load; it must exist
    #[arg(long)]
    pub table: String,
    /// Input format [default: from the file extension (.ndjson, .jsonl, .json), else csv]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Rows per batch (each batch is one atomic write)
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Largest batch in bytes (about its message size); keep it below the server's --max-frame-bytes
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(256..))]
    pub batch_bytes: u64,
    /// Rejected rows tolerated; the import stops at the row that exceeds it
    #[arg(long, default_value_t = 0)]
    pub max_errors: u64,
    /// The file to load, or - for standard input
    pub file: PathBuf,
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A header line naming the columns, then one row per record
    Csv,
    /// One JSON object per line
    Ndjson,
}

/// One step of a [`RowSource`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A row was read (accepted into the batch or rejected) at this line.
    Row(RowEnd, u64),
    /// The input is exhausted.
    End,
}

/// An input format's row reader.
pub trait RowSource: Send {
    /// Reads the next row into the builder's batch (or its rejects). `Err`
    /// is a failure to read the input at all.
    fn next_row(&mut self, b: &mut BatchBuilder, spill: &mut Vec<u8>) -> Result<Step, String>;
    /// Input bytes consumed so far.
    fn position(&self) -> u64;
}

/// How an import ended.
enum Outcome {
    Finished,
    Stopped { line: u64 },
    Failed(String),
}

pub fn run(args: ImportArgs) -> ExitCode {
    match import(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("cohortdb import: {message}");
            ExitCode::from(2)
        }
    }
}

fn format_of(path: &Path) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("ndjson" | "jsonl" | "json") => Format::Ndjson,
        _ => Format::Csv,
    }
}

/// Opens the input; also returns its size when it is a regular file.
fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, Option<u64>), String> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), size))
}

/// Sets up everything that can fail before data moves (exit 2), then runs.
fn import(args: ImportArgs) -> Result<ExitCode, String> {
    let password = match &args.password_env {
        Some(var) => std::env::var(var)
            .map_err(|_| format!("the environment variable {var} (--password-env) is not set"))?,
        None => String::new(),
    };
    let format = args.format.unwrap_or_else(|| format_of(&args.file));
    let (input, size) = open_input(&args.file)?;
    let options = ConnectOptions {
        client_name: format!("cohortdb-import {}", env!("CARGO_PKG_VERSION")),
        user: args.user.clone().unwrap_or_default(),
        password,
        ..ConnectOptions::default()
    };
    let mut client = Client::connect(&args.addr, &options).map_err(|e| e.to_string())?;
    let table = TableInfo::describe(&mut client, &args.table)?;
    let batch_rows = usize::try_from(args.batch).unwrap_or(usize::MAX);
    let batch_bytes = usize::try_from(args.batch_bytes).unwrap_or(usize::MAX);
    let (source, layout): (Box<dyn RowSource>, Layout) = match format {
        Format::Csv => {
            let (reader, names) = csv_source::read_header(input)?;
            let layout = table.layout_for(&names)?;
            (
                Box::new(csv_source::CsvSource::new(reader, layout.clone())),
                layout,
            )
        }
        Format::Ndjson => {
            let layout = table.full_layout();
            let unsupported = table
                .columns
                .iter()
                .filter(|c| c.kind.is_none())
                .map(|c| (c.name.clone(), c.type_name.clone()))
                .collect();
            let input = BufReader::with_capacity(1 << 16, input);
            (
                Box::new(ndjson_source::NdjsonSource::new(
                    input,
                    layout.clone(),
                    unsupported,
                )),
                layout,
            )
        }
    };
    let builder = BatchBuilder::new(batch_rows, batch_bytes);
    Ok(pump(client, source, builder, layout, size, args.max_errors))
}

/// Runs the reader thread and sends what it produces; prints the summary.
fn pump(
    mut client: Client,
    source: Box<dyn RowSource>,
    builder: BatchBuilder,
    layout: Layout,
    size: Option<u64>,
    max_errors: u64,
) -> ExitCode {
    let progress = Progress::new(size);
    let (batches, received) = mpsc::sync_channel::<Result<Batch, String>>(2);
    let (recycle, recycled) = mpsc::channel::<Batch>();
    let encoding = (layout.order.clone(), layout.columns.len());
    let reader = std::thread::Builder::new()
        .name("import-reader".into())
        .spawn(move || read_batches(source, builder, encoding, max_errors, batches, recycled));
    let reader = match reader {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("cohortdb import: cannot start the reader thread: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = |line: u64, reason: &str| progress.println(&format!("line {line}: {reason}"));
    let mut sender = Sender::new(&mut client, &layout, max_errors, &mut report);
    let mut outcome = Outcome::Finished;
    for message in received.iter() {
        let mut batch = match message {
            Ok(batch) => batch,
            Err(e) => {
                outcome = Outcome::Failed(e);
                break;
            }
        };
        match sender.send(&mut batch) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stopped { line }) => {
                outcome = Outcome::Stopped { line };
                break;
            }
            Err(Fatal(e)) => {
                outcome = Outcome::Failed(e);
                break;
            }
        }
        progress.update(batch.position, sender.imported);
        // The reader may have finished; then the batch is simply dropped.
        let _ = recycle.send(batch);
    }
    let (imported, rejected) = (sender.imported, sender.rejected);
    drop(received);
    if let Outcome::Finished = outcome {
        // The channel closed: the reader is done (or died).
        if reader.join().is_err() {
            outcome = Outcome::Failed("internal error: the reader thread panicked".into());
        }
    }
    let elapsed = progress.elapsed().as_secs_f64();
    progress.finish();
    let code = match &outcome {
        Outcome::Finished => {
            let _ = client.close();
            ExitCode::SUCCESS
        }
        Outcome::Stopped { line } => {
            eprintln!(
                "cohortdb import: stopped at line {line}: more than {max_errors} rejected row{} (--max-errors {max_errors}); the good rows before it are imported, none after it",
                if max_errors == 1 { "" } else { "s" }
            );
            let _ = client.close();
            ExitCode::from(1)
        }
        Outcome::Failed(e) => {
            eprintln!("cohortdb import: {e}");
            eprintln!(
                "cohortdb import: the import did not finish; the rows counted below were acknowledged"
            );
            ExitCode::from(2)
        }
    };
    let secs = elapsed.max(1e-6);
    let _ = writeln!(
        std::io::stdout(),
        "imported {imported} row{}, rejected {rejected}, in {:.1} s ({:.0} rows/s)",
        if imported == 1 { "" } else { "s" },
        elapsed,
        imported as f64 / secs
    );
    code
}

/// The reader thread: fills batches, encodes each one's payload (`encoding`:
/// the layout's cell order and payload column count) and hands them over
/// until the input ends, reading fails, the rejects exceed the budget, or the
/// sender hangs up.
fn read_batches(
    mut source: Box<dyn RowSource>,
    mut builder: BatchBuilder,
    encoding: (Vec<usize>, usize),
    max_errors: u64,
    batches: SyncSender<Result<Batch, String>>,
    recycled: Receiver<Batch>,
) {
    let mut spill = Vec::new();
    let mut rejected: u64 = 0;
    let fresh = |recycled: &Receiver<Batch>| recycled.try_recv().unwrap_or_default();
    let (order, columns) = encoding;
    // A payload that does not encode is left to the sender, which reports it.
    let encoded = |mut batch: Batch| {
        let mut payload = RowsEncoder::new(columns);
        if transpose(batch.cells(0, batch.rows.len()), &order, &mut payload).is_ok() {
            batch.payload = Some(payload.finish());
        }
        batch
    };
    loop {
        let before = builder.batch.rejects.len();
        let step = source.next_row(&mut builder, &mut spill);
        let position = source.position();
        let (end, line) = match step {
            Ok(Step::Row(end, line)) => (end, line),
            Ok(Step::End) => {
                if !builder.batch.is_empty() {
                    let _ = batches.send(Ok(encoded(builder.take(fresh(&recycled), position))));
                }
                return;
            }
            Err(e) => {
                if !builder.batch.is_empty()
                    && batches
                        .send(Ok(encoded(builder.take(fresh(&recycled), position))))
                        .is_err()
                {
                    return;
                }
                let _ = batches.send(Err(e));
                return;
            }
        };
        rejected += (builder.batch.rejects.len() - before) as u64;
        let stop = rejected > max_errors;
        if end == RowEnd::Open && !stop {
            continue;
        }
        if batches
            .send(Ok(encoded(builder.take(fresh(&recycled), position))))
            .is_err()
            || stop
        {
            return;
        }
        if end == RowEnd::Spilled {
            builder.push_spilled(&spill, line);
        }
    }
}

/// Reads `input` as an import file (CSV when `csv`, else NDJSON) for a table
/// with a column of every type, and checks what the importer accepts: every
/// batch of accepted rows transposes into an InsertRows payload the server
/// parses and accepts. For the `import_rows` fuzz target; panics only when
/// that invariant breaks.
#[doc(hidden)]
pub fn fuzz_rows(csv: bool, input: &[u8]) {
    use table::{Kind, TableColumn};
    let column = |name: &str, type_name: &str, kind| TableColumn {
        name: name.into(),
        type_name: type_name.into(),
        kind: Some(kind),
    };
    let info = TableInfo {
        name: "t".into(),
        columns: vec![
            column("id", "TEXT", Kind::Key),
            column("t", "TEXT", Kind::Text),
            column("s", "SET<TEXT>", Kind::Set),
            column("e", "EVENTS<TEXT>", Kind::Events),
            column("i", "INT", Kind::Int),
            column("ts", "TIMESTAMP", Kind::Timestamp),
            column("f", "FLOAT", Kind::Float),
            column("b", "BOOL", Kind::Bool),
        ],
    };
    let (mut source, layout): (Box<dyn RowSource>, Layout) = if csv {
        let Ok((reader, names)) = csv_source::read_header(input) else {
            return;
        };
        let Ok(layout) = info.layout_for(&names) else {
            return;
        };
        (
            Box::new(csv_source::CsvSource::new(reader, layout.clone())),
            layout,
        )
    } else {
        let layout = info.full_layout();
        (
            Box::new(ndjson_source::NdjsonSource::new(
                input,
                layout.clone(),
                Vec::new(),
            )),
            layout,
        )
    };
    let check = |batch: &Batch| {
        if batch.rows.is_empty() {
            return;
        }
        let mut encoder = crate::storage::columnar::RowsEncoder::new(layout.columns.len());
        if let Err(e) = cells::transpose(&batch.bytes, &layout.order, &mut encoder) {
            panic!("accepted rows do not transpose: {e}");
        }
        let columns = layout.columns[1..]
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        let rows = crate::engine::RowsBatch::from_payload(columns, encoder.finish())
            .and_then(|b| b.view().map(|_| ()));
        if let Err(e) = rows {
            panic!("accepted rows are refused by the server's checks: {e}");
        }
    };
    let mut builder = BatchBuilder::new(16, 1 << 16);
    let mut spill = Vec::new();
    loop {
        match source.next_row(&mut builder, &mut spill) {
            Err(_) | Ok(Step::End) => break,
            Ok(Step::Row(RowEnd::Open, _)) => {}
            Ok(Step::Row(end, line)) => {
                check(&builder.take(Batch::default(), 0));
                if end == RowEnd::Spilled {
                    builder.push_spilled(&spill, line);
                }
            }
        }
    }
    check(&builder.take(Batch::default(), 0));
}

#[cfg(test)]
mod fuzz_seed_tests {
    /// The `import_rows` fuzz target's invariant holds on its seeds and on
    /// inputs the importer must reject (run in every `cargo test`).
    #[test]
    fn accepted_rows_always_make_a_payload_the_server_accepts() {
        let seeds: [&[u8]; 6] = [
            include_bytes!("../../../fuzz/seeds/import_rows/csv_all_types"),
            include_bytes!("../../../fuzz/seeds/import_rows/ndjson_all_types"),
            b"\x00id,e\nu1,x@99999999999999999\nu2,@0\n",
            b"\x00id,s,s\nu1,a,b\n",
            b"\x01{\"id\":\"u1\",\"e\":[\"a@b@c\"]}\n{\"id\":\"\"}\n",
            b"\x01\xff\xfe\n{}\n",
        ];
        for seed in seeds {
            if let Some((first, rest)) = seed.split_first() {
                super::fuzz_rows(first % 2 == 0, rest);
            }
        }
    }
}
