//! The interactive shell: rustyline line editing with persistent history,
//! statements over several lines (`cohort> `, then `     -> `), meta-commands,
//! errors that do not end the session, Ctrl-C to cancel a running statement,
//! and a reconnect on the next statement when the connection was lost.

use super::split::Splitter;
use super::{meta, print_error, Session, EXIT_FAILED, EXIT_OK};
use crate::client::Canceller;
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const PROMPT: &str = "cohort> ";
const CONTINUATION: &str = "     -> ";
const HISTORY_SIZE: usize = 1000;

/// The history file: `$COHORTDB_HISTORY`, else `~/.cohortdb_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COHORTDB_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".cohortdb_history"))
}

/// Whether an entry may go into the history file (not one with a password).
fn keep_in_history(entry: &str) -> bool {
    !entry.to_ascii_uppercase().contains("PASSWORD")
}

/// On Ctrl-C, cancels the running query (if any). Runs a small Tokio
/// runtime on its own thread for the signal; without it Ctrl-C keeps its
/// default effect. While rustyline reads a line, Ctrl-C is a key, not a signal.
fn cancel_on_ctrl_c(running: Arc<Mutex<Option<Canceller>>>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("shell-ctrl-c".into())
        .spawn(move || {
            rt.block_on(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    let guard = super::lock_running(&running);
                    if let Some(c) = guard.as_ref() {
                        let _ = c.cancel();
                    }
                }
            })
        });
}

/// Runs the interactive loop until `\q` or Ctrl-D.
pub fn run(session: &mut Session) -> u8 {
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| b.auto_add_history(false).build())
        .unwrap_or_default();
    let mut editor = match DefaultEditor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cohortdb shell: cannot start line editing: {e}");
            session.close();
            return EXIT_FAILED;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path); // a missing or unreadable history is fine
    }
    cancel_on_ctrl_c(session.running.clone());
    if let Some(client) = &session.client {
        println!(
            "cohortdb shell {} connected to {} at {} as {}.",
            env!("CARGO_PKG_VERSION"),
            client.server,
            session.addr,
            client.role
        );
    }
    println!("Type \\help for help, \\q to quit. End statements with ';'.");

    let mut splitter = Splitter::new();
    let mut entry = String::new(); // what was typed for the pending statement(s)
    loop {
        let prompt = if splitter.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C: forget the statement being typed.
                splitter.reset();
                entry.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("cohortdb shell: cannot read input: {e}");
                break;
            }
        };
        if splitter.is_empty() && meta::is_meta(&line) {
            remember(&mut editor, history.as_ref(), line.trim());
            match meta::run(session, &line) {
                Ok(meta::Outcome::Continue) => {}
                Ok(meta::Outcome::Quit) => break,
                Err((e, text)) => print_error(&e, text.as_deref(), None),
            }
            continue;
        }
        entry.push_str(&line);
        entry.push('\n');
        let statements = splitter.push(&format!("{line}\n"));
        if splitter.is_empty() {
            let typed = std::mem::take(&mut entry);
            let typed = typed.trim();
            if !typed.is_empty() && keep_in_history(typed) {
                remember(&mut editor, history.as_ref(), typed);
            }
        }
        for stmt in statements {
            if let Err(e) = session.execute(&stmt.text) {
                print_error(&e, Some(&stmt.text), None);
            }
        }
    }
    session.close();
    EXIT_OK
}

/// Adds an entry to the history and saves the file (errors ignored).
fn remember(editor: &mut DefaultEditor, path: Option<&PathBuf>, entry: &str) {
    if editor.add_history_entry(entry).is_ok() {
        if let Some(p) = path {
            let _ = editor.save_history(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_the_history() {
        assert!(keep_in_history("SELECT COUNT(*) FROM profiles"));
        assert!(!keep_in_history("CREATE USER ann password 'x' ROLE admin"));
    }
}
