//! Splits shell input into CohortQL statements at top-level `;`.
//!
//! The input arrives a line (or any chunk) at a time; [`Splitter::push`]
//! returns every statement completed by it, so a statement runs as soon as
//! its `;` has been read. A `;` inside a `'string'` (with `''` or backslash
//! escapes), a `"quoted identifier"` (with `""`), a `-- line comment` or a
//! `/* block comment */` does not end a statement. Statements holding only
//! whitespace and comments are dropped. Each statement remembers where it
//! started in the input, so errors can be located in a file.

/// A 1-based position in the input: line, and column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// The position just after `text`, which starts at `self`.
    fn advance(mut self, text: &str) -> Pos {
        for ch in text.chars() {
            if ch == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self
    }
}

/// One complete statement: its text (trimmed, without the `;`) and where
/// that text starts in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    Str,
    StrEscape,
    Ident,
    LineComment,
    BlockComment,
}

/// Incremental statement splitter; see the module documentation.
#[derive(Debug)]
pub struct Splitter {
    /// Input not yet returned as a statement.
    buf: String,
    /// Where `buf[0]` is in the input.
    start: Pos,
    /// Bytes of `buf` already scanned.
    scanned: usize,
    state: State,
    /// The pending statement has something besides whitespace and comments.
    significant: bool,
    /// When `significant`: where in `buf` its first such byte is (the
    /// statement's text starts there, after any leading comments).
    first: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter::new()
    }
}

impl Splitter {
    pub fn new() -> Splitter {
        Splitter {
            buf: String::new(),
            start: Pos::START,
            scanned: 0,
            state: State::Normal,
            significant: false,
            first: 0,
        }
    }

    /// True when no statement is pending: the next input starts a new
    /// statement (or a meta-command).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Where the next input starts (the pending statement's start, if any).
    pub fn position(&self) -> Pos {
        self.start
    }

    /// Adds input and returns the statements it completes.
    pub fn push(&mut self, text: &str) -> Vec<Statement> {
        self.buf.push_str(text);
        self.scan(false)
    }

    /// Skips `text` (a meta-command line read while no statement was
    /// pending), keeping positions right. Anything pending is discarded.
    pub fn skip(&mut self, text: &str) {
        self.start = self.start.advance(&self.buf).advance(text);
        self.clear();
    }

    /// Forgets the pending statement (interactive Ctrl-C). Positions are not
    /// kept: use only where they no longer matter.
    pub fn reset(&mut self) {
        self.clear();
    }

    /// The end of the input: every remaining statement, including a last one
    /// without a `;`.
    pub fn finish(&mut self) -> Vec<Statement> {
        let mut out = self.scan(true);
        if self.significant {
            out.push(make_statement(&self.buf, self.first, self.start));
        }
        self.start = self.start.advance(&self.buf);
        self.clear();
        out
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.state = State::Normal;
        self.significant = false;
    }

    fn scan(&mut self, eof: bool) -> Vec<Statement> {
        let mut out = Vec::new();
        let bytes = self.buf.as_bytes();
        let len = bytes.len();
        let mut i = self.scanned;
        // Start of the pending statement in `buf`.
        let mut begin = 0;
        macro_rules! significant {
            () => {
                if !self.significant {
                    self.significant = true;
                    self.first = i;
                }
            };
        }
        while i < len {
            let c = bytes[i];
            let next = bytes.get(i + 1).copied();
            match self.state {
                State::Normal => match c {
                    b';' => {
                        if self.significant {
                            let raw = &self.buf[begin..i];
                            out.push(make_statement(raw, self.first - begin, self.start));
                        }
                        self.start = self.start.advance(&self.buf[begin..=i]);
                        self.significant = false;
                        begin = i + 1;
                    }
                    b'\'' => {
                        self.state = State::Str;
                        significant!();
                    }
                    b'"' => {
                        self.state = State::Ident;
                        significant!();
                    }
                    b'-' | b'/' => {
                        let opener = if c == b'-' { b'-' } else { b'*' };
                        match next {
                            None if !eof => break, // need the next byte to decide
                            Some(n) if n == opener => {
                                self.state = if c == b'-' {
                                    State::LineComment
                                } else {
                                    State::BlockComment
                                };
                                i += 2;
                                continue;
                            }
                            _ => significant!(),
                        }
                    }
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    _ => significant!(),
                },
                State::Str => match c {
                    b'\\' => self.state = State::StrEscape,
                    // `''` closes and reopens the string: same effect.
                    b'\'' => self.state = State::Normal,
                    _ => {}
                },
                // Any byte after a backslash; a multi-byte character's later
                // bytes are never `'` or `\`, so skipping one byte is enough.
                State::StrEscape => self.state = State::Str,
                State::Ident => {
                    if c == b'"' {
                        self.state = State::Normal;
                    }
                }
                State::LineComment => {
                    if c == b'\n' {
                        self.state = State::Normal;
                    }
                }
                State::BlockComment => {
                    if c == b'*' {
                        match next {
                            None if !eof => break,
                            Some(b'/') => {
                                self.state = State::Normal;
                                i += 2;
                                continue;
                            }
                            _ => {}
                        }
                    }
                }
            }
            i += 1;
        }
        self.buf.drain(..begin);
        self.scanned = i - begin;
        if self.significant {
            self.first -= begin;
        }
        // Only whitespace and finished comments pending: nothing is pending.
        if !eof
            && !self.significant
            && self.state == State::Normal
            && self.scanned == self.buf.len()
        {
            self.start = self.start.advance(&self.buf);
            self.clear();
        }
        out
    }
}

