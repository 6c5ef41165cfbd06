//! Parsing: CohortQL text → [`Spanned`] statements, with the pest grammar in
//! grammar/cohortql.pest.
//!
//! Invariants: no input panics the parser or exhausts the stack — nesting of
//! parentheses and NOT is limited to [`MAX_NESTING`] before pest runs (pest
//! and the tree walk recurse per level), and every literal conversion that
//! can fail (integer overflow, escapes) is a syntax error with a position.

use super::ast::*;
use super::error::{Position, QueryError, QueryResult};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/cohortql.pest"]
struct CohortQl;

/// Deepest nesting of parentheses and NOT accepted.
pub const MAX_NESTING: usize = 256;

/// Parses a script of `;`-separated statements.
pub fn parse(source: &str) -> QueryResult<Vec<Spanned>> {
    check_nesting(source)?;
    let mut pairs = CohortQl::parse(Rule::script, source).map_err(|e| syntax_error(source, e))?;
    let script = pairs.next().ok_or_else(|| internal(source))?;
    let mut out = Vec::new();
    for pair in script.into_inner() {
        if pair.as_rule() == Rule::statement {
            let span = span_of(&pair);
            let inner = pair.into_inner().next().ok_or_else(|| internal(source))?;
            out.push(Spanned {
                statement: statement(source, inner)?,
                span,
            });
        }
    }
    Ok(out)
}

/// Parses one predicate (a stored segment definition).
pub fn parse_predicate(source: &str) -> QueryResult<Expr> {
    check_nesting(source)?;
    let mut pairs =
        CohortQl::parse(Rule::definition, source).map_err(|e| syntax_error(source, e))?;
    let definition = pairs.next().ok_or_else(|| internal(source))?;
    let e = definition
        .into_inner()
        .find(|p| p.as_rule() == Rule::expr)
        .ok_or_else(|| internal(source))?;
    expr(source, e)
}

fn internal(source: &str) -> QueryError {
    QueryError::Syntax {
        position: Position::of(source, 0),
        message: "internal parser error: the parse tree has an unexpected shape".into(),
    }
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span {
        start: s.start(),
        end: s.end(),
    }
}

fn error_at(source: &str, offset: usize, message: impl Into<String>) -> QueryError {
    QueryError::Syntax {
        position: Position::of(source, offset),
        message: message.into(),
    }
}

/// Refuses inputs nested deeper than [`MAX_NESTING`] before pest sees them.
fn check_nesting(source: &str) -> QueryResult<()> {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut nots = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                // Skip a quoted string or identifier (doubled quotes and \ escapes).
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\\' && b == b'\'' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == b {
                        if bytes.get(i + 1) == Some(&b) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                nots = 0;
            }
            b if b.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if source[start..i].eq_ignore_ascii_case("not") {
                    nots += 1;
                } else {
                    nots = 0;
                }
                if depth + nots > MAX_NESTING {
                    return Err(error_at(
                        source,
                        start,
                        format!("the condition is nested more than {MAX_NESTING} levels deep"),
                    ));
                }
                continue;
            }
            _ => {}
        }
        if depth + nots > MAX_NESTING {
            return Err(error_at(
                source,
                i,
                format!("the condition is nested more than {MAX_NESTING} levels deep"),
            ));
        }
        i += 1;
    }
    Ok(())
}

/// A friendly name for what a rule stands for.
fn describe(rule: Rule) -> &'static str {
    use Rule::*;
    match rule {
        statement | k_select | k_create | k_drop | k_show | k_describe | k_insert | k_update
        | k_delete | k_explain | k_overlap | k_top => {
            "a statement (SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, OVERLAP, TOP, ...)"
        }
        EOI => "';' or the end of the input",
        ident | bare_ident | quoted_ident => "a name",
        literal | string | number | boolean | null | set_literal | timestamp_literal | k_true
        | k_false | k_null | k_timestamp => "a value",
        integer => "a whole number",
        condition | is_null | is_not_null | between | not_between | in_list | not_in | has
        | has_any | has_all | comparison | cmp_op | k_is | k_between | k_in | k_has => {
            "a comparison (=, !=, <, <=, >, >=, IN, BETWEEN, HAS, IS NULL)"
        }
        expr | or_expr | and_expr | not_expr | negation | primary | predicate => "a condition",
        select_list | select_item | star | count_star | aggregate | agg_fn => {
            "a column, * or an aggregate"
        }
        k_from => "FROM",
        k_segment => "SEGMENT",
        k_segments => "SEGMENTS",
        k_on | on_table => "ON",
        k_replace => "REPLACE",
        k_materialized | materialized => "MATERIALIZED",
        k_within | within_clause => "WITHIN",
        k_lift | top_order => "BY COUNT or BY LIFT",
        min_count => "MIN COUNT",
        overlap_item | paren_expr => "a segment name or a (predicate)",
        in_segment => "IN segment",
        k_where => "WHERE",
        k_table => "TABLE",
        k_into => "INTO",
        k_values => "VALUES",
        k_set => "SET",
        k_by => "BY",
        k_and => "AND",
        k_or => "OR",
        k_not => "NOT",
        k_any | k_all => "ANY or ALL",
        k_group | group_by => "GROUP BY",
        k_password => "PASSWORD",
        k_role => "ROLE (admin, writer or analyst)",
        k_user => "USER",
        k_order | order_by => "ORDER BY",
        k_limit | limit => "LIMIT",
        where_clause => "WHERE",
        direction | k_asc | k_desc => "ASC or DESC",
        alias | k_as => "AS",
        type_name | set_type => "a type (TEXT, SET<TEXT>, INT, TIMESTAMP, FLOAT, BOOL)",
        primary_key | k_primary | k_key => "PRIMARY KEY",
        pii | k_pii => "PII",
        with_options | k_with => "WITH",
        column_def => "a column definition",
        table_option => "an option (name = value)",
        value_row => "a row of values in parentheses",
        assignment => "an assignment (column = value)",
        set_add | set_remove => "a set change (column + [...] or column - [...])",
        _ => "something else",
    }
}

