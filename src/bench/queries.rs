//! The audience query set Q1–Q8 of ../shared/bench/queries.md: parameters,
//! the CohortQL each query is sent as, and how its results become an
//! [`Answer`].
//!
//! [`Query::cohortql`] is the one table of statement texts: Q4 is one
//! `OVERLAP MATRIX` of the ten tags, Q5 one `OVERLAP` of three (its Venn
//! regions; the pairs result that follows is not part of the answer).
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
            Query::Q4 => overlap("MATRIX ", &Q4_TAGS),
            Query::Q5 => overlap("", &Q5_TAGS),
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
                let rows = single(results)?;
                let k = Q4_TAGS.len();
                let matrix = rows
                    .iter()
                    .map(|row| match row.split_first() {
                        Some((Value::Text(_), counts)) if counts.len() == k => {
                            counts.iter().map(count_of).collect()
                        }
                        _ => Err(format!("expected a matrix row of {k} counts, got {row:?}")),
                    })
                    .collect::<Result<Vec<Vec<u64>>, String>>()?;
                if matrix.len() != k {
                    return Err(format!("expected {k} matrix rows, got {}", matrix.len()));
                }
                let mut keyed: Vec<(String, u64)> = Q4_TAGS
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.to_string(), matrix[i][i]))
                    .collect();
                for (i, x) in Q4_TAGS.iter().enumerate() {
                    for (j, y) in Q4_TAGS.iter().enumerate().skip(i + 1) {
                        keyed.push((format!("{x}&{y}"), matrix[i][j]));
                    }
                }
                Ok(Answer::keyed(keyed))
            }
            Query::Q5 => {
                let regions = match results.into_iter().next() {
                    Some(r) => r.rows,
                    None => return Err("expected the Venn regions result".into()),
                };
                // Every region, zero where OVERLAP lists none.
                let mut keyed: Vec<(String, u64)> =
                    (1..8usize).map(|r| (format!("{r:03b}"), 0)).collect();
                for row in regions {
                    match row.as_slice() {
                        [Value::Bool(a), Value::Bool(b), Value::Bool(c), n] => {
                            let code = format!("{}{}{}", u8::from(*a), u8::from(*b), u8::from(*c));
                            match keyed.iter_mut().find(|(k, _)| *k == code) {
                                Some(slot) => slot.1 = count_of(n)?,
                                None => return Err(format!("unexpected region {code}")),
                            }
                        }
                        other => return Err(format!("expected a Venn region row, got {other:?}")),
                    }
                }
                Ok(Answer::keyed(keyed))
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

/// `OVERLAP [MATRIX] (interests HAS 't') AS t, ... ON profiles`.
fn overlap(matrix: &str, tags: &[&str]) -> String {
    let items: Vec<String> = tags
        .iter()
        .map(|t| format!("(interests HAS '{t}') AS {t}"))
        .collect();
    format!("OVERLAP {matrix}{} ON {TABLE};", items.join(", "))
}

/// A count cell.
fn count_of(v: &Value) -> Result<u64, String> {
    match v {
        Value::Int(c) => u64::try_from(*c).map_err(|_| format!("negative count {c}")),
        other => Err(format!("expected a count, got {other:?}")),
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
                [c] => count_of(c),
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
        let statements = |q: Query| q.cohortql().matches(';').count();
        assert_eq!(statements(Query::Q1), 1);
        assert_eq!(statements(Query::Q4), 1);
        assert_eq!(
            Query::Q5.cohortql(),
            "OVERLAP (interests HAS 'i0004') AS i0004, (interests HAS 'i0008') AS i0008, (interests HAS 'i0016') AS i0016 ON profiles;"
        );
        assert!(Query::Q4
            .cohortql()
            .starts_with("OVERLAP MATRIX (interests HAS 'i0001') AS i0001, "));
        assert_eq!(Query::parse("q7"), Some(Query::Q7));
        assert_eq!(Query::parse("Q9"), None);
    }
}
