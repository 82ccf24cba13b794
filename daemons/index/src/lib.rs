//! The index daemon: for every bundle event of every replica, keeps the bundle's search
//! document and records the event in the replica's journal.
//!
//! * `bundles/{uuid}.{version}` created → search document (or, if the bundle already has a
//!   tombstone, the tombstone document) and a CREATE event.
//! * `bundles/{uuid}.{version}.dead` / `bundles/{uuid}.dead` created → every affected version's
//!   document is replaced by the tombstone document; a TOMBSTONE event.
//! * a bundle or tombstone object removed → a DELETE event (search documents are kept, as in
//!   the original).
//!
//! Objects that are gone, non-JSON or oversized files are logged and skipped, never retried;
//! a member blob that has not replicated yet is retried with backoff. Every step is idempotent:
//! an unchanged document is not rewritten and an event is recorded once.

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::model::keys::Kind;
use dss_core::model::metadata::{
    create_document, delete_document, search_document, tombstone_document,
    tombstone_search_document,
};
use dss_core::model::{DssVersion, ObjectKey, ObjectUuid};
use dss_core::names::INDEX_QUEUE;
use dss_core::ports::{
    BlobStore, BucketEvent, BucketEventName, EventJournal, EventKind, Message, NewEvent,
    SearchError, SearchIndex,
};
use dss_runtime::daemon::{Daemon, DaemonError, Task};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::{Handler, HandlerError, Outcome, WorkerConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use dss_runtime::bundle_reader::Limits;

pub mod reindex;
use dss_runtime::bundle_reader::{self as bundle, LoadError};

/// The handler of bucket events.
#[derive(Debug)]
pub struct Indexer {
    deployment: Deployment,
    search: Arc<dyn SearchIndex>,
    journal: Arc<dyn EventJournal>,
    limits: Limits,
}

impl Indexer {
    /// An indexer over the deployment's replicas, search index and journal, with the limits of
    /// its `index` configuration.
    pub fn new(deployment: &Deployment) -> Self {
        Self {
            search: deployment.search.clone(),
            journal: deployment.journal.clone(),
            limits: Limits::from(&deployment.config.index),
            deployment: deployment.clone(),
        }
    }

    async fn record(
        &self,
        replica: &str,
        kind: EventKind,
        event_id: String,
        doc: &Value,
    ) -> Result<(), HandlerError> {
        let event = NewEvent {
            event_id,
            kind,
            body: doc.to_string(),
        };
        self.journal
            .record(replica, vec![event])
            .await
            .map_err(HandlerError::unavailable)?;
        Ok(())
    }

    /// A new bundle version.
    async fn bundle(
        &self,
        replica: &str,
        store: &Arc<dyn BlobStore>,
        uuid: &ObjectUuid,
        version: &DssVersion,
    ) -> Result<Outcome, HandlerError> {
        let key = ObjectKey::bundle(uuid, version);
        let bundle::Manifest {
            stored: manifest,
            typed,
        } = match bundle::read_manifest(store, &key).await {
            Ok(m) => m,
            Err(e) => return skip_or_fail(e),
        };
        // A bundle written after its tombstone (replication order) is indexed as dead.
        for tomb_version in [Some(version), None] {
            let tomb_key = ObjectKey::bundle_tombstone(uuid, tomb_version);
            match bundle::read_json(store, &tomb_key).await {
                Ok(tombstone) => {
                    let doc = tombstone_search_document(
                        &tombstone,
                        uuid.as_str(),
                        tomb_version.map(DssVersion::as_str),
                    );
                    let id = format!("{uuid}.{version}");
                    let modified = self
                        .search
                        .put(replica, &id, &doc)
                        .await
                        .map_err(search_failed)?;
                    tracing::info!(replica, bundle = %id, tombstone = %tomb_key, modified, "indexed a bundle that is already tombstoned");
                    return Ok(Outcome::Done);
                }
                Err(LoadError::Missing(_)) => {}
                Err(e) => return skip_or_fail(e),
            }
        }
        let files = match bundle::json_files(store, &key, &typed, &self.limits).await {
            Ok(f) => f,
            Err(e) => return skip_or_fail(e),
        };
        let id = format!("{uuid}.{version}");
        let doc = search_document(uuid.as_str(), &manifest, &files);
        let create = create_document(uuid.as_str(), version.as_str(), &manifest, &files);
        // Both at once (in one commit, with embedded stores); each is idempotent, so a retry
        // after one of them failed completes the other.
        let (modified, ()) = futures::try_join!(
            async {
                self.search
                    .put(replica, &id, &doc)
                    .await
                    .map_err(search_failed)
            },
            self.record(replica, EventKind::Create, id.clone(), &create),
        )?;
        tracing::info!(replica, bundle = %id, files = files.len(), modified, "indexed bundle");
        Ok(Outcome::Done)
    }

    /// A tombstone of one version (`Some`) or of the whole bundle (`None`).
    async fn tombstone(
        &self,
        replica: &str,
        store: &Arc<dyn BlobStore>,
        uuid: &ObjectUuid,
        version: Option<&DssVersion>,
    ) -> Result<Outcome, HandlerError> {
        let key = ObjectKey::bundle_tombstone(uuid, version);
        let tombstone = match bundle::read_json(store, &key).await {
            Ok(t) => t,
            Err(e) => return skip_or_fail(e),
        };
        let affected = match version {
            Some(v) => {
                let exists = store
                    .head(&ObjectKey::bundle(uuid, v))
                    .await
                    .map_err(HandlerError::transient)?
                    .is_some();
                if exists { vec![v.clone()] } else { Vec::new() }
            }
            None => match bundle::versions(store, uuid).await {
                Ok(all) => all.into_iter().map(|v| v.version).collect(),
                Err(e) => return skip_or_fail(e),
            },
        };
        let doc =
            tombstone_search_document(&tombstone, uuid.as_str(), version.map(DssVersion::as_str));
        for v in &affected {
            self.search
                .put(replica, &format!("{uuid}.{v}"), &doc)
                .await
                .map_err(search_failed)?;
        }
        let event = tombstone_document(&tombstone, uuid.as_str(), version.map(DssVersion::as_str));
        let event_id = key.trim_start_matches(Kind::Bundle.prefix()).to_string();
        self.record(replica, EventKind::Tombstone, event_id, &event)
            .await?;
        tracing::info!(replica, tombstone = %key, versions = affected.len(), "indexed tombstone");
        Ok(Outcome::Done)
    }
}

/// An unreachable search backend is an outage (the event is deferred, not failed); other
/// errors are transient failures of the event.
fn search_failed(e: SearchError) -> HandlerError {
    match e {
        SearchError::Unavailable(why) => HandlerError::Unavailable(why),
        other => HandlerError::transient(other),
    }
}

/// Gone objects are skipped; corrupt documents are dead-lettered; the rest retried.
fn skip_or_fail(e: LoadError) -> Result<Outcome, HandlerError> {
    match e {
        LoadError::Missing(what) => {
            tracing::info!(%what, "object no longer exists; nothing to index");
            Ok(Outcome::Done)
        }
        LoadError::Corrupt(why) => Err(HandlerError::Permanent(why)),
        LoadError::Retry(why) => Err(HandlerError::Transient(why)),
    }
}

#[async_trait]
impl Handler for Indexer {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        dss_runtime::bucket_events::handle_each(&message.body, |e| self.event(e)).await
    }
}

