//! The real server binary end to end through the Rust client: DDL, writes,
//! queries, errors with positions, restart keeping data, clean shutdown.

mod support_server;

use cohortdb::Value;
use support_server::Server;

#[test]
fn statements_run_over_the_wire_and_data_survives_a_restart() {
    let mut server = Server::start(&[]);
    let mut c = server.client();
    let results = c
        .execute(
            "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, age INT, interests SET<TEXT>);
             INSERT INTO profiles (id, country, age, interests) VALUES ('u1','NL',34,['baking','tea']), ('u2','BE',41,[]), ('u3', NULL, NULL, NULL);
             SELECT country, COUNT(*) FROM profiles GROUP BY country;
             SELECT id, interests FROM profiles WHERE age > 30;",
        )
        .unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(
        (results[1].tag.as_str(), results[1].affected),
        ("INSERT", 3)
    );
    assert_eq!(
        results[2].rows,
        vec![
            vec![Value::Text("BE".into()), Value::Int(1)],
            vec![Value::Text("NL".into()), Value::Int(1)],
            vec![Value::Null, Value::Int(1)],
        ]
    );
    assert_eq!(results[3].rows.len(), 2);
    assert_eq!(
        results[3].rows[0][1],
        Value::Set(vec!["baking".into(), "tea".into()])
    );
    // An error carries its position and leaves the connection usable.
    let err = c
        .execute("SELECT COUNT(*) FROM profiles WHERE age = 'x'")
        .unwrap_err();
    match &err {
        cohortdb::client::ClientError::Server {
            code, line, column, ..
        } => {
            assert_eq!((*code, *line, *column), (1002, 1, 43), "{err}");
        }
        other => panic!("{other:?}"),
    }
    c.ping().unwrap();
    drop(c);
    assert!(server.stop().success(), "clean shutdown exits 0");
    let server = Server::start_in(&server.dir.clone(), &[]);
    let mut c = server.client();
    let r = c.execute("SELECT COUNT(*) FROM profiles").unwrap();
    assert_eq!(r[0].rows, vec![vec![Value::Int(3)]]);
}

#[test]
fn users_created_in_cohortql_must_authenticate() {
    let server = Server::start(&[]);
    let mut admin = server.client();
    admin
        .execute(
            "CREATE USER ann PASSWORD 'pa''ss' ROLE analyst; CREATE TABLE t (id TEXT PRIMARY KEY)",
        )
        .unwrap();
    let err = admin
        .execute("CREATE USER ann PASSWORD 'x' ROLE admin")
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = admin
        .execute("CREATE USER bob PASSWORD 'x' ROLE boss")
        .unwrap_err();
    assert!(err.to_string().contains("unknown role boss"), "{err}");
    // SHOW TABLES hides the system table; the hash is not the password.
    let tables = admin.execute("SHOW TABLES").unwrap();
    assert_eq!(tables[0].rows.len(), 1);
    let hashes = admin.execute("SELECT password_hash FROM _users").unwrap();
    assert!(matches!(&hashes[0].rows[0][0], Value::Text(h) if h.starts_with("$argon2id$")));
    drop(admin);
    // With a user defined, every connection authenticates.
    assert_eq!(
        server.client_as("", "").err().and_then(|e| e.code()),
        Some(4001)
    );
    assert_eq!(
        server
            .client_as("ann", "wrong")
            .err()
            .and_then(|e| e.code()),
        Some(4001)
    );
    let mut ann = server.client_as("ann", "pa'ss").unwrap();
    assert_eq!(ann.role, "analyst");
    // An analyst may not manage users (tests/privacy.rs covers the roles).
    assert_eq!(ann.execute("DROP USER ann").unwrap_err().code(), Some(1004));
}