/// The token at `offset`, for "found ..." in messages.
fn token_at(source: &str, offset: usize) -> String {
    let rest = source.get(offset..).unwrap_or("").trim_start();
    if rest.is_empty() {
        return "the end of the input".to_string();
    }
    let first = rest.chars().next().unwrap_or(' ');
    let token: String = if first.is_alphanumeric() || first == '_' {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    } else if first == '\'' || first == '"' {
        rest.chars().take(24).collect()
    } else {
        first.to_string()
    };
    format!("'{token}'")
}

/// The token just before `offset`, for "after ..." in messages.
fn token_before(source: &str, offset: usize) -> Option<String> {
    let before = source.get(..offset)?.trim_end();
    let last = before.chars().last()?;
    if last.is_alphanumeric() || last == '_' {
        let word: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        Some(word.chars().rev().collect())
    } else {
        Some(last.to_string())
    }
}

fn syntax_error(source: &str, e: pest::error::Error<Rule>) -> QueryError {
    let offset = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut wanted: Vec<&str> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(|r| describe(*r)).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    wanted.dedup();
    let mut seen = std::collections::HashSet::new();
    wanted.retain(|w| *w != "something else" && seen.insert(*w));
    let found = token_at(source, offset);
    let previous = token_before(source, offset);
    if wanted.is_empty() && previous.as_deref().is_none_or(|t| t == ";") {
        wanted.push(describe(Rule::statement));
    }
    let after = previous
        .map(|t| format!(" after '{t}'"))
        .unwrap_or_default();
    let message = if wanted.is_empty() {
        format!("unexpected {found}{after}")
    } else {
        let list = match wanted.len() {
            1 => wanted[0].to_string(),
            n => format!("{} or {}", wanted[..n - 1].join(", "), wanted[n - 1]),
        };
        format!("expected {list}{after}, found {found}")
    };
    // Point at the offending token, not at the whitespace before it.
    let skipped = source
        .get(offset..)
        .map_or(0, |r| r.len() - r.trim_start().len());
    error_at(source, offset + skipped, message)
}

// ---- tree walk --------------------------------------------------------------

type P<'a> = Pair<'a, Rule>;

fn children<'a>(pair: P<'a>) -> Vec<P<'a>> {
    pair.into_inner().collect()
}

fn ident(pair: P<'_>) -> Ident {
    let span = span_of(&pair);
    let inner = pair.into_inner().next();
    let name = match inner {
        Some(p) if p.as_rule() == Rule::quoted_ident => {
            let s = p.as_str();
            s[1..s.len() - 1].replace("\"\"", "\"")
        }
        Some(p) => p.as_str().to_string(),
        None => String::new(),
    };
    Ident { name, span }
}

