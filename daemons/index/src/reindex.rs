//! Rebuilding a replica's search documents (and journal) from what its bucket holds.
//!
//! Online: every bundle and tombstone object under a prefix is indexed again in key order,
//! exactly as its bucket event would be (unchanged documents are not rewritten, journal events
//! are recorded once), while searches keep answering from the documents already there. Then
//! the index's own documents are checked against the bucket: a document whose bundle is gone
//! is stale, and removed when asked to prune. A checkpoint file records the last key done, so
//! an interrupted pass resumes there.

use std::time::Duration;

use dss_core::model::ObjectKey;
use dss_core::model::keys::Kind;
use dss_core::ports::{
    BlobError, BlobStore, BucketEvent, ObjectMeta, SearchError, SearchRequest, listing,
};
use dss_runtime::checkpoint::{Checkpoint, CheckpointError};
use dss_runtime::worker::{HandlerError, Outcome};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::json;

use crate::Indexer;

/// Objects listed per request by default, and documents per search page.
const PAGE: usize = 1000;
/// Bundles indexed at once.
const CONCURRENCY: usize = 8;
/// Attempts for an object whose indexing fails transiently.
const ATTEMPTS: u32 = 4;
/// Failures listed in the report (all are counted and logged).
const LISTED_FAILURES: usize = 100;

/// Why a reindex pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// The replica is not configured.
    #[error("no replica {0}")]
    NoReplica(String),
    /// The prefix is not under `bundles/`.
    #[error("prefix {0}: must start with bundles/")]
    Prefix(String),
    /// Listing or reading the bucket failed.
    #[error("bucket: {0}")]
    Blob(#[from] BlobError),
    /// The search index failed.
    #[error("search index: {0}")]
    Search(#[from] SearchError),
    /// The checkpoint file could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// An object that could not be indexed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    /// Its key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// What a pass read and did; also its progress while it runs.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ReindexReport {
    /// The replica.
    pub replica: String,
    /// The key prefix covered.
    pub prefix: String,
    /// The checkpoint key this pass resumed after, if any.
    pub resumed_after: Option<String>,
    /// Bundle manifests indexed.
    pub bundles: u64,
    /// Tombstones indexed.
    pub tombstones: u64,
    /// Objects that could not be indexed (after retries), counted.
    pub failures: u64,
    /// The first of them.
    pub failed: Vec<Failure>,
    /// Search documents checked against the bucket.
    pub documents: u64,
    /// Documents whose bundle is not in the bucket.
    pub stale: u64,
    /// Stale documents removed (with `prune`).
    pub removed: u64,
}

/// Where a pass is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Indexing the bucket's objects.
    Objects,
    /// Checking the index's documents.
    Documents,
}

/// One reindex pass over a replica.
#[derive(Debug)]
pub struct Reindex {
    indexer: Indexer,
    replica: String,
    store: std::sync::Arc<dyn BlobStore>,
    prefix: String,
    prune: bool,
    checkpoint: Option<Checkpoint>,
    page: usize,
}

impl Reindex {
    /// A pass over `replica`'s keys under `prefix` (`bundles/` or longer).
    pub fn new(indexer: Indexer, replica: &str, prefix: &str) -> Result<Self, ReindexError> {
        if !prefix.starts_with(Kind::Bundle.prefix()) {
            return Err(ReindexError::Prefix(prefix.to_string()));
        }
        let store = indexer
            .deployment
            .replicas
            .get(replica)
            .ok_or_else(|| ReindexError::NoReplica(replica.to_string()))?
            .store
            .clone();
        Ok(Self {
            indexer,
            replica: replica.to_string(),
            store,
            prefix: prefix.to_string(),
            prune: false,
            checkpoint: None,
            page: PAGE,
        })
    }

    /// Also remove the documents whose bundle is not in the bucket.
    pub fn prune(mut self) -> Self {
        self.prune = true;
        self
    }

    /// Record progress in `checkpoint` and resume from it (a position of another prefix is
    /// ignored); it is cleared when the pass completes.
    pub fn checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// List `objects` keys per request (default 1000); the checkpoint advances per page.
    pub fn page(mut self, objects: usize) -> Self {
        self.page = objects.max(1);
        self
    }

