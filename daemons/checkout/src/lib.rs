//! The checkout daemon: bundle checkout jobs and their e-mails.
//!
//! Two workers share the process:
//! * **jobs** (queue `checkout`): for each job the API queued, check that the destination bucket
//!   exists and is writable and that the bundle version is live, copy every file to
//!   `bundles/{uuid}.{version}/{name}` in the destination (several at once, each verified by
//!   size and CRC-32C against the file's checksums; files already there and verified are not
//!   copied again, so a job taken over after a crash resumes), write progress into the job's
//!   status while it runs, and finally `SUCCEEDED` with the location or `FAILED` with the cause.
//!   There is no wall-clock limit: a job runs until it is done. A job that keeps failing
//!   transiently is marked `FAILED` after `checkout.max_attempts` tries.
//! * **mail** (queue `checkout-mail`): the e-mail of an ended job, retried with backoff until the
//!   transport takes it (dead-lettered after `mail.max_attempts`); a job's status never depends on
//!   its e-mail.
//! * **sweep**: deletes checkout copies past `checkout.blob_ttl_secs` (cached files excepted).
//!
//! Jobs are bundle checkouts (from `POST /v1/bundles/{uuid}/checkout`, or a download from a
//! replica that serves downloads from checkout copies) and file checkouts (one blob copied into
//! the checkout bucket for a download).

pub mod copy;
pub mod job;
pub mod mail;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dss_core::names::{CHECKOUT_MAIL_QUEUE, CHECKOUT_QUEUE};
use dss_core::ports::Queue;
use dss_runtime::daemon::{Daemon, DaemonError, Periodic, Task};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::{Backoff, WorkerConfig};
use tokio_util::sync::CancellationToken;

pub use job::JobHandler;
pub use mail::MailHandler;

/// The checkout daemon: bundle checkout jobs, their e-mails, and expiry of checkout copies.
#[derive(Debug, Default)]
pub struct CheckoutDaemon;

#[async_trait]
impl Daemon for CheckoutDaemon {
    fn name(&self) -> &'static str {
        "checkout"
    }

    fn about(&self) -> &'static str {
        "bundle checkout jobs and their e-mails; expiry of checkout copies"
    }

    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError> {
        let cfg = &deployment.config.checkout;
        let mail_queue: Arc<dyn Queue> = deployment.queue(CHECKOUT_MAIL_QUEUE).await?;
        let mut job_cfg = WorkerConfig::named("checkout");
        job_cfg.concurrency = cfg.jobs;
        job_cfg.batch_size = cfg.jobs;
        job_cfg.visibility = Duration::from_secs(cfg.visibility_secs);
        let jobs = deployment
            .worker(
                CHECKOUT_QUEUE,
                Arc::new(JobHandler::new(deployment, mail_queue)),
                job_cfg,
            )
            .await?;
        let mut mail_cfg = WorkerConfig::named("checkout-mail");
        let retry = Duration::from_secs(deployment.config.mail.retry_secs);
        mail_cfg.backoff = Backoff {
            base: retry,
            max: Duration::from_secs(600).max(retry),
            jitter: 0.2,
        };
        let mail = deployment
            .worker(
                CHECKOUT_MAIL_QUEUE,
                Arc::new(MailHandler::new(deployment, deployment.mailer.clone())),
                mail_cfg,
            )
            .await?;
        Ok(vec![
            Task::Worker(jobs),
            Task::Worker(mail),
            Task::Periodic(Periodic {
                name: "checkout-sweep",
                first: Duration::ZERO,
                every: Duration::from_secs(cfg.sweep_every_secs),
                pass: Box::new(sweep::Sweep(deployment.clone())),
            }),
        ])
    }
}

/// Runs the checkout daemon until `shutdown`.
pub async fn run(deployment: &Deployment, shutdown: CancellationToken) -> Result<(), DaemonError> {
    dss_runtime::daemon::run(&CheckoutDaemon, deployment, shutdown).await
}
