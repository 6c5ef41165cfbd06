//! End-to-end tests of `cohortdb serve`, always through the real binary
//! (`support_server::Server`), with the Rust client and with a raw TCP client
//! that writes frames byte by byte (docs/protocol.md):
//!
//! - authentication from `--auth FILE`: right password connects and runs
//!   statements, a wrong one gets 4001, anything before Hello gets 4002;
//! - 32 concurrent connections mixing writes and counts: every count agrees
//!   with the writes acknowledged before it was asked and with every count
//!   seen before it;
//! - data survives a clean SIGTERM shutdown and a SIGKILL (durability
//!   `always`: every acknowledged write is there, the in-flight one is whole
//!   or absent);
//! - malformed, oversized and half-sent frames and oversized statements get
//!   their documented error codes and never disturb another connection;
//! - connection, idle, query-time and Cancel limits end in their codes and
//!   leave the connection open when the protocol says so;
//! - SIGTERM with clients connected: they get 3007 or a close, the server
//!   exits 0 promptly.
//!
//! Several tests reproduce bugs these tests found (all fixed since) and keep
//! them fixed; every test here runs in CI (none is ignored).
//!
//! Every test stops the servers it starts (`Server` also sends SIGTERM when
//! dropped). Waits are bounded: raw reads time out after `READ_TIMEOUT` and
//! process exits are awaited with a deadline, so a hang fails a test rather
//! than the suite. Sleeps only poll such conditions (an exit, an
//! acknowledgement count, a socket queue that stopped growing); the idle test
//! waits for the (1 s) idle timeout it checks. Timeout and Cancel are made
//! deterministic by volume, not by timing: the request streams ~2M rows, far
//! more than every buffer between server and client holds.

mod support_server;

use cohortdb::client::{Client, ClientError, ConnectOptions, Event};
use cohortdb::protocol::frame::encode_frame;
use cohortdb::protocol::message::{self, Message};
use cohortdb::protocol::{read_frame, FrameError};
use cohortdb::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};
use support_server::Server;

/// How long a raw client waits for a frame before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERMed server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A client that speaks the protocol by hand, to send what the Rust client
/// never would.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    /// Connected, nothing sent.
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    /// Connected and welcomed (no users defined).
    fn welcomed(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(&hello("", ""));
        match raw.read() {
            Ok(Message::Welcome { .. }) => raw,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    fn send(&mut self, m: &Message) {
        let (kind, payload) = m.encode();
        self.bytes(&encode_frame(kind, &payload));
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send bytes");
        self.stream.flush().unwrap();
    }

    fn read(&mut self) -> Result<Message, FrameError> {
        let frame = read_frame(&mut self.stream, 64 << 20)?;
        Ok(Message::decode(frame.kind, &frame.payload)
            .unwrap_or_else(|e| panic!("the server sent an undecodable frame: {e}")))
    }

    /// The next frame is Error `code`; returns its message.
    fn expect_error(&mut self, code: u16, context: &str) -> String {
        match self.read() {
            Ok(Message::Error {
                code: got, message, ..
            }) => {
                assert_eq!(got, code, "{context}: {message}");
                message
            }
            other => panic!("{context}: expected Error {code}, got {other:?}"),
        }
    }

    /// The server closed the connection (nothing more arrives).
    fn expect_closed(&mut self, context: &str) {
        match self.read() {
            Err(FrameError::Closed) => {}
            other => panic!("{context}: expected the server to close, got {other:?}"),
        }
    }

    /// Error `code` is the last frame, then the connection closes.
    fn expect_closing_error(&mut self, code: u16, context: &str) -> String {
        let message = self.expect_error(code, context);
        self.expect_closed(context);
        message
    }
}

fn hello(user: &str, password: &str) -> Message {
    Message::Hello {
        version: message::PROTOCOL_VERSION,
        client: "tests/server.rs raw".into(),
        user: user.into(),
        password: password.into(),
    }
}

fn query(text: &str) -> Message {
    Message::Query { text: text.into() }
}

/// The single INT a one-row, one-column statement returns.
fn count(c: &mut Client, sql: &str) -> i64 {
    let results = c.execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    match results.last().map(|r| r.rows.as_slice()) {
        Some([row]) => match row.as_slice() {
            [Value::Int(n)] => *n,
            other => panic!("{sql}: expected one INT, got {other:?}"),
        },
        other => panic!("{sql}: expected one row, got {other:?}"),
    }
}

fn server_code(e: &ClientError) -> u16 {
    e.code()
        .unwrap_or_else(|| panic!("expected a server Error, got {e:?}"))
}

/// Sends SIGTERM without waiting.
fn terminate(server: &Server) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Waits (polling) until the server exits or `limit` passes.
fn wait_exit(server: &mut Server, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then the exit status within [`EXIT_TIMEOUT`]; a server that does
/// not exit is killed and the test fails.
fn stop_within_deadline(server: &mut Server, context: &str) -> ExitStatus {
    terminate(server);
    let started = Instant::now();
    match wait_exit(server, EXIT_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = server.child.kill();
            let _ = server.child.wait();
            panic!(
                "{context}: the server did not exit within {:?} of SIGTERM (killed it)",
                started.elapsed()
            );
        }
    }
}

/// Reads frames until an Error; returns it and the frame after it.
fn error_and_next(raw: &mut Raw) -> (u16, Result<Message, FrameError>) {
    loop {
        match raw.read() {
            Ok(Message::Error { code, .. }) => return (code, raw.read()),
            Ok(_) => {}
            Err(e) => panic!("connection ended without an Error: {e:?}"),
        }
    }
}

/// Creates `t (id TEXT PRIMARY KEY, pad TEXT)` with `rows` profiles, inserted
/// `per_insert` at a time (each INSERT is one statement of one request).
fn fill_big_table(c: &mut Client, rows: usize, per_insert: usize) {
    c.execute("CREATE TABLE t (id TEXT PRIMARY KEY, pad TEXT)")
        .unwrap();
    let mut start = 0;
    while start < rows {
        let end = (start + per_insert).min(rows);
        let mut sql = String::with_capacity((end - start) * 40 + 64);
        sql.push_str("INSERT INTO t (id, pad) VALUES ");
        for i in start..end {
            if i > start {
                sql.push(',');
            }
            sql.push_str(&format!("('r{i:07}','padding-{:05}')", i % 100_000));
        }
        let r = c.execute(&sql).unwrap();
        assert_eq!(r[0].affected, (end - start) as u64);
        start = end;
    }
}

// ---------------------------------------------------------------- 1. auth

#[test]
fn auth_file_users_authenticate_and_nothing_comes_before_hello() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = tmp.path().join("users.txt");
    std::fs::write(
        &auth,
        "# test users\nann:admin:secret\nbob:analyst:hunter2\n",
    )
    .unwrap();
    let mut server = Server::start(&["--auth", auth.to_str().unwrap()]);

    // The right password connects, with the role from the file, and runs statements.
    let mut ann = server.client_as("ann", "secret").expect("ann connects");
    assert_eq!(ann.role, "admin");
    ann.execute("CREATE TABLE t (id TEXT PRIMARY KEY); INSERT INTO t (id) VALUES ('a'), ('b')")
        .unwrap();
    assert_eq!(count(&mut ann, "SELECT COUNT(*) FROM t"), 2);
    let mut bob = server.client_as("bob", "hunter2").expect("bob connects");
    assert_eq!(bob.role, "analyst");
    assert_eq!(count(&mut bob, "SELECT COUNT(*) FROM t"), 2);
    drop(bob);

    // Wrong password, missing password, unknown user, no user: 4001.
    for (user, password) in [
        ("ann", "wrong"),
        ("ann", ""),
        ("ann", "secret "),
        ("nobody", "secret"),
        ("", ""),
    ] {
        match server.client_as(user, password) {
            Err(ClientError::Server { code: 4001, .. }) => {}
            Err(e) => panic!("{user}/{password}: expected 4001, got {e:?}"),
            Ok(_) => panic!("{user}/{password}: connected with a wrong password"),
        }
    }
    // 4001 is the last frame: the connection is closed after it.
    let mut raw = Raw::connect(&server.addr);
    raw.send(&hello("ann", "wrong"));
    raw.expect_closing_error(4001, "Hello with a wrong password");

    // Anything but Hello first: 4002, then the connection is closed.
    for (what, first) in [
        ("Query", query("SELECT COUNT(*) FROM t")),
        ("Ping", Message::Ping),
        (
            "SetOption",
            Message::SetOption {
                name: "timeout_ms".into(),
                value: "5".into(),
            },
        ),
    ] {
        let mut raw = Raw::connect(&server.addr);
        raw.send(&first);
        raw.expect_closing_error(4002, &format!("{what} before Hello"));
    }

    // The authenticated session was not disturbed by any of this.
    assert_eq!(count(&mut ann, "SELECT COUNT(*) FROM t"), 2);
    drop(ann);
    assert!(server.stop().success(), "clean shutdown exits 0");
}