fn unescape(source: &str, pair: &P<'_>) -> QueryResult<String> {
    let raw = pair.as_str();
    let body = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A doubled quote ('') stands for one.
                chars.next();
                out.push('\'');
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                Some(other) => {
                    return Err(error_at(
                        source,
                        pair.as_span().start(),
                        format!("unknown escape '\\{other}' in a string (use \\\\, \\', \\n, \\t, \\r or \\0)"),
                    ))
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn literal(source: &str, pair: P<'_>) -> QueryResult<Lit> {
    let span = span_of(&pair);
    let inner = pair.into_inner().next().ok_or_else(|| internal(source))?;
    let value = match inner.as_rule() {
        Rule::string => Literal::Str(unescape(source, &inner)?),
        Rule::number => {
            let text = inner.as_str();
            if text.contains(['.', 'e', 'E']) {
                let v: f64 = text
                    .parse()
                    .map_err(|_| error_at(source, span.start, format!("{text} is not a number")))?;
                if !v.is_finite() {
                    return Err(error_at(
                        source,
                        span.start,
                        format!("{text} is out of range"),
                    ));
                }
                Literal::Float(v)
            } else {
                Literal::Int(text.parse().map_err(|_| {
                    error_at(
                        source,
                        span.start,
                        format!("{text} does not fit a 64-bit integer"),
                    )
                })?)
            }
        }
        Rule::boolean => Literal::Bool(inner.as_str().eq_ignore_ascii_case("true")),
        Rule::null => Literal::Null,
        Rule::set_literal => Literal::Set(
            inner
                .into_inner()
                .map(|s| unescape(source, &s))
                .collect::<QueryResult<_>>()?,
        ),
        Rule::timestamp_literal => {
            let s = inner
                .into_inner()
                .find(|p| p.as_rule() == Rule::string)
                .ok_or_else(|| internal(source))?;
            Literal::Timestamp(unescape(source, &s)?)
        }
        Rule::event_literal => Literal::Events(vec![event(source, inner)?]),
        Rule::event_list => Literal::Events(
            inner
                .into_inner()
                .filter(|p| p.as_rule() == Rule::event_literal)
                .map(|p| event(source, p))
                .collect::<QueryResult<_>>()?,
        ),
        _ => return Err(internal(source)),
    };
    Ok(Lit { value, span })
}

/// `EVENT('value', time)`: the value and the time as a literal.
fn event(source: &str, pair: P<'_>) -> QueryResult<(String, Lit)> {
    let mut value = None;
    let mut time = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::string => value = Some(unescape(source, &p)?),
            Rule::event_time => {
                let span = span_of(&p);
                // An event time is a literal of its own (string, number or TIMESTAMP).
                time = Some(literal(source, p).map(|l| Lit { span, ..l })?);
            }
            _ => {}
        }
    }
    match (value, time) {
        (Some(v), Some(t)) => Ok((v, t)),
        _ => Err(internal(source)),
    }
}

/// `AS OF time` of a query.
fn as_of(source: &str, pair: P<'_>) -> QueryResult<Lit> {
    let l = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::literal)
        .ok_or_else(|| internal(source))?;
    literal(source, l)
}

fn event_window(source: &str, pair: P<'_>) -> QueryResult<EventWindow> {
    let mut window = EventWindow {
        min_days: None,
        range: None,
    };
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::on_at_least => {
                let n = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::integer)
                    .ok_or_else(|| internal(source))?;
                window.min_days = Some((whole_number(source, &n)?, span_of(&n)));
            }
            Rule::time_range => {
                let r = p.into_inner().next().ok_or_else(|| internal(source))?;
                window.range = Some(match r.as_rule() {
                    Rule::within_days => {
                        let n = r
                            .into_inner()
                            .find(|x| x.as_rule() == Rule::integer)
                            .ok_or_else(|| internal(source))?;
                        TimeRange::WithinDays(whole_number(source, &n)?, span_of(&n))
                    }
                    Rule::since_ts => TimeRange::Since(
                        lits(source, r)?
                            .into_iter()
                            .next()
                            .ok_or_else(|| internal(source))?,
                    ),
                    Rule::between_ts => {
                        let mut v = lits(source, r)?.into_iter();
                        let (Some(a), Some(b)) = (v.next(), v.next()) else {
                            return Err(internal(source));
                        };
                        TimeRange::Between(a, b)
                    }
                    _ => return Err(internal(source)),
                });
            }
            _ => {}
        }
    }
    Ok(window)
}

/// The literals among a pair's children.
fn lits(source: &str, pair: P<'_>) -> QueryResult<Vec<Lit>> {
    literals(source, children(pair))
}

fn literals(source: &str, pairs: Vec<P<'_>>) -> QueryResult<Vec<Lit>> {
    pairs
        .into_iter()
        .filter(|p| p.as_rule() == Rule::literal)
        .map(|p| literal(source, p))
        .collect()
}

fn set_strings(source: &str, pair: P<'_>) -> QueryResult<Vec<String>> {
    pair.into_inner().map(|s| unescape(source, &s)).collect()
}