impl Indexer {
    /// Indexes what one bucket event announces (the daemon's handler, also used by reindex).
    pub async fn event(&self, event: BucketEvent) -> Result<Outcome, HandlerError> {
        let Some(replica) = self.deployment.replica_of_bucket(&event.bucket) else {
            tracing::warn!(bucket = %event.bucket, "event from a bucket that is no replica; ignored");
            return Ok(Outcome::Done);
        };
        let (name, store) = (replica.name.as_str(), &replica.store);
        let key = ObjectKey::parse(&event.key);
        let writer = self.writer(store, &event, key.as_ref()).await;
        let (correlation, traceparent) = writer
            .map(|w| (w.correlation_id, w.traceparent))
            .unwrap_or_default();
        let span = tracing::info_span!("bucket_event", key = %event.key);
        let work = self.dispatch(name, store, event.event_name, key);
        let work = dss_core::correlation::adopt(correlation.as_deref(), work);
        match traceparent {
            // The writer's trace goes on in a span of its own.
            Some(tp) => dss_runtime::telemetry::in_span(span, Some(&tp), work).await,
            None => work.await,
        }
    }

    /// What the writer of a bundle's manifest or tombstone recorded with it — its correlation
    /// id and `traceparent` — when the event carried neither (S3 notifications), so its
    /// indexing and notifications log under the id and join the writer's trace.
    async fn writer(
        &self,
        store: &Arc<dyn BlobStore>,
        event: &BucketEvent,
        key: Option<&ObjectKey>,
    ) -> Option<dss_core::ports::ObjectMeta> {
        let bundle_object = matches!(
            key,
            Some(
                ObjectKey::Versioned(Kind::Bundle, ..)
                    | ObjectKey::VersionTombstone(Kind::Bundle, ..)
                    | ObjectKey::Tombstone(Kind::Bundle, _)
            )
        );
        if event.event_name != BucketEventName::Created
            || !bundle_object
            || event.correlation_id.is_some()
            || event.traceparent.is_some()
            || dss_core::correlation::current().is_some()
        {
            return None;
        }
        store.head(&event.key).await.ok().flatten()
    }