// ---------------------------------------------------------- 2. concurrency

#[test]
fn concurrent_writers_see_counts_consistent_with_acknowledged_writes() {
    const CONNECTIONS: usize = 32;
    const BATCHES: usize = 20;
    const ROWS: i64 = 5;
    const TOTAL: i64 = CONNECTIONS as i64 * BATCHES as i64 * ROWS;

    let mut server = Server::start(&[]);
    server
        .client()
        .execute("CREATE TABLE t (id TEXT PRIMARY KEY, owner INT)")
        .unwrap();
    // Rows whose INSERT was sent / acknowledged, and the largest global count
    // any finished query returned.
    let attempted = AtomicI64::new(0);
    let acknowledged = AtomicI64::new(0);
    let observed = AtomicI64::new(0);
    let counts_checked = AtomicUsize::new(0);
    let all_connected = Barrier::new(CONNECTIONS);
    let addr = server.addr.clone();
    let started = Instant::now();
    std::thread::scope(|s| {
        for k in 0..CONNECTIONS {
            let (addr, attempted, acknowledged, observed, counts_checked, all_connected) = (
                &addr,
                &attempted,
                &acknowledged,
                &observed,
                &counts_checked,
                &all_connected,
            );
            s.spawn(move || {
                let mut c = Client::connect(addr, &ConnectOptions::default())
                    .unwrap_or_else(|e| panic!("connection {k}: {e}"));
                all_connected.wait();
                let mut own = 0i64;
                let mut last_global = 0i64;
                let global = |c: &mut Client, last_global: &mut i64| {
                    // Every write acknowledged before the query is sent, and
                    // every count returned before it, bound it from below.
                    let floor = acknowledged
                        .load(Ordering::SeqCst)
                        .max(observed.load(Ordering::SeqCst));
                    let g = count(c, "SELECT COUNT(*) FROM t");
                    let ceiling = attempted.load(Ordering::SeqCst);
                    assert!(
                        g >= floor,
                        "connection {k}: count {g} < {floor} acknowledged/seen"
                    );
                    assert!(
                        g <= ceiling,
                        "connection {k}: count {g} > {ceiling} attempted"
                    );
                    assert!(
                        g >= *last_global,
                        "connection {k}: count went back from {last_global} to {g}"
                    );
                    *last_global = g;
                    observed.fetch_max(g, Ordering::SeqCst);
                    counts_checked.fetch_add(1, Ordering::Relaxed);
                };
                for b in 0..BATCHES {
                    // Odd connections count before writing, even ones after.
                    if k % 2 == 1 {
                        global(&mut c, &mut last_global);
                    }
                    let values: Vec<String> = (0..ROWS)
                        .map(|i| format!("('c{k}-b{b}-{i}', {k})"))
                        .collect();
                    attempted.fetch_add(ROWS, Ordering::SeqCst);
                    let r = c
                        .execute(&format!(
                            "INSERT INTO t (id, owner) VALUES {}",
                            values.join(", ")
                        ))
                        .unwrap_or_else(|e| panic!("connection {k} batch {b}: {e}"));
                    assert_eq!((r[0].tag.as_str(), r[0].affected), ("INSERT", ROWS as u64));
                    own += ROWS;
                    acknowledged.fetch_add(ROWS, Ordering::SeqCst);
                    // Its own rows, counted after the acknowledgement: all there, no more.
                    assert_eq!(
                        count(&mut c, &format!("SELECT COUNT(*) FROM t WHERE owner = {k}")),
                        own,
                        "connection {k} after batch {b}"
                    );
                    counts_checked.fetch_add(1, Ordering::Relaxed);
                    if k % 2 == 0 {
                        global(&mut c, &mut last_global);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(acknowledged.load(Ordering::SeqCst), TOTAL);
    assert_eq!(
        counts_checked.load(Ordering::Relaxed),
        CONNECTIONS * BATCHES * 2
    );
    let mut c = server.client();
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), TOTAL);
    for k in [0, 7, 31] {
        assert_eq!(
            count(&mut c, &format!("SELECT COUNT(*) FROM t WHERE owner = {k}")),
            BATCHES as i64 * ROWS
        );
    }
    drop(c);
    eprintln!("concurrency: {CONNECTIONS} connections x {BATCHES} batches in {elapsed:?}");
    assert!(server.stop().success(), "clean shutdown exits 0");
}

// ------------------------------------------------------------ 3. restarts

#[test]
fn data_survives_a_clean_shutdown_and_a_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    // Write, SIGTERM (clean shutdown with checkpoint), restart: all there.
    let mut server = Server::start_in(&dir, &[]);
    let mut c = server.client();
    c.execute("CREATE TABLE t (id TEXT PRIMARY KEY, batch TEXT, n INT)")
        .unwrap();
    for b in 0..4 {
        let values: Vec<String> = (0..25)
            .map(|i| format!("('r{}', 'r', {})", b * 25 + i, b * 25 + i))
            .collect();
        c.execute(&format!(
            "INSERT INTO t (id, batch, n) VALUES {}",
            values.join(", ")
        ))
        .unwrap();
    }
    c.execute("UPDATE t SET n = 1000 WHERE id = 'r7'; DELETE FROM t WHERE id = 'r8'")
        .unwrap();
    drop(c);
    assert!(server.stop().success(), "SIGTERM: clean shutdown exits 0");

    let mut server = Server::start_in(&dir, &[]);
    let mut c = server.client();
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), 99);
    assert_eq!(count(&mut c, "SELECT n FROM t WHERE id = 'r7'"), 1000);
    assert_eq!(count(&mut c, "SELECT n FROM t WHERE id = 'r42'"), 42);
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t WHERE id = 'r8'"), 0);
    assert_eq!(count(&mut c, "SELECT SUM(n) FROM t"), 4950 - 7 - 8 + 1000);
    drop(c);

    // A writer acknowledges batches of 10 while the server is SIGKILLed.
    const ROWS: usize = 10;
    const MIN_ACKED: usize = 25;
    let acked = AtomicUsize::new(0);
    let addr = server.addr.clone();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut c = Client::connect(&addr, &ConnectOptions::default()).unwrap();
            for b in 0..100_000usize {
                let values: Vec<String> = (0..ROWS)
                    .map(|i| format!("('w{b}-{i}', 'w{b:06}', {i})"))
                    .collect();
                let sent = c.execute(&format!(
                    "INSERT INTO t (id, batch, n) VALUES {}",
                    values.join(", ")
                ));
                match sent {
                    Ok(_) => acked.store(b + 1, Ordering::SeqCst),
                    Err(_) => return b,
                }
            }
            panic!("the server was never killed");
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.load(Ordering::SeqCst) < MIN_ACKED {
            assert!(Instant::now() < deadline, "too few acknowledged writes");
            std::thread::sleep(Duration::from_millis(2));
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().unwrap();
        let failed_at = writer.join().unwrap();
        assert_eq!(failed_at, acked.load(Ordering::SeqCst));
    });
    let acked = acked.load(Ordering::SeqCst);

    let mut server = Server::start_in(&dir, &[]);
    let mut c = server.client();
    let groups = c
        .execute("SELECT batch, COUNT(*) FROM t GROUP BY batch")
        .unwrap()
        .remove(0)
        .rows;
    let groups: BTreeMap<String, i64> = groups
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Text(batch), Value::Int(n)] => (batch.clone(), *n),
            other => panic!("unexpected group {other:?}"),
        })
        .collect();
    assert_eq!(
        groups.get("r"),
        Some(&99),
        "data from before the clean restart"
    );
    for b in 0..acked {
        assert_eq!(
            groups.get(&format!("w{b:06}")),
            Some(&(ROWS as i64)),
            "acknowledged batch {b} of {acked}"
        );
    }
    // The batch in flight at the kill is whole or absent; nothing after it.
    let in_flight = groups.get(&format!("w{acked:06}")).copied().unwrap_or(0);
    assert!(
        in_flight == 0 || in_flight == ROWS as i64,
        "batch in flight has {in_flight} rows"
    );
    let expected_groups = 1 + acked + usize::from(in_flight > 0);
    assert_eq!(groups.len(), expected_groups, "{groups:?}");
    drop(c);
    eprintln!(
        "kill -9 after {acked} acknowledged batches; in-flight batch present: {}",
        in_flight > 0
    );
    assert!(server.stop().success());
}

