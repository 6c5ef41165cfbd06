//! Answers to the probe and catalog queries PostgreSQL tools send, which
//! are not CohortQL: `SELECT version()` and other constant selects
//! (`SELECT 1`, `current_database()`, `current_setting('x')`...), and
//! the `pg_catalog` / `information_schema` queries psql sends for `\dt` and
//! `\d name` and drivers send to list tables and columns.
//!
//! Catalog queries are recognised, not executed: the relations queried
//! (pg_class, pg_attribute, information_schema.tables/columns) are
//! synthesised from the tables the user may see, and each item of the
//! select list gets its value by what it names (`c.relname`,
//! `pg_catalog.format_type(...)`, `AS "Name"`...). Any other query of a
//! catalog table gets an empty result with the columns it asked for, so
//! tools that probe for optional features go on.
//!
//! Invariants: only tables and columns the principal may see appear (no
//! system tables; no PII column for a role that may not see it, as in
//! DESCRIBE); table OIDs are stable (derived from the name).

use super::settings::{Settings, SERVER_VERSION};
use super::types;
use crate::engine::Database;
use crate::query::Principal;
use crate::storage::schema::{ColumnType, TableSchema};

/// A small result computed in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub fields: Vec<(String, u32)>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// What answers need to know.
pub struct Context<'a> {
    pub db: &'a Database,
    pub principal: &'a Principal,
    pub settings: &'a Settings,
    pub database: &'a str,
    pub process_id: i32,
}

/// The `version()` text.
pub fn version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (CohortDB {}) on {}, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Whether `text` reads the PostgreSQL catalog.
pub fn is_catalog_query(lower: &str) -> bool {
    lower.contains("pg_catalog.")
        || lower.contains("information_schema.")
        || [
            "pg_class",
            "pg_namespace",
            "pg_type",
            "pg_attribute",
            "pg_database",
            "pg_settings",
            "pg_roles",
            "pg_user",
            "pg_proc",
            "pg_index",
            "pg_description",
            "pg_am",
            "pg_extension",
        ]
        .iter()
        .any(|t| {
            lower
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == *t)
        })
}

/// The answer to a probe or catalog query, or `None` if it is neither.
pub fn answer(text: &str, ctx: &Context) -> Option<Answer> {
    let t = super::sql::strip_leading(text).trim().trim_end_matches(';');
    let lower = t.to_ascii_lowercase();
    if !lower.starts_with("select") && !lower.starts_with("with") {
        return None;
    }
    if is_catalog_query(&lower) {
        return Some(catalog(t, &lower, ctx));
    }
    constant_select(t, ctx)
}

/// A table as the catalog shows it.
struct Relation {
    oid: u32,
    schema: TableSchema,
}

/// A stable OID for a table (user OIDs start at 16384).
pub fn table_oid(name: &str) -> u32 {
    16_384 + (xxhash_rust::xxh3::xxh3_64(name.as_bytes()) % 1_000_000_000) as u32
}

fn relations(ctx: &Context) -> Vec<Relation> {
    let role = ctx.principal.role;
    ctx.db
        .tables()
        .into_iter()
        .filter(|t| !t.name.starts_with('_'))
        .map(|mut schema| {
            schema.columns.retain(|c| !c.pii || role.writes_pii());
            Relation {
                oid: table_oid(&schema.name),
                schema,
            }
        })
        .collect()
}

/// One column of a relation: name, OID, whether it is the key, PII.
fn columns(r: &Relation) -> Vec<(String, u32, bool, bool)> {
    let mut out = vec![(r.schema.key_column.clone(), types::TEXT, true, false)];
    for c in &r.schema.columns {
        out.push((c.name.clone(), types::oid(c.ty), false, c.pii));
    }
    out
}

/// The select-list items of `text` (between the first SELECT and its FROM),
/// each as (expression, output name).
pub(crate) fn select_items(text: &str) -> Vec<(String, String)> {
    let lower = text.to_ascii_lowercase();
    let Some(start) = find_word(&lower, "select", 0) else {
        return Vec::new();
    };
    let start = start + 6;
    let end = find_word(&lower, "from", start).unwrap_or(text.len());
    split_top_level(&text[start..end])
        .into_iter()
        .map(|item| {
            let name = item_name(&item);
            (item, name)
        })
        .collect()
}

