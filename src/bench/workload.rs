//! `cohortdb bench load`: sustained mixed load. The standard audience is
//! loaded first (through [`super::run`], answers checked), then many
//! connections run a mix of writes and audience queries for a fixed time;
//! the report gives throughput and latency per kind of operation, every
//! error, and the resident memory over the run (sampled each second when
//! the server runs in this process).
//!
//! The mix per operation (each connection draws its own, deterministic per
//! connection): 30 % upserts of new profiles, 10 % upserts of existing
//! ones, 30 % segment counts, 15 % OVERLAPs of three audiences, 10 % TOP by
//! lift, 5 % EXPORTs of up to 1,000 ids.
//!
//! Invariants: every connection stops at the deadline and is joined before
//! the report; an error is counted and kept (the first ten), never
//! retried or hidden.

use super::embedded::{DataDir, Embedded};
use super::memory::resident;
use super::queries::{Query, TABLE};
use super::{BenchError, BenchOptions, Source, Target};
use crate::client::{Client, ConnectOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of operation of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Insert,
    Upsert,
    Count,
    Overlap,
    Top,
    Export,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Insert,
        Kind::Upsert,
        Kind::Count,
        Kind::Overlap,
        Kind::Top,
        Kind::Export,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Insert => "insert (new profile)",
            Kind::Upsert => "upsert (existing profile)",
            Kind::Count => "segment count",
            Kind::Overlap => "overlap of 3",
            Kind::Top => "top 5 by lift",
            Kind::Export => "export (<= 1000 ids)",
        }
    }
    /// The kind a draw in 0..100 picks.
    fn of(draw: u64) -> Kind {
        match draw {
            0..=29 => Kind::Insert,
            30..=39 => Kind::Upsert,
            40..=69 => Kind::Count,
            70..=84 => Kind::Overlap,
            85..=94 => Kind::Top,
            _ => Kind::Export,
        }
    }
}

/// What a load run needs.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// How the audience is loaded first (its `queries`/`runs` are ignored).
    pub load: BenchOptions,
    pub connections: usize,
    pub duration: Duration,
}