// ---------------------------------------------------- 4. malformed frames

#[test]
fn malformed_frames_get_3000_and_close_only_their_own_connection() {
    let mut server = Server::start(&[]);
    let mut normal = server.client();
    normal
        .execute(
            "CREATE TABLE t (id TEXT PRIMARY KEY); INSERT INTO t (id) VALUES ('a'), ('b'), ('c')",
        )
        .unwrap();
    let good = query("SELECT COUNT(*) FROM t").encode().1;
    let with_trailing_byte = [good.as_slice(), &[0]].concat();
    let mut long_length = good.clone();
    long_length[..4].copy_from_slice(&1000u32.to_le_bytes());
    let mut invalid_utf8 = 4u32.to_le_bytes().to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    let set_option = Message::SetOption {
        name: "timeout_ms".into(),
        value: "10".into(),
    }
    .encode()
    .1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown message type", encode_frame(0x7f, &[])),
        (
            "unknown message type with a payload",
            encode_frame(0x42, b"abc"),
        ),
        (
            "truncated Query",
            encode_frame(message::QUERY, &good[..good.len() - 3]),
        ),
        ("Query of 2 bytes", encode_frame(message::QUERY, &good[..2])),
        (
            "Query whose text length runs past the payload",
            encode_frame(message::QUERY, &long_length),
        ),
        (
            "Query with a trailing byte",
            encode_frame(message::QUERY, &with_trailing_byte),
        ),
        (
            "Query text that is not UTF-8",
            encode_frame(message::QUERY, &invalid_utf8),
        ),
        (
            "truncated SetOption",
            encode_frame(message::SET_OPTION, &set_option[..set_option.len() - 1]),
        ),
        ("Ping with a payload", encode_frame(message::PING, &[1])),
        ("zero-length frame", vec![0, 0, 0, 0, 0x02]),
        (
            "garbage",
            vec![
                0x09, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37, 0xff, 0x01,
            ],
        ),
        ("a second Hello", {
            let (k, p) = hello("", "").encode();
            encode_frame(k, &p)
        }),
        (
            "a server message (Ready)",
            encode_frame(message::READY, &[]),
        ),
        ("a server message (Error)", {
            let (k, p) = Message::Error {
                code: 1,
                message: "x".into(),
                line: 0,
                column: 0,
            }
            .encode();
            encode_frame(k, &p)
        }),
    ];
    for (what, bytes) in &cases {
        assert_eq!(
            count(&mut normal, "SELECT COUNT(*) FROM t"),
            3,
            "before {what}"
        );
        let mut raw = Raw::welcomed(&server.addr);
        raw.bytes(bytes);
        raw.expect_closing_error(3000, what);
        assert_eq!(
            count(&mut normal, "SELECT COUNT(*) FROM t"),
            3,
            "after {what}"
        );
    }
    // Instead of Hello: a wrong magic, an unsupported version, an unknown
    // type, a Hello with bytes left over are 3000 too.
    let (_, good_hello) = hello("", "").encode();
    let mut bad_magic = good_hello.clone();
    bad_magic[..6].copy_from_slice(b"HTTP/1");
    let version = |v: u16| {
        let mut h = good_hello.clone();
        h[6..8].copy_from_slice(&v.to_le_bytes());
        h
    };
    let first_frames: Vec<(&str, Vec<u8>)> = vec![
        (
            "Hello with a wrong magic",
            encode_frame(message::HELLO, &bad_magic),
        ),
        (
            "Hello for a version after this server's",
            encode_frame(message::HELLO, &version(message::PROTOCOL_VERSION + 1)),
        ),
        (
            "Hello for version 0",
            encode_frame(message::HELLO, &version(0)),
        ),
        (
            "Hello with a trailing byte",
            encode_frame(message::HELLO, &[good_hello.as_slice(), &[0]].concat()),
        ),
        (
            "truncated Hello",
            encode_frame(message::HELLO, &good_hello[..good_hello.len() - 1]),
        ),
        ("unknown type instead of Hello", encode_frame(0x7f, &[])),
    ];
    for (what, bytes) in &first_frames {
        let mut raw = Raw::connect(&server.addr);
        raw.bytes(bytes);
        raw.expect_closing_error(3000, what);
    }
    assert_eq!(count(&mut normal, "SELECT COUNT(*) FROM t"), 3);
    // A version 1 session is welcomed as version 1, and may not send InsertRows (a version 2 message).
    let mut old = Raw::connect(&server.addr);
    old.bytes(&encode_frame(message::HELLO, &version(1)));
    assert!(matches!(
        old.read(),
        Ok(Message::Welcome { version: 1, .. })
    ));
    old.send(&Message::InsertRows {
        table: "t".into(),
        columns: vec![],
        coded: vec![],
        rows: vec![0, 0, 0, 0],
    });
    let said = old.expect_closing_error(3000, "InsertRows in a version 1 session");
    assert!(said.contains("version 2"), "{said}");
    // A version 2 session may send InsertRows, but no dictionary-coded column (version 3).
    let mut v2 = Raw::connect(&server.addr);
    v2.bytes(&encode_frame(message::HELLO, &version(2)));
    assert!(matches!(v2.read(), Ok(Message::Welcome { version: 2, .. })));
    v2.send(&Message::InsertRows {
        table: "t".into(),
        columns: vec![message::ColumnInfo {
            name: "id".into(),
            ty: cohortdb::ColumnType::Text,
        }],
        coded: vec![true],
        rows: vec![0, 0, 0, 0],
    });
    let said = v2.expect_closing_error(3000, "coded InsertRows in a version 2 session");
    assert!(said.contains("version 3"), "{said}");
    assert_eq!(count(&mut normal, "SELECT COUNT(*) FROM t"), 3);
    // The same bytes sent while another raw client waits idle do not reach it.
    let mut bystander = Raw::welcomed(&server.addr);
    let mut bad = Raw::welcomed(&server.addr);
    bad.bytes(&encode_frame(0x7f, &[]));
    bad.expect_closing_error(3000, "unknown type next to a bystander");
    bystander.send(&Message::Ping);
    assert!(matches!(bystander.read(), Ok(Message::Pong)));
    // New connections are still welcome.
    let mut fresh = server.client();
    assert_eq!(count(&mut fresh, "SELECT COUNT(*) FROM t"), 3);
    normal.ping().unwrap();
    drop((normal, fresh, bystander));
    assert!(server.stop().success());
}

