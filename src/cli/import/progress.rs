//! What the importer shows while it runs: on a terminal, an indicatif
//! progress bar over the bytes of the input (with rows/s and an ETA; a
//! spinner when the size is unknown, e.g. standard input); elsewhere nothing
//! until the summary. Rejected-row messages go to stderr either way, above
//! the bar.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
}

impl Progress {
    /// A progress display for an input of `total` bytes (if known); a bar
    /// only when stderr is a terminal.
    pub fn new(total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(total) => (
                    ProgressBar::new(total),
                    "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {msg} ETA {eta}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{spinner} [{elapsed_precise}] {bytes} {msg}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            start: Instant::now(),
        }
    }

    /// The input has been read up to `position` bytes and `imported` rows are in.
    pub fn update(&self, position: u64, imported: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            let secs = self.start.elapsed().as_secs_f64().max(1e-6);
            bar.set_message(format!(
                "{imported} row{}, {:.0} rows/s",
                if imported == 1 { "" } else { "s" },
                imported as f64 / secs
            ));
        }
    }

    /// Prints a line on stderr (above the bar).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Time since the display was created (the start of the import).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
