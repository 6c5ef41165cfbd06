//! One bench run: get a server (embedded or `--addr`), make sure the
//! `profiles` table is there, stream the audience block by block into the
//! expected answers and through the loader, then time Q1–Q8 and check every
//! answer.
//!
//! With several stages (`--scale`), the table grows through them: the rows
//! up to the first size are loaded and queried, then the rows up to the
//! next, and so on; the first M rows of an audience are the M-row audience,
//! so each stage is the audience of its size.
//!
//! Invariants: at every stage the expected answers have seen exactly the rows
//! loaded so far (or, with `reuse`, the rows the table is said to hold);
//! every query's warm-up and timed answers are all checked; the embedded
//! server is stopped and a temporary data directory removed on every path
//! out, errors included (their `Drop`s).

use super::answer::{Answer, Expected};
use super::audience::Block;
use super::csv_input::{count_rows, CsvBlocks};
use super::embedded::{DataDir, Embedded};
use super::load::{prepare_table, LoadLimits, LoadStats, Loader, TableState};
use super::memory::resident;
use super::queries::{Query, TABLE};
use super::stream::BlockStream;
use super::BenchError;
use crate::client::{Client, ConnectOptions, StatementResult};
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
    /// Sizes to stop at and query, ascending (empty: just the whole source).
    pub stages: Vec<u64>,
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
    /// Profiles loaded in this stage (all of them for a single stage).
    pub profiles_loaded: u64,
    pub seconds: f64,
    /// InsertRows batches sent, and their payload bytes.
    pub batches: u64,
    pub batch_bytes: u64,
    /// The checkpoint right after the load (embedded only).
    pub checkpoint_seconds: Option<f64>,
    /// Resident memory of this process just before the first profile was
    /// sent (database open, first block generated) and after the load and
    /// checkpoint (embedded only).
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    /// Data directory size after the checkpoint: the closing one for the
    /// last stage (embedded only).
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
    /// The server's own milliseconds for each timed run (its Complete
    /// messages: execution and sending the rows; no parse, no round trip).
    pub server_ms: Vec<f64>,
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

/// What a stage needs of the run.
struct Session<'a> {
    options: &'a BenchOptions,
    embedded: Option<Embedded>,
    client: Client,
    load_needed: bool,
    rss_before: Option<super::memory::Resident>,
    server: String,
    data_dir: Option<PathBuf>,
}

/// Runs the bench: one report per stage.
pub fn run(options: &BenchOptions) -> Result<Vec<BenchReport>, BenchError> {
    let available = match &options.source {
        Source::Generated { profiles, .. } => *profiles,
        Source::Csv(path) => count_rows(path)?,
    };
    let mut stages = options.stages.clone();
    stages.sort_unstable();
    stages.dedup();
    if stages.is_empty() {
        stages.push(available);
    }
    let profiles = stages[stages.len() - 1];
    if profiles == 0 {
        return Err(BenchError::Usage(
            "nothing to load: the audience has 0 profiles".into(),
        ));
    }
    if profiles > available {
        return Err(BenchError::Usage(format!(
            "cannot stop at {profiles} profiles: the source has {available}"
        )));
    }
    if stages.len() > 1 && options.reuse {
        return Err(BenchError::Usage(
            "--reuse cannot be combined with several sizes: each size is loaded in turn".into(),
        ));
    }
    // With --reuse nothing is sent: memory is measured from before the
    // database opened (the reopened database plus the generator's blocks).
    let rss_at_start = resident();
    let (embedded, data_dir) = match &options.target {
        Target::Embedded { data_dir } => {
            let dir = match data_dir {
                Some(d) => DataDir::kept(d),
                None => DataDir::temporary()?,
            };
            (
                Some(Embedded::start(dir.path(), options.limits.bytes)?),
                Some(dir),
            )
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
    let place = match &data_dir {
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
                place,
            });
        }
    };
    let mut session = Session {
        options,
        embedded,
        client,
        load_needed,
        rss_before: rss_at_start,
        server: match &options.target {
            Target::Remote { addr, .. } => addr.clone(),
            Target::Embedded { .. } => "embedded".into(),
        },
        data_dir: data_dir
            .as_ref()
            .filter(|d| !d.is_temporary())
            .map(|d| d.path().to_path_buf()),
    };

    let mut reports: Vec<BenchReport> = Vec::with_capacity(stages.len());
    let mut expected = Expected::new();
    let mut next_stage = 0;
    let mut loader = match session.load_needed {
        true => Some(Loader::new(
            &mut session.client,
            load_connections(&addr, &connect, options.limits)?,
            options.limits,
        )),
        false => None,
    };
    let progress = options.progress && std::io::stderr().is_terminal();
    let mut started = Instant::now();
    let mut seen = 0u64;
    let mut stage_start = 0u64;
    let mut pending: Vec<Block> = Vec::new();
    let mut source = blocks(&options.source, profiles, options.threads)?;
    while next_stage < stages.len() {
        let block = match pending.pop() {
            Some(b) => b,
            None => match source.next() {
                Some(b) => b?,
                None => break,
            },
        };
        if seen == 0 && session.load_needed {
            // The clock starts when the first profiles are ready: the wait
            // for the first generated block is not loading. The memory
            // baseline is taken here too, so that it holds the open database,
            // the server and the generator's blocks, and the growth after it
            // is what the loaded profiles cost.
            session.rss_before = resident();
            started = Instant::now();
        }
        let stop = stages[next_stage];
        let take = usize::try_from(stop - seen)
            .unwrap_or(usize::MAX)
            .min(block.len());
        let piece = if take < block.len() {
            pending.push(block.slice(take, block.len()));
            block.slice(0, take)
        } else {
            block
        };
        expected.add_block(&piece);
        if let Some(loader) = loader.as_mut() {
            loader.send_block(&piece)?;
        }
        seen += piece.len() as u64;
        drop(piece);
        if progress {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rcohortdb bench: {} {seen}/{stop} profiles ({:.0}/s)   ",
                if session.load_needed {
                    "loaded"
                } else {
                    "generated"
                },
                (seen - stage_start) as f64 / secs
            );
        }
        if seen < stop {
            continue;
        }
        let stats = match loader.take() {
            Some(loader) => loader.finish()?,
            None => LoadStats::default(),
        };
        let seconds = started.elapsed().as_secs_f64();
        if progress {
            eprintln!();
        }
        let last = next_stage + 1 == stages.len();
        reports.push(session.stage(stop, seen - stage_start, stats, seconds, &expected, last)?);
        next_stage += 1;
        stage_start = seen;
        started = Instant::now();
        // After the last stage the loop ends and this loader goes unused.
        loader = match session.load_needed && next_stage < stages.len() {
            true => Some(Loader::new(
                &mut session.client,
                load_connections(&addr, &connect, options.limits)?,
                options.limits,
            )),
            false => None,
        };
    }
    drop(loader);
    if next_stage < stages.len() {
        return Err(BenchError::Internal(format!(
            "the source ended after {seen} profiles, {profiles} were expected"
        )));
    }
    let Session {
        embedded, client, ..
    } = session;
    let _ = client.close();
    let disk_bytes = match embedded {
        Some(e) => Some(e.stop()?),
        None => None,
    };
    drop(data_dir);
    if let Some(last) = reports.last_mut() {
        last.load.disk_bytes = disk_bytes;
    }
    Ok(reports)
}

