//! Helpers of the CohortQL differential test (tests/cohortql_differential.rs):
//! the naive model ([`model`]), the random generator ([`gen`]) and the
//! queries with their expected answers and the comparison ([`query`]).

pub mod gen;
pub mod model;
pub mod query;
