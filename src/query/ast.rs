//! The syntax tree of CohortQL, as the parser builds it: statements,
//! predicates and literals, each with its byte span in the source so that
//! later stages can point at the exact place of an error.

/// Byte range `[start, end)` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Set(Vec<String>),
    /// `TIMESTAMP '...'`
    Timestamp(String),
    /// `EVENT('value', time)` or `[EVENT(...), ...]`: values with their times.
    Events(Vec<(String, Lit)>),
}

impl Literal {
    /// How the literal is named in type errors.
    pub fn describe(&self) -> String {
        match self {
            Literal::Str(s) => format!("'{s}' is TEXT"),
            Literal::Int(v) => format!("{v} is INT"),
            Literal::Float(v) => format!("{v} is FLOAT"),
            Literal::Bool(v) => format!("{v} is BOOL"),
            Literal::Null => "NULL".to_string(),
            Literal::Set(_) => "a set literal is SET<TEXT>".to_string(),
            Literal::Timestamp(s) => format!("TIMESTAMP '{s}' is TIMESTAMP"),
            Literal::Events(_) => "EVENT(...) is an event".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lit {
    pub value: Literal,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: Ident,
    /// The type as written (`TEXT`, `SET<TEXT>` is `set_of: Some(TEXT)`).
    pub ty: Ident,
    pub set_of: bool,
    /// `EVENTS<TEXT>` (`ty` is TEXT).
    pub events: bool,
    pub primary_key: bool,
    pub pii: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AssignValue {
    Literal(Lit),
    /// `col = col + ['a', ...]`
    Add(Ident, Vec<String>),
    /// `col = col - ['a', ...]`
    Remove(Ident, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub column: Ident,
    pub value: AssignValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "COUNT",
            AggFn::Sum => "SUM",
            AggFn::Avg => "AVG",
            AggFn::Min => "MIN",
            AggFn::Max => "MAX",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectExpr {
    Star,
    CountStar,
    Agg(AggFn, Ident),
    Column(Ident),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub expr: SelectExpr,
    pub alias: Option<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    /// 1-based position in the select list.
    Position(u64),
    Expr(SelectExpr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub key: OrderKey,
    pub descending: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub items: Vec<SelectItem>,
    pub table: Ident,
    pub filter: Option<Expr>,
    pub group_by: Vec<Ident>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<(u64, Span)>,
    pub as_of: Option<Lit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    IsNull,
    IsNotNull,
    Between {
        low: Lit,
        high: Lit,
        negated: bool,
    },
    In {
        values: Vec<Lit>,
        negated: bool,
    },
    HasAny(Vec<Lit>),
    HasAll(Vec<Lit>),
    /// `HAS v`, with a window of days on EVENTS<TEXT> columns.
    Has(Lit, Option<EventWindow>),
    Cmp(CmpOp, Lit),
}

/// Which days of an EVENTS<TEXT> column count for `HAS`, and on how many
/// distinct days the value must occur.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWindow {
    pub min_days: Option<(u64, Span)>,
    pub range: Option<TimeRange>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TimeRange {
    /// `WITHIN n DAYS`: today (of the statement's now) and the n - 1 days before.
    WithinDays(u64, Span),
    Since(Lit),
    Between(Lit, Lit),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub column: Ident,
    pub condition: Condition,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Pred(Predicate),
    /// `IN segment`
    InSegment(Ident),
}

/// What one item of `OVERLAP` counts.
#[derive(Debug, Clone, PartialEq)]
pub enum OverlapTarget {
    Segment(Ident),
    /// `( <predicate> )`
    Predicate(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OverlapItem {
    pub target: OverlapTarget,
    pub alias: Option<Ident>,
    /// The item as written (a parenthesised predicate's name when it has no alias).
    pub text: String,
    pub span: Span,
}

/// An audience of EXPORT / LOOKALIKE: a segment or `( <predicate> )`, and
/// the table (`ON t`, else the segment's).
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    pub target: OverlapTarget,
    pub table: Option<Ident>,
    /// The audience as written.
    pub text: String,
    pub span: Span,
}

/// `EXPORT audience [ON t] [COLUMNS (c, ...)] [FOR PURPOSE 'p'] [LIMIT n]`
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub audience: Audience,
    pub columns: Vec<Ident>,
    pub purpose: Option<String>,
    pub limit: Option<u64>,
    pub as_of: Option<Lit>,
    pub span: Span,
}

/// `LOOKALIKE [REACH] seed [ON t] [WITHIN base] [FOR PURPOSE 'p'] [LIMIT n]`
#[derive(Debug, Clone, PartialEq)]
pub struct Lookalike {
    pub reach: bool,
    pub seed: Audience,
    pub within: Option<Expr>,
    pub purpose: Option<String>,
    pub limit: Option<u64>,
    pub as_of: Option<Lit>,
    pub span: Span,
}

/// `OVERLAP [MATRIX] item, ... [ON table] [WHERE base]`
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    pub matrix: bool,
    pub items: Vec<OverlapItem>,
    pub table: Option<Ident>,
    pub filter: Option<Expr>,
    pub span: Span,
    pub as_of: Option<Lit>,
}

/// `TOP n col FROM table [WHERE p] [WITHIN base] [BY COUNT | BY LIFT] [MIN COUNT m]`
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub n: u64,
    pub column: Ident,
    pub table: Ident,
    pub filter: Option<Expr>,
    pub within: Option<Expr>,
    pub by_lift: bool,
    pub min_count: u64,
    pub as_of: Option<Lit>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateTable {
        name: Ident,
        columns: Vec<ColumnSpec>,
        options: Vec<(Ident, Lit)>,
    },
    DropTable {
        name: Ident,
        if_exists: bool,
    },
    CreateUser {
        name: Ident,
        password: String,
        role: Ident,
    },
    DropUser {
        name: Ident,
        if_exists: bool,
    },
    ShowTables,
    Describe {
        table: Ident,
    },
    Insert {
        table: Ident,
        columns: Vec<Ident>,
        rows: Vec<(Vec<Lit>, Span)>,
    },
    Update {
        table: Ident,
        assignments: Vec<Assignment>,
        filter: Option<Expr>,
    },
    Delete {
        table: Ident,
        filter: Option<Expr>,
    },
    Select(Select),
    Explain(Select),
    CreateSegment {
        name: Ident,
        table: Ident,
        definition: Expr,
        /// The predicate as written: what the catalog stores.
        text: String,
        materialized: bool,
        replace: bool,
    },
    DropSegment {
        name: Ident,
        if_exists: bool,
    },
    ShowSegments,
    DescribeSegment {
        name: Ident,
    },
    Overlap(Overlap),
    Top(Top),
    Export(Export),
    ShowExports,
    /// `FORGET 'id' [FROM t]`: erase a profile from every file.
    Forget {
        id: String,
        table: Option<Ident>,
    },
    Lookalike(Lookalike),
}

/// A statement and where it sits in the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub statement: Statement,
    pub span: Span,
}