impl Session<'_> {
    /// After the rows of a stage are in: checkpoint and measure (embedded),
    /// then time and check the queries.
    fn stage(
        &mut self,
        profiles: u64,
        loaded: u64,
        stats: LoadStats,
        seconds: f64,
        expected: &Expected,
        last: bool,
    ) -> Result<BenchReport, BenchError> {
        let checkpoint_seconds = match &self.embedded {
            Some(e) if self.load_needed => {
                let t = Instant::now();
                e.checkpoint()?;
                Some(t.elapsed().as_secs_f64())
            }
            _ => None,
        };
        let rss_after = self.embedded.as_ref().and(resident());
        // Earlier stages: the size after their checkpoint; the last one is
        // measured after the closing checkpoint, by the caller.
        let disk_bytes = match &self.embedded {
            Some(e) if !last => Some(e.disk_bytes()?),
            _ => None,
        };
        let queries = self
            .options
            .queries
            .iter()
            .map(|&q| time_query(&mut self.client, q, expected.answer(q), self.options.runs))
            .collect();
        Ok(BenchReport {
            profiles,
            source: self.options.source.clone(),
            server: self.server.clone(),
            data_dir: self.data_dir.clone(),
            load: LoadReport {
                loaded: self.load_needed,
                profiles_loaded: if self.load_needed { loaded } else { 0 },
                seconds,
                batches: stats.batches,
                batch_bytes: stats.bytes,
                checkpoint_seconds,
                rss_before_bytes: rss_after.and(self.rss_before).map(|r| r.now),
                rss_after_bytes: rss_after.map(|r| r.now),
                rss_peak_bytes: rss_after.map(|r| r.peak),
                disk_bytes,
            },
            queries,
        })
    }
}

/// The loader's connections besides the session's own.
fn load_connections(
    addr: &str,
    connect: &ConnectOptions,
    limits: LoadLimits,
) -> Result<Vec<Client>, BenchError> {
    (1..limits.connections.max(1))
        .map(|_| Client::connect(addr, connect).map_err(BenchError::from))
        .collect()
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

/// The server's milliseconds for one request: each statement's time is its
/// last result's (the clock runs from the statement's start, so an OVERLAP's
/// second result includes its first), summed over the statements.
pub fn server_ms(results: &[StatementResult]) -> f64 {
    let micros: u64 = results
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            results
                .get(i + 1)
                .is_none_or(|next| next.statement != r.statement)
        })
        .map(|(_, r)| r.micros)
        .sum();
    micros as f64 / 1000.0
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
        server_ms: Vec::with_capacity(runs),
        failure: None,
    };
    for run in 0..=runs {
        let started = Instant::now();
        let results = client.execute(&text);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let server = results.as_deref().map_or(0.0, server_ms);
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
            report.server_ms.push(server);
        }
        if failure.is_some() {
            report.failure = failure;
            break;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(statement: u32, micros: u64) -> StatementResult {
        StatementResult {
            statement,
            micros,
            ..StatementResult::default()
        }
    }

    #[test]
    fn server_time_counts_each_statement_once_at_its_last_result() {
        assert_eq!(server_ms(&[]), 0.0);
        assert_eq!(server_ms(&[result(0, 1500)]), 1.5);
        // OVERLAP: two results of statement 0, the second's clock includes the first.
        assert_eq!(server_ms(&[result(0, 700), result(0, 900)]), 0.9);
        // Two statements, the second with two results.
        assert_eq!(
            server_ms(&[result(0, 250), result(1, 400), result(1, 1000)]),
            1.25
        );
    }
}