#[test]
fn oversized_frames_and_statements_and_half_sent_frames() {
    let mut server = Server::start(&["--max-frame-bytes", "1024", "--max-statement-bytes", "100"]);
    let mut normal = server.client();
    normal
        .execute("CREATE TABLE t (id TEXT PRIMARY KEY); INSERT INTO t (id) VALUES ('a'), ('b')")
        .unwrap();

    // A frame header announcing 1 MiB: 3001 and closed, after Hello or instead of it.
    let mut header = ((1u32 << 20) + 1).to_le_bytes().to_vec();
    header.push(message::QUERY);
    let mut raw = Raw::welcomed(&server.addr);
    raw.bytes(&header);
    raw.expect_closing_error(3001, "1 MiB frame after Hello");
    let mut raw = Raw::connect(&server.addr);
    raw.bytes(&header);
    raw.expect_closing_error(3001, "1 MiB frame instead of Hello");
    // One byte over the limit is refused; exactly the limit is a frame.
    let mut raw = Raw::welcomed(&server.addr);
    let mut over = 1025u32.to_le_bytes().to_vec();
    over.push(message::QUERY);
    raw.bytes(&over);
    raw.expect_closing_error(3001, "frame of 1025 bytes");
    assert_eq!(count(&mut normal, "SELECT COUNT(*) FROM t"), 2);
    // The Rust client sending a whole 2,000-byte Query frame: 3001 too.
    let mut big = server.client();
    let text = format!("SELECT COUNT(*) FROM t{}", " ".repeat(2_000));
    match big.execute(&text) {
        Err(ClientError::Server { code: 3001, .. }) => {}
        other => panic!("whole 2,000-byte frame: expected Error 3001, got {other:?}"),
    }
    drop(big);
    assert_eq!(count(&mut normal, "SELECT COUNT(*) FROM t"), 2);

    // Statements: 100 bytes run, 200 bytes get 3002 and the connection stays open.
    let at_limit = format!("SELECT COUNT(*) FROM t{}", " ".repeat(100 - 22));
    assert_eq!(at_limit.len(), 100);
    assert_eq!(count(&mut normal, &at_limit), 2);
    let too_long = format!("SELECT COUNT(*) FROM t{}", " ".repeat(200 - 22));
    let e = normal.execute(&too_long).unwrap_err();
    assert_eq!(server_code(&e), 3002, "{e}");
    assert_eq!(
        count(&mut normal, "SELECT COUNT(*) FROM t"),
        2,
        "usable after 3002"
    );
    let mut raw = Raw::welcomed(&server.addr);
    raw.send(&query(&too_long));
    raw.expect_error(3002, "200-byte statement");
    assert!(
        matches!(raw.read(), Ok(Message::Ready)),
        "3002 ends the request with Ready"
    );
    raw.send(&query("SELECT COUNT(*) FROM t"));
    assert!(matches!(raw.read(), Ok(Message::Schema { .. })));
    drop(raw);

    // Connections that end in the middle of a frame, before and after Hello.
    for welcomed in [false, true] {
        let mut raw = if welcomed {
            Raw::welcomed(&server.addr)
        } else {
            Raw::connect(&server.addr)
        };
        raw.bytes(&[0x10, 0x00, 0x00]);
        raw.stream.shutdown(Shutdown::Both).unwrap();
        drop(raw);
        let mut raw = if welcomed {
            Raw::welcomed(&server.addr)
        } else {
            Raw::connect(&server.addr)
        };
        // A header announcing 50 bytes, then 10 of them, then gone.
        let mut partial = 51u32.to_le_bytes().to_vec();
        partial.push(message::QUERY);
        partial.extend_from_slice(&[b'x'; 10]);
        raw.bytes(&partial);
        drop(raw);
        assert_eq!(count(&mut normal, "SELECT COUNT(*) FROM t"), 2);
    }
    let mut fresh = server.client();
    assert_eq!(count(&mut fresh, "SELECT COUNT(*) FROM t"), 2);
    normal.ping().unwrap();
    drop((normal, fresh));
    assert!(server.stop().success());
}

