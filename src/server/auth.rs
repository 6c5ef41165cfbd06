//! Users and authentication. Users come from `--auth FILE` and from the
//! `_users` system table that `CREATE USER` writes; passwords are kept only
//! as argon2id hashes (PHC strings) and checked in constant time by argon2.
//!
//! Auth file format, one user per line, `#` comments:
//! `name:role:password`, where password is an argon2 PHC string
//! (`$argon2id$...`) or, for convenience, plain text (hashed when loaded;
//! keep such a file readable by the server's user only).

use crate::engine::{Database, Value};
use crate::query::users::{hash_password, verify_password, ROLES, USERS_TABLE};
use std::collections::BTreeMap;
use std::path::Path;

/// Users known from an auth file: name → (role, PHC hash).
#[derive(Debug, Clone, Default)]
pub struct Users {
    entries: BTreeMap<String, (String, String)>,
}

impl Users {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, name: &str, role: &str, phc: String) {
        self.entries
            .insert(name.to_string(), (role.to_string(), phc));
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
        let phc = if secret.starts_with("$argon2") {
            secret.to_string()
        } else {
            hash_password(secret).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?
        };
        users.insert(name, role, phc);
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

/// The role of `name` if `password` is right.
pub(crate) fn authenticate(
    file: &Users,
    db: &Database,
    name: &str,
    password: &str,
) -> Option<String> {
    let (role, phc) = match file.entries.get(name) {
        Some((role, phc)) => (role.clone(), phc.clone()),
        None => {
            let row = db.snapshot().table(USERS_TABLE).ok()?.get(name).ok()??;
            match (row.values.first(), row.values.get(1)) {
                (Some(Value::Text(role)), Some(Value::Text(phc))) => (role.clone(), phc.clone()),
                _ => return None,
            }
        }
    };
    verify_password(password, &phc).then_some(role)
}
