//! `[limits]`: what one request or subscription may ask of the service (docs/limits.md).

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::invalid;
use dss_search::QueryLimits;
use dss_search::jmespath_limits::JmespathLimits;

/// Limits on user expressions: Elasticsearch queries (searches and subscriptions) and JMESPath
/// expressions (subscription filters and attachments).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Levels of `bool` / `nested` clauses inside each other.
    pub query_max_depth: usize,
    /// Leaf clauses of one query (each `terms` value, analysed word and listed field counts).
    pub query_max_clauses: usize,
    /// Characters of a `wildcard` / `prefix` value or a field-name pattern.
    pub query_max_pattern_length: usize,
    /// Units of work one evaluation by the embedded engine may spend.
    pub query_max_cost: u64,
    /// Bytes of a JMESPath expression.
    pub jmespath_max_length: usize,
    /// Levels of a JMESPath expression's syntax tree.
    pub jmespath_max_depth: usize,
    /// Worst-case work of evaluating a JMESPath expression, in multiples of the document's size.
    pub jmespath_max_cost: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let q = QueryLimits::default();
        let j = JmespathLimits::default();
        Self {
            query_max_depth: q.max_depth,
            query_max_clauses: q.max_clauses,
            query_max_pattern_length: q.max_pattern_length,
            query_max_cost: q.max_cost,
            jmespath_max_length: j.max_length,
            jmespath_max_depth: j.max_depth,
            jmespath_max_cost: j.max_cost,
        }
    }
}

impl LimitsConfig {
    /// The limits of Elasticsearch queries.
    pub fn query(&self) -> QueryLimits {
        QueryLimits {
            max_depth: self.query_max_depth,
            max_clauses: self.query_max_clauses,
            max_pattern_length: self.query_max_pattern_length,
            max_cost: self.query_max_cost,
        }
    }

    /// The limits of JMESPath expressions.
    pub fn jmespath(&self) -> JmespathLimits {
        JmespathLimits {
            max_length: self.jmespath_max_length,
            max_depth: self.jmespath_max_depth,
            max_cost: self.jmespath_max_cost,
        }
    }

    /// Every limit must allow something; the JMESPath depth must stay within what the parser
    /// and evaluator can recurse through.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.query_max_depth", self.query_max_depth as u64),
            ("limits.query_max_clauses", self.query_max_clauses as u64),
            (
                "limits.query_max_pattern_length",
                self.query_max_pattern_length as u64,
            ),
            ("limits.query_max_cost", self.query_max_cost),
            (
                "limits.jmespath_max_length",
                self.jmespath_max_length as u64,
            ),
            ("limits.jmespath_max_depth", self.jmespath_max_depth as u64),
            ("limits.jmespath_max_cost", self.jmespath_max_cost),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(*key, "must be greater than 0"));
        }
        if self.query_max_depth > 100 {
            return Err(invalid("limits.query_max_depth", "must be at most 100"));
        }
        if self.jmespath_max_depth > dss_search::jmespath_limits::DEEPEST {
            return Err(invalid(
                "limits.jmespath_max_depth",
                format!("must be at most {}", dss_search::jmespath_limits::DEEPEST),
            ));
        }
        Ok(())
    }
}
