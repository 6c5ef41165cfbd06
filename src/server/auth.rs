//! Users and authentication. Users come from `--auth FILE` and from the
//! `_users` system table that `CREATE USER` writes; passwords are kept only
//! as argon2id hashes (PHC strings) and checked in constant time by argon2.
//!
//! Auth file format, one user per line, `#` comments:
//! `name:role:password`, where password is an argon2 PHC string
//! (`$argon2id$...`), optionally followed by `:` and a SCRAM-SHA-256
//! verifier (`SCRAM-SHA-256$...`, for PostgreSQL clients), or, for
//! convenience, plain text (hashed and given a verifier when loaded; keep
//! such a file readable by the server's user only).

use crate::engine::{Database, Value};
use crate::pg::scram::Verifier;
use crate::query::users::{hash_password, scram_verifier, verify_password, ROLES, USERS_TABLE};
use std::collections::BTreeMap;
use std::path::Path;

/// Users known from an auth file: name → (role, PHC hash, SCRAM verifier).
#[derive(Debug, Clone, Default)]
pub struct Users {
    entries: BTreeMap<String, (String, String, Option<String>)>,
}

/// What the server knows of one user.
#[derive(Debug, Clone)]
pub(crate) struct UserRecord {
    pub role: String,
    /// argon2 PHC string.
    pub phc: String,
    /// SCRAM-SHA-256 verifier (src/pg/scram.rs), if the user has one.
    pub scram: Option<String>,
}

impl Users {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, name: &str, role: &str, phc: String) {
        self.entries
            .insert(name.to_string(), (role.to_string(), phc, None));
    }

    /// [`Users::insert`] with a SCRAM-SHA-256 verifier for PostgreSQL clients.
    pub fn insert_with_scram(&mut self, name: &str, role: &str, phc: String, scram: String) {
        self.entries
            .insert(name.to_string(), (role.to_string(), phc, Some(scram)));
    }
}

/// Reads an auth file; the error names the line.
pub fn load_auth_file(path: &Path) -> Result<Users, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut users = Users::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "{}:{}: expected name:role:password",
                path.display(),
                i + 1
            ));
        };
        if name.is_empty() || !ROLES.contains(&role) {
            return Err(format!(
                "{}:{}: user name must not be empty and role must be one of {}",
                path.display(),
                i + 1,
                ROLES.join(", ")
            ));
        }
        if secret.starts_with("$argon2") {
            // A PHC string holds no ':', so a ':' starts the SCRAM verifier.
            match secret.split_once(':') {
                None => users.insert(name, role, secret.to_string()),
                Some((phc, scram)) => {
                    if Verifier::parse(scram).is_none() {
                        return Err(format!(
                            "{}:{}: after the argon2 hash, expected a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)",
                            path.display(),
                            i + 1
                        ));
                    }
                    users.insert_with_scram(name, role, phc.to_string(), scram.to_string());
                }
            }
        } else {
            let phc =
                hash_password(secret).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            let scram = Verifier::generate(secret).to_string();
            users.insert_with_scram(name, role, phc, scram);
        }
    }
    Ok(users)
}

/// Whether any user exists (in the file or in the database).
pub(crate) fn any_users(file: &Users, db: &Database) -> bool {
    !file.is_empty()
        || db
            .snapshot()
            .table(USERS_TABLE)
            .map(|t| t.row_count() > 0)
            .unwrap_or(false)
}

/// The user called `name`: from the auth file, else from the database.
pub(crate) fn lookup(file: &Users, db: &Database, name: &str) -> Option<UserRecord> {
    if let Some((role, phc, scram)) = file.entries.get(name) {
        return Some(UserRecord {
            role: role.clone(),
            phc: phc.clone(),
            scram: scram.clone(),
        });
    }
    let row = db.snapshot().table(USERS_TABLE).ok()?.get(name).ok()??;
    match (row.values.first(), row.values.get(1)) {
        (Some(Value::Text(role)), Some(Value::Text(phc))) => Some(UserRecord {
            role: role.clone(),
            phc: phc.clone(),
            scram: scram_verifier(db, name),
        }),
        _ => None,
    }
}

/// The role of `name` if `password` is right.
pub(crate) fn authenticate(
    file: &Users,
    db: &Database,
    name: &str,
    password: &str,
) -> Option<String> {
    let user = lookup(file, db, name)?;
    verify_password(password, &user.phc).then_some(user.role)
}