fn statement(source: &str, pair: P<'_>) -> QueryResult<Statement> {
    Ok(match pair.as_rule() {
        Rule::create_table => {
            let mut name = None;
            let mut columns = Vec::new();
            let mut options = Vec::new();
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => name = Some(ident(p)),
                    Rule::column_def => columns.push(column_def(source, p)?),
                    Rule::with_options => {
                        for o in p.into_inner().filter(|o| o.as_rule() == Rule::table_option) {
                            let mut it = o.into_inner();
                            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                                return Err(internal(source));
                            };
                            options.push((ident(k), literal(source, v)?));
                        }
                    }
                    _ => {}
                }
            }
            Statement::CreateTable {
                name: name.ok_or_else(|| internal(source))?,
                columns,
                options,
            }
        }
        Rule::drop_table => {
            let (name, if_exists) = drop_target(source, pair)?;
            Statement::DropTable { name, if_exists }
        }
        Rule::create_user => {
            let mut idents = Vec::new();
            let mut password = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => idents.push(ident(p)),
                    Rule::string => password = Some(unescape(source, &p)?),
                    _ => {}
                }
            }
            let mut idents = idents.into_iter();
            let (Some(name), Some(password), Some(role)) = (idents.next(), password, idents.next())
            else {
                return Err(internal(source));
            };
            Statement::CreateUser {
                name,
                password,
                role,
            }
        }
        Rule::drop_user => {
            let (name, if_exists) = drop_target(source, pair)?;
            Statement::DropUser { name, if_exists }
        }
        Rule::show_tables => Statement::ShowTables,
        Rule::describe => Statement::Describe {
            table: pair
                .into_inner()
                .find(|p| p.as_rule() == Rule::ident)
                .map(ident)
                .ok_or_else(|| internal(source))?,
        },
        Rule::insert => {
            let mut idents = Vec::new();
            let mut rows = Vec::new();
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => idents.push(ident(p)),
                    Rule::value_row => {
                        let span = span_of(&p);
                        rows.push((literals(source, children(p))?, span));
                    }
                    _ => {}
                }
            }
            if idents.is_empty() {
                return Err(internal(source));
            }
            let table = idents.remove(0);
            Statement::Insert {
                table,
                columns: idents,
                rows,
            }
        }
        Rule::update => {
            let mut table = None;
            let mut assignments = Vec::new();
            let mut filter = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => table = Some(ident(p)),
                    Rule::assignment => assignments.push(assignment(source, p)?),
                    Rule::where_clause => filter = Some(where_clause(source, p)?),
                    _ => {}
                }
            }
            Statement::Update {
                table: table.ok_or_else(|| internal(source))?,
                assignments,
                filter,
            }
        }
        Rule::delete => {
            let mut table = None;
            let mut filter = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => table = Some(ident(p)),
                    Rule::where_clause => filter = Some(where_clause(source, p)?),
                    _ => {}
                }
            }
            Statement::Delete {
                table: table.ok_or_else(|| internal(source))?,
                filter,
            }
        }
        Rule::select => Statement::Select(select(source, pair)?),
        Rule::create_segment => {
            let mut idents = Vec::new();
            let mut definition = None;
            let (mut materialized, mut replace) = (false, false);
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => idents.push(ident(p)),
                    Rule::expr => {
                        let span = span_of(&p);
                        definition =
                            Some((expr(source, p)?, source[span.start..span.end].to_string()));
                    }
                    Rule::materialized => materialized = true,
                    Rule::or_replace => replace = true,
                    _ => {}
                }
            }
            let mut idents = idents.into_iter();
            let (Some(name), Some(table), Some((definition, text))) =
                (idents.next(), idents.next(), definition)
            else {
                return Err(internal(source));
            };
            Statement::CreateSegment {
                name,
                table,
                definition,
                text,
                materialized,
                replace,
            }
        }
        Rule::drop_segment => {
            let (name, if_exists) = drop_target(source, pair)?;
            Statement::DropSegment { name, if_exists }
        }
        Rule::show_segments => Statement::ShowSegments,
        Rule::describe_segment => Statement::DescribeSegment {
            name: pair
                .into_inner()
                .find(|p| p.as_rule() == Rule::ident)
                .map(ident)
                .ok_or_else(|| internal(source))?,
        },
        Rule::overlap => Statement::Overlap(overlap(source, pair)?),
        Rule::export => Statement::Export(export(source, pair)?),
        Rule::show_exports => Statement::ShowExports,
        Rule::forget => {
            let mut id = None;
            let mut table = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::string => id = Some(unescape(source, &p)?),
                    Rule::ident => table = Some(ident(p)),
                    _ => {}
                }
            }
            Statement::Forget {
                id: id.ok_or_else(|| internal(source))?,
                table,
            }
        }
        Rule::lookalike => Statement::Lookalike(lookalike(source, pair)?),
        Rule::top => Statement::Top(top(source, pair)?),
        Rule::explain => {
            let inner = pair
                .into_inner()
                .find(|p| p.as_rule() == Rule::select)
                .ok_or_else(|| internal(source))?;
            Statement::Explain(select(source, inner)?)
        }
        _ => return Err(internal(source)),
    })
}

/// The name and `IF EXISTS` flag of a `DROP TABLE` / `DROP USER`.
fn drop_target(source: &str, pair: P<'_>) -> QueryResult<(Ident, bool)> {
    let mut if_exists = false;
    let mut name = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::if_exists => if_exists = true,
            Rule::ident => name = Some(ident(p)),
            _ => {}
        }
    }
    Ok((name.ok_or_else(|| internal(source))?, if_exists))
}

fn column_def(source: &str, pair: P<'_>) -> QueryResult<ColumnSpec> {
    let mut it = pair.into_inner();
    let name = ident(it.next().ok_or_else(|| internal(source))?);
    let ty_pair = it.next().ok_or_else(|| internal(source))?;
    let inner = ty_pair
        .into_inner()
        .next()
        .ok_or_else(|| internal(source))?;
    let (ty, set_of, events) = match inner.as_rule() {
        rule @ (Rule::set_type | Rule::events_type) => (
            inner
                .into_inner()
                .find(|p| p.as_rule() == Rule::ident)
                .map(ident)
                .ok_or_else(|| internal(source))?,
            rule == Rule::set_type,
            rule == Rule::events_type,
        ),
        _ => (ident(inner), false, false),
    };
    let mut spec = ColumnSpec {
        name,
        ty,
        set_of,
        events,
        primary_key: false,
        pii: false,
    };
    for p in it {
        match p.as_rule() {
            Rule::primary_key => spec.primary_key = true,
            Rule::pii => spec.pii = true,
            _ => {}
        }
    }
    Ok(spec)
}

