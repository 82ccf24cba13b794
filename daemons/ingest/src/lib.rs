//! The ingest daemon, and what the API shares with it. Ingest from cloud staging: `PUT /files`
//! with an `s3://` (or `gs://`) source copies the bytes
//! into the replica's `blobs/…`, verified against all four checksums the source declares, then
//! writes the file's metadata. Sources larger than [`SYNC_MAX`] are copied by a durable job on
//! the `ingest` queue (the request answers 202): the metadata appears when the copy is verified,
//! and a copy that cannot succeed (the bytes do not match) leaves a failure record that `HEAD`
//! and `GET` report as 422.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dss_core::checksum::Checksums;
use dss_core::model::{DssVersion, FileMetadata, ObjectKey, ObjectUuid};
use dss_core::names::INGEST_QUEUE;
use dss_core::ports::blob::create_json;
use dss_core::ports::{BlobError, BlobStore, Message, PutOptions, QueueError, Staging, Verify};
use dss_core::transfer::transfer;
use dss_runtime::daemon::{Daemon, DaemonError, Task};
use dss_runtime::deployment::{Deployment, Replica};
use dss_runtime::worker::{Handler, HandlerError, Outcome, WorkerConfig};
use serde::{Deserialize, Serialize};

/// Largest source copied while the request waits (the original's limit: 64 MiB).
pub const SYNC_MAX: u64 = 64 * 1024 * 1024;

/// A cloud staging object: `{scheme}://{bucket}/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `s3` or `gs`.
    pub scheme: String,
    /// The staging bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
}

impl Source {
    /// Parses `s3://bucket/key` or `gs://bucket/key`; `None` without a bucket or a key.
    pub fn parse(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let (bucket, key) = rest.split_once('/')?;
        (matches!(scheme, "s3" | "gs") && !bucket.is_empty() && !key.is_empty()).then(|| Self {
            scheme: scheme.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The source's URL.
    pub fn url(&self) -> String {
        format!("{}://{}/{}", self.scheme, self.bucket, self.key)
    }
}

/// A large source to copy, then register as `metadata`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestJob {
    /// The id the 202 answer handed out.
    pub task_id: String,
    /// The destination replica.
    pub replica: String,
    /// The file's UUID.
    pub uuid: ObjectUuid,
    /// Where the bytes are.
    pub source: Source,
    /// The ETag the source's store gave it.
    pub source_etag: Option<String>,
    /// The metadata to write once the blob is verified.
    pub metadata: FileMetadata,
}

/// Whether a source need not be copied: the blob it declares is in `store` and the source's
/// store vouches for the declaration (its own ETag of the bytes equals the declared S3 ETag).
pub async fn already_stored(
    store: &dyn BlobStore,
    sums: &Checksums,
    source_etag: Option<&str>,
) -> Result<bool, BlobError> {
    Ok(source_etag == Some(sums.s3_etag.as_str()) && blob_present(store, sums).await?)
}

/// Whether the blob with exactly these checksums is in `store`.
pub async fn blob_present(store: &dyn BlobStore, sums: &Checksums) -> Result<bool, BlobError> {
    Ok(store
        .head(&ObjectKey::blob(sums))
        .await?
        .is_some_and(|m| m.checksums.as_ref() == Some(sums)))
}

/// Copies the source into the blob `meta` names, computing and comparing all four checksums
/// (a mismatch stores nothing).
pub async fn copy_blob(
    staging: &dyn Staging,
    source: &Source,
    store: &dyn BlobStore,
    meta: &FileMetadata,
) -> Result<(), BlobError> {
    let sums = meta.checksums();
    let src = staging.bucket(&source.bucket)?;
    let opts = PutOptions {
        content_type: Some(meta.content_type.clone()),
        size: Some(meta.size),
        expected: Some(sums.clone()),
        verify: Verify::Full,
        ..Default::default()
    };
    let key = ObjectKey::blob(&sums);
    transfer(
        &*src,
        &source.key,
        meta.size,
        store,
        &key,
        opts,
        Arc::default(),
    )
    .await?;
    Ok(())
}

/// Why an asynchronous ingest failed for good, kept in the replica's checkout bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The task.
    pub task_id: String,
    /// The error code `HEAD`/`GET` answer with.
    pub code: String,
    /// What went wrong.
    pub title: String,
}

/// The `&'static` error code of a recorded failure (codes are the ones [`Ingester`] records).
pub fn failure_code(code: &str) -> &'static str {
    match code {
        "size_mismatch" => "size_mismatch",
        "not_found" => "source_not_found",
        "file_already_exists" => "file_already_exists",
        _ => "checksum_mismatch",
    }
}

fn failure_key(uuid: &ObjectUuid, version: &DssVersion) -> String {
    format!("ingest-failures/{uuid}.{version}.json")
}

