//! What one query may ask of the engine: checked when a search arrives or a subscription is
//! created (nesting, clauses, pattern lengths), and a budget of work while it is evaluated
//! (terms scanned by patterns and ranges, field names expanded, documents re-read).
//!
//! The defaults follow Elasticsearch's own (`indices.query.bool.max_clause_count` 1024,
//! `indices.query.bool.max_nested_depth` 20), so queries that pass there pass here.

use std::cell::Cell;

use super::analyze;
use super::ast::{Query, QueryError};

/// Limits on one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Levels of `bool` / `nested` clauses inside each other.
    pub max_depth: usize,
    /// Leaf clauses, counting each `terms` value, each analysed word of a `match` and each
    /// listed field.
    pub max_clauses: usize,
    /// Characters of a `wildcard` / `prefix` value or of a field-name pattern.
    pub max_pattern_length: usize,
    /// Units of work one evaluation may spend (a term or field name scanned is one unit; a
    /// document re-read for `nested` or a long phrase is [`DOC_COST`]).
    pub max_cost: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_depth: 20,
            max_clauses: 1024,
            max_pattern_length: 256,
            max_cost: 20_000_000,
        }
    }
}

/// Budget units a re-read of a stored document (or the indexing of one nested object) costs.
pub const DOC_COST: u64 = 1_000;

/// `nested` queries inside each other at most: each level evaluates the next once per object
/// of every candidate, so the work multiplies with the depth.
pub const MAX_NESTED: usize = 3;

/// Checks a parsed query against `limits` before it is evaluated or stored.
pub fn check(q: &Query, limits: &QueryLimits) -> Result<(), QueryError> {
    let mut clauses = 0usize;
    walk(q, 1, limits, &mut clauses)?;
    let nested = nesting(q);
    if nested > MAX_NESTED {
        return Err(QueryError(format!(
            "query has {nested} nested queries inside each other, more than {MAX_NESTED}"
        )));
    }
    if clauses > limits.max_clauses {
        return Err(QueryError(format!(
            "query has {clauses} clauses, more than the limit of {}",
            limits.max_clauses
        )));
    }
    Ok(())
}

fn walk(q: &Query, depth: usize, l: &QueryLimits, clauses: &mut usize) -> Result<(), QueryError> {
    if depth > l.max_depth {
        return Err(QueryError(format!(
            "query is nested more than {} levels deep",
            l.max_depth
        )));
    }
    let mut fields = |fs: &[String], per_field: usize| -> Result<(), QueryError> {
        for f in fs.iter().filter(|f| f.contains(['*', '?'])) {
            pattern(f, l)?;
        }
        *clauses = clauses.saturating_add(fs.len().max(1).saturating_mul(per_field.max(1)));
        Ok(())
    };
    match q {
        Query::MatchAll | Query::MatchNone => *clauses = clauses.saturating_add(1),
        Query::Bool(b) => {
            for c in b.must.iter().chain(&b.should).chain(&b.must_not) {
                walk(c, depth + 1, l, clauses)?;
            }
        }
        Query::Term { fields: fs, values } => fields(fs, values.len())?,
        Query::Match {
            fields: fs, text, ..
        }
        | Query::MatchPhrase { fields: fs, text } => fields(fs, analyze::tokens(text).len())?,
        Query::Range { fields: fs, .. } | Query::Exists { fields: fs } => fields(fs, 1)?,
        Query::Prefix { fields: fs, value } => {
            pattern(value, l)?;
            fields(fs, 1)?
        }
        Query::Wildcard {
            fields: fs,
            pattern: p,
        } => {
            pattern(p, l)?;
            fields(fs, 1)?
        }
        Query::Ids(ids) => *clauses = clauses.saturating_add(ids.len().max(1)),
        Query::Nested { query, .. } => walk(query, depth + 1, l, clauses)?,
    }
    Ok(())
}