/// A client that sends a whole query frame over `--max-frame-bytes` must get
/// 3001 (docs/protocol.md: "the server answers Error with code 3001 and
/// closes the connection"). Passes while the frame fits the server's 8 KiB
/// read buffer; a larger frame leaves unread bytes in the server's socket when
/// it closes, the kernel answers with a reset, and the client's write fails
/// with "Broken pipe" before it can read the 3001 (see the ignore reason).
#[test]
fn a_client_sending_a_whole_oversized_frame_gets_3001() {
    let mut server = Server::start(&["--max-frame-bytes", "1024"]);
    let mut normal = server.client();
    normal
        .execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        .unwrap();
    for size in [2_000usize, 100_000, 1_000_000, 4_000_000] {
        let mut c = server.client();
        let text = format!("SELECT COUNT(*) FROM t{}", " ".repeat(size));
        match c.execute(&text) {
            Err(ClientError::Server { code: 3001, .. }) => {}
            other => panic!("query of {size} bytes: expected Error 3001, got {other:?}"),
        }
        assert_eq!(count(&mut normal, "SELECT COUNT(*) FROM t"), 0);
    }
    drop(normal);
    assert!(server.stop().success());
}

// --------------------------------------------------------------- 5. limits

#[test]
fn a_connection_over_max_connections_gets_3005() {
    let mut server = Server::start(&["--max-connections", "2"]);
    let mut a = server.client();
    let mut b = server.client();
    a.execute("CREATE TABLE t (id TEXT PRIMARY KEY)").unwrap();
    for attempt in 0..3 {
        match Client::connect(&server.addr, &ConnectOptions::default()) {
            Err(e) => assert_eq!(server_code(&e), 3005, "attempt {attempt}: {e}"),
            Ok(_) => panic!("attempt {attempt}: a third connection was accepted"),
        }
    }
    let mut raw = Raw::connect(&server.addr);
    raw.expect_closing_error(3005, "third raw connection (no Hello sent)");
    // The two admitted connections are unaffected.
    assert_eq!(count(&mut a, "SELECT COUNT(*) FROM t"), 0);
    assert_eq!(count(&mut b, "SELECT COUNT(*) FROM t"), 0);
    // When one leaves, its slot is given back (the server frees it after
    // reading Goodbye, so the first attempts may still be refused).
    b.close().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match Client::connect(&server.addr, &ConnectOptions::default()) {
            Ok(c) => break c,
            Err(e) if e.code() == Some(3005) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("the freed slot was not given back: {e}"),
        }
    };
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), 0);
    assert_eq!(count(&mut a, "SELECT COUNT(*) FROM t"), 0);
    drop((a, c));
    assert!(server.stop().success());
}

#[test]
fn idle_connections_are_closed_with_3006() {
    let mut server = Server::start(&["--idle-timeout-secs", "1"]);
    let started = Instant::now();
    let mut welcomed = Raw::welcomed(&server.addr);
    let mut silent = Raw::connect(&server.addr);
    welcomed.expect_closing_error(3006, "idle after Welcome");
    silent.expect_closing_error(3006, "no Hello at all");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the 1 s idle timeout"
    );
    assert!(
        waited < Duration::from_secs(10),
        "closed only after {waited:?}"
    );
    // The server goes on serving.
    let mut c = server.client();
    c.ping().unwrap();
    c.execute("CREATE TABLE t (id TEXT PRIMARY KEY)").unwrap();
    drop(c);
    assert!(server.stop().success());
}

/// Rows of the big table for the timeout and Cancel tests, and how many times
/// the heavy request reads it: 20 x 100,000 rows streamed (~2M rows, ~60 MB),
/// far more than the socket buffers and the server's channel can hold, so the
/// request cannot be finished before the timeout or Cancel takes effect.
const BIG_ROWS: usize = 100_000;
const HEAVY_REPEAT: usize = 20;

