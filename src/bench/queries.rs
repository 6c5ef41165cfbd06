//! The audience query set Q1–Q8 of ../shared/bench/queries.md: parameters,
//! the CohortQL each query is sent as, and how its results become an
//! [`Answer`].
//!
//! [`Query::cohortql`] is the one table of statement texts. Q4 and Q5 have
//! no single statement yet (OVERLAP is a later issue), so they are one
//! request of several `SELECT COUNT(*)` statements, as docs/benchmarks.md
//! describes; switching them to OVERLAP means changing their text here and
//! their arm of [`Query::answer`].
//!
//! Invariant: `answer` accepts exactly the result shape `cohortql` asks for
//! and says what is wrong with any other.

use super::answer::Answer;
use crate::client::StatementResult;
use crate::engine::Value;
use std::ops::RangeInclusive;

/// Tag A (25 % of profiles), B and C.
pub const A: &str = "i0003";
pub const B: &str = "i0007";
pub const C: &str = "i0001";
/// Q3's country and ages (inclusive).
pub const Q3_COUNTRY: &str = "NL";
pub const Q3_AGES: RangeInclusive<i64> = 30..=45;
/// Q4's ten tags, dense to sparse.
pub const Q4_TAGS: [&str; 10] = [
    "i0001", "i0002", "i0005", "i0010", "i0020", "i0050", "i0100", "i0200", "i0500", "i1000",
];
/// Q5's tags a, b, c.
pub const Q5_TAGS: [&str; 3] = ["i0004", "i0008", "i0016"];
/// Q7's country.
pub const Q7_COUNTRY: &str = "US";
/// The table the bench loads and queries.
pub const TABLE: &str = "profiles";

/// One of the eight queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Query {
    Q1,
    Q2,
    Q3,
    Q4,
    Q5,
    Q6,
    Q7,
    Q8,
}

