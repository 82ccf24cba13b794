//! The reconciler: lists every replica by prefix in key order, side by side, and queues a
//! copy request for each key missing from a replica or different there, so that objects whose
//! bucket events were lost are repaired within one pass.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use dss_core::model::ObjectKey;
use dss_core::ports::{
    BlobError, BlobStore, ListPage, ObjectMeta, OutgoingMessage, Queue, QueueError, listing,
};
use dss_runtime::deployment::Deployment;
use futures::{Stream, TryStreamExt};
use serde::Serialize;

use crate::copy::{Found, compare};
use crate::metrics::SyncMetrics;
use crate::request::SyncRequest;

/// The prefixes of a full pass, in reference order (blobs first, collections last), so that
/// the copies of one pass are mostly ready when they are taken up.
pub const PREFIXES: &[&str] = &["blobs/", "files/", "bundles/", "collections/"];

/// Copy requests sent per queue call.
const SEND_BATCH: usize = 100;

/// Keys compared between two progress lines in the log.
const LOG_EVERY: u64 = 100_000;

/// Errors of a pass.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Listing a replica failed.
    #[error("listing replica '{replica}': {source}")]
    List {
        /// The replica.
        replica: String,
        /// The error.
        source: BlobError,
    },
    /// Queueing copy requests failed.
    #[error("queueing copy requests: {0}")]
    Queue(#[from] QueueError),
}

/// What one prefix's comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrefixReport {
    /// The prefix.
    pub prefix: String,
    /// Distinct DSS object keys seen in any replica.
    pub scanned: u64,
    /// (key, replica) pairs where the replica lacked the key.
    pub missing: u64,
    /// (key, replica) pairs where the replica's object differed.
    pub different: u64,
    /// Of those, metadata objects that differ (left alone, reported).
    pub conflicts: u64,
    /// Copy requests queued.
    pub enqueued: u64,
    /// The first findings, as (key, replica lacking it or holding another object, what).
    pub findings: Vec<Finding>,
}

/// One key that a replica lacks or holds differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The key.
    pub key: String,
    /// The replica that lacks it or differs.
    pub replica: String,
    /// `missing`, `different` or `conflict`.
    pub kind: &'static str,
}

/// Findings kept per prefix in a report (the counts cover all).
const MAX_FINDINGS: usize = 100;

/// Compares replicas and queues repairs.
#[derive(Debug)]
pub struct Reconciler {
    deployment: Deployment,
    queue: Arc<dyn Queue>,
    metrics: Arc<SyncMetrics>,
    page: usize,
    repair: bool,
    progress: Option<Watcher>,
}

/// Told how a pass is going: the prefix's report so far and the key it has reached.
pub type ProgressFn = Arc<dyn Fn(&PrefixReport, &str) + Send + Sync>;

/// A [`ProgressFn`] held by a reconciler.
struct Watcher(ProgressFn);

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// Keys between two progress calls.
const PROGRESS_EVERY: u64 = 256;

/// One replica's listing, a page at a time.
struct Lister<'a> {
    replica: &'a str,
    pages: Pin<Box<dyn Stream<Item = Result<ListPage, BlobError>> + Send + 'a>>,
    buffer: VecDeque<ObjectMeta>,
}

impl<'a> Lister<'a> {
    fn new(replica: &'a str, store: &'a dyn BlobStore, prefix: &'a str, page: usize) -> Self {
        Self {
            replica,
            pages: Box::pin(listing::pages(store, prefix, None, page)),
            buffer: VecDeque::new(),
        }
    }

    /// The next key, reading pages while the buffer is empty.
    async fn peek(&mut self) -> Result<Option<&str>, ReconcileError> {
        while self.buffer.is_empty() {
            let page = self
                .pages
                .try_next()
                .await
                .map_err(|source| ReconcileError::List {
                    replica: self.replica.to_string(),
                    source,
                })?;
            match page {
                Some(p) => self.buffer.extend(p.objects),
                None => break,
            }
        }
        Ok(self.buffer.front().map(|m| m.key.as_str()))
    }
}

impl Reconciler {
    /// A reconciler over the deployment's replicas, queueing requests on `queue` (the sync
    /// queue) and listing `page` keys at a time.
    pub fn new(
        deployment: &Deployment,
        queue: Arc<dyn Queue>,
        metrics: Arc<SyncMetrics>,
        page: usize,
    ) -> Self {
        Self {
            deployment: deployment.clone(),
            queue,
            metrics,
            page: page.max(1),
            repair: true,
            progress: None,
        }
    }