/// The byte offset of `word` at nesting depth 0 (outside parentheses and
/// quotes) at or after `from`.
fn find_word(lower: &str, word: &str, from: usize) -> Option<usize> {
    let b = lower.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' => quote = Some(c),
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0
                && b[i..].starts_with(word.as_bytes())
                && (i == 0 || !is_ident(b[i - 1]))
                && b.get(i + word.len()).is_none_or(|&n| !is_ident(n)) =>
            {
                return Some(i)
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn split_top_level(list: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut current = String::new();
    for c in list.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            current.push(c);
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_string());
    }
    items
}

/// The output name of a select item: its alias, else the last name in it.
fn item_name(item: &str) -> String {
    let lower = item.to_ascii_lowercase();
    if let Some(at) = lower.rfind(" as ") {
        let alias = item[at + 4..].trim();
        if !alias.contains('(') {
            return alias.trim_matches('"').to_string();
        }
    }
    let base = item.split("::").next().unwrap_or(item).trim();
    let base = base.split('(').next().unwrap_or(base);
    let name = base.rsplit('.').next().unwrap_or(base).trim();
    if name.is_empty() || name.starts_with('\'') || name.chars().all(|c| c.is_ascii_digit()) {
        "?column?".into()
    } else {
        name.trim_matches('"').to_ascii_lowercase()
    }
}

/// The quoted string after `marker` in `text` (e.g. the OID in `c.oid = '16385'`).
fn quoted_after<'t>(text: &'t str, lower: &str, marker: &str) -> Option<&'t str> {
    let at = lower.find(marker)? + marker.len();
    let rest = &text[at..];
    let rest = rest.trim_start().strip_prefix('\'')?;
    rest.split('\'').next()
}