/// The statement in `raw` (which starts at `start`): from its first
/// significant byte `first`, without trailing whitespace.
fn make_statement(raw: &str, first: usize, start: Pos) -> Statement {
    Statement {
        text: raw[first..].trim_end().to_string(),
        pos: start.advance(&raw[..first]),
    }
}

/// Splits a whole text (for tests and simple callers).
#[cfg(test)]
pub fn split_all(text: &str) -> Vec<Statement> {
    let mut s = Splitter::new();
    let mut out = s.push(text);
    out.extend(s.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        split_all(input).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        assert_eq!(texts("SELECT 1; SELECT 2;"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(texts("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(
            texts("INSERT INTO t (id) VALUES ('a;b'), ('it''s;'), ('x\\';y'); SELECT 1"),
            [
                "INSERT INTO t (id) VALUES ('a;b'), ('it''s;'), ('x\\';y')",
                "SELECT 1"
            ]
        );
        assert_eq!(
            texts("SELECT \"a;\"\"b\" FROM t; x"),
            ["SELECT \"a;\"\"b\" FROM t", "x"]
        );
        assert_eq!(
            texts("SELECT 1 -- not; here\n; /* nor; here */ SELECT 2"),
            ["SELECT 1 -- not; here", "SELECT 2"]
        );
        assert_eq!(
            texts("SELECT 1 - 2; SELECT 4/2"),
            ["SELECT 1 - 2", "SELECT 4/2"]
        );
    }

    #[test]
    fn empty_and_comment_only_statements_are_dropped() {
        assert!(texts("").is_empty());
        assert!(texts(" ;; \n ; -- just a comment\n/* and; this */").is_empty());
        assert_eq!(texts(";;SELECT 1;;"), ["SELECT 1"]);
    }

    #[test]
    fn incremental_input_completes_statements_as_they_end() {
        let mut s = Splitter::new();
        assert!(s.push("SELECT COUNT(*)\n").is_empty());
        assert!(!s.is_empty());
        assert!(s.push("FROM t WHERE x = 'a\n").is_empty());
        assert!(s.push("b;c'\n").is_empty(), "still inside the string");
        let done = s.push("; SELECT 2; SELECT\n");
        assert_eq!(
            done.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(),
            ["SELECT COUNT(*)\nFROM t WHERE x = 'a\nb;c'", "SELECT 2"]
        );
        assert!(!s.is_empty());
        assert_eq!(s.push("3;\n")[0].text, "SELECT\n3");
        assert!(s.is_empty());
        // A comment-only line leaves nothing pending.
        assert!(s.push("-- hello; there\n").is_empty());
        assert!(s.is_empty());
        // An open block comment is pending.
        assert!(s.push("/* a\n").is_empty());
        assert!(!s.is_empty());
        assert!(s.push("*/\n").is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn a_chunk_boundary_inside_a_two_byte_token_is_handled() {
        let mut s = Splitter::new();
        assert!(s.push("SELECT 1 -").is_empty());
        assert!(s.push("- c; d\n").is_empty(), "the ; is in a comment");
        assert_eq!(s.push(";")[0].text, "SELECT 1 -- c; d");
        let mut s = Splitter::new();
        assert!(s.push("SELECT /* x *").is_empty());
        assert!(s.push("/ 1;")[0].text == "SELECT /* x */ 1");
        let mut s = Splitter::new();
        assert!(s.push("SELECT 'a\\").is_empty());
        assert!(s.push("'; b';").len() == 1);
    }

    #[test]
    fn statements_know_where_they_start() {
        let stmts = split_all("-- header\n\nSELECT 1;  SELECT\n 2;\n\n  x");
        let pos: Vec<_> = stmts.iter().map(|s| (s.pos.line, s.pos.column)).collect();
        assert_eq!(pos, [(3, 1), (3, 12), (6, 3)]);
        let mut s = Splitter::new();
        s.skip("\\timing\n");
        let stmts = s.push("  SELECT 1;\n");
        assert_eq!(stmts[0].pos, Pos { line: 2, column: 3 });
        // Multibyte characters count as one column.
        let stmts = split_all("SELECT 'é'; SELECT 2");
        assert_eq!(
            stmts[1].pos,
            Pos {
                line: 1,
                column: 13
            }
        );
    }
}