/// Latencies of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct KindReport {
    pub kind: Kind,
    pub ops: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The outcome of a load run.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadReport {
    pub profiles: u64,
    pub connections: usize,
    pub seconds: f64,
    pub kinds: Vec<KindReport>,
    pub errors: u64,
    /// The first errors, as the server said them.
    pub first_errors: Vec<String>,
    /// (seconds since the start, resident bytes), one per second; empty
    /// when the server is not in this process.
    pub resident: Vec<(f64, u64)>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The statement of one operation.
fn statement(kind: Kind, conn: usize, n: u64, rng: &mut u64, profiles: u64) -> String {
    let tag = |rng: &mut u64| format!("i{:04}", 1 + splitmix(rng) % 1000);
    let country = |rng: &mut u64| ["US", "DE", "GB", "FR", "NL"][(splitmix(rng) % 5) as usize];
    match kind {
        Kind::Insert => format!(
            "INSERT INTO {TABLE} (id, country, interests, age) VALUES ('load-{conn}-{n}', '{}', ['{}', '{}'], {})",
            country(rng),
            tag(rng),
            tag(rng),
            18 + splitmix(rng) % 60
        ),
        Kind::Upsert => format!(
            "INSERT INTO {TABLE} (id, age) VALUES ('u{}', {})",
            splitmix(rng) % profiles.max(1),
            18 + splitmix(rng) % 60
        ),
        Kind::Count => format!(
            "SELECT COUNT(*) FROM {TABLE} WHERE interests HAS '{}' AND country = '{}' AND age BETWEEN 25 AND 54",
            tag(rng),
            country(rng)
        ),
        Kind::Overlap => {
            // Two different tags: an OVERLAP may not name an item twice.
            let a = splitmix(rng) % 1000;
            let b = (a + 1 + splitmix(rng) % 999) % 1000;
            format!(
                "OVERLAP (interests HAS 'i{:04}'), (interests HAS 'i{:04}'), (country = '{}') ON {TABLE}",
                a + 1,
                b + 1,
                country(rng)
            )
        }
        Kind::Top => format!(
            "TOP 5 country FROM {TABLE} WHERE interests HAS '{}' BY LIFT",
            tag(rng)
        ),
        Kind::Export => format!(
            "EXPORT (interests HAS '{}' AND country = '{}') ON {TABLE} LIMIT 1000",
            tag(rng),
            country(rng)
        ),
    }
}

/// Latencies (µs) per kind of one connection, and its errors.
#[derive(Default)]
struct Tally {
    micros: Vec<Vec<u32>>,
    errors: u64,
    first_errors: Vec<String>,
}

/// Runs the load: audience first, then the mix until the deadline.
pub fn run_workload(options: &WorkloadOptions) -> Result<WorkloadReport, BenchError> {
    let profiles = match &options.load.source {
        Source::Generated { profiles, .. } => *profiles,
        Source::Csv(_) => {
            return Err(BenchError::Usage(
                "bench load generates its audience; --csv is not supported here".into(),
            ))
        }
    };
    let _dir;
    let embedded;
    let (addr, user, password) = match &options.load.target {
        Target::Remote {
            addr,
            user,
            password,
        } => {
            embedded = None;
            (addr.clone(), user.clone(), password.clone())
        }
        Target::Embedded { data_dir } => {
            let dir = match data_dir {
                Some(d) => DataDir::kept(d),
                None => DataDir::temporary()?,
            };
            let e = Embedded::start(dir.path(), options.load.limits.bytes)?;
            let addr = e.addr().to_string();
            _dir = dir;
            embedded = Some(e);
            (addr, String::new(), String::new())
        }
    };
    // The audience, through the bench's own checked load path.
    let load = BenchOptions {
        target: Target::Remote {
            addr: addr.clone(),
            user: user.clone(),
            password: password.clone(),
        },
        queries: vec![Query::Q1],
        runs: 1,
        ..options.load.clone()
    };
    super::run(&load)?;
    let connect = ConnectOptions {
        user,
        password,
        client_name: "cohortdb bench load".into(),
        ..ConnectOptions::default()
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let deadline = started + options.duration;
    let samples: Mutex<Vec<(f64, u64)>> = Mutex::new(Vec::new());
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..options.connections)
            .map(|conn| {
                let (addr, connect, stop) = (&addr, &connect, &stop);
                s.spawn(move || {
                    let mut tally = Tally {
                        micros: vec![Vec::new(); Kind::ALL.len()],
                        ..Tally::default()
                    };
                    let mut client = match Client::connect(addr, connect) {
                        Ok(c) => c,
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_errors.push(format!("connection {conn}: {e}"));
                            return tally;
                        }
                    };
                    let mut rng = 0x5EED_u64 ^ (conn as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    let mut n = 0u64;
                    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                        let kind = Kind::of(splitmix(&mut rng) % 100);
                        let sql = statement(kind, conn, n, &mut rng, profiles);
                        n += 1;
                        let t = Instant::now();
                        match client.execute(&sql) {
                            Ok(_) => {
                                let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                                tally.micros[kind as usize].push(us);
                            }
                            Err(e) => {
                                tally.errors += 1;
                                if tally.first_errors.len() < 10 {
                                    tally.first_errors.push(format!("{sql}: {e}"));
                                }
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        if embedded.is_some() {
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_secs(1));
                if let Some(r) = resident() {
                    if let Ok(mut v) = samples.lock() {
                        v.push((started.elapsed().as_secs_f64(), r.now));
                    }
                }
            }
        }
        let tallies = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect();
        stop.store(true, Ordering::Relaxed);
        tallies
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut per_kind: Vec<Vec<u32>> = vec![Vec::new(); Kind::ALL.len()];
    let (mut errors, mut first_errors) = (0, Vec::new());
    for t in tallies {
        for (all, mine) in per_kind.iter_mut().zip(t.micros) {
            all.extend(mine);
        }
        errors += t.errors;
        first_errors.extend(t.first_errors);
    }
    first_errors.truncate(10);
    let kinds = Kind::ALL
        .iter()
        .zip(per_kind)
        .map(|(kind, mut us)| {
            us.sort_unstable();
            let pct = |q: f64| {
                us.get(((us.len().max(1) - 1) as f64 * q).round() as usize)
                    .map_or(0.0, |v| f64::from(*v) / 1000.0)
            };
            KindReport {
                kind: *kind,
                ops: us.len() as u64,
                per_second: us.len() as f64 / seconds,
                p50_ms: pct(0.5),
                p99_ms: pct(0.99),
                max_ms: us.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
            }
        })
        .collect();
    if let Some(e) = embedded {
        e.stop()?;
    }
    Ok(WorkloadReport {
        profiles,
        connections: options.connections,
        seconds,
        kinds,
        errors,
        first_errors,
        resident: samples.into_inner().unwrap_or_default(),
    })
}

/// The report as an aligned table.
pub fn table(r: &WorkloadReport) -> String {
    let mut out = format!(
        "bench load: {} profiles, {} connections, {:.1} s, {} errors\n",
        r.profiles, r.connections, r.seconds, r.errors
    );
    out.push_str(&format!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "operation", "ops", "ops/s", "p50 ms", "p99 ms", "max ms"
    ));
    let mut total = 0;
    for k in &r.kinds {
        total += k.ops;
        out.push_str(&format!(
            "{:<28} {:>10} {:>10.1} {:>10.2} {:>10.2} {:>10.2}\n",
            k.kind.name(),
            k.ops,
            k.per_second,
            k.p50_ms,
            k.p99_ms,
            k.max_ms
        ));
    }
    out.push_str(&format!(
        "{:<28} {:>10} {:>10.1}\n",
        "all",
        total,
        total as f64 / r.seconds
    ));
    if let (Some(first), Some(peak), Some(last)) = (
        r.resident.first(),
        r.resident.iter().map(|s| s.1).max(),
        r.resident.last(),
    ) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        out.push_str(&format!(
            "resident memory (this process: server and clients): {:.0} MiB after {:.0} s, peak {:.0} MiB, {:.0} MiB at the end\n",
            mib(first.1),
            first.0,
            mib(peak),
            mib(last.1)
        ));
    }
    for e in &r.first_errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}