#[test]
fn query_timeout_gives_3003_and_cancel_gives_3004_and_the_connection_stays_usable() {
    let mut server = Server::start(&["--max-statement-bytes", "8000000"]);
    let mut c = server.client();
    let started = Instant::now();
    fill_big_table(&mut c, BIG_ROWS, 25_000);
    let filled = started.elapsed();
    let heavy = "SELECT id, pad FROM t;".repeat(HEAVY_REPEAT);
    let streamed_total = BIG_ROWS * HEAVY_REPEAT;

    // Timeout: 1 ms on a request streaming 2M rows.
    c.set_option("timeout_ms", "1").unwrap();
    let timed = Instant::now();
    let e = c.execute(&heavy).unwrap_err();
    assert_eq!(server_code(&e), 3003, "{e}");
    let timed = timed.elapsed();
    // Still open: turn the timeout off and query.
    c.set_option("timeout_ms", "0").unwrap();
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), BIG_ROWS as i64);

    // Cancel, from the same thread, after the first event of a streaming request.
    let canceller = c.canceller().unwrap();
    let cancelled = Instant::now();
    let mut stream = c.query(&heavy).unwrap();
    match stream.next() {
        Some(Ok(Event::Schema { statement: 0, .. })) => {}
        other => panic!("expected the first Schema, got {other:?}"),
    }
    canceller.cancel().unwrap();
    let mut rows = 0usize;
    for event in stream.by_ref() {
        if let Event::Rows(batch) = event.expect("events until the error") {
            rows += batch.len();
        }
    }
    match stream.take_error() {
        Some(ClientError::Server { code: 3004, .. }) => {}
        other => panic!("expected Error 3004 after Cancel, got {other:?} ({rows} rows read)"),
    }
    drop(stream);
    let cancelled = cancelled.elapsed();
    assert!(rows < streamed_total, "every row arrived despite Cancel");
    // The next query works; a Cancel when nothing runs is ignored.
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), BIG_ROWS as i64);
    canceller.cancel().unwrap();
    c.ping().unwrap();
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), BIG_ROWS as i64);
    eprintln!(
        "limits: filled {BIG_ROWS} rows in {filled:?}; timeout after {timed:?}; cancel after {rows} rows in {cancelled:?}"
    );
    drop(c);
    assert!(server.stop().success());
}

/// On the wire, a refused SetOption is Error 1002 followed by Ready (like
/// every Error that does not close), and the session keeps its old timeout.
#[test]
fn a_refused_set_option_is_1002_then_ready_on_the_wire() {
    let mut server = Server::start(&[]);
    let mut raw = Raw::welcomed(&server.addr);
    for (name, value) in [
        ("timeout_ms", "soon"),
        ("timeout_ms", "-1"),
        ("no_such_option", "1"),
    ] {
        raw.send(&Message::SetOption {
            name: name.into(),
            value: value.into(),
        });
        raw.expect_error(1002, &format!("SetOption {name}={value}"));
        assert!(
            matches!(raw.read(), Ok(Message::Ready)),
            "Ready follows the 1002"
        );
    }
    raw.send(&Message::SetOption {
        name: "timeout_ms".into(),
        value: "0".into(),
    });
    assert!(matches!(raw.read(), Ok(Message::Ready)));
    raw.send(&Message::Ping);
    assert!(matches!(raw.read(), Ok(Message::Pong)));
    // The largest timeout is accepted and a query runs under it.
    raw.send(&Message::SetOption {
        name: "timeout_ms".into(),
        value: u64::MAX.to_string(),
    });
    assert!(matches!(raw.read(), Ok(Message::Ready)));
    raw.send(&query("SHOW TABLES"));
    let (mut schema, mut ready) = (false, false);
    while !ready {
        match raw.read() {
            Ok(Message::Schema { .. }) => schema = true,
            Ok(Message::Ready) => ready = true,
            Ok(Message::RowBatch(_) | Message::Complete { .. }) => {}
            other => panic!("SHOW TABLES under the largest timeout: {other:?}"),
        }
    }
    assert!(schema);
    drop(raw);
    assert!(server.stop().success());
}

/// The Rust client after a refused SetOption: the next query must run.
/// `Client::set_option` returns at the Error and leaves the server's Ready
/// unread, so the next `execute` takes that Ready as the end of its own
/// results and returns no statements (and every later request is off by one).
#[test]
fn the_client_stays_in_step_after_a_refused_set_option() {
    let mut server = Server::start(&[]);
    let mut c = server.client();
    c.execute("CREATE TABLE t (id TEXT PRIMARY KEY); INSERT INTO t (id) VALUES ('a')")
        .unwrap();
    match c.set_option("timeout_ms", "soon") {
        Err(ClientError::Server { code: 1002, .. }) => {}
        other => panic!("expected 1002, got {other:?}"),
    }
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), 1);
    c.ping().unwrap();
    drop(c);
    assert!(server.stop().success());
}

// ------------------------------------------------------------- 6. SIGTERM

#[test]
fn sigterm_with_clients_connected_sends_3007_and_exits_0() {
    let mut server = Server::start(&["--max-statement-bytes", "8000000"]);
    let mut streaming = server.client();
    fill_big_table(&mut streaming, 50_000, 25_000);
    let mut idle = Raw::welcomed(&server.addr);
    let heavy = "SELECT id, pad FROM t;".repeat(200);
    // A client reading a long stream when the signal lands.
    let mut stream = streaming.query(&heavy).unwrap();
    assert!(matches!(stream.next(), Some(Ok(Event::Schema { .. }))));
    terminate(&server);
    let mut ended = None;
    for event in stream.by_ref() {
        if let Err(e) = event {
            ended = Some(e);
        }
    }
    let ended = ended.or_else(|| stream.take_error());
    match &ended {
        Some(ClientError::Server { code: 3007, .. }) | Some(ClientError::Closed) => {}
        other => panic!("streaming client: expected 3007 or a close, got {other:?}"),
    }
    drop(stream);
    // An idle client: 3007 is the last frame.
    idle.expect_closing_error(3007, "idle client at shutdown");
    match wait_exit(&mut server, EXIT_TIMEOUT) {
        Some(status) => assert!(status.success(), "exit status {status}"),
        None => panic!("the server did not exit within {EXIT_TIMEOUT:?} of SIGTERM"),
    }
}

