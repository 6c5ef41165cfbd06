//! Who may run what: roles and what each may see (docs/privacy.md).
//!
//! - `admin`: everything (the embedded API runs as admin).
//! - `writer`: writes (INSERT, UPDATE, DELETE, import) and the catalog
//!   (SHOW TABLES, DESCRIBE); never reads a row or a count. A writer may
//!   write PII columns, but not use them (or anything) to select profiles
//!   beyond the profile id.
//! - `analyst`: aggregates only — COUNT and the other aggregates, GROUP BY,
//!   OVERLAP, TOP, segments, LOOKALIKE REACH; never a row, an id, an EXPORT,
//!   the export log, FORGET
//!   or a PII column (a PII column does not exist for an analyst: it is
//!   absent from DESCRIBE and an unknown column in every statement, so an
//!   error message cannot reveal it either), and never the profile id in a
//!   condition (that would single out one person).
//!
//! Invariants: the checks here run on the bound statement before anything
//! executes, so a refused statement has no effect; system tables (names
//! starting with `_`) exist for admins only.

use super::bind::{Bound, Shape};
use super::error::{QueryError, QueryResult};

/// A role of the server issue: what a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Writer,
    Analyst,
}

impl Role {
    /// The role called `name` (`admin`, `writer`, `analyst`, any case).
    pub fn parse(name: &str) -> Option<Role> {
        match name.to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "writer" => Some(Role::Writer),
            "analyst" => Some(Role::Analyst),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Analyst => "analyst",
        }
    }

    /// Whether PII columns exist for this role when reading (conditions,
    /// results, DESCRIBE).
    pub fn sees_pii(self) -> bool {
        self == Role::Admin
    }

    /// Whether PII columns may be written (INSERT, UPDATE SET, import).
    pub fn writes_pii(self) -> bool {
        self != Role::Analyst
    }

    /// Whether system tables (`_users`, `_segments`, `_exports`, ...) exist
    /// for this role.
    pub fn sees_system_tables(self) -> bool {
        self == Role::Admin
    }
}

/// Who runs a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

impl Principal {
    /// The embedded API and unauthenticated loopback sessions: admin.
    pub fn admin(user: impl Into<String>) -> Principal {
        Principal {
            user: user.into(),
            role: Role::Admin,
        }
    }
}

fn denied(role: Role, what: &str, allowed: &str) -> QueryError {
    QueryError::Denied(format!(
        "permission denied: role {} may not {what}; {allowed}",
        role.name()
    ))
}

const WRITER_MAY: &str = "writers may INSERT, UPDATE, DELETE, import, SHOW TABLES and DESCRIBE";
const ANALYST_MAY: &str = "analysts may run aggregates (COUNT, SUM, AVG, MIN, MAX, GROUP BY), OVERLAP, TOP, LOOKALIKE REACH and segments";

/// Refuses `bound` if `role` may not run it.
pub fn check(role: Role, bound: &Bound) -> QueryResult<()> {
    use Bound as B;
    let statement = match (role, bound) {
        (Role::Admin, _) => return Ok(()),
        (_, B::ShowTables | B::Describe(_)) => return Ok(()),
        (Role::Writer, B::Insert { .. } | B::Update { .. } | B::Delete { .. }) => return Ok(()),
        (Role::Analyst, B::Select(q)) if !matches!(q.shape, Shape::Rows { .. }) => return Ok(()),
        (
            Role::Analyst,
            B::Overlap(_)
            | B::Top(_)
            | B::ShowSegments
            | B::DescribeSegment(_)
            | B::CreateSegment { .. }
            | B::DropSegment { .. },
        ) => return Ok(()),
        (_, B::CreateTable(_)) => "create tables",
        (_, B::DropTable { .. }) => "drop tables",
        (_, B::CreateUser { .. } | B::DropUser { .. }) => "manage users",
        (_, B::Insert { .. } | B::Update { .. } | B::Delete { .. }) => "write",
        (_, B::Select(q)) if matches!(q.shape, Shape::Rows { .. }) => {
            "read profiles (ids or row values)"
        }
        // A plan shows exact row counts per condition, below min_audience too.
        (_, B::Explain(_)) => "EXPLAIN (plans show exact row counts)",
        (_, B::Select(_) | B::Overlap(_) | B::Top(_)) => "read counts",
        (_, B::ShowSegments | B::DescribeSegment(_)) => "read segments",
        (_, B::CreateSegment { .. } | B::DropSegment { .. }) => "manage segments",
        (Role::Analyst, B::Lookalike(l)) if l.reach => return Ok(()),
        (_, B::Lookalike(_)) => "list look-alike profiles (ids)",
        (_, B::Export(_)) => "export audiences",
        (_, B::ShowExports) => "read the export log",
        (_, B::Forget { .. }) => "erase profiles (FORGET)",
    };
    Err(denied(
        role,
        statement,
        if role == Role::Writer {
            WRITER_MAY
        } else {
            ANALYST_MAY
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_any_case() {
        assert_eq!(Role::parse("Analyst"), Some(Role::Analyst));
        assert_eq!(Role::parse("ADMIN"), Some(Role::Admin));
        assert_eq!(Role::parse("writer"), Some(Role::Writer));
        assert_eq!(Role::parse("root"), None);
    }
}