fn assignment(source: &str, pair: P<'_>) -> QueryResult<Assignment> {
    let mut it = pair.into_inner();
    let column = ident(it.next().ok_or_else(|| internal(source))?);
    let value = it.next().ok_or_else(|| internal(source))?;
    let value = match value.as_rule() {
        Rule::set_add | Rule::set_remove => {
            let add = value.as_rule() == Rule::set_add;
            let mut inner = value.into_inner();
            let target = ident(inner.next().ok_or_else(|| internal(source))?);
            let tags = set_strings(source, inner.next().ok_or_else(|| internal(source))?)?;
            if add {
                AssignValue::Add(target, tags)
            } else {
                AssignValue::Remove(target, tags)
            }
        }
        _ => AssignValue::Literal(literal(source, value)?),
    };
    Ok(Assignment { column, value })
}

fn select(source: &str, pair: P<'_>) -> QueryResult<Select> {
    let mut items = Vec::new();
    let mut table = None;
    let mut filter = None;
    let mut group_by = Vec::new();
    let mut order_by = Vec::new();
    let mut limit = None;
    let mut at = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::select_list => {
                for item in p.into_inner() {
                    let span = span_of(&item);
                    let mut inner = item.into_inner();
                    let expr = select_expr(source, inner.next().ok_or_else(|| internal(source))?)?;
                    let alias = inner
                        .next()
                        .and_then(|a| a.into_inner().find(|x| x.as_rule() == Rule::ident))
                        .map(ident);
                    items.push(SelectItem { expr, alias, span });
                }
            }
            Rule::ident => table = Some(ident(p)),
            Rule::where_clause => filter = Some(where_clause(source, p)?),
            Rule::group_by => {
                group_by = p
                    .into_inner()
                    .filter(|x| x.as_rule() == Rule::ident)
                    .map(ident)
                    .collect()
            }
            Rule::order_by => {
                for item in p.into_inner().filter(|x| x.as_rule() == Rule::order_item) {
                    let span = span_of(&item);
                    let mut inner = item.into_inner();
                    let key_pair = inner.next().ok_or_else(|| internal(source))?;
                    let key = if key_pair.as_rule() == Rule::integer {
                        OrderKey::Position(key_pair.as_str().parse().map_err(|_| {
                            error_at(source, span.start, "ORDER BY position is too large")
                        })?)
                    } else {
                        OrderKey::Expr(select_expr(source, key_pair)?)
                    };
                    let descending = inner
                        .next()
                        .is_some_and(|d| d.as_str().eq_ignore_ascii_case("desc"));
                    order_by.push(OrderItem {
                        key,
                        descending,
                        span,
                    });
                }
            }
            Rule::limit => {
                let n = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::integer)
                    .ok_or_else(|| internal(source))?;
                let span = span_of(&n);
                let v = n
                    .as_str()
                    .parse()
                    .map_err(|_| error_at(source, span.start, "LIMIT is too large"))?;
                limit = Some((v, span));
            }
            Rule::as_of => at = Some(as_of(source, p)?),
            _ => {}
        }
    }
    Ok(Select {
        items,
        table: table.ok_or_else(|| internal(source))?,
        filter,
        group_by,
        order_by,
        limit,
        as_of: at,
    })
}

fn select_expr(source: &str, pair: P<'_>) -> QueryResult<SelectExpr> {
    Ok(match pair.as_rule() {
        Rule::star => SelectExpr::Star,
        Rule::count_star => SelectExpr::CountStar,
        Rule::ident => SelectExpr::Column(ident(pair)),
        Rule::aggregate => {
            let mut it = pair.into_inner();
            let f = it.next().ok_or_else(|| internal(source))?;
            let name = f.as_str().to_ascii_lowercase();
            let func = match name.as_str() {
                "count" => AggFn::Count,
                "sum" => AggFn::Sum,
                "avg" => AggFn::Avg,
                "min" => AggFn::Min,
                "max" => AggFn::Max,
                _ => return Err(internal(source)),
            };
            SelectExpr::Agg(func, ident(it.next().ok_or_else(|| internal(source))?))
        }
        _ => return Err(internal(source)),
    })
}