    /// Runs the pass; `progress` sees the report after every object and document page.
    pub async fn run(
        &self,
        progress: &(dyn Fn(Phase, &ReindexReport) + Sync),
    ) -> Result<ReindexReport, ReindexError> {
        let mut report = ReindexReport {
            replica: self.replica.clone(),
            prefix: self.prefix.clone(),
            resumed_after: match &self.checkpoint {
                Some(c) => c.read(&self.prefix).await?,
                None => None,
            },
            ..Default::default()
        };
        if let Some(a) = &report.resumed_after {
            tracing::info!(replica = %self.replica, after = %a, "resuming reindex from its checkpoint");
        }
        let mut pages = std::pin::pin!(listing::pages(
            &*self.store,
            &self.prefix,
            report.resumed_after.clone(),
            self.page
        ));
        while let Some(page) = pages.try_next().await? {
            let next = page.next_start_after.clone();
            let mut done = futures::stream::iter(page.objects)
                .map(|o| async move {
                    let outcome = self.object(&o).await;
                    (o.key, outcome)
                })
                .buffered(CONCURRENCY);
            while let Some((key, outcome)) = done.next().await {
                match outcome {
                    Ok(Some(Kind::Bundle)) => report.bundles += 1,
                    Ok(_) => report.tombstones += 1,
                    Err(reason) => {
                        tracing::warn!(replica = %self.replica, %key, %reason, "could not index");
                        report.failures += 1;
                        if report.failed.len() < LISTED_FAILURES {
                            report.failed.push(Failure { key, reason });
                        }
                    }
                }
                progress(Phase::Objects, &report);
            }
            if let (Some(c), Some(next)) = (&self.checkpoint, &next) {
                c.write(&self.prefix, next).await?;
            }
        }
        self.documents(&mut report, progress).await?;
        if let Some(c) = &self.checkpoint {
            c.clear().await?;
        }
        Ok(report)
    }

    /// Indexes one object: `Some(Bundle)` for a manifest, `None` for a tombstone; skips keys
    /// that are neither.
    async fn object(&self, o: &ObjectMeta) -> Result<Option<Kind>, String> {
        let kind = match ObjectKey::parse(&o.key) {
            Some(ObjectKey::Versioned(Kind::Bundle, ..)) => Some(Kind::Bundle),
            Some(
                ObjectKey::VersionTombstone(Kind::Bundle, ..)
                | ObjectKey::Tombstone(Kind::Bundle, _),
            ) => None,
            _ => return Err("not a bundle or tombstone key".into()),
        };
        let event = BucketEvent::created(self.store.bucket(), o);
        let (mut delay, mut attempt) = (Duration::from_millis(200), 1);
        loop {
            match self.indexer.event(event.clone()).await {
                Ok(Outcome::Done) => return Ok(kind),
                Ok(Outcome::RetryLater(_)) if attempt == ATTEMPTS => {
                    return Err("not indexable yet".into());
                }
                Err(HandlerError::Transient(why) | HandlerError::Unavailable(why))
                    if attempt == ATTEMPTS =>
                {
                    return Err(why);
                }
                Err(HandlerError::Permanent(why)) => return Err(why),
                Ok(Outcome::RetryLater(_))
                | Err(HandlerError::Transient(_) | HandlerError::Unavailable(_)) => {
                    tracing::debug!(key = %o.key, attempt, "retrying");
                    tokio::time::sleep(delay).await;
                    (delay, attempt) = (delay * 2, attempt + 1);
                }
            }
        }
    }

    /// Checks every document under the prefix against the bucket.
    async fn documents(
        &self,
        report: &mut ReindexReport,
        progress: &(dyn Fn(Phase, &ReindexReport) + Sync),
    ) -> Result<(), ReindexError> {
        let search = &self.indexer.search;
        let ids = self.prefix.trim_start_matches(Kind::Bundle.prefix());
        let mut after = None;
        loop {
            let page = search
                .search(
                    &self.replica,
                    &SearchRequest {
                        body: json!({"query": {"match_all": {}}}),
                        size: PAGE,
                        after: after.take(),
                        with_source: false,
                    },
                )
                .await?;
            let Some(last) = page.hits.last() else {
                return Ok(());
            };
            after = Some(last.cursor.clone());
            for hit in page.hits.iter().filter(|h| h.id.starts_with(ids)) {
                report.documents += 1;
                let key = format!("{}{}", Kind::Bundle.prefix(), hit.id);
                if self.store.head(&key).await?.is_some() {
                    continue;
                }
                report.stale += 1;
                if self.prune && search.delete(&self.replica, &hit.id).await? {
                    tracing::info!(replica = %self.replica, document = %hit.id, "removed a stale search document");
                    report.removed += 1;
                }
            }
            progress(Phase::Documents, report);
        }
    }
}
