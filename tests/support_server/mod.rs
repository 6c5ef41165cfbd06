//! Starts the real `cohortdb serve` binary on a free loopback port with a
//! temporary data directory, and stops it (SIGTERM, then wait) when dropped.
#![allow(dead_code)]

use cohortdb::client::{Client, ConnectOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub addr: String,
    /// The PostgreSQL wire address, when started with `--pg-listen`.
    pub pg_addr: Option<String>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a new temporary data directory.
    pub fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// A server on `dir` (which outlives it).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cohortdb"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cohortdb serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .next()
            .expect("a ready line")
            .expect("readable stdout");
        let addr = ready
            .split("ready on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {ready}"))
            .to_string();
        let pg_addr = ready
            .split("PostgreSQL wire on ")
            .nth(1)
            .map(|r| r.trim_end_matches(')').to_string());
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            pg_addr,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.addr, &ConnectOptions::default()).expect("connect")
    }

    pub fn client_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, cohortdb::client::ClientError> {
        Client::connect(
            &self.addr,
            &ConnectOptions {
                user: user.into(),
                password: password.into(),
                ..ConnectOptions::default()
            },
        )
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for the server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop();
        }
    }
}