fn overlap(source: &str, pair: P<'_>) -> QueryResult<Overlap> {
    let span = span_of(&pair);
    let mut out = Overlap {
        matrix: false,
        items: Vec::new(),
        table: None,
        filter: None,
        span,
        as_of: None,
    };
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::matrix => out.matrix = true,
            Rule::as_of => out.as_of = Some(as_of(source, p)?),
            Rule::overlap_item => {
                let span = span_of(&p);
                let mut target = None;
                let mut alias = None;
                let mut text = String::new();
                for part in p.into_inner() {
                    match part.as_rule() {
                        Rule::ident => {
                            let name = ident(part);
                            text = name.name.clone();
                            target = Some(OverlapTarget::Segment(name));
                        }
                        Rule::paren_expr => {
                            let inner = part
                                .into_inner()
                                .find(|x| x.as_rule() == Rule::expr)
                                .ok_or_else(|| internal(source))?;
                            let s = span_of(&inner);
                            text = source[s.start..s.end].to_string();
                            target = Some(OverlapTarget::Predicate(expr(source, inner)?));
                        }
                        Rule::alias => {
                            alias = part
                                .into_inner()
                                .find(|x| x.as_rule() == Rule::ident)
                                .map(ident);
                        }
                        _ => {}
                    }
                }
                out.items.push(OverlapItem {
                    target: target.ok_or_else(|| internal(source))?,
                    alias,
                    text,
                    span,
                });
            }
            Rule::on_table => {
                out.table = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::ident)
                    .map(ident);
            }
            Rule::where_clause => out.filter = Some(where_clause(source, p)?),
            _ => {}
        }
    }
    Ok(out)
}

/// An `audience` pair: a segment name or a parenthesised predicate.
fn audience(source: &str, pair: P<'_>) -> QueryResult<Audience> {
    let span = span_of(&pair);
    let part = pair.into_inner().next().ok_or_else(|| internal(source))?;
    let (target, text) = match part.as_rule() {
        Rule::ident => {
            let name = ident(part);
            let text = name.name.clone();
            (OverlapTarget::Segment(name), text)
        }
        Rule::paren_expr => {
            let inner = part
                .into_inner()
                .find(|x| x.as_rule() == Rule::expr)
                .ok_or_else(|| internal(source))?;
            let s = span_of(&inner);
            let text = source[s.start..s.end].to_string();
            (OverlapTarget::Predicate(expr(source, inner)?), text)
        }
        _ => return Err(internal(source)),
    };
    Ok(Audience {
        target,
        table: None,
        text,
        span,
    })
}

fn on_table(pair: P<'_>) -> Option<Ident> {
    pair.into_inner()
        .find(|x| x.as_rule() == Rule::ident)
        .map(ident)
}

fn for_purpose(source: &str, pair: P<'_>) -> QueryResult<String> {
    let s = pair
        .into_inner()
        .find(|x| x.as_rule() == Rule::string)
        .ok_or_else(|| internal(source))?;
    unescape(source, &s)
}

/// The number of a `LIMIT n`.
fn limit_of(source: &str, pair: P<'_>) -> QueryResult<u64> {
    let n = pair
        .into_inner()
        .find(|x| x.as_rule() == Rule::integer)
        .ok_or_else(|| internal(source))?;
    whole_number(source, &n)
}

fn export(source: &str, pair: P<'_>) -> QueryResult<Export> {
    let span = span_of(&pair);
    let (mut aud, mut table, mut columns, mut purpose, mut limit, mut at) =
        (None, None, Vec::new(), None, None, None);
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::audience => aud = Some(audience(source, p)?),
            Rule::on_table => table = on_table(p),
            Rule::export_columns => {
                columns = p
                    .into_inner()
                    .filter(|x| x.as_rule() == Rule::ident)
                    .map(ident)
                    .collect()
            }
            Rule::for_purpose => purpose = Some(for_purpose(source, p)?),
            Rule::limit => limit = Some(limit_of(source, p)?),
            Rule::as_of => at = Some(as_of(source, p)?),
            _ => {}
        }
    }
    let mut audience = aud.ok_or_else(|| internal(source))?;
    audience.table = table;
    Ok(Export {
        audience,
        columns,
        purpose,
        limit,
        as_of: at,
        span,
    })
}

fn lookalike(source: &str, pair: P<'_>) -> QueryResult<Lookalike> {
    let span = span_of(&pair);
    let (mut reach, mut seed, mut table, mut within, mut purpose, mut limit, mut at) =
        (false, None, None, None, None, None, None);
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::reach => reach = true,
            Rule::audience => seed = Some(audience(source, p)?),
            Rule::on_table => table = on_table(p),
            Rule::within_clause => {
                let e = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::expr)
                    .ok_or_else(|| internal(source))?;
                within = Some(expr(source, e)?);
            }
            Rule::for_purpose => purpose = Some(for_purpose(source, p)?),
            Rule::limit => limit = Some(limit_of(source, p)?),
            Rule::as_of => at = Some(as_of(source, p)?),
            _ => {}
        }
    }
    let mut seed = seed.ok_or_else(|| internal(source))?;
    seed.table = table;
    Ok(Lookalike {
        reach,
        seed,
        within,
        purpose,
        limit,
        as_of: at,
        span,
    })
}

