//! The `SearchIndex` port: per-replica bundle documents queried with the Elasticsearch DSL.

use async_trait::async_trait;
use serde_json::Value;

/// Errors of a search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is not valid; the text is the reason (API: 400 `elasticsearch_bad_request`).
    #[error("{0}")]
    BadQuery(String),
    /// The backend cannot be reached (API: 503).
    #[error("search backend unavailable: {0}")]
    Unavailable(String),
    /// The backend failed (API: 500).
    #[error("search backend error: {0}")]
    Backend(String),
}

impl SearchError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SearchError::BadQuery(_))
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The Elasticsearch search body as the client sent it (`{"query": …}`); its `sort`, `size`,
    /// `from` and `search_after` are ignored (the index decides order and paging).
    pub body: Value,
    /// Hits per page.
    pub size: usize,
    /// Cursor of the last hit of the previous page.
    pub after: Option<String>,
    /// Return each hit's document.
    pub with_source: bool,
}

/// One hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Document id (`{uuid}.{version}`).
    pub id: String,
    /// Cursor to pass as `after` for the page following this hit.
    pub cursor: String,
    /// The document, when requested.
    pub source: Option<Value>,
}

/// A page of hits in sort order (`uuid` descending, then `manifest.version` descending with
/// missing versions last, then id).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// Documents matching the query, over all pages.
    pub total: u64,
    /// This page.
    pub hits: Vec<Hit>,
}

/// Bundle documents of every replica.
#[async_trait]
pub trait SearchIndex: Send + Sync + std::fmt::Debug {
    /// Stores `doc` under `id`; `true` when it was created or changed, `false` when the stored
    /// document was already identical (re-delivery is a no-op).
    async fn put(&self, replica: &str, id: &str, doc: &Value) -> Result<bool, SearchError>;

    /// The stored document.
    async fn get(&self, replica: &str, id: &str) -> Result<Option<Value>, SearchError>;

    /// Removes a document; `false` if there was none.
    async fn delete(&self, replica: &str, id: &str) -> Result<bool, SearchError>;

    /// Runs a query.
    async fn search(&self, replica: &str, req: &SearchRequest) -> Result<SearchPage, SearchError>;

    /// Prepares to answer searches of `replica` (an engine that loads state does it now rather
    /// than on the first search). Returns when ready.
    async fn warm_up(&self, replica: &str) -> Result<(), SearchError> {
        let _ = replica;
        Ok(())
    }

    /// Saves what an engine holds in memory for `replica`, so a restart is fast. Durability does
    /// not depend on it.
    async fn persist(&self, replica: &str) -> Result<(), SearchError> {
        let _ = replica;
        Ok(())
    }
}
