//! `cohortdb shell`: the CohortQL client, like psql or redis-cli
//! (docs/shell.md).
//!
//! Interactive when stdin is a terminal and neither `-c` nor `-f` is given
//! ([`interactive`]); otherwise it reads statements from `-c`, `-f` or stdin
//! and runs them one at a time, stopping at the first error. Both modes cut
//! the input into statements with [`split::Splitter`], run them through the
//! blocking [`crate::client::Client`] and write each result as it streams in
//! ([`render`]).

mod interactive;
mod meta;
mod render;
mod split;

use crate::client::{Canceller, Client, ClientError, ConnectOptions, Event};
use crate::protocol::codes::closes_connection;
use clap::Args;
use render::{Format, Renderer};
use split::{Pos, Splitter, Statement};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit status when every statement succeeded.
const EXIT_OK: u8 = 0;
/// Exit status when a statement or meta-command failed, or the input could not be read.
const EXIT_FAILED: u8 = 1;
/// Exit status when the server could not be reached or the connection was lost.
const EXIT_CONNECTION: u8 = 2;

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Server address (HOST:PORT)
    #[arg(long, default_value = crate::client::DEFAULT_ADDR)]
    pub addr: String,
    /// User name to log in as
    #[arg(long)]
    pub user: Option<String>,
    /// Name of the environment variable holding the password
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Run these statements (separated by `;`) and exit
    #[arg(
        short = 'c',
        long = "command",
        value_name = "STATEMENTS",
        conflicts_with = "file"
    )]
    pub command: Option<String>,
    /// Run the statements in FILE (`-` for stdin) and exit
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format of result rows
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs the shell; the exit status is described in docs/shell.md.
pub fn run(args: ShellArgs) -> ExitCode {
    ExitCode::from(run_inner(args))
}

/// Where non-interactive input comes from.
struct Input {
    reader: Box<dyn BufRead>,
    /// The name used to locate errors (`FILE:LINE:COLUMN`), if any.
    name: Option<String>,
}

fn run_inner(args: ShellArgs) -> u8 {
    let password = match &args.password_env {
        None => String::new(),
        Some(var) => match std::env::var(var) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cohortdb shell: --password-env {var}: {e}");
                return EXIT_FAILED;
            }
        },
    };
    let input = if let Some(text) = args.command.clone() {
        Some(Input {
            reader: Box::new(io::Cursor::new(text.into_bytes())),
            name: None,
        })
    } else if let Some(path) = &args.file {
        if path.as_os_str() == "-" {
            Some(stdin_input())
        } else {
            match std::fs::File::open(path) {
                Ok(f) => Some(Input {
                    reader: Box::new(BufReader::new(f)),
                    name: Some(path.display().to_string()),
                }),
                Err(e) => {
                    eprintln!("cohortdb shell: cannot read {}: {e}", path.display());
                    return EXIT_FAILED;
                }
            }
        }
    } else if io::stdin().is_terminal() {
        None
    } else {
        Some(stdin_input())
    };
    let options = ConnectOptions {
        client_name: format!("cohortdb-shell {}", env!("CARGO_PKG_VERSION")),
        user: args.user.clone().unwrap_or_default(),
        password,
        ..ConnectOptions::default()
    };
    let mut session = match Session::connect(&args.addr, options, args.format) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cohortdb shell: {}", connect_message(&args.addr, &e));
            return EXIT_CONNECTION;
        }
    };
    match input {
        None => interactive::run(&mut session),
        Some(input) => run_batch(&mut session, input),
    }
}

fn stdin_input() -> Input {
    Input {
        reader: Box::new(BufReader::new(io::stdin())),
        name: Some("<stdin>".to_string()),
    }
}

/// A connection failure as one line naming the address.
fn connect_message(addr: &str, e: &ClientError) -> String {
    match e {
        ClientError::Connect { .. } => e.to_string(),
        _ => format!("cannot connect to {addr}: {e}"),
    }
}