fn top(source: &str, pair: P<'_>) -> QueryResult<Top> {
    let mut n = None;
    let mut idents = Vec::new();
    let (mut filter, mut within, mut by_lift, mut min_count) = (None, None, false, 0);
    let mut at = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::as_of => at = Some(as_of(source, p)?),
            Rule::integer => n = Some(whole_number(source, &p)?),
            Rule::ident => idents.push(ident(p)),
            Rule::where_clause => filter = Some(where_clause(source, p)?),
            Rule::within_clause => {
                let e = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::expr)
                    .ok_or_else(|| internal(source))?;
                within = Some(expr(source, e)?);
            }
            Rule::top_order => by_lift = p.into_inner().any(|x| x.as_rule() == Rule::k_lift),
            Rule::min_count => {
                let m = p
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::integer)
                    .ok_or_else(|| internal(source))?;
                min_count = whole_number(source, &m)?;
            }
            _ => {}
        }
    }
    let mut idents = idents.into_iter();
    let (Some(n), Some(column), Some(table)) = (n, idents.next(), idents.next()) else {
        return Err(internal(source));
    };
    Ok(Top {
        n,
        column,
        table,
        filter,
        within,
        by_lift,
        min_count,
        as_of: at,
    })
}

fn whole_number(source: &str, pair: &P<'_>) -> QueryResult<u64> {
    pair.as_str().parse::<u64>().map_err(|_| {
        error_at(
            source,
            pair.as_span().start(),
            format!("{} is too large a number", pair.as_str()),
        )
    })
}

fn where_clause(source: &str, pair: P<'_>) -> QueryResult<Expr> {
    let e = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::expr)
        .ok_or_else(|| internal(source))?;
    expr(source, e)
}

fn expr(source: &str, pair: P<'_>) -> QueryResult<Expr> {
    match pair.as_rule() {
        Rule::expr | Rule::not_expr | Rule::primary => {
            let inner = pair.into_inner().next().ok_or_else(|| internal(source))?;
            expr(source, inner)
        }
        Rule::or_expr | Rule::and_expr => {
            let is_or = pair.as_rule() == Rule::or_expr;
            let parts: Vec<Expr> = pair
                .into_inner()
                .filter(|p| !matches!(p.as_rule(), Rule::k_or | Rule::k_and))
                .map(|p| expr(source, p))
                .collect::<QueryResult<_>>()?;
            Ok(match (parts.len(), is_or) {
                (1, _) => parts.into_iter().next().ok_or_else(|| internal(source))?,
                (_, true) => Expr::Or(parts),
                (_, false) => Expr::And(parts),
            })
        }
        Rule::negation => {
            let inner = pair
                .into_inner()
                .find(|p| p.as_rule() == Rule::not_expr)
                .ok_or_else(|| internal(source))?;
            Ok(Expr::Not(Box::new(expr(source, inner)?)))
        }
        Rule::in_segment => pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::ident)
            .map(|p| Expr::InSegment(ident(p)))
            .ok_or_else(|| internal(source)),
        Rule::predicate => {
            let span = span_of(&pair);
            let mut it = pair.into_inner();
            let column = ident(it.next().ok_or_else(|| internal(source))?);
            let cond = it
                .next()
                .and_then(|c| c.into_inner().next())
                .ok_or_else(|| internal(source))?;
            Ok(Expr::Pred(Predicate {
                column,
                condition: condition(source, cond)?,
                span,
            }))
        }
        _ => Err(internal(source)),
    }
}

