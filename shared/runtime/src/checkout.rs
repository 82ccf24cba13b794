//! Bundle checkout: the job the API enqueues for the checkout daemon, the job's status document
//! in the replica's checkout bucket, and where checked-out files go in the destination bucket.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use dss_config::CheckoutConfig;
use dss_core::clock::millis;
use dss_core::ports::{BlobError, BlobStore, PutOptions, Queue, QueueError};

/// Key of a job's status document in the replica's checkout bucket.
pub fn status_key(job_id: &str) -> String {
    format!("checkout/status/{job_id}.json")
}

/// Prefix of a bundle's files in a destination bucket: `bundles/{uuid}.{version}`.
pub fn bundle_prefix(uuid: &str, version: &str) -> String {
    format!("bundles/{uuid}.{version}")
}

/// Key of one checked-out file: `bundles/{uuid}.{version}/{name}`.
pub fn file_key(uuid: &str, version: &str, name: &str) -> String {
    format!("{}/{name}", bundle_prefix(uuid, version))
}

/// Key of the pointer to the job currently copying blob `blob_key` into the checkout bucket
/// (so repeated downloads of a cold file wait for one copy instead of starting more).
pub fn pending_key(blob_key: &str) -> String {
    format!("checkout/pending/{blob_key}.json")
}

/// A job on the checkout queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Copy a bundle's files into a destination bucket.
    Bundle(CheckoutJob),
    /// Copy one blob into the replica's checkout bucket (for downloads).
    File(FileCheckout),
}

impl Job {
    /// The job's id.
    pub fn id(&self) -> &str {
        match self {
            Job::Bundle(j) => &j.job_id,
            Job::File(j) => &j.job_id,
        }
    }
}

/// A file checkout: the blob `blob` of the replica's main bucket copied under the same key into
/// its checkout bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckout {
    /// The job's id.
    pub job_id: String,
    /// The replica.
    pub replica: String,
    /// The blob's key (`blobs/{sha256}.{sha1}.{s3_etag}.{crc32c}`).
    pub blob: String,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub content_type: String,
}

/// A bundle checkout job, as queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutJob {
    /// The job's id (a UUID), also the name of its status document.
    pub job_id: String,
    /// The replica whose bundle is checked out.
    pub replica: String,
    /// The bundle's uuid.
    pub bundle: String,
    /// The bundle version (resolved by the API).
    pub version: String,
    /// Destination bucket, in the replica's storage account.
    pub destination: String,
    /// Who to tell when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Queued or copying.
    Running,
    /// Every file is in the destination and verified.
    Succeeded,
    /// The job ended without checking the bundle out.
    Failed,
}

/// A job's status document: `{"status": "RUNNING"}`, `{"status": "SUCCEEDED", "location": …}`
/// or `{"status": "FAILED", "cause": …}` as the original, plus progress counters (an extension)
/// once the daemon knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutStatus {
    /// The state.
    pub status: JobState,
    /// Where the files are (`SUCCEEDED`): `{scheme}://{bucket}/bundles/{uuid}.{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it failed (`FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Files in the destination and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_done: Option<u64>,
    /// Files of the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_total: Option<u64>,
    /// Bytes in the destination and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    /// Bytes of the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
}

/// Counters of a job's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Files done.
    pub files_done: u64,
    /// Files in all.
    pub files_total: u64,
    /// Bytes done.
    pub bytes_done: u64,
    /// Bytes in all.
    pub bytes_total: u64,
}

impl CheckoutStatus {
    /// A job just queued.
    pub fn queued() -> Self {
        Self {
            status: JobState::Running,
            location: None,
            cause: None,
            files_done: None,
            files_total: None,
            bytes_done: None,
            bytes_total: None,
        }
    }

    /// A job copying, with its progress.
    pub fn running(p: Progress) -> Self {
        Self::queued().with_progress(p)
    }

    /// A job that finished; the files are at `location`.
    pub fn succeeded(location: String, p: Progress) -> Self {
        Self {
            status: JobState::Succeeded,
            location: Some(location),
            ..Self::queued().with_progress(p)
        }
    }

    /// A job that failed because of `cause`.
    pub fn failed(cause: String) -> Self {
        Self {
            status: JobState::Failed,
            cause: Some(cause),
            ..Self::queued()
        }
    }

    fn with_progress(self, p: Progress) -> Self {
        Self {
            files_done: Some(p.files_done),
            files_total: Some(p.files_total),
            bytes_done: Some(p.bytes_done),
            bytes_total: Some(p.bytes_total),
            ..self
        }
    }

    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        self.status != JobState::Running
    }
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The status document could not be written.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The job could not be queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Writes a job's status document into the replica's checkout bucket `store`.
pub async fn write_status(
    store: &dyn BlobStore,
    job_id: &str,
    status: &CheckoutStatus,
) -> Result<(), BlobError> {
    let body = serde_json::to_vec(status).map_err(|e| BlobError::Backend(e.to_string()))?;
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    store
        .put_bytes(&status_key(job_id), Bytes::from(body), opts)
        .await
        .map(|_| ())
}

