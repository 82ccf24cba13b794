//! One checkout job: check the destination and the bundle, copy every file into
//! `bundles/{uuid}.{version}/` of the destination, record the outcome, queue the e-mail.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dss_config::CheckoutConfig;
use dss_core::clock::millis;
use dss_core::model::documents::valid_file_name;
use dss_core::model::{BundleManifest, DssVersion, ObjectKey, ObjectUuid};
use dss_core::ports::{BlobError, BlobStore, Message, Queue};
use dss_runtime::bundle_reader::{self, LoadError};
use dss_runtime::checkout::{
    CheckoutJob, CheckoutStatus, FileCheckout, Job, Progress, bundle_prefix, read_status,
    write_status,
};
use dss_runtime::deployment::{Deployment, Replica};
use dss_runtime::worker::{Handler, HandlerError, Outcome};

use crate::copy::{self, CopyError, Item};
use crate::mail::MailRequest;

/// How a job ended, before its status is written.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Every file is in the destination, verified.
    Succeeded {
        /// Where.
        location: String,
        /// Counters.
        progress: Progress,
    },
    /// The job cannot succeed; the cause is for the user.
    Failed(String),
}

/// Where a job's copies go.
struct Destination<'a> {
    /// The bucket.
    store: Arc<dyn BlobStore>,
    /// Its name.
    name: &'a str,
    /// The key or prefix reported as the job's location.
    location: &'a str,
    /// A prefix holding every key written (listed once), if there is one.
    listing: Option<String>,
}

/// Handles checkout job messages.
pub struct JobHandler {
    deployment: Deployment,
    mail: Arc<dyn Queue>,
    cfg: CheckoutConfig,
    outcomes: dss_runtime::metrics::Outcomes,
}

impl JobHandler {
    /// A handler for the jobs of `deployment` that queues e-mails on `mail`.
    pub fn new(deployment: &Deployment, mail: Arc<dyn Queue>) -> Self {
        Self {
            cfg: deployment.config.checkout.clone(),
            outcomes: deployment.metrics.outcomes(
                "dss_checkout_jobs",
                "Checkout jobs ended, by outcome (succeeded, failed).",
                &["succeeded", "failed"],
            ),
            deployment: deployment.clone(),
            mail,
        }
    }

    async fn run(&self, job: &CheckoutJob, replica: &Replica) -> Result<Ended, String> {
        let dest_name = &job.destination;
        if self.deployment.is_main_bucket(dest_name) {
            return Ok(Ended::Failed(format!(
                "Bucket {dest_name} holds a replica of the DSS and cannot receive checkouts (FAILED)"
            )));
        }
        let dest = match replica.buckets.open(dest_name).await {
            Ok(Some(d)) => d,
            Ok(None) | Err(BlobError::InvalidKey { .. }) => {
                return Ok(Ended::Failed(format!(
                    "Bucket {dest_name} doesn't exist (FAILED)"
                )));
            }
            Err(e) => return Err(format!("opening bucket {dest_name}: {e}")),
        };
        if let Err(e) = writable(&*dest).await {
            return Ok(Ended::Failed(format!(
                "Bucket {dest_name} is not writable: {e} (FAILED)"
            )));
        }
        let manifest = match load_manifest(&replica.store, job).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(LoadError::Missing(_)) => {
                return Ok(Ended::Failed(format!(
                    "Bundle {}.{} does not exist (FAILED)",
                    job.bundle, job.version
                )));
            }
            Err(LoadError::Corrupt(why)) => return Ok(Ended::Failed(format!("{why} (FAILED)"))),
            Err(LoadError::Retry(why)) => return Err(why),
        };
        if let Some(bad) = manifest.files.iter().find(|f| !valid_file_name(&f.name)) {
            return Ok(Ended::Failed(format!(
                "file name {:?} cannot be a path in the destination (FAILED)",
                bad.name
            )));
        }
        let prefix = bundle_prefix(&job.bundle, &job.version);
        let items: Vec<Item> = manifest
            .files
            .iter()
            .map(|f| Item::member(&prefix, f))
            .collect();
        let to = Destination {
            store: dest,
            name: dest_name,
            location: &prefix,
            listing: Some(format!("{prefix}/")),
        };
        self.copy(replica, to, items, &job.job_id).await
    }

    /// Copies `items` into `to`, reporting into job `job_id`'s status.
    async fn copy(
        &self,
        replica: &Replica,
        to: Destination<'_>,
        items: Vec<Item>,
        job_id: &str,
    ) -> Result<Ended, String> {
        let dest = to.store;
        // Copies in the DSS's own checkout bucket are cache entries: stale ones are made anew.
        let renew_before_ms = (dest.bucket() == replica.checkout.bucket()).then(|| {
            self.deployment.clock.now_ms()
                - millis(Duration::from_secs(self.cfg.blob_public_ttl_secs))
        });
        let target = copy::Target {
            store: dest,
            renew_before_ms,
            prefix: to.listing,
        };
        let reporter = copy::Reporter {
            status_store: replica.checkout.clone(),
            job_id: job_id.to_string(),
            every: Duration::from_millis(self.cfg.progress_every_ms),
        };
        match copy::copy_files(
            &replica.store,
            items,
            target,
            self.cfg.concurrency,
            &reporter,
        )
        .await
        {
            Ok(progress) => Ok(Ended::Succeeded {
                location: replica.buckets.location(to.name, to.location),
                progress,
            }),
            Err(CopyError::Fail(why)) => Ok(Ended::Failed(why)),
            Err(CopyError::Retry(why)) => Err(why),
        }
    }

    /// A file checkout: the blob copied under its own key into the replica's checkout bucket.
    async fn run_file(&self, job: &FileCheckout, replica: &Replica) -> Result<Ended, String> {
        let Some(ObjectKey::Blob(checksums)) = ObjectKey::parse(&job.blob) else {
            return Ok(Ended::Failed(format!(
                "{} is not a blob (FAILED)",
                job.blob
            )));
        };
        let item = Item {
            dest_key: job.blob.clone(),
            name: job.blob.clone(),
            checksums,
            size: job.size,
            content_type: job.content_type.clone(),
        };
        let to = Destination {
            store: replica.checkout.clone(),
            name: replica.checkout.bucket(),
            location: &job.blob,
            listing: None,
        };
        self.copy(replica, to, vec![item], &job.job_id).await
    }

    /// Queues the e-mail (so it is never lost once the status is final), then writes the status.
    async fn finish(
        &self,
        job: &Job,
        replica: &Replica,
        ended: Ended,
    ) -> Result<Outcome, HandlerError> {
        let id = job.id();
        let outcome = match &ended {
            Ended::Succeeded { .. } => "succeeded",
            Ended::Failed(_) => "failed",
        };
        let status = match ended {
            Ended::Succeeded { location, progress } => {
                tracing::info!(job = %id, %location, files = progress.files_total, bytes = progress.bytes_total, "checkout succeeded");
                CheckoutStatus::succeeded(location, progress)
            }
            Ended::Failed(cause) => {
                tracing::warn!(job = %id, %cause, "checkout failed");
                CheckoutStatus::failed(cause)
            }
        };
        if let Job::Bundle(bundle) = job
            && let Some(to) = &bundle.email
        {
            let request = MailRequest {
                job: bundle.clone(),
                to: to.clone(),
            };
            let body = dss_core::correlation::body(&request)
                .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            self.mail
                .send(&body, Duration::ZERO)
                .await
                .map_err(HandlerError::transient)?;
        }
        write_status(&*replica.checkout, id, &status)
            .await
            .map_err(HandlerError::transient)?;
        self.outcomes.inc(outcome);
        Ok(Outcome::Done)
    }
}