fn condition(source: &str, pair: P<'_>) -> QueryResult<Condition> {
    let rule = pair.as_rule();
    let parts = children(pair);
    let lits = |parts: Vec<P<'_>>| literals(source, parts);
    Ok(match rule {
        Rule::is_null => Condition::IsNull,
        Rule::is_not_null => Condition::IsNotNull,
        Rule::between | Rule::not_between => {
            let mut v = lits(parts)?.into_iter();
            let (Some(low), Some(high)) = (v.next(), v.next()) else {
                return Err(internal(source));
            };
            Condition::Between {
                low,
                high,
                negated: rule == Rule::not_between,
            }
        }
        Rule::in_list | Rule::not_in => Condition::In {
            values: lits(parts)?,
            negated: rule == Rule::not_in,
        },
        Rule::has_any => Condition::HasAny(lits(parts)?),
        Rule::has_all => Condition::HasAll(lits(parts)?),
        Rule::has => {
            let window = parts
                .iter()
                .find(|p| p.as_rule() == Rule::event_window)
                .cloned()
                .map(|w| event_window(source, w))
                .transpose()?;
            Condition::Has(
                lits(parts)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| internal(source))?,
                window,
            )
        }
        Rule::comparison => {
            let mut it = parts.into_iter();
            let op = it.next().ok_or_else(|| internal(source))?;
            let op = match op.as_str() {
                "=" => CmpOp::Eq,
                "!=" | "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                ">=" => CmpOp::Ge,
                _ => return Err(internal(source)),
            };
            let lit = literal(source, it.next().ok_or_else(|| internal(source))?)?;
            Condition::Cmp(op, lit)
        }
        _ => return Err(internal(source)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(v.len(), 1, "{sql}");
        v.remove(0).statement
    }

    fn err(sql: &str) -> String {
        parse(sql).unwrap_err().to_string()
    }

    #[test]
    fn every_statement_parses() {
        for sql in [
            "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, age INT, interests SET<TEXT>, last_seen TIMESTAMP, ltv FLOAT, consent BOOL, email TEXT PII) WITH (retention_days = 90)",
            "DROP TABLE t",
            "drop table if exists t",
            "CREATE USER ann PASSWORD 's3cret' ROLE analyst",
            "DROP USER IF EXISTS ann",
            "SHOW TABLES",
            "DESCRIBE t",
            "INSERT INTO t (id, a, s) VALUES ('u1', 1, ['x','y']), ('u2', NULL, [])",
            "UPDATE t SET a = 5, s = s + ['x'], s = s - ['y'] WHERE id = 'u1'",
            "DELETE FROM t WHERE id = 'u1'",
            "DELETE FROM t",
            "SELECT COUNT(*) FROM t",
            "SELECT country, COUNT(*) FROM t WHERE age > 3 GROUP BY country ORDER BY 2 DESC LIMIT 10",
            "SELECT SUM(a), AVG(a), MIN(a), MAX(a), COUNT(a) FROM t WHERE a IS NOT NULL",
            "SELECT id, a FROM t WHERE s HAS ANY ('x', 'y') LIMIT 5",
            "SELECT * FROM t",
            "EXPLAIN SELECT COUNT(*) FROM t WHERE s HAS 'x' AND NOT (a BETWEEN 1 AND 2 OR b NOT IN (1,2))",
        ] {
            one(sql);
        }
        assert_eq!(
            parse("SELECT COUNT(*) FROM a; SELECT COUNT(*) FROM b;;")
                .unwrap()
                .len(),
            2
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" ; -- nothing\n /* at all */ ").unwrap().is_empty());
    }

    #[test]
    fn keywords_are_case_insensitive_and_names_may_be_quoted() {
        let s = one("sElEcT \"select\", \"we\"\"ird\" FrOm \"Table\" wHeRe x iS nUlL");
        let Statement::Select(s) = s else { panic!() };
        assert_eq!(s.table.name, "Table");
        assert_eq!(
            s.items[0].expr,
            SelectExpr::Column(Ident {
                name: "select".into(),
                span: s.items[0].span
            })
        );
        match &s.items[1].expr {
            SelectExpr::Column(i) => assert_eq!(i.name, "we\"ird"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn string_escapes() {
        let Statement::Insert { rows, .. } =
            one(r"INSERT INTO t (id) VALUES ('it''s'), ('a\nb'), ('\\'), ('\'')")
        else {
            panic!()
        };
        let texts: Vec<Literal> = rows.into_iter().map(|(r, _)| r[0].value.clone()).collect();
        assert_eq!(
            texts,
            vec![
                Literal::Str("it's".into()),
                Literal::Str("a\nb".into()),
                Literal::Str("\\".into()),
                Literal::Str("'".into())
            ]
        );
        assert!(err(r"SELECT id FROM t WHERE a = 'x\q'").contains("unknown escape"));
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        let Statement::Select(s) = one("SELECT COUNT(*) FROM t WHERE NOT a = 1 AND b = 2 OR c = 3")
        else {
            panic!()
        };
        match s.filter.unwrap() {
            Expr::Or(parts) => {
                assert!(matches!(&parts[0], Expr::And(a) if matches!(a[0], Expr::Not(_))));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_say_where_and_what() {
        assert_eq!(
            err("SELECT COUNT(*) FROM t WHERE age AGE2"),
            "1:34: expected a comparison (=, !=, <, <=, >, >=, IN, BETWEEN, HAS, IS NULL) after 'age', found 'AGE2'"
        );
        assert!(
            err("SELEKT 1").starts_with("1:1: expected a statement"),
            "{}",
            err("SELEKT 1")
        );
        let e = err("SELECT COUNT(*)\nFROM t\nWHERE age >");
        assert!(
            e.starts_with("3:12: expected a value after '>', found the end of the input"),
            "{e}"
        );
        assert!(err("SELECT COUNT(*) FROM t WHERE a = 'open").starts_with("1:34:"));
        assert!(err("SELECT COUNT(*) FROM t WHERE a = 99999999999999999999").contains("64-bit"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let deep = format!(
            "SELECT COUNT(*) FROM t WHERE {}a = 1{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(err(&deep).contains("nested"));
        let nots = format!(
            "SELECT COUNT(*) FROM t WHERE {} a = 1",
            "NOT ".repeat(100_000)
        );
        assert!(err(&nots).contains("nested"));
        let ok = format!(
            "SELECT COUNT(*) FROM t WHERE {}a = 1{}",
            "(".repeat(100),
            ")".repeat(100)
        );
        parse(&ok).unwrap();
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples = [
            "'", "\"", "/*", "--", "(", "[", "SELECT", "\u{0}", "é", "SET<", "1e999", "-",
        ];
        for a in samples {
            for b in samples {
                let _ = parse(&format!("{a}{b}"));
                let _ = parse(&format!("SELECT COUNT(*) FROM t WHERE x = {a}{b}"));
            }
        }
    }
}
