//! One bench run: get a server (embedded or `--addr`), make sure the
//! `profiles` table is there, stream the audience block by block into the
//! expected answers and through the loader, then time Q1–Q8 and check every
//! answer.
//!
//! Invariants: the expected answers see exactly the rows that were loaded
//! (or, with `reuse`, the rows the table is said to hold); every query's
//! warm-up and timed answers are all checked; the embedded server is stopped
//! and a temporary data directory removed on every path out, errors
//! included (their `Drop`s).

use super::answer::{Answer, Expected};
use super::audience::Block;
use super::csv_input::{count_rows, CsvBlocks};
use super::embedded::{DataDir, Embedded};
use super::load::{prepare_table, LoadLimits, Loader, TableState};
use super::memory::resident;
use super::queries::{Query, TABLE};
use super::stream::BlockStream;
use super::BenchError;
use crate::client::{Client, ConnectOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Where the profiles come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// gen_profiles.py's audience of this size and seed.
    Generated { profiles: u64, seed: u64 },
    /// A CSV file in gen_profiles.py's format.
    Csv(PathBuf),
}

/// Which server the bench talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running server.
    Remote {
        addr: String,
        user: String,
        password: String,
    },
    /// A server started in this process over this data directory (a
    /// temporary one, removed at the end, when `None`).
    Embedded { data_dir: Option<PathBuf> },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub source: Source,
    pub target: Target,
    /// Timed runs per query (after one warm-up).
    pub runs: usize,
    pub queries: Vec<Query>,
    /// Skip loading when the table already holds exactly the audience's count.
    pub reuse: bool,
    /// Generator threads.
    pub threads: usize,
    pub limits: LoadLimits,
    /// Show progress on stderr (when it is a terminal).
    pub progress: bool,
}

/// The load half of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// False when `--reuse` found the profiles already loaded.
    pub loaded: bool,
    pub seconds: f64,
    pub statements: u64,
    pub statement_bytes: u64,
    /// The checkpoint right after the load (embedded only).
    pub checkpoint_seconds: Option<f64>,
    /// Resident memory of this process before the database opened and after
    /// the load and checkpoint (embedded only).
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    /// Data directory size after the closing checkpoint (embedded only).
    pub disk_bytes: Option<u64>,
}

/// One query's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryReport {
    pub query: Query,
    pub statements: usize,
    pub expected: Answer,
    /// The warm-up's answer, or why the query failed.
    pub answer: Result<Answer, String>,
    /// Wall-clock milliseconds of each timed run.
    pub runs_ms: Vec<f64>,
    /// What was wrong, if anything (a wrong answer in any run, or an error).
    pub failure: Option<String>,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub profiles: u64,
    pub source: Source,
    /// `embedded` or the remote address.
    pub server: String,
    /// The embedded server's data directory, unless temporary.
    pub data_dir: Option<PathBuf>,
    pub load: LoadReport,
    pub queries: Vec<QueryReport>,
}

impl BenchReport {
    /// True when every answer was right.
    pub fn ok(&self) -> bool {
        self.queries.iter().all(|q| q.failure.is_none())
    }
}