#[async_trait]
impl Handler for JobHandler {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        let job: Job = serde_json::from_str(&message.body)
            .map_err(|e| HandlerError::Permanent(format!("not a checkout job: {e}")))?;
        let replica_name = match &job {
            Job::Bundle(j) => &j.replica,
            Job::File(j) => &j.replica,
        };
        let replica = self.deployment.replicas.get(replica_name).ok_or_else(|| {
            HandlerError::Permanent(format!("checkout job for unknown replica {replica_name}"))
        })?;
        let current = read_status(&*replica.checkout, job.id())
            .await
            .map_err(HandlerError::transient)?;
        if current.as_ref().is_some_and(CheckoutStatus::is_final) {
            tracing::info!(job = %job.id(), "checkout job already ended");
            return Ok(Outcome::Done);
        }
        let run = match &job {
            Job::Bundle(j) => self.run(j, replica).await,
            Job::File(j) => self.run_file(j, replica).await,
        };
        let ended = match run {
            Ok(ended) => ended,
            Err(reason) if message.receive_count >= self.cfg.max_attempts => {
                Ended::Failed(format!(
                    "{reason} (gave up after {} attempts)",
                    message.receive_count
                ))
            }
            Err(reason) => return Err(HandlerError::Transient(reason)),
        };
        self.finish(&job, replica, ended).await
    }
}

/// Writes and removes an empty `touch/{2 hex}.txt`, as the original's pre-check.
async fn writable(dest: &dyn BlobStore) -> Result<(), BlobError> {
    let key = format!("touch/{:02x}.txt", rand::random::<u8>());
    dest.put_bytes(&key, bytes::Bytes::new(), Default::default())
        .await?;
    dest.delete(&key).await.map(|_| ())
}

/// The job's manifest; `None` when the bundle version is absent or tombstoned.
async fn load_manifest(
    store: &Arc<dyn BlobStore>,
    job: &CheckoutJob,
) -> Result<Option<BundleManifest>, LoadError> {
    let (Ok(uuid), Ok(version)) = (
        ObjectUuid::parse(&job.bundle),
        DssVersion::parse(&job.version),
    ) else {
        return Err(LoadError::Corrupt(format!(
            "bundle {}.{} is not a bundle id",
            job.bundle, job.version
        )));
    };
    for tombstone in [
        ObjectKey::bundle_tombstone(&uuid, None),
        ObjectKey::bundle_tombstone(&uuid, Some(&version)),
    ] {
        match store.head(&tombstone).await {
            Ok(Some(_)) => return Ok(None),
            Ok(None) => {}
            Err(e) => return Err(LoadError::Retry(format!("reading {tombstone}: {e}"))),
        }
    }
    let key = ObjectKey::bundle(&uuid, &version);
    match bundle_reader::read_manifest(store, &key).await {
        Ok(m) => Ok(Some(m.typed)),
        Err(LoadError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