    /// The same reconciler, calling `progress` every few hundred keys.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(Watcher(progress));
        self
    }

    /// The same reconciler, reporting only: nothing is queued (`enqueued` stays 0).
    pub fn report_only(mut self) -> Self {
        self.repair = false;
        self
    }

    /// One pass over `prefixes` (each must lie within a DSS prefix, e.g. `bundles/` or
    /// `bundles/ce55`).
    pub async fn run(&self, prefixes: &[String]) -> Result<Vec<PrefixReport>, ReconcileError> {
        let mut reports = Vec::new();
        for p in prefixes {
            let started = std::time::Instant::now();
            let report = self.prefix(p).await?;
            tracing::info!(prefix = %p, scanned = report.scanned, missing = report.missing, different = report.different, conflicts = report.conflicts, enqueued = report.enqueued, secs = started.elapsed().as_secs_f64(), "reconciled");
            reports.push(report);
        }
        SyncMetrics::bump(&self.metrics.reconcile_runs);
        Ok(reports)
    }

    async fn prefix(&self, prefix: &str) -> Result<PrefixReport, ReconcileError> {
        let mut listers: Vec<Lister<'_>> = self
            .deployment
            .replicas
            .values()
            .map(|r| Lister::new(&r.name, &*r.store, prefix, self.page))
            .collect();
        let mut report = PrefixReport {
            prefix: prefix.to_string(),
            ..Default::default()
        };
        let mut outbox = Vec::new();
        loop {
            let mut next: Option<String> = None;
            for l in &mut listers {
                if let Some(k) = l.peek().await?
                    && next.as_deref().is_none_or(|n| k < n)
                {
                    next = Some(k.to_string());
                }
            }
            let Some(key) = next else { break };
            // Every replica's copy of this key (None where it is missing).
            let copies: Vec<(&str, Option<ObjectMeta>)> = listers
                .iter_mut()
                .map(|l| {
                    let here = l.buffer.front().is_some_and(|m| m.key == key);
                    (l.replica, here.then(|| l.buffer.pop_front()).flatten())
                })
                .collect();
            let Some(parsed) = ObjectKey::parse(&key) else {
                continue;
            };
            report.scanned += 1;
            SyncMetrics::bump(&self.metrics.reconcile_scanned);
            self.compare(&parsed, &key, &copies, &mut report, &mut outbox);
            if outbox.len() >= SEND_BATCH {
                self.send(&mut outbox, &mut report).await?;
            }
            if let Some(Watcher(progress)) = &self.progress
                && report.scanned.is_multiple_of(PROGRESS_EVERY)
            {
                progress(&report, &key);
            }
            if report.scanned.is_multiple_of(LOG_EVERY) {
                tracing::info!(%prefix, scanned = report.scanned, missing = report.missing, different = report.different, at = %key, "reconciling");
            }
        }
        self.send(&mut outbox, &mut report).await?;
        Ok(report)
    }

    /// Compares the copies of one key against the best one and notes the repairs.
    fn compare(
        &self,
        key: &ObjectKey,
        text: &str,
        copies: &[(&str, Option<ObjectMeta>)],
        report: &mut PrefixReport,
        outbox: &mut Vec<SyncRequest>,
    ) {
        // The source: a good copy (a blob must hold the bytes its key names), preferably the
        // original rather than a sync copy.
        let good = |m: &ObjectMeta| compare(key, m, Some(m)) == Found::Same;
        let source = copies
            .iter()
            .filter_map(|(r, m)| m.as_ref().filter(|m| good(m)).map(|m| (*r, m)))
            .min_by_key(|(_, m)| m.origin.is_some());
        let Some((source, meta)) = source else {
            tracing::error!(key = %text, "no replica holds a good copy of this blob");
            return;
        };
        // Copies of a document that disagree: which one is right is for an operator to say;
        // neither is spread.
        let disagree = !matches!(key, ObjectKey::Blob(_))
            && copies.iter().any(|(_, c)| {
                c.as_ref()
                    .is_some_and(|c| matches!(compare(key, meta, Some(c)), Found::Conflict(_)))
            });
        for (replica, copy) in copies {
            let found = compare(key, meta, copy.as_ref());
            let kind = match &found {
                Found::Same => continue,
                Found::Missing => "missing",
                Found::BrokenBlob => "different",
                Found::Conflict(_) => "conflict",
            };
            if report.findings.len() < MAX_FINDINGS {
                report.findings.push(Finding {
                    key: text.to_string(),
                    replica: replica.to_string(),
                    kind,
                });
            }
            match found {
                Found::Same => continue,
                Found::Missing => {
                    report.missing += 1;
                    SyncMetrics::bump(&self.metrics.reconcile_missing);
                    if disagree {
                        continue;
                    }
                }
                Found::BrokenBlob => {
                    report.different += 1;
                    SyncMetrics::bump(&self.metrics.reconcile_different);
                }
                Found::Conflict(why) => {
                    report.different += 1;
                    report.conflicts += 1;
                    SyncMetrics::bump(&self.metrics.reconcile_different);
                    tracing::error!(key = %text, %source, %replica, %why, "the replicas hold different objects under one key; left as they are");
                    continue;
                }
            }
            outbox.push(SyncRequest {
                source_replica: source.to_string(),
                dest_replica: replica.to_string(),
                key: text.to_string(),
            });
        }
    }

    async fn send(
        &self,
        outbox: &mut Vec<SyncRequest>,
        report: &mut PrefixReport,
    ) -> Result<(), ReconcileError> {
        if outbox.is_empty() {
            return Ok(());
        }
        if !self.repair {
            outbox.clear();
            return Ok(());
        }
        let messages: Vec<OutgoingMessage> = outbox
            .iter()
            .map(|r| OutgoingMessage::new(serde_json::to_string(r).unwrap_or_default()))
            .collect();
        self.queue.send_batch(&messages).await?;
        let n = outbox.len() as u64;
        report.enqueued += n;
        self.metrics
            .reconcile_enqueued
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        outbox.clear();
        Ok(())
    }
}
