//! The search query language and the embedded engine: the Elasticsearch query DSL subset DSS
//! users send ([`query`], parsed into an [`ast`]),
//! ES-like analysis of JSON documents ([`analyze`], [`flatten`], [`dates`]) and an inverted
//! index that answers queries by set algebra over postings ([`index`]).
//!
//! One evaluator serves both searching many documents and matching one document against a
//! stored query ([`SingleDoc`]), so search results and subscription matches always agree.

pub mod analyze;
pub mod ast;
pub mod dates;
mod eval;
pub mod flatten;
pub mod index;
pub mod jmespath_limits;
pub mod limits;
pub mod query;
mod query_string;
pub mod segment;
pub mod source;
mod terms;

#[cfg(test)]
mod properties;

pub use ast::{Query, QueryError};
pub use eval::evaluate;
pub use index::{DocLoader, EvalContext, IndexStats, MemIndex, SingleDoc, SortKey, TopK};
pub use limits::{Budget, QueryLimits};
pub use query::{parse, parse_body};
pub use segment::Segment;
pub use source::Source;