/// Runs the bench.
pub fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let profiles = match &options.source {
        Source::Generated { profiles, .. } => *profiles,
        Source::Csv(path) => count_rows(path)?,
    };
    let rss_before = resident();
    let (mut embedded, data_dir) = match &options.target {
        Target::Embedded { data_dir } => {
            let dir = match data_dir {
                Some(d) => DataDir::kept(d),
                None => DataDir::temporary()?,
            };
            (Some(Embedded::start(dir.path())?), Some(dir))
        }
        Target::Remote { .. } => (None, None),
    };
    let (addr, user, password) = match (&options.target, &embedded) {
        (
            Target::Remote {
                addr,
                user,
                password,
            },
            _,
        ) => (addr.clone(), user.clone(), password.clone()),
        (_, Some(e)) => (e.addr().to_string(), String::new(), String::new()),
        (Target::Embedded { .. }, None) => {
            return Err(BenchError::Internal("no server".into()));
        }
    };
    let connect = ConnectOptions {
        client_name: format!("cohortdb-bench {}", env!("CARGO_PKG_VERSION")),
        user,
        password,
        ..ConnectOptions::default()
    };
    let mut client = Client::connect(&addr, &connect)?;
    let where_ = match &data_dir {
        Some(d) if !d.is_temporary() => format!("in {}", d.path().display()),
        Some(_) => "in the temporary data directory".to_string(),
        None => format!("at {addr}"),
    };
    let load_needed = match prepare_table(&mut client)? {
        TableState::Created | TableState::Existing(0) => true,
        TableState::Existing(n) if n == profiles && options.reuse => false,
        TableState::Existing(n) => {
            return Err(BenchError::TableNotEmpty {
                table: TABLE.into(),
                rows: n,
                profiles,
                place: where_,
            });
        }
    };

    let mut expected = Expected::new();
    let mut loader = load_needed.then(|| Loader::new(&mut client, options.limits));
    let progress = options.progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut seen = 0u64;
    for block in blocks(&options.source, profiles, options.threads)? {
        let block = block?;
        expected.add_block(&block);
        if let Some(loader) = loader.as_mut() {
            loader.send_block(&block)?;
        }
        seen += block.len() as u64;
        if progress {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rcohortdb bench: {} {seen}/{profiles} profiles ({:.0}/s)   ",
                if load_needed { "loaded" } else { "generated" },
                seen as f64 / secs
            );
        }
    }
    let stats = match loader {
        Some(loader) => Some(loader.finish()?),
        None => None,
    };
    let load_seconds = started.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }
    if seen != profiles {
        return Err(BenchError::Internal(format!(
            "the source gave {seen} profiles, {profiles} were expected"
        )));
    }
    let checkpoint_seconds = match &embedded {
        Some(e) if load_needed => {
            let t = Instant::now();
            e.checkpoint()?;
            Some(t.elapsed().as_secs_f64())
        }
        _ => None,
    };
    let rss_after = embedded.as_ref().and(resident());

    let mut reports = Vec::with_capacity(options.queries.len());
    for &q in &options.queries {
        reports.push(time_query(&mut client, q, expected.answer(q), options.runs));
    }
    let _ = client.close();

    let disk_bytes = match embedded.take() {
        Some(e) => Some(e.stop()?),
        None => None,
    };
    let kept_dir = data_dir
        .as_ref()
        .filter(|d| !d.is_temporary())
        .map(|d| d.path().to_path_buf());
    drop(data_dir);
    let stats = stats.unwrap_or_default();
    Ok(BenchReport {
        profiles,
        source: options.source.clone(),
        server: match &options.target {
            Target::Remote { addr, .. } => addr.clone(),
            Target::Embedded { .. } => "embedded".into(),
        },
        data_dir: kept_dir,
        load: LoadReport {
            loaded: load_needed,
            seconds: load_seconds,
            statements: stats.statements,
            statement_bytes: stats.bytes,
            checkpoint_seconds,
            rss_before_bytes: rss_after.and(rss_before).map(|r| r.now),
            rss_after_bytes: rss_after.map(|r| r.now),
            rss_peak_bytes: rss_after.map(|r| r.peak),
            disk_bytes,
        },
        queries: reports,
    })
}

/// The source's blocks in row order.
fn blocks(
    source: &Source,
    profiles: u64,
    threads: usize,
) -> Result<Box<dyn Iterator<Item = Result<Block, BenchError>>>, BenchError> {
    Ok(match source {
        Source::Generated { seed, .. } => Box::new(
            BlockStream::new(profiles, *seed, threads)?.map(|b| b.map_err(BenchError::from)),
        ),
        Source::Csv(path) => Box::new(CsvBlocks::open(path)?.map(|b| b.map_err(BenchError::from))),
    })
}

/// One warm-up and `runs` timed executions of `q`, every answer checked.
fn time_query(client: &mut Client, q: Query, expected: Answer, runs: usize) -> QueryReport {
    let text = q.cohortql();
    let mut report = QueryReport {
        query: q,
        statements: text.matches(';').count(),
        expected,
        answer: Err("not run".into()),
        runs_ms: Vec::with_capacity(runs),
        failure: None,
    };
    for run in 0..=runs {
        let started = Instant::now();
        let results = client.execute(&text);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let answer = results
            .map_err(|e| format!("the server refused it: {e}"))
            .and_then(|r| q.answer(r).map_err(|e| format!("unexpected result: {e}")));
        let failure = match &answer {
            Ok(a) if *a == report.expected => None,
            Ok(a) => Some(format!(
                "wrong answer (run {run}): {}",
                report.expected.difference(a)
            )),
            Err(e) => Some(e.clone()),
        };
        if run == 0 {
            report.answer = answer;
        } else {
            report.runs_ms.push(ms);
        }
        if failure.is_some() {
            report.failure = failure;
            break;
        }
    }
    report
}
