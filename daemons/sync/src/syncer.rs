//! The handler of the sync queue: for each object written to a replica, a verified copy in
//! every other replica, once what it refers to is there.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dss_core::model::ObjectKey;
use dss_core::ports::{BlobError, BucketEvent, BucketEventName, Message, ObjectMeta};
use dss_runtime::deployment::{Deployment, Replica};
use dss_runtime::worker::{Handler, HandlerError, Outcome};
use time::OffsetDateTime;

use crate::copy::{Found, compare, replicate};
use crate::deps::{self, DepsError};
use crate::metrics::SyncMetrics;
use crate::request::{Incoming, SyncRequest};

/// A copy of the same key to the same replica already running here: try again after this.
const BUSY_RETRY: Duration = Duration::from_secs(2);

/// Copies objects between the deployment's replicas.
#[derive(Debug)]
pub struct Syncer {
    deployment: Deployment,
    metrics: Arc<SyncMetrics>,
    running: Mutex<HashSet<(String, String)>>,
}

/// A claim on copying one key to one replica; released when dropped.
struct Claim<'a> {
    running: &'a Mutex<HashSet<(String, String)>>,
    job: (String, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.job);
    }
}

impl Syncer {
    /// A syncer over the deployment's replicas, counting into `metrics`.
    pub fn new(deployment: &Deployment, metrics: Arc<SyncMetrics>) -> Self {
        Self {
            deployment: deployment.clone(),
            metrics,
            running: Mutex::default(),
        }
    }

    /// Claims (dest, key) unless a copy of it is already running in this process (duplicate
    /// events of one write arrive close together).
    fn claim(&self, dest: &str, key: &str) -> Option<Claim<'_>> {
        let job = (dest.to_string(), key.to_string());
        let fresh = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.clone());
        fresh.then_some(Claim {
            running: &self.running,
            job,
        })
    }

    /// An object was written to a replica: copy it to every other one. Objects that arrived
    /// by sync are not copied again (their origin copies them everywhere), which is what
    /// keeps copies from looping and from being made twice.
    async fn event(&self, event: BucketEvent) -> Result<Outcome, HandlerError> {
        if event.event_name == BucketEventName::Removed {
            // DSS deletes by writing tombstones, which are replicated; removals are not.
            return Ok(Outcome::Done);
        }
        let Some(src) = self.deployment.replica_of_bucket(&event.bucket) else {
            tracing::warn!(bucket = %event.bucket, "event from a bucket that is no replica; ignored");
            return Ok(Outcome::Done);
        };
        let Some(key) = ObjectKey::parse(&event.key) else {
            tracing::debug!(key = %event.key, "not a DSS object; not replicated");
            return Ok(Outcome::Done);
        };
        let Some(meta) = src
            .store
            .head(&event.key)
            .await
            .map_err(HandlerError::transient)?
        else {
            tracing::info!(replica = %src.name, key = %event.key, "object gone before it was replicated");
            return Ok(Outcome::Done);
        };
        if let Some(origin) = &meta.origin {
            SyncMetrics::bump(&self.metrics.echoes);
            tracing::debug!(replica = %src.name, key = %event.key, %origin, "a sync copy; not replicated again");
            return Ok(Outcome::Done);
        }
        let copies = self
            .deployment
            .replicas
            .values()
            .filter(|r| r.name != src.name)
            .map(|dst| self.sync_one(src, dst, &key, &meta, Some(event.time)));
        let copies = futures::future::join_all(copies);
        combine(dss_core::correlation::adopt(meta.correlation_id.as_deref(), copies).await)
    }

    /// An explicit request (reconciler, operator).
    async fn request(&self, r: SyncRequest) -> Result<Outcome, HandlerError> {
        let replica = |name: &str| {
            self.deployment.replicas.get(name).ok_or_else(|| {
                HandlerError::Permanent(format!("inoperable sync request: no replica '{name}'"))
            })
        };
        let (src, dst) = (replica(&r.source_replica)?, replica(&r.dest_replica)?);
        if src.name == dst.name {
            return Err(HandlerError::Permanent(
                "inoperable sync request: source and destination are the same replica".into(),
            ));
        }
        let key = ObjectKey::parse(&r.key).ok_or_else(|| {
            HandlerError::Permanent(format!(
                "inoperable sync request: '{}' is not a DSS object key",
                r.key
            ))
        })?;
        let Some(meta) = src
            .store
            .head(&r.key)
            .await
            .map_err(HandlerError::transient)?
        else {
            tracing::warn!(replica = %src.name, key = %r.key, "requested object is not in the source; nothing copied");
            return Ok(Outcome::Done);
        };
        self.sync_one(src, dst, &key, &meta, None).await
    }

    /// Makes `dst` hold `key` as `src` has it (`meta`), if what it refers to is there.
    async fn sync_one(
        &self,
        src: &Replica,
        dst: &Replica,
        key: &ObjectKey,
        meta: &ObjectMeta,
        written: Option<OffsetDateTime>,
    ) -> Result<Outcome, HandlerError> {
        let text = key.to_string();
        let Some(_claim) = self.claim(&dst.name, &text) else {
            return Ok(Outcome::RetryLater(Some(BUSY_RETRY)));
        };
        let there = dst
            .store
            .head(&text)
            .await
            .map_err(HandlerError::transient)?;
        let broken = match compare(key, meta, there.as_ref()) {
            Found::Same | Found::Conflict(_) => {
                return Ok(self.settled(key, src, dst, meta, there.as_ref()));
            }
            Found::BrokenBlob => true,
            Found::Missing => false,
        };
        let refs = match deps::references(&src.store, key, meta.size).await {
            Ok(r) => r,
            Err(DepsError::Gone(what)) => {
                tracing::info!(%what, "object gone before it was replicated");
                return Ok(Outcome::Done);
            }
            Err(e @ DepsError::Invalid { .. }) => {
                return Err(HandlerError::Permanent(e.to_string()));
            }
            Err(DepsError::Store(e)) => return Err(HandlerError::transient(e)),
        };
        let missing = deps::missing(&dst.store, refs)
            .await
            .map_err(HandlerError::transient)?;
        if let Some(first) = missing.first() {
            SyncMetrics::bump(&self.metrics.waiting);
            tracing::info!(key = %text, dest = %dst.name, missing = missing.len(), %first, "waiting for what the object refers to");
            return Ok(Outcome::RetryLater(None));
        }
        let progress = Arc::default();
        let copied = match replicate(src, dst, key, meta, progress).await {
            Ok(m) => m,
            // Written at the destination since it was compared: the same object, or a
            // conflict that is left alone.
            Err(BlobError::AlreadyExists(_)) => {
                let now_there = dst
                    .store
                    .head(&text)
                    .await
                    .map_err(HandlerError::transient)?;
                return Ok(self.settled(key, src, dst, meta, now_there.as_ref()));
            }
            Err(BlobError::NotFound(_)) => {
                tracing::info!(key = %text, source = %src.name, "object gone before it was replicated");
                return Ok(Outcome::Done);
            }
            Err(BlobError::ChecksumMismatch(fields)) => {
                return Err(HandlerError::Permanent(format!(
                    "{text} in replica '{}' does not match its checksums ({}); not copied",
                    src.name,
                    fields.join(", ")
                )));
            }
            Err(e @ BlobError::InvalidKey { .. }) => {
                return Err(HandlerError::Permanent(e.to_string()));
            }
            Err(e) => return Err(HandlerError::transient(e)),
        };
        SyncMetrics::bump(&self.metrics.copied);
        self.metrics
            .copied_bytes
            .fetch_add(copied.size, std::sync::atomic::Ordering::Relaxed);
        if broken {
            SyncMetrics::bump(&self.metrics.repaired);
        }
        if let Some(w) = written {
            let lag = self.deployment.clock.now() - w;
            self.metrics
                .observe_lag(Duration::try_from(lag).unwrap_or(Duration::ZERO));
        }
        tracing::info!(key = %text, source = %src.name, dest = %dst.name, bytes = copied.size, repaired = broken, "replicated");
        Ok(Outcome::Done)
    }
    /// The outcome for a destination found holding an object under `key` (or, after a
    /// create-only copy was refused, holding one again): the same one, or a conflict, which is
    /// counted, reported and left as it is; anything else is looked at again later.
    fn settled(
        &self,
        key: &ObjectKey,
        src: &Replica,
        dst: &Replica,
        meta: &ObjectMeta,
        there: Option<&ObjectMeta>,
    ) -> Outcome {
        match compare(key, meta, there) {
            Found::Conflict(why) => {
                SyncMetrics::bump(&self.metrics.conflicts);
                tracing::error!(key = %key, source = %src.name, dest = %dst.name, %why, "the replicas hold different objects under one key; left as they are");
                Outcome::Done
            }
            Found::Same => {
                SyncMetrics::bump(&self.metrics.present);
                Outcome::Done
            }
            Found::Missing | Found::BrokenBlob => Outcome::RetryLater(None),
        }
    }
}

