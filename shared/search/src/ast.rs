//! The parsed form of a query: a [`Query`] tree and its values, shared by the DSL parser
//! (`query.rs`), the `query_string` parser and the evaluator.

use serde_json::Value;

/// A query that cannot be parsed; the text is the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// A value in a term-level query.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    pub(crate) fn from_json(v: &Value, what: &str) -> Result<Self, QueryError> {
        match v {
            Value::String(s) => Ok(Scalar::Str(s.clone())),
            Value::Number(n) => Ok(Scalar::Num(n.as_f64().unwrap_or(f64::NAN))),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            other => Err(QueryError(format!(
                "[{what}] expects a string, number or boolean, got {other}"
            ))),
        }
    }

    /// The value as text (numbers in their canonical keyword form).
    pub fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Num(n) => crate::flatten::number_keyword(*n),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// The value as a number, if it is one or a string that parses as one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            Scalar::Str(s) => s.trim().parse().ok().filter(|x: &f64| x.is_finite()),
            Scalar::Bool(_) => None,
        }
    }
}

/// How the analysed terms of a `match` combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Any term.
    Or,
    /// Every term.
    And,
}

/// `minimum_should_match`: a count or a percentage, negative meaning "all but".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinimumShouldMatch {
    /// `3`, `-1`.
    Count(i64),
    /// `75%`, `-25%`.
    Percent(f64),
}

impl MinimumShouldMatch {
    pub(crate) fn parse(v: &Value) -> Result<Self, QueryError> {
        let bad = || QueryError(format!("unsupported minimum_should_match {v}"));
        match v {
            Value::Number(n) => n.as_i64().map(Self::Count).ok_or_else(bad),
            Value::String(s) => {
                let s = s.trim();
                if let Some(p) = s.strip_suffix('%') {
                    p.parse().map(Self::Percent).map_err(|_| bad())
                } else {
                    s.parse().map(Self::Count).map_err(|_| bad())
                }
            }
            _ => Err(bad()),
        }
    }

    /// How many of `n` optional clauses must match.
    pub fn required(&self, n: usize) -> usize {
        let n_i = n as i64;
        let k = match *self {
            Self::Count(c) if c < 0 => n_i + c,
            Self::Count(c) => c,
            Self::Percent(p) if p < 0.0 => n_i - ((-p / 100.0) * n as f64).floor() as i64,
            Self::Percent(p) => ((p / 100.0) * n as f64).floor() as i64,
        };
        k.clamp(0, n_i) as usize
    }
}

/// The clauses of a `bool` query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoolQuery {
    /// All must match (`must` and `filter`).
    pub must: Vec<Query>,
    /// Optional clauses.
    pub should: Vec<Query>,
    /// None may match.
    pub must_not: Vec<Query>,
    /// How many `should` clauses must match (default: 1 when there is no `must`, else 0).
    pub minimum_should_match: Option<MinimumShouldMatch>,
}

impl BoolQuery {
    /// The number of `should` clauses a document must match.
    pub fn required_should(&self) -> usize {
        match &self.minimum_should_match {
            Some(m) => m.required(self.should.len()),
            None if self.must.is_empty() && !self.should.is_empty() => 1,
            None => 0,
        }
    }
}

/// Range bounds as given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeBounds {
    /// Greater than.
    pub gt: Option<Scalar>,
    /// Greater than or equal.
    pub gte: Option<Scalar>,
    /// Less than.
    pub lt: Option<Scalar>,
    /// Less than or equal.
    pub lte: Option<Scalar>,
}

/// A parsed query. Field lists may hold `*` patterns (from `multi_match` and `query_string`);
/// a document matches a leaf when any listed field matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Every document.
    MatchAll,
    /// No document.
    MatchNone,
    /// Boolean combination.
    Bool(Box<BoolQuery>),
    /// Exact value (keywords compare lower-cased; numbers numerically; dates as instants).
    Term {
        /// Fields.
        fields: Vec<String>,
        /// Any of these values.
        values: Vec<Scalar>,
    },
    /// Analysed full-text match on `.text` fields; whole-value match on keyword fields.
    Match {
        /// Fields.
        fields: Vec<String>,
        /// The query text.
        text: String,
        /// How its terms combine.
        operator: Operator,
        /// Terms that must match with `or`.
        minimum_should_match: Option<MinimumShouldMatch>,
    },
    /// Consecutive terms on `.text` fields; whole-value match on keyword fields.
    MatchPhrase {
        /// Fields.
        fields: Vec<String>,
        /// The phrase.
        text: String,
    },
    /// Numbers, dates (with date math) or strings within bounds.
    Range {
        /// Fields.
        fields: Vec<String>,
        /// Bounds.
        bounds: RangeBounds,
    },
    /// The field has a non-null value (for an object: any sub-field has).
    Exists {
        /// Fields.
        fields: Vec<String>,
    },
    /// Keyword (or token) starts with the value.
    Prefix {
        /// Fields.
        fields: Vec<String>,
        /// Prefix.
        value: String,
    },
    /// Keyword (or token) matches a `*`/`?` pattern.
    Wildcard {
        /// Fields.
        fields: Vec<String>,
        /// Pattern.
        pattern: String,
    },
    /// Document ids.
    Ids(Vec<String>),
    /// The inner query must match within one object of the array at `path`.
    Nested {
        /// Path of the objects.
        path: String,
        /// Query over full field paths.
        query: Box<Query>,
    },
}
