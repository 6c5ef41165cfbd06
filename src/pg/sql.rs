//! Query text as PostgreSQL clients send it: split into statements at
//! top-level `;`, `$n` parameters replaced by CohortQL literals, and
//! positions mapped back to the text the client sent.
//!
//! The scanner knows `'strings'` (with `''` and backslash escapes, as
//! CohortQL reads them), `"identifiers"`, `-- comments` and `/* comments */`,
//! so a `;` or `$1` inside any of them is left alone.
//!
//! Invariants: pieces are exact sub-slices of the text (byte offsets
//! included), so an error's position in a piece maps to the client's text;
//! every substituted parameter is a literal (no text of a parameter is
//! ever read as CohortQL syntax).

use super::types::{cast_type, param_literal};
use super::PgError;

/// One statement of a query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The statement, without its `;`, untrimmed.
    pub text: &'a str,
    /// Byte offset of `text` in the whole query.
    pub offset: usize,
}

/// What the scanner found at a byte.
enum Token {
    /// A quoted string, identifier or comment of this many bytes.
    Skip(usize),
    /// Any other single character of this many bytes.
    Char(usize),
}

fn token(s: &str, i: usize) -> Token {
    let rest = &s.as_bytes()[i..];
    let char_len = s[i..].chars().next().map_or(1, char::len_utf8);
    match rest[0] {
        b'\'' | b'"' => {
            let q = rest[0];
            let mut j = 1;
            while j < rest.len() {
                if q == b'\'' && rest[j] == b'\\' {
                    j += 2;
                    continue;
                }
                if rest[j] == q {
                    if rest.get(j + 1) == Some(&q) {
                        j += 2;
                        continue;
                    }
                    return Token::Skip(j + 1);
                }
                j += 1;
            }
            Token::Skip(rest.len())
        }
        b'-' if rest.get(1) == Some(&b'-') => {
            Token::Skip(rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len()))
        }
        b'/' if rest.get(1) == Some(&b'*') => Token::Skip(
            rest.windows(2)
                .skip(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |p| p + 4),
        ),
        _ => Token::Char(char_len),
    }
}

/// Splits `text` at top-level `;`. Empty statements (only blanks and
/// comments) are dropped.
pub fn split<'a>(text: &'a str) -> Vec<Piece<'a>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |pieces: &mut Vec<Piece<'a>>, start: usize, end: usize| {
        let piece = &text[start..end];
        if !is_blank(piece) {
            pieces.push(Piece {
                text: piece,
                offset: start,
            });
        }
    };
    while i < text.len() {
        match token(text, i) {
            Token::Skip(n) => i += n.max(1),
            Token::Char(n) => {
                if text.as_bytes()[i] == b';' {
                    push(&mut pieces, start, i);
                    start = i + 1;
                }
                i += n;
            }
        }
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i += 1;
        }
    }
    push(&mut pieces, start, text.len());
    pieces
}