/// The recorded failure of the ingest of `uuid`/`version`, if any.
pub async fn failure(
    replica: &Replica,
    uuid: &ObjectUuid,
    version: &DssVersion,
) -> Result<Option<Failure>, BlobError> {
    let key = failure_key(uuid, version);
    match replica.checkout.get_bytes(&key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| BlobError::Backend(format!("corrupt failure record {key}: {e}"))),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Forgets an earlier failure (a new PUT of the same version starts over).
pub async fn clear_failure(
    replica: &Replica,
    uuid: &ObjectUuid,
    version: &DssVersion,
) -> Result<(), BlobError> {
    replica.checkout.delete(&failure_key(uuid, version)).await?;
    Ok(())
}

/// Queues the copy of `job`.
pub async fn submit(deployment: &Deployment, job: &IngestJob) -> Result<(), QueueError> {
    let body = dss_core::correlation::body(job).map_err(|e| QueueError::Backend(e.to_string()))?;
    deployment
        .queue(INGEST_QUEUE)
        .await?
        .send(&body, Duration::ZERO)
        .await
}

/// Runs ingest jobs.
pub struct Ingester {
    deployment: Deployment,
}

impl Ingester {
    /// Jobs of `deployment`.
    pub fn new(deployment: &Deployment) -> Self {
        Self {
            deployment: deployment.clone(),
        }
    }

    async fn record(
        &self,
        replica: &Replica,
        job: &IngestJob,
        code: &str,
        title: String,
    ) -> Result<Outcome, HandlerError> {
        tracing::warn!(task_id = %job.task_id, source = %job.source.url(), %code, %title, "ingest failed");
        let f = Failure {
            task_id: job.task_id.clone(),
            code: code.to_string(),
            title,
        };
        let text = serde_json::to_vec(&f).map_err(|e| HandlerError::Permanent(e.to_string()))?;
        let key = failure_key(&job.uuid, &job.metadata.version);
        replica
            .checkout
            .put_bytes(&key, text.into(), PutOptions::default())
            .await
            .map_err(HandlerError::transient)?;
        Ok(Outcome::Done)
    }
}

/// Writes the metadata of a file create-only: `Ok(true)` when written now or already there with
/// the same meaning, `Ok(false)` when another document holds the key.
async fn create_metadata(
    store: &dyn BlobStore,
    key: &str,
    meta: &FileMetadata,
) -> Result<bool, BlobError> {
    if create_json(store, key, meta.to_json_text(), None).await? {
        return Ok(true);
    }
    let existing: Option<FileMetadata> = serde_json::from_slice(&store.get_bytes(key).await?).ok();
    Ok(existing.is_some_and(|e| e.same_meaning(meta)))
}

#[async_trait]
impl Handler for Ingester {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        let job: IngestJob = serde_json::from_str(&message.body)
            .map_err(|e| HandlerError::Permanent(format!("not an ingest job: {e}")))?;
        let replica =
            self.deployment.replicas.get(&job.replica).ok_or_else(|| {
                HandlerError::Permanent(format!("no replica named {}", job.replica))
            })?;
        let staging = self
            .deployment
            .staging
            .get(&job.source.scheme)
            .ok_or_else(|| {
                HandlerError::Permanent(format!("no {}:// staging configured", job.source.scheme))
            })?;
        let meta = &job.metadata;
        let store = &*replica.store;
        if !already_stored(store, &meta.checksums(), job.source_etag.as_deref())
            .await
            .map_err(HandlerError::transient)?
        {
            match copy_blob(&**staging, &job.source, store, meta).await {
                Ok(()) => {}
                Err(BlobError::ChecksumMismatch(names)) => {
                    let title = format!(
                        "the data does not match the declared checksums: {}",
                        names.join(", ")
                    );
                    return self.record(replica, &job, "checksum_mismatch", title).await;
                }
                Err(BlobError::SizeMismatch { expected, got }) => {
                    let title = format!("the source has {got} bytes, not the {expected} declared");
                    return self.record(replica, &job, "size_mismatch", title).await;
                }
                Err(BlobError::NotFound(_)) => {
                    let title = format!("source object {} is gone", job.source.url());
                    return self.record(replica, &job, "not_found", title).await;
                }
                Err(e) => return Err(HandlerError::transient(e)),
            }
        }
        let key = ObjectKey::file(&job.uuid, &meta.version);
        if !create_metadata(store, &key, meta)
            .await
            .map_err(HandlerError::transient)?
        {
            let title = format!(
                "file with UUID {} and version {} already exists",
                job.uuid, meta.version
            );
            return self
                .record(replica, &job, "file_already_exists", title)
                .await;
        }
        tracing::info!(task_id = %job.task_id, source = %job.source.url(), size = meta.size, "ingested");
        Ok(Outcome::Done)
    }
}

/// The ingest daemon: copies of large files from cloud staging (`PUT /files` answered 202).
#[derive(Debug, Default)]
pub struct IngestDaemon;

#[async_trait]
impl Daemon for IngestDaemon {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn about(&self) -> &'static str {
        "copies of large files from cloud staging, verified, then their metadata"
    }

    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError> {
        let mut cfg = WorkerConfig::named("ingest");
        cfg.concurrency = 4;
        cfg.batch_size = 4;
        cfg.visibility = Duration::from_secs(120);
        let worker = deployment
            .worker(INGEST_QUEUE, Arc::new(Ingester::new(deployment)), cfg)
            .await?;
        Ok(vec![Task::Worker(worker)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_need_a_cloud_a_bucket_and_a_key() {
        let s = Source::parse("s3://staging/dir/a b.json").unwrap();
        assert_eq!(
            (s.scheme.as_str(), s.bucket.as_str(), s.key.as_str()),
            ("s3", "staging", "dir/a b.json")
        );
        assert_eq!(s.url(), "s3://staging/dir/a b.json");
        assert_eq!(Source::parse("gs://b/k").unwrap().scheme, "gs");
        for bad in [
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "file:///x/y",
            "wasb://b/k",
            "s3:/b/k",
        ] {
            assert_eq!(Source::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn recorded_failures_answer_with_known_codes() {
        assert_eq!(failure_code("size_mismatch"), "size_mismatch");
        assert_eq!(failure_code("not_found"), "source_not_found");
        assert_eq!(failure_code("checksum_mismatch"), "checksum_mismatch");
        assert_eq!(failure_code("anything else"), "checksum_mismatch");
    }
}