/// A client that connected but has not sent Hello must not hold up shutdown.
/// The handshake waits for Hello with only the idle timeout (default 300 s),
/// not the shutdown signal, so `serve` waits that long for this connection.
#[test]
fn sigterm_does_not_wait_for_a_client_that_never_sent_hello() {
    let mut server = Server::start(&[]);
    let mut silent = Raw::connect(&server.addr);
    // Make sure the server has accepted it and is serving others.
    server.client().ping().unwrap();
    let started = Instant::now();
    let status = stop_within_deadline(&mut server, "client without Hello");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < EXIT_TIMEOUT);
    match silent.read() {
        Ok(Message::Error { code: 3007, .. }) | Err(FrameError::Closed) => {}
        other => panic!("expected 3007 or a close, got {other:?}"),
    }
}

/// Waits until the server has filled every buffer between it and a client
/// that stopped reading, and is blocked writing: the bytes waiting in the
/// client's socket stop growing (checked with peek, which reads nothing).
fn wait_until_the_server_blocks_writing(stalled: &mut Raw) {
    let mut peek = vec![0u8; 64 << 20];
    let (mut queued, mut unchanged) = (0usize, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while unchanged < 10 {
        assert!(
            Instant::now() < deadline,
            "the server never stopped sending"
        );
        std::thread::sleep(Duration::from_millis(20));
        let now = stalled.stream.peek(&mut peek).unwrap();
        unchanged = if now == queued { unchanged + 1 } else { 0 };
        queued = now;
    }
}

/// With one running slot, a request waits for it and the wait counts toward
/// its timeout: a trivial count behind a stalled export times out with 3003
/// and the connection stays usable. The stalled client itself is dropped once
/// it has read nothing for the idle timeout, which frees the slot, and the
/// waiting client's next count is answered: a client that stops reading
/// cannot hold a slot forever.
#[test]
fn requests_wait_for_a_running_slot_and_a_stalled_client_gives_its_slot_up() {
    let mut server = Server::start(&[
        "--max-statement-bytes",
        "8000000",
        "--max-running-queries",
        "1",
        "--idle-timeout-secs",
        "3",
    ]);
    let mut c = server.client();
    fill_big_table(&mut c, 50_000, 25_000);
    let mut stalled = Raw::welcomed(&server.addr);
    stalled.send(&query(&"SELECT id, pad FROM t;".repeat(200)));
    assert!(matches!(stalled.read(), Ok(Message::Schema { .. })));
    wait_until_the_server_blocks_writing(&mut stalled);
    // The only slot is held by the stalled request: a count waits, and its
    // 100 ms timeout runs out while it waits.
    c.set_option("timeout_ms", "100").unwrap();
    let e = c.execute("SELECT COUNT(*) FROM t").unwrap_err();
    assert_eq!(server_code(&e), 3003, "{e}");
    // Without a timeout it waits until the stalled client is dropped (a raw
    // client, so that a wait that never ends fails on its read timeout).
    let mut waiting = Raw::welcomed(&server.addr);
    waiting.send(&query("SELECT COUNT(*) FROM t"));
    loop {
        match waiting.read() {
            Ok(Message::Ready) => break,
            Ok(Message::Error { code, message, .. }) => {
                panic!("the count failed: {code} {message}")
            }
            Ok(_) => {}
            Err(e) => panic!("no answer while a stalled client held the slot: {e:?}"),
        }
    }
    c.set_option("timeout_ms", "0").unwrap();
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), 50_000);
    // The stalled client was closed: what it reads now ends without Ready.
    let mut ended = false;
    for _ in 0..1_000_000 {
        match stalled.read() {
            Ok(Message::Ready) => panic!("the stalled request finished instead of being dropped"),
            Ok(_) => {}
            Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the stalled connection was never closed");
    drop(c);
    assert!(server.stop().success());
}

/// A client that started a long streaming query and stopped reading must not
/// hold up shutdown: its query is stopped and its connection closed. The
/// session is blocked writing to the full socket (inside the `select!` arm
/// that forwards results), so it never sees the shutdown signal, and `serve`
/// waits for it forever.
#[test]
fn sigterm_does_not_wait_for_a_client_that_stopped_reading() {
    let mut server = Server::start(&["--max-statement-bytes", "8000000"]);
    let mut c = server.client();
    fill_big_table(&mut c, 50_000, 25_000);
    drop(c);
    let mut stalled = Raw::welcomed(&server.addr);
    stalled.send(&query(&"SELECT id, pad FROM t;".repeat(200)));
    assert!(matches!(stalled.read(), Ok(Message::Schema { .. })));
    wait_until_the_server_blocks_writing(&mut stalled);
    // The stalled client slows only itself: others are served meanwhile.
    server.client().ping().unwrap();
    let status = stop_within_deadline(&mut server, "client that stopped reading");
    assert!(status.success(), "exit status {status}");
}

/// A request stopped by shutdown ends with 3007, and 3007 closes the
/// connection, so it must be the last frame (docs/protocol.md: "An Error
/// that closes the connection is the last frame the server sends").
#[test]
fn a_request_stopped_by_shutdown_ends_with_3007_as_the_last_frame() {
    let mut server = Server::start(&["--max-statement-bytes", "8000000"]);
    let mut c = server.client();
    fill_big_table(&mut c, 50_000, 25_000);
    drop(c);
    let mut raw = Raw::welcomed(&server.addr);
    raw.send(&query(&"SELECT id, pad FROM t;".repeat(200)));
    assert!(matches!(raw.read(), Ok(Message::Schema { .. })));
    terminate(&server);
    let (code, next) = error_and_next(&mut raw);
    assert_eq!(code, 3007);
    assert!(
        matches!(next, Err(FrameError::Closed)),
        "after 3007: {next:?}"
    );
    let status = wait_exit(&mut server, EXIT_TIMEOUT).expect("exit");
    assert!(status.success());
}

/// A Query sent while another runs is a protocol error: Error 3000, then
/// the connection closes (docs/protocol.md, "Queries").
#[test]
fn a_query_sent_before_ready_is_a_protocol_error() {
    let mut server = Server::start(&["--max-statement-bytes", "8000000"]);
    let mut c = server.client();
    fill_big_table(&mut c, 50_000, 25_000);
    let mut raw = Raw::welcomed(&server.addr);
    raw.send(&query(&"SELECT id, pad FROM t;".repeat(200)));
    assert!(matches!(raw.read(), Ok(Message::Schema { .. })));
    raw.send(&query("SELECT COUNT(*) FROM t"));
    let (code, next) = error_and_next(&mut raw);
    assert_eq!(code, 3000);
    assert!(
        matches!(next, Err(FrameError::Closed)),
        "after 3000: {next:?}"
    );
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t"), 50_000);
    drop(c);
    assert!(server.stop().success());
}

/// A zero-length frame is a bad frame (3000) before Hello as after it.
#[test]
fn a_zero_length_frame_instead_of_hello_gets_3000() {
    let mut server = Server::start(&[]);
    let mut raw = Raw::connect(&server.addr);
    raw.bytes(&[0, 0, 0, 0, message::HELLO]);
    raw.expect_closing_error(3000, "zero-length frame instead of Hello");
    drop(raw);
    assert!(server.stop().success());
}

// ---------------------------------------------------------- bulk InsertRows

#[test]
fn insert_rows_loads_columns_and_refuses_bad_batches_without_closing() {
    use cohortdb::protocol::message::ColumnInfo;
    use cohortdb::storage::columnar::RowsEncoder;
    use cohortdb::ColumnType;
    let server = Server::start(&[]);
    let mut c = server.client();
    c.execute("CREATE TABLE p (id TEXT PRIMARY KEY, age INT, tags SET<TEXT>, seen TIMESTAMP)")
        .unwrap();
    let col = |name: &str, ty| ColumnInfo {
        name: name.into(),
        ty,
    };
    // Columns in any order after the key; a repeated id is upserted in row order.
    let columns = [
        col("ID", ColumnType::Text),
        col("tags", ColumnType::TextSet),
        col("age", ColumnType::Int),
    ];
    let mut e = RowsEncoder::new(3);
    for (id, tags, age) in [
        ("a", vec!["x", "y"], Some(30)),
        ("b", vec![], None),
        ("a", vec!["z"], Some(31)),
    ] {
        e.text(0, id);
        e.set(1, tags.into_iter());
        match age {
            Some(v) => e.int(2, v),
            None => e.null(2),
        }
    }
    assert_eq!(c.insert_rows("p", &columns, e.finish()).unwrap(), 3);
    let mut r = c.execute("SELECT id, age, tags, seen FROM p").unwrap();
    r[0].rows
        .sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    assert_eq!(
        r[0].rows,
        vec![
            vec![
                Value::Text("a".into()),
                Value::Int(31),
                Value::Set(vec!["z".into()]),
                Value::Null
            ],
            vec![
                Value::Text("b".into()),
                Value::Null,
                Value::Set(vec![]),
                Value::Null
            ],
        ]
    );
    // Refusals name what is wrong; the connection stays usable and nothing is applied.
    let one_row = |id: &str| {
        let mut e = RowsEncoder::new(2);
        e.text(0, id);
        e.int(1, 5);
        e.finish()
    };
    type Case<'a> = (&'a str, Vec<ColumnInfo>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "nope",
            vec![col("id", ColumnType::Text), col("age", ColumnType::Int)],
            one_row("c"),
            1002,
            "nope",
        ),
        (
            "p",
            vec![col("age", ColumnType::Int), col("id", ColumnType::Text)],
            one_row("c"),
            1003,
            "key column id",
        ),
        (
            "p",
            vec![col("id", ColumnType::Text), col("shoe", ColumnType::Int)],
            one_row("c"),
            1002,
            "shoe",
        ),
        (
            "p",
            vec![col("id", ColumnType::Text), col("tags", ColumnType::Int)],
            one_row("c"),
            1003,
            "column tags is SET<TEXT>",
        ),
        (
            "p",
            vec![col("id", ColumnType::Text), col("age", ColumnType::Int)],
            one_row(""),
            1003,
            "empty profile id",
        ),
        (
            "p",
            vec![col("id", ColumnType::Text), col("age", ColumnType::Int)],
            vec![9, 0, 0, 0],
            1003,
            "bad rows payload",
        ),
    ];
    for (table, columns, rows, code, says) in cases {
        let err = c.insert_rows(table, &columns, rows).unwrap_err();
        assert_eq!(server_code(&err), code, "{err}");
        assert!(err.to_string().contains(says), "{err} should say {says}");
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM p"), 2);
    }

    // Dictionary-coded columns (version 3): a value is an index into the
    // batch's dictionary of the column; they read back as texts.
    assert!(c.version >= 3);
    let columns = [
        col("id", ColumnType::Text),
        col("tags", ColumnType::TextSet),
    ];
    let coded_batch = |codes: &[&[u32]]| {
        let mut e = RowsEncoder::new(2);
        e.dictionary(1, ["x", "w"].into_iter());
        for (i, row) in codes.iter().enumerate() {
            e.text(0, &format!("k{i}"));
            e.codes(1, row.iter().copied());
        }
        (e.coded(), e.finish())
    };
    let (coded, rows) = coded_batch(&[&[1, 0], &[1]]);
    assert_eq!(coded, [false, true]);
    c.send_coded_insert_rows("p", &columns, &coded, rows)
        .unwrap();
    assert_eq!(c.insert_rows_result().unwrap(), 2);
    let r = c
        .execute("SELECT id, tags FROM p WHERE tags HAS 'w'")
        .unwrap();
    assert_eq!(
        r[0].rows,
        vec![
            vec![
                Value::Text("k0".into()),
                Value::Set(vec!["w".into(), "x".into()])
            ],
            vec![Value::Text("k1".into()), Value::Set(vec!["w".into()])],
        ]
    );
    // A code past the dictionary, a coded key or INT column: refused, nothing applied.
    let (coded, past) = coded_batch(&[&[2]]);
    let refusals = [
        (columns.to_vec(), coded, past, "code 2"),
        (
            columns.to_vec(),
            vec![true, false],
            one_row("c"),
            "profile id column cannot be dictionary-coded",
        ),
        (
            vec![col("id", ColumnType::Text), col("age", ColumnType::Int)],
            vec![false, true],
            one_row("c"),
            "only TEXT and SET<TEXT>",
        ),
    ];
    for (columns, coded, rows, says) in refusals {
        c.send_coded_insert_rows("p", &columns, &coded, rows)
            .unwrap();
        let err = c.insert_rows_result().unwrap_err();
        assert_eq!(server_code(&err), 1003, "{err}");
        assert!(err.to_string().contains(says), "{err} should say {says}");
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM p"), 4);
    }
}
