//! The `CollectionIndex` port: which collection versions each owner created, for listing them.
//! The collections themselves live in the replicas' buckets (`collections/{uuid}.{version}`).

use async_trait::async_trait;

/// Errors of a collection index.
#[derive(Debug, thiserror::Error)]
pub enum CollectionIndexError {
    /// The backend failed; may succeed on retry.
    #[error("collection index backend error: {0}")]
    Backend(String),
}

/// One owner's collection versions.
#[async_trait]
pub trait CollectionIndex: Send + Sync + std::fmt::Debug {
    /// Records that `owner` created `uuid` at `version` (a no-op when recorded already).
    async fn add(&self, owner: &str, uuid: &str, version: &str)
    -> Result<(), CollectionIndexError>;

    /// Up to `limit` of the owner's `(uuid, version)` pairs from position `start` in
    /// descending `{uuid}.{version}` order, and how many there are in all.
    async fn list(
        &self,
        owner: &str,
        start: usize,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, usize), CollectionIndexError>;

    /// Forgets every version of `uuid` of `owner`.
    async fn remove(&self, owner: &str, uuid: &str) -> Result<(), CollectionIndexError>;
}