/// The most `nested` queries on one path from the root (the tree is at most `max_depth` deep:
/// `walk` refused deeper ones first).
fn nesting(q: &Query) -> usize {
    match q {
        Query::Nested { query, .. } => 1 + nesting(query),
        Query::Bool(b) => b
            .must
            .iter()
            .chain(&b.should)
            .chain(&b.must_not)
            .map(nesting)
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

fn pattern(p: &str, l: &QueryLimits) -> Result<(), QueryError> {
    let n = p.chars().count();
    if n > l.max_pattern_length {
        return Err(QueryError(format!(
            "pattern of {n} characters is longer than the limit of {}",
            l.max_pattern_length
        )));
    }
    Ok(())
}

/// The work an evaluation may still do. Evaluation is single-threaded; once the budget is
/// spent, the remaining clauses do no work and the caller reports [`Budget::exceeded`].
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    left: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    /// A budget of `units`.
    pub fn new(units: u64) -> Self {
        Self {
            limit: units,
            left: Cell::new(units),
            exceeded: Cell::new(false),
        }
    }

    /// Spends `units`; `false` (and exceeded from then on) when they are not there.
    pub fn spend(&self, units: u64) -> bool {
        match self.left.get().checked_sub(units) {
            Some(rest) if !self.exceeded.get() => {
                self.left.set(rest);
                true
            }
            _ => {
                self.exceeded.set(true);
                false
            }
        }
    }

    /// Whether the evaluation ran out of budget (its result is incomplete).
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// The error of an evaluation that ran out.
    pub fn error(&self) -> QueryError {
        QueryError(format!(
            "query is too costly to evaluate (more than {} units of work: narrow its patterns, ranges or nested clauses)",
            self.limit
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_body;
    use serde_json::json;

    fn checked(v: serde_json::Value) -> Result<(), QueryError> {
        check(&parse_body(&v)?, &QueryLimits::default())
    }

    #[test]
    fn queries_within_the_limits_pass() {
        checked(json!({"query": {"bool": {"must": [
            {"match": {"files.project_json.title": "kidney atlas"}},
            {"wildcard": {"uuid": "ab*"}},
            {"range": {"files.donor.age": {"gte": 3}}}]}}}))
        .expect("ordinary query");
    }

    #[test]
    fn deep_wide_and_long_queries_are_refused_with_the_reason() {
        let mut q = json!({"match_all": {}});
        for _ in 0..25 {
            q = json!({"bool": {"must": [q]}});
        }
        let e = checked(json!({"query": q})).unwrap_err();
        assert!(e.0.contains("nested more than 20"), "{e}");

        let values: Vec<u32> = (0..2000).collect();
        let e = checked(json!({"query": {"terms": {"a": values}}})).unwrap_err();
        assert!(e.0.contains("2000 clauses"), "{e}");

        let words = "word ".repeat(1500);
        assert!(checked(json!({"query": {"match": {"a": words}}})).is_err());

        let mut nested = json!({"match_all": {}});
        for _ in 0..4 {
            nested = json!({"nested": {"path": "files.donor", "query": nested}});
        }
        let e = checked(json!({"query": nested})).unwrap_err();
        assert!(e.0.contains("4 nested queries"), "{e}");

        let long = "a".repeat(300) + "*";
        let e = checked(json!({"query": {"wildcard": {"a": long}}})).unwrap_err();
        assert!(e.0.contains("longer than the limit of 256"), "{e}");
        let e = checked(json!({"query": {"query_string": {"query": "x", "fields": [long]}}}))
            .unwrap_err();
        assert!(e.0.contains("pattern"), "{e}");
    }

    #[test]
    fn a_budget_runs_out_once_and_stays_out() {
        let b = Budget::new(10);
        assert!(b.spend(4) && b.spend(6));
        assert!(!b.exceeded());
        assert!(!b.spend(1));
        assert!(b.exceeded());
        assert!(!b.spend(0), "nothing more once exceeded");
    }
}