/// One outcome for a message whose object went to several replicas: an error if any failed,
/// else a retry if any was not ready, else done (finished copies are found in place next time).
fn combine(results: Vec<Result<Outcome, HandlerError>>) -> Result<Outcome, HandlerError> {
    let mut out = Outcome::Done;
    let mut transient = None;
    for r in results {
        match r {
            Err(e @ HandlerError::Permanent(_)) => return Err(e),
            Err(e) => transient = Some(e),
            Ok(Outcome::RetryLater(d)) => {
                out = match out {
                    Outcome::RetryLater(Some(prev)) => Outcome::RetryLater(d.map(|d| d.max(prev))),
                    Outcome::RetryLater(None) => Outcome::RetryLater(None),
                    Outcome::Done => Outcome::RetryLater(d),
                }
            }
            Ok(Outcome::Done) => {}
        }
    }
    match transient {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[async_trait]
impl Handler for Syncer {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        match Incoming::parse(&message.body).map_err(HandlerError::Permanent)? {
            Incoming::Events(events) => {
                dss_runtime::bucket_events::handle_all(events, |e| self.event(e)).await
            }
            Incoming::Request(r) => self.request(r).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_of_several_copies_combine() {
        let done = || Ok(Outcome::Done);
        let later = |s| Ok(Outcome::RetryLater(s));
        assert_eq!(combine(vec![done(), done()]), Ok(Outcome::Done));
        assert_eq!(
            combine(vec![done(), later(Some(Duration::from_secs(2)))]),
            Ok(Outcome::RetryLater(Some(Duration::from_secs(2))))
        );
        assert_eq!(
            combine(vec![later(Some(Duration::from_secs(2))), later(None)]),
            Ok(Outcome::RetryLater(None))
        );
        assert!(matches!(
            combine(vec![later(None), Err(HandlerError::Transient("x".into()))]),
            Err(HandlerError::Transient(_))
        ));
        assert!(matches!(
            combine(vec![
                Err(HandlerError::Transient("x".into())),
                Err(HandlerError::Permanent("y".into()))
            ]),
            Err(HandlerError::Permanent(_))
        ));
    }
}