/// Whether `name` matches psql's pattern regex `^(...)$` (`.*`, `.`, literals).
fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p {
            [] => n.is_empty(),
            ['.', '*', rest @ ..] => (0..=n.len()).any(|i| go(rest, &n[i..])),
            ['\\', c, rest @ ..] => n.first() == Some(c) && go(rest, &n[1..]),
            ['.', rest @ ..] => !n.is_empty() && go(rest, &n[1..]),
            [c, rest @ ..] => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The relations a catalog query selects by name pattern or OID.
fn filtered(text: &str, lower: &str, ctx: &Context) -> Vec<Relation> {
    let mut rels = relations(ctx);
    if let Some(oid) = ["c.oid = ", "a.attrelid = ", "attrelid = ", "oid = "]
        .iter()
        .find_map(|m| quoted_after(text, lower, m))
    {
        let oid: u32 = oid.parse().unwrap_or(0);
        rels.retain(|r| r.oid == oid);
    }
    if let Some(at) = lower.find("operator(pg_catalog.~) '^(") {
        let rest = &text[at + "operator(pg_catalog.~) '^(".len()..];
        if let Some(end) = rest.find(")$'") {
            let pattern = &rest[..end];
            rels.retain(|r| pattern_matches(pattern, &r.schema.name));
        }
    }
    for marker in ["table_name = ", "relname = ", "c.relname = "] {
        if let Some(name) = quoted_after(text, lower, marker) {
            rels.retain(|r| r.schema.name == name);
        }
    }
    rels.sort_by(|a, b| a.schema.name.cmp(&b.schema.name));
    rels
}

fn catalog(text: &str, lower: &str, ctx: &Context) -> Answer {
    let items = select_items(text);
    let owner = ctx.principal.user.clone();
    let owner = if owner.is_empty() {
        "cohortdb".to_string()
    } else {
        owner
    };
    let text_fields = |items: &[(String, String)]| -> Vec<(String, u32)> {
        items
            .iter()
            .map(|(_, n)| (n.clone(), types::TEXT))
            .collect()
    };
    // Columns: pg_attribute or information_schema.columns.
    if lower.contains("pg_catalog.pg_attribute a") || lower.contains("information_schema.columns") {
        let mut rows = Vec::new();
        for r in filtered(text, lower, ctx) {
            for (i, (name, oid, key, pii)) in columns(&r).into_iter().enumerate() {
                rows.push(
                    items
                        .iter()
                        .map(|(expr, alias)| {
                            column_item(
                                &expr.to_ascii_lowercase(),
                                alias,
                                &r,
                                i,
                                &name,
                                oid,
                                key,
                                pii,
                            )
                        })
                        .collect(),
                );
            }
        }
        return Answer {
            fields: text_fields(&items),
            rows,
        };
    }
    // Relations: pg_class (psql's \dt and \d, JDBC getTables) or information_schema.tables.
    let lists_tables = lower.contains("information_schema.tables")
        || (lower.contains("pg_class")
            && !lower.contains("pg_index")
            && !lower.contains("pg_inherits")
            && !lower.contains("pg_statistic")
            && !lower.contains("pg_publication")
            && !lower.contains("pg_policy")
            && !lower.contains("pg_trigger")
            && !lower.contains("pg_constraint")
            && !lower.contains("pg_rewrite"));
    let wants_tables = !lower.contains("relkind in (") || lower.contains("'r'");
    if lists_tables && wants_tables {
        let rows = filtered(text, lower, ctx)
            .iter()
            .map(|r| {
                items
                    .iter()
                    .map(|(expr, alias)| {
                        class_item(&expr.to_ascii_lowercase(), alias, r, &owner, ctx)
                    })
                    .collect()
            })
            .collect();
        return Answer {
            fields: text_fields(&items),
            rows,
        };
    }
    Answer {
        fields: text_fields(&items),
        rows: Vec::new(),
    }
}

/// The value of select item `expr` (lowercase) named `alias` for a table.
fn class_item(expr: &str, alias: &str, r: &Relation, owner: &str, ctx: &Context) -> Option<String> {
    let v = |s: &str| Some(s.to_string());
    let a = alias.to_ascii_lowercase();
    match a.as_str() {
        "schema" | "table_schema" | "table_schem" | "nspname" => return v("public"),
        "name" | "table_name" | "relname" => return v(&r.schema.name),
        "type" => return v("table"),
        "table_type" => {
            return v(
                if expr.contains("information_schema") || expr == "table_type" {
                    "BASE TABLE"
                } else {
                    "TABLE"
                },
            )
        }
        "owner" | "tableowner" => return v(owner),
        "table_catalog" | "table_cat" => return v(ctx.database),
        "persistence" => return v("permanent"),
        "access method" => return v("heap"),
        "size" => return v("0 bytes"),
        "description" | "remarks" => return None,
        "oid" => return v(&r.oid.to_string()),
        _ => {}
    }
    for (key, value) in [
        ("relchecks", "0"),
        ("relkind", "r"),
        ("relhasindex", "f"),
        ("relhasrules", "f"),
        ("relhastriggers", "f"),
        ("relforcerowsecurity", "f"),
        ("relrowsecurity", "f"),
        ("relhasoids", "f"),
        ("relispartition", "f"),
        ("reloptions", ""),
        ("reltablespace", "0"),
        ("reloftype", ""),
        ("relpersistence", "p"),
        ("relreplident", "d"),
        ("amname", "heap"),
        ("relnamespace", "2200"),
        ("c.oid", ""),
    ] {
        if expr.contains(key) {
            return if key == "c.oid" {
                v(&r.oid.to_string())
            } else {
                v(value)
            };
        }
    }
    None
}

/// The value of select item `expr` for column `i` of a table.
#[allow(clippy::too_many_arguments)]
fn column_item(
    expr: &str,
    alias: &str,
    r: &Relation,
    i: usize,
    name: &str,
    oid: u32,
    key: bool,
    pii: bool,
) -> Option<String> {
    let v = |s: &str| Some(s.to_string());
    let flag = |b: bool| v(if b { "t" } else { "f" });
    match alias.to_ascii_lowercase().as_str() {
        "table_name" => return v(&r.schema.name),
        "table_schema" => return v("public"),
        "column_name" | "attname" => return v(name),
        "data_type" => return v(types::type_name(oid)),
        "ordinal_position" | "attnum" => return v(&(i + 1).to_string()),
        "is_nullable" => return v(if key { "NO" } else { "YES" }),
        "column_default" => return None,
        _ => {}
    }
    if expr.contains("pg_get_expr") || expr.contains("collname") || expr.contains("attcollation") {
        return None;
    }
    if expr.contains("col_description") {
        return pii.then(|| "PII".to_string());
    }
    for (k, value) in [
        ("format_type", Some(types::type_name(oid).to_string())),
        ("attnotnull", flag(key)),
        ("attidentity", v("")),
        ("attgenerated", v("")),
        (
            "attstorage",
            v(if types::size(oid) < 0 { "x" } else { "p" }),
        ),
        ("attcompression", v("")),
        ("attstattarget", v("-1")),
        ("atttypid", v(&oid.to_string())),
        ("attname", v(name)),
    ] {
        if expr.contains(k) {
            return value;
        }
    }
    None
}

/// `SELECT` of constants and session functions, without FROM.
fn constant_select(text: &str, ctx: &Context) -> Option<Answer> {
    let lower = text.to_ascii_lowercase();
    if find_word(&lower, "from", 0).is_some() {
        return None;
    }
    let list = text.get(6..)?.trim();
    if list.is_empty() {
        return None;
    }
    let mut fields = Vec::new();
    let mut row = Vec::new();
    for item in split_top_level(list) {
        let (value, oid, default_name) = constant(&item, ctx)?;
        let lower_item = item.to_ascii_lowercase();
        let name = match lower_item.rfind(" as ") {
            Some(at) => item[at + 4..].trim().trim_matches('"').to_string(),
            None => default_name,
        };
        fields.push((name, oid));
        row.push(value);
    }
    Some(Answer {
        fields,
        rows: vec![row],
    })
}

/// One constant item: value, type, default column name.
fn constant(item: &str, ctx: &Context) -> Option<(Option<String>, u32, String)> {
    let lower = item.to_ascii_lowercase();
    let expr = match lower.rfind(" as ") {
        Some(at) => &item[..at],
        None => item,
    }
    .trim();
    let (expr, cast) = match expr.split_once("::") {
        Some((e, c)) => (e.trim(), types::cast_type(c.trim())),
        None => (expr, None),
    };
    let e = expr.to_ascii_lowercase();
    let e = e.strip_prefix("pg_catalog.").unwrap_or(&e);
    let s = |v: &str| Some(v.to_string());
    let (value, oid, name): (Option<String>, u32, &str) = match e {
        "version()" => (Some(version()), types::TEXT, "version"),
        "current_database()" => (s(ctx.database), types::NAME, "current_database"),
        "current_schema()" | "current_schema" => (s("public"), types::NAME, "current_schema"),
        "current_user" | "session_user" | "user" | "current_role" => {
            (s(&ctx.principal.user), types::NAME, e)
        }
        "pg_backend_pid()" => (
            Some(ctx.process_id.to_string()),
            types::INT4,
            "pg_backend_pid",
        ),
        "now()" | "current_timestamp" | "transaction_timestamp()" | "statement_timestamp()" => {
            let mut t = String::new();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            types::timestamp_text(now, &mut t);
            (Some(t), types::TIMESTAMPTZ, "now")
        }
        "true" => (s("t"), types::BOOL, "bool"),
        "false" => (s("f"), types::BOOL, "bool"),
        "null" => (None, types::TEXT, "?column?"),
        "pg_is_in_recovery()" => (s("f"), types::BOOL, "pg_is_in_recovery"),
        "current_schemas(true)" | "current_schemas(false)" => {
            (s("{public}"), types::TEXT_ARRAY, "current_schemas")
        }
        _ if e.starts_with("current_setting(") => {
            let arg = expr[expr.find('(')? + 1..expr.rfind(')')?].trim();
            let arg = arg.trim_matches('\'');
            (
                ctx.settings.get(arg).map(str::to_string),
                types::TEXT,
                "current_setting",
            )
        }
        _ if e.starts_with('\'') && e.ends_with('\'') && e.len() >= 2 => (
            Some(expr[1..expr.len() - 1].replace("''", "'")),
            types::TEXT,
            "?column?",
        ),
        _ if e.parse::<i32>().is_ok() => (s(e), types::INT4, "?column?"),
        _ if e.parse::<i64>().is_ok() => (s(e), types::INT8, "?column?"),
        _ => return None,
    };
    let oid = match cast {
        Some(c) if c == types::TEXT => types::TEXT,
        Some(c)
            if value.as_deref().is_some_and(|v| v.parse::<i64>().is_ok()) && c == types::INT8 =>
        {
            c
        }
        _ => oid,
    };
    Some((value, oid, name.to_string()))
}

/// The RowDescription type of a column type (for COPY and tests).
pub fn column_oid(ty: ColumnType) -> u32 {
    types::oid(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_items_and_names() {
        let items = select_items(
            "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\", pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, (SELECT x FROM y) AS attcollation\nFROM pg_catalog.pg_class c",
        );
        let names: Vec<&str> = items.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Schema",
                "Name",
                "format_type",
                "attnotnull",
                "attcollation"
            ]
        );
        assert!(pattern_matches("profiles", "profiles"));
        assert!(pattern_matches("prof.*", "profiles"));
        assert!(!pattern_matches("prof", "profiles"));
        assert!(pattern_matches("a\\.b", "a.b"));
        assert!(is_catalog_query("select * from pg_catalog.pg_class"));
        assert!(is_catalog_query("select oid from pg_type where x"));
        assert!(!is_catalog_query(
            "select count(*) from profiles where pg_typeish = 'a'"
        ));
    }
}