    /// Indexes or records what happened to `key`.
    async fn dispatch(
        &self,
        name: &str,
        store: &Arc<dyn BlobStore>,
        event_name: BucketEventName,
        key: Option<ObjectKey>,
    ) -> Result<Outcome, HandlerError> {
        match (event_name, key) {
            (BucketEventName::Created, Some(ObjectKey::Versioned(Kind::Bundle, u, v))) => {
                self.bundle(name, store, &u, &v).await
            }
            (BucketEventName::Created, Some(ObjectKey::VersionTombstone(Kind::Bundle, u, v))) => {
                self.tombstone(name, store, &u, Some(&v)).await
            }
            (BucketEventName::Created, Some(ObjectKey::Tombstone(Kind::Bundle, u))) => {
                self.tombstone(name, store, &u, None).await
            }
            (BucketEventName::Removed, Some(ObjectKey::Versioned(Kind::Bundle, u, v))) => {
                let doc = delete_document(u.as_str(), Some(v.as_str()));
                self.record(name, EventKind::Delete, format!("{u}.{v}"), &doc)
                    .await?;
                Ok(Outcome::Done)
            }
            (
                BucketEventName::Removed,
                Some(
                    k @ (ObjectKey::VersionTombstone(Kind::Bundle, ..)
                    | ObjectKey::Tombstone(Kind::Bundle, _)),
                ),
            ) => {
                let (u, v) = match &k {
                    ObjectKey::VersionTombstone(_, u, v) => (u, Some(v.as_str())),
                    ObjectKey::Tombstone(_, u) => (u, None),
                    _ => return Ok(Outcome::Done),
                };
                let doc = delete_document(u.as_str(), v);
                let id = k
                    .to_string()
                    .trim_start_matches(Kind::Bundle.prefix())
                    .to_string();
                self.record(name, EventKind::Delete, id, &doc).await?;
                Ok(Outcome::Done)
            }
            // Files, collections, blobs and foreign keys are not indexed.
            _ => Ok(Outcome::Done),
        }
    }
}

/// The index daemon: the `index` queue's bundle events → search documents and journal events.
#[derive(Debug, Default)]
pub struct IndexDaemon;

#[async_trait]
impl Daemon for IndexDaemon {
    fn name(&self) -> &'static str {
        "index"
    }

    fn about(&self) -> &'static str {
        "bundle events → search documents and the events journal"
    }

    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError> {
        let mut cfg = WorkerConfig::named("index");
        cfg.concurrency = deployment.config.index.concurrency;
        cfg.visibility = std::time::Duration::from_secs(deployment.config.index.visibility_secs);
        let worker = deployment
            .worker(INDEX_QUEUE, Arc::new(Indexer::new(deployment)), cfg)
            .await?;
        Ok(vec![Task::Worker(worker)])
    }
}

/// Runs the index daemon until `shutdown`.
pub async fn run(deployment: &Deployment, shutdown: CancellationToken) -> Result<(), DaemonError> {
    dss_runtime::daemon::run(&IndexDaemon, deployment, shutdown).await
}
