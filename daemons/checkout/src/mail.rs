//! E-mail about ended jobs: one queued request per job, sent once the job's status is final,
//! with the original's subjects and wording, as text and HTML.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dss_core::ports::{BlobStore, Mail, MailError, Mailer, Message};
use dss_runtime::checkout::{CheckoutJob, CheckoutStatus, JobState, bundle_prefix, read_status};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::{Handler, HandlerError, Outcome};
use serde::{Deserialize, Serialize};

/// Subject of the e-mail about a finished checkout.
pub const SUBJECT_SUCCEEDED: &str = "Bundle checkout complete";
/// Subject of the e-mail about a failed checkout.
pub const SUBJECT_FAILED: &str = "Bundle checkout failed";

/// A queued e-mail about a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailRequest {
    /// The job.
    pub job: CheckoutJob,
    /// Recipient.
    pub to: String,
}

/// Key of the marker that the e-mail of a job went out (a re-queued request is then dropped).
fn sent_key(job_id: &str) -> String {
    format!("checkout/mail/{job_id}.sent")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The e-mail telling `to` how `job` ended.
pub fn compose(job: &CheckoutJob, status: &CheckoutStatus, to: &str) -> Mail {
    match status.status {
        JobState::Succeeded => {
            let prefix = bundle_prefix(&job.bundle, &job.version);
            let location = status.location.clone().unwrap_or_else(|| prefix.clone());
            Mail {
                to: to.to_string(),
                subject: SUBJECT_SUCCEEDED.into(),
                text: format!(
                    "Hello, your checkout request has been processed. Your files are available at bucket {} location {prefix}.\n\n{location}\n",
                    job.destination
                ),
                html: format!(
                    "<html><body><p>Hello,</p><p>Your checkout request has been processed. Your files are available at</p><p><b>{}</b></p></body></html>",
                    escape(&location)
                ),
            }
        }
        _ => {
            let cause = status
                .cause
                .clone()
                .unwrap_or_else(|| "Unknown issue".into());
            Mail {
                to: to.to_string(),
                subject: SUBJECT_FAILED.into(),
                text: format!("Hello, your checkout request has failed due to {cause}.\n"),
                html: format!(
                    "<html><body><p>Hello,</p><p>Your checkout request has failed due to</p><p><b>{}</b>.</p></body></html>",
                    escape(&cause)
                ),
            }
        }
    }
}

/// Sends queued e-mails.
pub struct MailHandler {
    deployment: Deployment,
    mailer: Arc<dyn Mailer>,
}

impl MailHandler {
    /// A handler sending through `mailer`.
    pub fn new(deployment: &Deployment, mailer: Arc<dyn Mailer>) -> Self {
        Self {
            deployment: deployment.clone(),
            mailer,
        }
    }
}

#[async_trait]
impl Handler for MailHandler {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        let req: MailRequest = serde_json::from_str(&message.body)
            .map_err(|e| HandlerError::Permanent(format!("not a checkout e-mail: {e}")))?;
        let job = &req.job;
        let replica = self.deployment.replicas.get(&job.replica).ok_or_else(|| {
            HandlerError::Permanent(format!("e-mail for unknown replica {}", job.replica))
        })?;
        let store: &dyn BlobStore = &*replica.checkout;
        let marker = sent_key(&job.job_id);
        if store
            .head(&marker)
            .await
            .map_err(HandlerError::transient)?
            .is_some()
        {
            return Ok(Outcome::Done);
        }
        let status = match read_status(store, &job.job_id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(HandlerError::Permanent(format!(
                    "no checkout job {}",
                    job.job_id
                )));
            }
            Err(e) => return Err(HandlerError::transient(e)),
        };
        if !status.is_final() {
            // The job queues its e-mail just before it writes its final status.
            return Ok(Outcome::RetryLater(Some(Duration::from_secs(1))));
        }
        let mail = compose(job, &status, &req.to);
        match self.mailer.send(&mail).await {
            Ok(()) => {}
            Err(e @ MailError::Invalid(_)) => return Err(HandlerError::Permanent(e.to_string())),
            Err(e) => return Err(HandlerError::transient(e)),
        }
        tracing::info!(job = %job.job_id, to = %req.to, subject = %mail.subject, "checkout e-mail sent");
        if let Err(e) = store
            .put_bytes(&marker, bytes::Bytes::new(), Default::default())
            .await
        {
            // At worst the e-mail goes out twice.
            tracing::warn!(job = %job.job_id, error = %e, "could not record that the e-mail was sent");
        }
        Ok(Outcome::Done)
    }
}