/// Why a statement did not complete.
#[derive(Debug)]
enum RunError {
    /// The server refused or stopped the statement; the connection is usable.
    Statement(ClientError),
    /// The connection failed (or could not be re-established).
    Connection(ClientError),
    /// The results could not be written (e.g. stdout was closed).
    Output(io::Error),
    /// A meta-command was wrong.
    Meta(String),
}

impl RunError {
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Connection(_) => EXIT_CONNECTION,
            _ => EXIT_FAILED,
        }
    }
}

/// A server error that leaves the connection open is the statement's fault;
/// anything else means the connection is gone.
fn classify(e: ClientError) -> RunError {
    match &e {
        ClientError::Server { code, .. } if !closes_connection(*code) => RunError::Statement(e),
        _ => RunError::Connection(e),
    }
}

/// The connection and the settings that meta-commands change.
pub(crate) struct Session {
    addr: String,
    options: ConnectOptions,
    /// `None` after the connection was lost (the interactive shell reconnects).
    client: Option<Client>,
    format: Format,
    timing: bool,
    /// The running query's canceller, for Ctrl-C in the interactive shell.
    running: Arc<Mutex<Option<Canceller>>>,
}

impl Session {
    fn connect(
        addr: &str,
        options: ConnectOptions,
        format: Format,
    ) -> Result<Session, ClientError> {
        let client = Client::connect(addr, &options)?;
        Ok(Session {
            addr: addr.to_string(),
            options,
            client: Some(client),
            format,
            timing: false,
            running: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs one statement, writing its result to stdout as it arrives.
    fn execute(&mut self, text: &str) -> Result<(), RunError> {
        let client = match &mut self.client {
            Some(c) => c,
            None => {
                let c = Client::connect(&self.addr, &self.options).map_err(RunError::Connection)?;
                self.client.insert(c)
            }
        };
        let stdout = io::stdout();
        let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
        let started = Instant::now();
        let result = run_query(client, text, self.format, &self.running, &mut out);
        let elapsed = started.elapsed();
        let flushed = out.flush();
        drop(out);
        let server_micros = match result {
            Ok(m) => m,
            Err(e) => {
                if matches!(e, RunError::Connection(_)) {
                    self.client = None;
                }
                return Err(e);
            }
        };
        flushed.map_err(RunError::Output)?;
        if self.timing {
            let line = timing_line(elapsed, server_micros);
            self.info(&line).map_err(RunError::Output)?;
        }
        Ok(())
    }

    /// A message about the shell itself: on stdout for tables, on stderr
    /// for CSV and JSON so that their output stays machine-readable.
    fn info(&self, line: &str) -> io::Result<()> {
        if self.format == Format::Table {
            let mut out = io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()
        } else {
            writeln!(io::stderr().lock(), "{line}")
        }
    }

    fn close(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close();
        }
    }
}

fn timing_line(elapsed: Duration, server_micros: u64) -> String {
    format!(
        "Time: {:.3} ms (server {:.3} ms)",
        elapsed.as_secs_f64() * 1000.0,
        server_micros as f64 / 1000.0
    )
}

fn lock_running(
    running: &Mutex<Option<Canceller>>,
) -> std::sync::MutexGuard<'_, Option<Canceller>> {
    running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `text` and writes its results; returns the server's time in
/// microseconds.
fn run_query(
    client: &mut Client,
    text: &str,
    format: Format,
    running: &Mutex<Option<Canceller>>,
    out: &mut dyn Write,
) -> Result<u64, RunError> {
    let canceller = client.canceller().ok();
    let mut stream = client.query(text).map_err(RunError::Connection)?;
    *lock_running(running) = canceller;
    let mut render = || -> Result<u64, RunError> {
        let mut renderer: Option<Renderer> = None;
        let mut micros = 0;
        for event in stream.by_ref() {
            match event.map_err(classify)? {
                Event::Schema { columns, .. } => {
                    if let Some(r) = renderer.take() {
                        r.finish(out).map_err(RunError::Output)?;
                    }
                    renderer =
                        Some(Renderer::start(format, &columns, out).map_err(RunError::Output)?);
                }
                Event::Rows(rows) => {
                    if let Some(r) = renderer.as_mut() {
                        r.rows(&rows, out).map_err(RunError::Output)?;
                        out.flush().map_err(RunError::Output)?;
                    }
                }
                Event::Complete {
                    tag,
                    affected,
                    micros: m,
                    ..
                } => {
                    micros += m;
                    match renderer.take() {
                        Some(r) => r.finish(out).map_err(RunError::Output)?,
                        None if format == Format::Table => {
                            writeln!(out, "{tag} {affected}").map_err(RunError::Output)?
                        }
                        None => {}
                    }
                    out.flush().map_err(RunError::Output)?;
                }
            }
        }
        match stream.take_error() {
            Some(e) => Err(classify(e)),
            None => Ok(micros),
        }
    };
    let result = render();
    if matches!(result, Err(RunError::Output(_))) {
        // Nobody reads the rest: stop the query rather than drain it.
        if let Some(c) = lock_running(running).as_ref() {
            let _ = c.cancel();
        }
    }
    drop(stream); // reads to Ready
    *lock_running(running) = None;
    result
}

/// The error report: `ERROR: message`, then (when the server gave a
/// position) the statement's line with a caret under the column, then (when
/// the input has a name) where that is in the input.
fn format_error(err: &RunError, text: Option<&str>, origin: Option<(&str, Pos)>) -> String {
    let (message, line, column) = match err {
        RunError::Statement(ClientError::Server {
            message,
            line,
            column,
            ..
        }) => (message.clone(), *line as usize, *column as usize),
        RunError::Statement(e) => (e.to_string(), 0, 0),
        RunError::Connection(e @ ClientError::Connect { .. }) => (e.to_string(), 0, 0),
        RunError::Connection(e) => (format!("{e} (connection to the server lost)"), 0, 0),
        RunError::Output(e) => (format!("cannot write the results: {e}"), 0, 0),
        RunError::Meta(m) => (m.clone(), 0, 0),
    };
    let mut report = format!("ERROR: {message}\n");
    if let Some(text_line) = text
        .filter(|_| line > 0)
        .and_then(|t| t.lines().nth(line - 1))
    {
        report.push_str(text_line);
        report.push('\n');
        if column > 0 {
            let caret: String = text_line
                .chars()
                .take(column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            report.push_str(&caret);
            // Fewer characters than the column: the position is past the end.
            report.extend(std::iter::repeat_n(
                ' ',
                (column - 1).saturating_sub(text_line.chars().count()),
            ));
            report.push_str("^\n");
        }
    }
    if let Some((name, start)) = origin {
        let at = if line == 0 {
            start
        } else if line == 1 {
            Pos {
                line: start.line,
                column: start.column + column.max(1) - 1,
            }
        } else {
            Pos {
                line: start.line + line - 1,
                column: column.max(1),
            }
        };
        report.push_str(&format!("at {name}:{}:{}\n", at.line, at.column));
    }
    report
}

fn print_error(err: &RunError, text: Option<&str>, origin: Option<(&str, Pos)>) {
    if let RunError::Output(e) = err {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return; // the reader went away (e.g. `| head`): nothing to say
        }
    }
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_all(format_error(err, text, origin).as_bytes());
    let _ = stderr.flush();
}

/// Runs statements from `input` one at a time until the end or the first error.
fn run_batch(session: &mut Session, mut input: Input) -> u8 {
    let code = batch_loop(session, &mut input);
    session.close();
    code
}

fn batch_loop(session: &mut Session, input: &mut Input) -> u8 {
    let mut splitter = Splitter::new();
    let mut line = String::new();
    loop {
        line.clear();
        let statements = match input.reader.read_line(&mut line) {
            Ok(0) => splitter.finish(),
            Ok(_) => {
                if splitter.is_empty() && meta::is_meta(&line) {
                    let at = splitter.position();
                    splitter.skip(&line);
                    let origin = input.name.as_deref().map(|n| (n, at));
                    match meta::run(session, &line) {
                        Ok(meta::Outcome::Continue) => continue,
                        Ok(meta::Outcome::Quit) => return EXIT_OK,
                        Err((e, text)) => {
                            print_error(&e, text.as_deref(), origin);
                            return e.exit_code();
                        }
                    }
                }
                splitter.push(&line)
            }
            Err(e) => {
                let name = input.name.as_deref().unwrap_or("-c");
                eprintln!("cohortdb shell: cannot read {name}: {e}");
                return EXIT_FAILED;
            }
        };
        for stmt in &statements {
            if let Err(e) = run_statement(session, stmt) {
                let origin = input.name.as_deref().map(|n| (n, stmt.pos));
                print_error(&e, Some(&stmt.text), origin);
                return e.exit_code();
            }
        }
        if line.is_empty() {
            return EXIT_OK;
        }
    }
}

fn run_statement(session: &mut Session, stmt: &Statement) -> Result<(), RunError> {
    session.execute(&stmt.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(line: u32, column: u32) -> RunError {
        RunError::Statement(ClientError::Server {
            code: 1002,
            message: format!("{line}:{column}: table profiles has no column shoe_size"),
            line,
            column,
        })
    }

    #[test]
    fn errors_show_the_line_and_a_caret_under_the_column() {
        let text = "SELECT COUNT(*) FROM profiles WHERE shoe_size > 40";
        assert_eq!(
            format_error(&server_error(1, 37), Some(text), None),
            "ERROR: 1:37: table profiles has no column shoe_size\n\
             SELECT COUNT(*) FROM profiles WHERE shoe_size > 40\n\
             \x20                                   ^\n"
        );
        let text = "SELECT COUNT(*)\nFROM profiles\n\tWHERE age >";
        assert_eq!(
            format_error(
                &server_error(3, 13),
                Some(text),
                Some(("q.sql", Pos { line: 5, column: 1 }))
            ),
            "ERROR: 3:13: table profiles has no column shoe_size\n\
             \tWHERE age >\n\
             \t           ^\n\
             at q.sql:7:13\n"
        );
        // A statement that starts mid-line: the first line's column shifts.
        assert!(format_error(
            &server_error(1, 3),
            Some("SELECT x"),
            Some((
                "<stdin>",
                Pos {
                    line: 2,
                    column: 11
                }
            ))
        )
        .ends_with("at <stdin>:2:13\n"));
        // No position: just the message (and the statement's start).
        let e = RunError::Statement(ClientError::Server {
            code: 3004,
            message: "the query was cancelled".into(),
            line: 0,
            column: 0,
        });
        assert_eq!(
            format_error(&e, Some("SELECT 1"), None),
            "ERROR: the query was cancelled\n"
        );
        assert_eq!(
            format_error(
                &e,
                Some("SELECT 1"),
                Some(("f", Pos { line: 4, column: 2 }))
            ),
            "ERROR: the query was cancelled\nat f:4:2\n"
        );
    }

    #[test]
    fn closing_codes_mean_the_connection_is_lost() {
        let e = |code| ClientError::Server {
            code,
            message: String::new(),
            line: 0,
            column: 0,
        };
        assert!(matches!(classify(e(1001)), RunError::Statement(_)));
        assert!(matches!(classify(e(3006)), RunError::Connection(_)));
        assert!(matches!(
            classify(ClientError::Closed),
            RunError::Connection(_)
        ));
        assert_eq!(
            RunError::Connection(ClientError::Closed).exit_code(),
            EXIT_CONNECTION
        );
        assert_eq!(RunError::Meta(String::new()).exit_code(), EXIT_FAILED);
    }

    #[test]
    fn timing_shows_client_and_server_milliseconds() {
        assert_eq!(
            timing_line(Duration::from_micros(1500), 250),
            "Time: 1.500 ms (server 0.250 ms)"
        );
    }
}
