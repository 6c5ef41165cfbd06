//! Users of the database: `CREATE USER name PASSWORD '...' ROLE r` and
//! `DROP USER name` store users in the `_users` system table (name as the
//! key, role, argon2id hash), so they are durable like any data (WAL and
//! checkpoints). Only the hash is kept; `SELECT` on `_users` shows hashes,
//! never passwords.
//!
//! Alongside, the `_users_scram` system table (name as the key, `verifier`)
//! keeps a SCRAM-SHA-256 verifier per user for the PostgreSQL protocol
//! (src/pg/scram.rs; PostgreSQL's own text form, whose `SCRAM-SHA-256$`
//! prefix versions it). Users created before it existed have no row there:
//! they log in over PostgreSQL with a cleartext password, from loopback
//! only. docs/storage.md documents both tables.

use super::error::{QueryError, QueryResult};
use crate::engine::{Batch, Database, Error as EngineError};
use crate::pg::scram::Verifier;
use crate::storage::schema::{ColumnType, TableSchema};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// The system table holding users.
pub const USERS_TABLE: &str = "_users";
/// The system table holding SCRAM-SHA-256 verifiers of users.
pub const SCRAM_TABLE: &str = "_users_scram";
/// The roles a user may have.
pub const ROLES: &[&str] = &["admin", "writer", "analyst"];

/// Stores a new user (creating the system table on first use).
pub fn create_user(db: &Database, name: &str, password: &str, role: &str) -> QueryResult<()> {
    let exists = |db: &Database| {
        db.snapshot()
            .table(USERS_TABLE)
            .map(|t| t.lookup(name).is_some())
            .unwrap_or(false)
    };
    match db.create_table(
        TableSchema::new(USERS_TABLE, "name")
            .column("role", ColumnType::Text)
            .column("password_hash", ColumnType::Text),
    ) {
        Ok(()) | Err(EngineError::TableExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if exists(db) {
        return Err(QueryError::Limit(format!(
            "user {name} already exists (DROP USER {name} first to change it)"
        )));
    }
    let phc = hash_password(password).map_err(QueryError::Limit)?;
    // The verifier first: a user row without one still logs in (cleartext
    // over loopback), a verifier without a user row lets nobody in.
    match db
        .create_table(TableSchema::new(SCRAM_TABLE, "name").column("verifier", ColumnType::Text))
    {
        Ok(()) | Err(EngineError::TableExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut batch = Batch::new();
    batch
        .upsert(name)
        .set("verifier", Verifier::generate(password).to_string());
    db.write(SCRAM_TABLE, batch)?;
    let mut batch = Batch::new();
    batch
        .upsert(name)
        .set("role", role)
        .set("password_hash", phc);
    db.write(USERS_TABLE, batch)?;
    Ok(())
}

/// The stored SCRAM-SHA-256 verifier of `name`, if it has one.
pub fn scram_verifier(db: &Database, name: &str) -> Option<String> {
    let row = db.snapshot().table(SCRAM_TABLE).ok()?.get(name).ok()??;
    match row.values.first() {
        Some(crate::engine::Value::Text(v)) => Some(v.clone()),
        _ => None,
    }
}

/// Removes a user; false if there was none.
pub fn drop_user(db: &Database, name: &str) -> QueryResult<bool> {
    let Ok(table) = db.snapshot().table(USERS_TABLE) else {
        return Ok(false);
    };
    if table.lookup(name).is_none() {
        return Ok(false);
    }
    let mut batch = Batch::new();
    batch.delete(name);
    let deleted = db.write(USERS_TABLE, batch)?.deleted > 0;
    let has_verifier = db
        .snapshot()
        .table(SCRAM_TABLE)
        .map(|t| t.lookup(name).is_some())
        .unwrap_or(false);
    if has_verifier {
        let mut batch = Batch::new();
        batch.delete(name);
        db.write(SCRAM_TABLE, batch)?;
    }
    Ok(deleted)
}

/// An argon2id PHC string for `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("s3cret").unwrap();
        let b = hash_password("s3cret").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &a));
        assert!(!verify_password("s3cret!", &a));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
