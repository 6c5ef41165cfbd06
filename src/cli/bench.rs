//! `cohortdb bench`: argument parsing and exit codes; the work is in
//! crate::bench (docs/bench.md).
//!
//! Exit codes: 0 when every answer was right; 1 when any answer was wrong
//! (the report names the query, expected and got); 2 for usage errors and
//! for anything that stopped the run (connection, load, server, files).

use crate::bench::load::LoadLimits;
use crate::bench::queries::Query;
use crate::bench::{report, BenchOptions, Source, Target};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// Profiles to generate
    #[arg(long, default_value_t = 1_000_000, conflicts_with_all = ["csv", "scale"])]
    pub profiles: u64,
    /// Seed of the generator (gen_profiles.py's --seed)
    #[arg(long, default_value_t = 42, conflicts_with = "csv")]
    pub seed: u64,
    /// Load this CSV (gen_profiles.py's format) instead of generating
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Skip loading when `profiles` already holds exactly this many profiles (answers are still checked)
    #[arg(long)]
    pub reuse: bool,
    /// Timed runs per query, after one warm-up
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub runs: u64,
    /// Queries to run, comma-separated [default: Q1,Q2,Q3,Q4,Q5,Q6,Q7,Q8]
    #[arg(long, value_name = "Q,...", value_delimiter = ',', value_parser = parse_query)]
    pub queries: Vec<Query>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Grow the table through these sizes, timing the queries at each (e.g. 1000000,10000000)
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', conflicts_with = "reuse", value_parser = clap::value_parser!(u64).range(1..))]
    pub scale: Vec<u64>,
    /// Also write an SVG line chart of median ms per query against profiles to FILE
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Rows per InsertRows batch while loading
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Largest batch in bytes (about its InsertRows message); keep it below the server's --max-frame-bytes
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub batch_bytes: u64,
    /// Connections the load is spread over (each profile on the one its id hashes to)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: u64,
    /// Generator threads [default: the number of cores]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,
    /// Only write the generated audience as gen_profiles.py's CSV to FILE, and exit
    #[arg(long, value_name = "FILE", conflicts_with_all = ["csv", "addr", "data_dir", "reuse"])]
    pub emit_csv: Option<PathBuf>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned, readable table
    Table,
    /// One JSON object
    Json,
}

fn parse_query(s: &str) -> Result<Query, String> {
    Query::parse(s).ok_or_else(|| format!("unknown query '{s}'; expected Q1 to Q8"))
}

/// Other benchmarks than Q1–Q8.
#[derive(Debug, clap::Subcommand)]
pub enum BenchMode {
    /// Sustained mixed load (writes, counts, overlaps, TOP, exports) from many connections
    Load(Box<LoadArgs>),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Profiles of the standard audience loaded before the run
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub profiles: u64,
    /// Seed of the generator
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Concurrent client connections
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub connections: u64,
    /// How long to run: seconds, or a number with s, m or h (e.g. 30s, 10m)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 10m, 1h)"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration (e.g. 30s, 10m, 1h)")),
    };
    if seconds == 0 {
        return Err("the duration must be at least 1 s".into());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// Which server a bench talks to (both `bench` and `bench load`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A running server [default: start one in this process]
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "data_dir")]
    pub addr: Option<String>,
    /// User name for --addr (when the server has users)
    #[arg(long, requires = "addr")]
    pub user: Option<String>,
    /// Name of the environment variable that holds the password (with --user)
    #[arg(long, value_name = "VAR", requires = "user")]
    pub password_env: Option<String>,
    /// Data directory of the in-process server, kept afterwards [default: a temporary one, removed]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The server a bench talks to: `--addr` (with its user and password from
/// the environment), else one started in this process over `--data-dir`.
fn target_of(server: ServerArgs) -> Result<Target, String> {
    Ok(match server.addr {
        Some(addr) => Target::Remote {
            addr,
            user: server.user.unwrap_or_default(),
            password: match server.password_env.as_deref() {
                Some(var) => std::env::var(var).map_err(|_| {
                    format!("the environment variable {var} (--password-env) is not set")
                })?,
                None => String::new(),
            },
        },
        None => Target::Embedded {
            data_dir: server.data_dir,
        },
    })
}

fn bench_load(args: LoadArgs) -> Result<ExitCode, String> {
    let target = target_of(args.server)?;
    let options = crate::bench::workload::WorkloadOptions {
        load: BenchOptions {
            source: Source::Generated {
                profiles: args.profiles,
                seed: args.seed,
            },
            target,
            runs: 1,
            stages: Vec::new(),
            queries: vec![Query::Q1],
            reuse: true,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: LoadLimits::default(),
            progress: true,
        },
        connections: usize::try_from(args.connections).unwrap_or(64),
        duration: args.duration,
    };
    let report = crate::bench::workload::run_workload(&options).map_err(|e| e.to_string())?;
    print!("{}", crate::bench::workload::table(&report));
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn run(args: BenchArgs) -> ExitCode {
    let result = match args.mode {
        Some(BenchMode::Load(load)) => bench_load(*load),
        None => bench(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("cohortdb bench: {message}");
            ExitCode::from(2)
        }
    }
}

fn bench(args: BenchArgs) -> Result<ExitCode, String> {
    let threads = match args.threads {
        Some(t) => usize::try_from(t).unwrap_or(1),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if let Some(path) = &args.emit_csv {
        let started = std::time::Instant::now();
        let bytes = crate::bench::emit::write_csv(args.profiles, args.seed, threads, path)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "cohortdb bench: wrote {} profiles (seed {}, {bytes} bytes) to {} in {:.2} s",
            args.profiles,
            args.seed,
            path.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let source = match args.csv {
        Some(path) => Source::Csv(path),
        None => Source::Generated {
            profiles: args.scale.iter().copied().max().unwrap_or(args.profiles),
            seed: args.seed,
        },
    };
    let target = target_of(args.server)?;
    let mut queries = if args.queries.is_empty() {
        Query::ALL.to_vec()
    } else {
        args.queries
    };
    queries.sort();
    queries.dedup();
    let options = BenchOptions {
        source,
        target,
        runs: usize::try_from(args.runs).unwrap_or(1),
        stages: args.scale,
        queries,
        reuse: args.reuse,
        threads,
        limits: LoadLimits {
            rows: usize::try_from(args.batch).unwrap_or(usize::MAX),
            bytes: usize::try_from(args.batch_bytes).unwrap_or(usize::MAX),
            connections: usize::try_from(args.connections).unwrap_or(1),
        },
        progress: true,
    };
    let reports = crate::bench::run(&options).map_err(|e| e.to_string())?;
    match args.format {
        Format::Table => print!("{}", report::run_table(&reports)),
        Format::Json => println!("{}", report::run_json(&reports)),
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, crate::bench::plot::svg(&reports))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let mut ok = true;
    for r in &reports {
        for q in r.queries.iter().filter(|q| q.failure.is_some()) {
            ok = false;
            eprintln!(
                "cohortdb bench: {} failed at {} profiles: {}",
                q.query.name(),
                r.profiles,
                q.failure.as_deref().unwrap_or("")
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