/// Reads a job's status document; `None` if there is no such job.
pub async fn read_status(
    store: &dyn BlobStore,
    job_id: &str,
) -> Result<Option<CheckoutStatus>, BlobError> {
    match store.get_bytes(&status_key(job_id)).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| BlobError::Backend(format!("status of checkout {job_id}: {e}"))),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Starts a job: its status becomes RUNNING, then it is queued for the checkout daemon (if
/// queueing fails, the status says so).
pub async fn submit(
    status_store: &dyn BlobStore,
    queue: &dyn Queue,
    job: &Job,
) -> Result<(), SubmitError> {
    let id = job.id();
    write_status(status_store, id, &CheckoutStatus::queued()).await?;
    let body = dss_core::correlation::body(job).map_err(|e| BlobError::Backend(e.to_string()))?;
    if let Err(e) = queue.send(&body, Duration::ZERO).await {
        let failed = CheckoutStatus::failed(format!("the job could not be queued: {e}"));
        if let Err(w) = write_status(status_store, id, &failed).await {
            tracing::error!(job = %id, error = %w, "could not record that a checkout job was not queued");
        }
        return Err(e.into());
    }
    Ok(())
}

/// Whether a checkout copy made at `created_ms` may be handed out at `now_ms` with a URL valid
/// for `url_ttl_secs`: it must not expire before the URL does.
pub fn usable(cfg: &CheckoutConfig, url_ttl_secs: u64, created_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_add(secs_ms(url_ttl_secs))
        < created_ms.saturating_add(secs_ms(cfg.blob_ttl_secs))
}

/// Whether a copy made at `created_ms` should be made again when handed out at `now_ms`.
pub fn stale(cfg: &CheckoutConfig, created_ms: i64, now_ms: i64) -> bool {
    now_ms > created_ms.saturating_add(secs_ms(cfg.blob_public_ttl_secs))
}

/// Whether a copy made at `created_ms` is past its lifetime at `now_ms`.
pub fn expired(cfg: &CheckoutConfig, created_ms: i64, now_ms: i64) -> bool {
    now_ms >= created_ms.saturating_add(secs_ms(cfg.blob_ttl_secs))
}

fn secs_ms(s: u64) -> i64 {
    millis(Duration::from_secs(s))
}

/// Seconds a client should wait before asking again for the result of a copy that started at
/// `started_ms` and has `bytes_total` bytes, given its `status` at `now_ms`: the remaining bytes
/// at the rate seen so far, or at `cfg.estimate_bytes_per_sec` before any progress; 1 to 60.
pub fn retry_after(
    cfg: &CheckoutConfig,
    status: Option<&CheckoutStatus>,
    bytes_total: u64,
    started_ms: i64,
    now_ms: i64,
) -> u64 {
    let done = status.and_then(|s| s.bytes_done).unwrap_or(0);
    let total = status
        .and_then(|s| s.bytes_total)
        .unwrap_or(bytes_total)
        .max(done);
    let remaining = (total - done) as f64;
    let elapsed = (now_ms - started_ms).max(1) as f64 / 1000.0;
    let rate = if done > 0 {
        done as f64 / elapsed
    } else {
        cfg.estimate_bytes_per_sec as f64
    };
    let secs = (remaining / rate.max(1.0)).ceil();
    (secs as u64).clamp(1, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_documents_keep_the_original_shape() {
        assert_eq!(
            serde_json::to_string(&CheckoutStatus::queued()).unwrap(),
            r#"{"status":"RUNNING"}"#
        );
        assert_eq!(
            serde_json::to_string(&CheckoutStatus::failed("Bucket x doesn't exist".into()))
                .unwrap(),
            r#"{"status":"FAILED","cause":"Bucket x doesn't exist"}"#
        );
        let p = Progress {
            files_done: 2,
            files_total: 2,
            bytes_done: 10,
            bytes_total: 10,
        };
        let done = CheckoutStatus::succeeded("s3://b/bundles/u.v".into(), p);
        let text = serde_json::to_string(&done).unwrap();
        assert!(
            text.starts_with(r#"{"status":"SUCCEEDED","location":"s3://b/bundles/u.v","#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<CheckoutStatus>(&text).unwrap(), done);
        assert!(done.is_final() && !CheckoutStatus::running(p).is_final());
    }

    #[test]
    fn copies_outlive_their_urls_and_are_refreshed_half_way() {
        let cfg = CheckoutConfig {
            blob_ttl_secs: 100,
            blob_public_ttl_secs: 50,
            ..CheckoutConfig::default()
        };
        assert!(usable(&cfg, 10, 0, 89_000));
        assert!(
            !usable(&cfg, 10, 0, 90_000),
            "the URL would outlive the copy"
        );
        assert!(!stale(&cfg, 0, 50_000) && stale(&cfg, 0, 50_001));
        assert!(!expired(&cfg, 0, 99_999) && expired(&cfg, 0, 100_000));
    }

    #[test]
    fn retry_after_follows_the_copy() {
        let cfg = CheckoutConfig {
            estimate_bytes_per_sec: 1000,
            ..CheckoutConfig::default()
        };
        // Nothing copied yet: the size at the assumed speed.
        assert_eq!(retry_after(&cfg, None, 5_500, 0, 100), 6);
        assert_eq!(retry_after(&cfg, None, 10, 0, 100), 1, "at least a second");
        assert_eq!(
            retry_after(&cfg, None, 10_000_000, 0, 100),
            60,
            "at most a minute"
        );
        // Half of 8,000 bytes in 2 s: 2 s more.
        let p = Progress {
            files_done: 0,
            files_total: 1,
            bytes_done: 4_000,
            bytes_total: 8_000,
        };
        assert_eq!(
            retry_after(&cfg, Some(&CheckoutStatus::running(p)), 8_000, 0, 2_000),
            2
        );
    }

    #[test]
    fn jobs_are_tagged_by_kind() {
        let job = Job::File(FileCheckout {
            job_id: "j".into(),
            replica: "aws".into(),
            blob: "blobs/x".into(),
            size: 3,
            content_type: "text/plain".into(),
        });
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.starts_with(r#"{"kind":"file","job_id":"j""#), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    }

    #[test]
    fn layout() {
        assert_eq!(status_key("j"), "checkout/status/j.json");
        assert_eq!(file_key("u", "v", "a/b.json"), "bundles/u.v/a/b.json");
    }
}