impl Query {
    pub const ALL: [Query; 8] = [
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q4,
        Query::Q5,
        Query::Q6,
        Query::Q7,
        Query::Q8,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Query::Q1 => "Q1",
            Query::Q2 => "Q2",
            Query::Q3 => "Q3",
            Query::Q4 => "Q4",
            Query::Q5 => "Q5",
            Query::Q6 => "Q6",
            Query::Q7 => "Q7",
            Query::Q8 => "Q8",
        }
    }

    /// `Q3` or `q3`.
    pub fn parse(name: &str) -> Option<Query> {
        Query::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(name.trim()))
    }

    /// What the query asks, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Query::Q1 => "count i0003",
            Query::Q2 => "count i0003 AND i0007",
            Query::Q3 => "(i0003 OR i0007) AND NL AND age 30-45 AND NOT i0001",
            Query::Q4 => "10x10 overlap matrix (10 counts + 45 pairs)",
            Query::Q5 => "3-way Venn, 7 regions",
            Query::Q6 => "i0003 by country",
            Query::Q7 => "export ids i0003 AND US",
            Query::Q8 => "top-10 co-interests of i0003",
        }
    }

    /// The CohortQL request the query is sent as (one request, possibly
    /// several statements).
    pub fn cohortql(self) -> String {
        let has = |t: &str| format!("interests HAS '{t}'");
        let count = |cond: &str| format!("SELECT COUNT(*) FROM {TABLE} WHERE {cond};");
        match self {
            Query::Q1 => count(&has(A)),
            Query::Q2 => count(&format!("{} AND {}", has(A), has(B))),
            Query::Q3 => count(&format!(
                "({} OR {}) AND country = '{Q3_COUNTRY}' AND age BETWEEN {} AND {} AND NOT {}",
                has(A),
                has(B),
                Q3_AGES.start(),
                Q3_AGES.end(),
                has(C)
            )),
            Query::Q4 => {
                let mut s: String = Q4_TAGS.iter().map(|t| count(&has(t))).collect();
                for (i, x) in Q4_TAGS.iter().enumerate() {
                    for y in &Q4_TAGS[i + 1..] {
                        s += &count(&format!("{} AND {}", has(x), has(y)));
                    }
                }
                s
            }
            Query::Q5 => (1..8)
                .map(|region: usize| {
                    let parts: Vec<String> = Q5_TAGS
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            if region >> (2 - i) & 1 == 1 {
                                has(t)
                            } else {
                                format!("NOT {}", has(t))
                            }
                        })
                        .collect();
                    count(&parts.join(" AND "))
                })
                .collect(),
            Query::Q6 => format!(
                "SELECT country, COUNT(*) FROM {TABLE} WHERE {} GROUP BY country;",
                has(A)
            ),
            Query::Q7 => format!(
                "SELECT id FROM {TABLE} WHERE {} AND country = '{Q7_COUNTRY}';",
                has(A)
            ),
            // A itself heads the list (every row has it), so 11 rows hold the top 10 others.
            Query::Q8 => format!(
                "SELECT interests, COUNT(*) FROM {TABLE} WHERE {} GROUP BY interests ORDER BY 2 DESC, 1 LIMIT 11;",
                has(A)
            ),
        }
    }

    /// Turns the results of [`Query::cohortql`] into the answer.
    pub fn answer(self, results: Vec<StatementResult>) -> Result<Answer, String> {
        match self {
            Query::Q1 | Query::Q2 | Query::Q3 => {
                let counts = counts(&results, 1)?;
                Ok(Answer::Count(counts[0]))
            }
            Query::Q4 => {
                let counts = counts(&results, 55)?;
                let mut keys: Vec<String> = Q4_TAGS.iter().map(|t| t.to_string()).collect();
                for (i, x) in Q4_TAGS.iter().enumerate() {
                    for y in &Q4_TAGS[i + 1..] {
                        keys.push(format!("{x}&{y}"));
                    }
                }
                Ok(Answer::keyed(keys.into_iter().zip(counts).collect()))
            }
            Query::Q5 => {
                let counts = counts(&results, 7)?;
                Ok(Answer::keyed(
                    (1..8usize)
                        .map(|r| format!("{r:03b}"))
                        .zip(counts)
                        .collect(),
                ))
            }
            Query::Q6 => {
                let rows = single(results)?;
                let pairs = rows
                    .into_iter()
                    .map(|row| text_count(&row))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Answer::keyed(pairs))
            }
            Query::Q7 => {
                let rows = single(results)?;
                let ids = rows
                    .into_iter()
                    .map(|mut row| match (row.len(), row.pop()) {
                        (1, Some(Value::Text(id))) => Ok(id),
                        _ => Err(format!("expected one id per row, got {row:?}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Answer::from_ids(ids))
            }
            Query::Q8 => {
                let rows = single(results)?;
                let mut ranked = Vec::with_capacity(10);
                for row in rows {
                    let (tag, n) = text_count(&row)?;
                    if tag != A {
                        ranked.push((tag, n));
                    }
                }
                ranked.truncate(10);
                Ok(Answer::Ranked(ranked))
            }
        }
    }
}

/// The rows of a request of one statement.
fn single(results: Vec<StatementResult>) -> Result<Vec<Vec<Value>>, String> {
    let n = results.len();
    match results.into_iter().next() {
        Some(r) if n == 1 => Ok(r.rows),
        _ => Err(format!("expected 1 statement result, got {n}")),
    }
}

/// The counts of `n` one-count statements.
fn counts(results: &[StatementResult], n: usize) -> Result<Vec<u64>, String> {
    if results.len() != n {
        return Err(format!(
            "expected {n} statement results, got {}",
            results.len()
        ));
    }
    results
        .iter()
        .map(|r| match r.rows.as_slice() {
            [row] => match row.as_slice() {
                [Value::Int(c)] => u64::try_from(*c).map_err(|_| format!("negative count {c}")),
                other => Err(format!("expected one count, got {other:?}")),
            },
            rows => Err(format!("expected one row, got {}", rows.len())),
        })
        .collect()
}

/// A `(TEXT, count)` row.
fn text_count(row: &[Value]) -> Result<(String, u64), String> {
    match row {
        [Value::Text(k), Value::Int(c)] => Ok((
            k.clone(),
            u64::try_from(*c).map_err(|_| format!("negative count {c}"))?,
        )),
        other => Err(format!("expected (text, count), got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shapes() {
        let statements = |q: Query| q.cohortql().matches("SELECT").count();
        assert_eq!(statements(Query::Q1), 1);
        assert_eq!(statements(Query::Q4), 55);
        assert_eq!(statements(Query::Q5), 7);
        assert_eq!(
            Query::Q5.cohortql().split(';').next(),
            Some("SELECT COUNT(*) FROM profiles WHERE NOT interests HAS 'i0004' AND NOT interests HAS 'i0008' AND interests HAS 'i0016'")
        );
        assert_eq!(Query::parse("q7"), Some(Query::Q7));
        assert_eq!(Query::parse("Q9"), None);
    }
}
