//! Bundle checkout: the job the API enqueues for the checkout daemon, the job's status document
//! in the replica's checkout bucket, and where checked-out files go in the destination bucket.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ports::{BlobError, BlobStore, PutOptions, Queue, QueueError};

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

/// A checkout job, as queued.
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
    job: &CheckoutJob,
) -> Result<(), SubmitError> {
    write_status(status_store, &job.job_id, &CheckoutStatus::queued()).await?;
    let body = serde_json::to_string(job).map_err(|e| BlobError::Backend(e.to_string()))?;
    if let Err(e) = queue.send(&body, Duration::ZERO).await {
        let failed = CheckoutStatus::failed(format!("the job could not be queued: {e}"));
        if let Err(w) = write_status(status_store, &job.job_id, &failed).await {
            tracing::error!(job = %job.job_id, error = %w, "could not record that a checkout job was not queued");
        }
        return Err(e.into());
    }
    Ok(())
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
    fn layout() {
        assert_eq!(status_key("j"), "checkout/status/j.json");
        assert_eq!(file_key("u", "v", "a/b.json"), "bundles/u.v/a/b.json");
    }
}