/// Whether `text` holds nothing but blanks and comments.
pub fn is_blank(text: &str) -> bool {
    let mut i = 0;
    while i < text.len() {
        let b = text.as_bytes()[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if text[i..].starts_with("--") || text[i..].starts_with("/*") {
            if let Token::Skip(n) = token(text, i) {
                i += n.max(1);
                continue;
            }
        }
        return false;
    }
    true
}

/// `text` without leading blanks and comments.
pub fn strip_leading(text: &str) -> &str {
    let mut t = text;
    loop {
        let trimmed = t.trim_start();
        if trimmed.starts_with("--") || trimmed.starts_with("/*") {
            match token(trimmed, 0) {
                Token::Skip(n) => t = &trimmed[n.min(trimmed.len())..],
                Token::Char(_) => return trimmed,
            }
        } else {
            return trimmed;
        }
    }
}

/// The highest `$n` in `text` (0 for none).
pub fn param_count(text: &str) -> usize {
    let mut max = 0;
    scan_params(text, |_, _, n, _| max = max.max(n));
    max
}

/// Calls `f(start, end, n, cast)` for every `$n` (with an optional `::type`
/// cast after it) outside strings, identifiers and comments.
fn scan_params(text: &str, mut f: impl FnMut(usize, usize, usize, Option<u32>)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        match token(text, i) {
            Token::Skip(n) => i += n.max(1),
            Token::Char(n) => {
                let prev_ident =
                    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                if bytes[i] == b'$' && !prev_ident {
                    let digits = bytes[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    if digits > 0 {
                        let mut end = i + 1 + digits;
                        let number: usize = text[i + 1..end].parse().unwrap_or(usize::MAX);
                        let mut cast = None;
                        if text[end..].starts_with("::") {
                            let name_len = bytes[end + 2..]
                                .iter()
                                .take_while(|b| {
                                    b.is_ascii_alphanumeric()
                                        || **b == b'_'
                                        || **b == b'['
                                        || **b == b']'
                                })
                                .count();
                            if let Some(oid) = cast_type(&text[end + 2..end + 2 + name_len]) {
                                cast = Some(oid);
                                end += 2 + name_len;
                            }
                        }
                        f(i, end, number, cast);
                        i = end;
                        continue;
                    }
                }
                i += n;
            }
        }
        i = i.min(text.len());
    }
}

/// A query with its parameters replaced, and where each replacement is, to
/// map positions back.
#[derive(Debug, Clone)]
pub struct Substituted {
    pub text: String,
    /// Per replacement, in order: (start, end) in `text`, (start, end) in the original.
    spans: Vec<(usize, usize, usize, usize)>,
}

impl Substituted {
    /// The original text unchanged.
    pub fn plain(text: &str) -> Substituted {
        Substituted {
            text: text.to_string(),
            spans: Vec::new(),
        }
    }

    /// The byte offset in the original of byte `at` of the substituted
    /// text (inside a replacement: where its `$n` starts).
    pub fn original_offset(&self, at: usize) -> usize {
        let mut delta: isize = 0;
        for &(new_start, new_end, orig_start, orig_end) in &self.spans {
            if at < new_start {
                break;
            }
            if at < new_end {
                return orig_start;
            }
            delta = orig_end as isize - new_end as isize;
        }
        (at as isize + delta).max(0) as usize
    }
}

/// Replaces `$1..$n` in `text` by the literals of `params`, each given as
/// (type OID, format, bytes). A `$n` beyond the parameters is an error.
pub fn substitute(
    text: &str,
    params: &[(u32, i16, Option<Vec<u8>>)],
) -> Result<Substituted, PgError> {
    let mut out = String::with_capacity(text.len() + params.len() * 8);
    let mut spans = Vec::new();
    let mut last = 0;
    let mut error = None;
    scan_params(text, |start, end, n, cast| {
        if error.is_some() {
            return;
        }
        let Some((oid, format, bytes)) = n.checked_sub(1).and_then(|i| params.get(i)) else {
            error = Some(PgError::Param {
                index: n,
                message: format!("is used but only {} parameters were bound", params.len()),
            });
            return;
        };
        let oid = match (cast, *format) {
            (Some(c), 0) => c,
            _ => *oid,
        };
        match param_literal(n, oid, *format, bytes.as_deref()) {
            Ok(lit) => {
                out.push_str(&text[last..start]);
                let new_start = out.len();
                out.push_str(&lit);
                spans.push((new_start, out.len(), start, end));
                last = end;
            }
            Err(e) => error = Some(e),
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    out.push_str(&text[last..]);
    Ok(Substituted { text: out, spans })
}

/// The 1-based character position of byte `offset` in `text`.
pub fn char_position(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    text[..offset].chars().count() + 1
}

/// The byte offset of a 1-based (line, column in characters) in `text`.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut at = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let in_line = l
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(l.len(), |(b, _)| b);
            return at + in_line;
        }
        at += l.len();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let text = "SELECT 1; SELECT ';' -- a ; comment\n; /* ; */ SELECT \"a;b\";;  ";
        let pieces: Vec<&str> = split(text).iter().map(|p| p.text.trim()).collect();
        assert_eq!(
            pieces,
            [
                "SELECT 1",
                "SELECT ';' -- a ; comment",
                "/* ; */ SELECT \"a;b\""
            ]
        );
        for p in split(text) {
            assert_eq!(&text[p.offset..p.offset + p.text.len()], p.text);
        }
        assert!(split("  -- nothing\n /* at all */ ").is_empty());
        assert_eq!(split("SELECT 'it''s; \\' ; x'").len(), 1);
        assert_eq!(split("SELECT 'é;'; x").len(), 2);
        assert_eq!(split("'unterminated; x").len(), 1);
        assert_eq!(strip_leading("  -- c\n /* d */ SET x"), "SET x");
    }

    #[test]
    fn parameters_are_replaced_by_literals_outside_quotes() {
        let text = "SELECT COUNT(*) FROM p WHERE country = $1 AND age > $2::int AND note = '$1'";
        assert_eq!(param_count(text), 2);
        let s = substitute(
            text,
            &[(0, 0, Some(b"F'R".to_vec())), (0, 0, Some(b"30".to_vec()))],
        )
        .unwrap();
        assert_eq!(
            s.text,
            "SELECT COUNT(*) FROM p WHERE country = 'F''R' AND age > 30 AND note = '$1'"
        );
        // Positions after a replacement map back to the original text.
        let after = s.text.find("AND age").unwrap();
        assert_eq!(s.original_offset(after), text.find("AND age").unwrap());
        let note = s.text.find("note").unwrap();
        assert_eq!(s.original_offset(note), text.find("note").unwrap());
        assert_eq!(s.original_offset(3), 3);
        // Inside a replacement: the parameter's position.
        assert_eq!(
            s.original_offset(s.text.find("'F''R'").unwrap() + 2),
            text.find("$1").unwrap()
        );
        assert!(substitute("SELECT $3", &[]).is_err());
        assert!(substitute("SELECT $1", &[(20, 0, Some(b"x".to_vec()))]).is_err());
        assert_eq!(substitute("SELECT a$1", &[]).unwrap().text, "SELECT a$1");
    }

    #[test]
    fn positions_convert() {
        let text = "SELECT\n  é FROM x";
        assert_eq!(offset_of(text, 2, 3), text.find('é').unwrap());
        assert_eq!(char_position(text, text.find("FROM").unwrap()), 12);
        assert_eq!(offset_of(text, 9, 1), text.len());
    }
}
