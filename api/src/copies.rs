//! Downloads from replicas configured with `download = "checkout"`: bytes are served from copies
//! in the replica's checkout bucket. A copy that is missing (or would expire before its URL) is
//! made by the checkout daemon while the client is sent back with `301` and a `Retry-After`
//! computed from the copy's progress, carrying the original's retry token
//! `{"execution_id", "start_time", "attempts"}`. Copies past the public lifetime are refreshed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dss_core::checksum::Checksums;
use dss_core::clock::unix_ms;
use dss_core::model::{BundleManifest, FileMetadata, ObjectKey};
use dss_core::ports::ObjectMeta;
use dss_core::transfer::holds;
use dss_runtime::checkout::{
    CheckoutJob, CheckoutStatus, FileCheckout, Job, JobState, bundle_prefix, pending_key,
    read_status, retry_after, stale, submit, usable,
};
use dss_runtime::deployment::Replica;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::params::Query;
use crate::state::Shared;

/// The retry token of a download waiting for a copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Token {
    execution_id: String,
    start_time: f64,
    attempts: u64,
}

fn parse_token(raw: &str) -> ApiResult<Token> {
    serde_json::from_str::<Token>(raw)
        .ok()
        .filter(|t| dss_core::model::ObjectUuid::parse(&t.execution_id).is_ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "illegal_token",
                "Could not understand token",
            )
        })
}

/// Whether a copy is there, holds these bytes and outlives a URL handed out now; whether it
/// should be refreshed.
fn judge(state: &Shared, meta: Option<&ObjectMeta>, sums: &Checksums, size: u64) -> (bool, bool) {
    let cfg = &state.deployment.config.checkout;
    let now = state.deployment.clock.now_ms();
    let url_ttl = state.deployment.config.api.download_url_ttl_secs;
    match meta {
        Some(m) if holds(m, sums, size) && usable(cfg, url_ttl, unix_ms(m.created), now) => {
            (true, stale(cfg, unix_ms(m.created), now))
        }
        _ => (false, false),
    }
}

/// The pointer from a cold blob to the job copying it (`checkout/pending/{blob}.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    job_id: String,
    started_ms: i64,
}

/// A job copying a file, and what is known of it.
struct FileJob {
    id: String,
    started_ms: i64,
    status: Option<CheckoutStatus>,
}

/// The job copying this file's blob into the checkout bucket: the one under way (or the one that
/// just failed), or a new one.
async fn file_job(state: &Shared, replica: &Replica, f: &FileMetadata) -> ApiResult<FileJob> {
    let blob = ObjectKey::blob(&f.checksums());
    let pointer = pending_key(&blob);
    let checkout = &*replica.checkout;
    if let Ok(b) = checkout.get_bytes(&pointer).await
        && let Ok(p) = serde_json::from_slice::<Pending>(&b)
        && let Some(s) = read_status(checkout, &p.job_id).await?
        && s.status != JobState::Succeeded
    {
        if s.status == JobState::Failed {
            // Reported once; the next request tries again (the blob may have been repaired).
            checkout.delete(&pointer).await?;
        }
        return Ok(FileJob {
            id: p.job_id,
            started_ms: p.started_ms,
            status: Some(s),
        });
    }
    let job = Job::File(FileCheckout {
        job_id: uuid::Uuid::new_v4().to_string(),
        replica: replica.name.clone(),
        blob,
        size: f.size,
        content_type: f.content_type.clone(),
    });
    submit_job(state, replica, &job).await?;
    let pending = Pending {
        job_id: job.id().to_string(),
        started_ms: state.deployment.clock.now_ms(),
    };
    let body = serde_json::to_vec(&pending).map_err(|e| ApiError::internal("pointer", e))?;
    checkout
        .put_bytes(&pointer, body.into(), Default::default())
        .await?;
    Ok(FileJob {
        id: pending.job_id,
        started_ms: pending.started_ms,
        status: Some(CheckoutStatus::queued()),
    })
}

/// Queues `job` for the checkout daemon, its status RUNNING in the replica's checkout bucket.
pub async fn submit_job(state: &Shared, replica: &Replica, job: &Job) -> ApiResult<()> {
    let queue = state
        .deployment
        .queue(dss_core::names::CHECKOUT_QUEUE)
        .await
        .map_err(|e| ApiError::internal("checkout queue", e))?;
    submit(&*replica.checkout, &*queue, job)
        .await
        .map_err(|e| ApiError::internal("starting a checkout", e))
}

/// Starts a copy of `f` in the background (a refresh, or a pre-made copy of a cached file);
/// failures are only logged, the request goes on.
pub async fn prepare_file(state: &Shared, replica: &Replica, f: &FileMetadata) {
    if let Err(e) = file_job(state, replica, f).await {
        tracing::warn!(error = %e.title, "could not start a checkout copy");
    }
}

/// `301` back to the request with the token, and when to come back.
fn wait(state: &Shared, path: &str, q: &Query, token: &Token, retry: u64) -> ApiResult<Response> {
    let token_text = serde_json::to_string(token).map_err(|e| ApiError::internal("token", e))?;
    let location = state.url(path, &q.with(&[("token", token_text)]));
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|e| ApiError::internal("location", e))?,
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    Ok(r)
}

fn checkout_error(cause: Option<String>) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "checkout_error",
        format!(
            "Could not complete checkout: {}",
            cause.unwrap_or_else(|| "unknown cause".into())
        ),
    )
}

/// What to start when no copy job is under way.
enum Start<'a> {
    /// A file checkout of this file.
    File(&'a FileMetadata),
    /// This bundle checkout.
    Bundle(CheckoutJob),
}

/// Not ready: follows the job named by the request's token while it runs or failed, else
/// starts one, and answers `301` (or `500 checkout_error` when the job failed).
async fn not_ready(
    state: &Shared,
    replica: &Replica,
    path: &str,
    q: &Query,
    bytes_total: u64,
    start: Start<'_>,
) -> ApiResult<Response> {
    let now = state.deployment.clock.now_ms();
    let checkout = &*replica.checkout;
    let given = q
        .get("token")
        .filter(|t| !t.is_empty())
        .map(parse_token)
        .transpose()?;
    let mut followed = None;
    if let Some(t) = &given
        && let Some(s) = read_status(checkout, &t.execution_id).await?
        && s.status != JobState::Succeeded
    {
        followed = Some((t.clone(), s));
    }
    let (token, status) = match followed {
        Some((t, s)) => (
            Token {
                attempts: t.attempts.saturating_add(1),
                ..t
            },
            Some(s),
        ),
        // No job yet, or it ended and yet no usable copy is there: (re)start one (or join the
        // one already copying this file).
        None => {
            let job = match start {
                Start::File(f) => file_job(state, replica, f).await?,
                Start::Bundle(job) => {
                    let job = Job::Bundle(job);
                    submit_job(state, replica, &job).await?;
                    FileJob {
                        id: job.id().to_string(),
                        started_ms: now,
                        status: Some(CheckoutStatus::queued()),
                    }
                }
            };
            let token = Token {
                execution_id: job.id,
                start_time: job.started_ms as f64 / 1000.0,
                attempts: given.map_or(0, |t| t.attempts.saturating_add(1)),
            };
            (token, job.status)
        }
    };
    if let Some(s) = status.as_ref().filter(|s| s.status == JobState::Failed) {
        return Err(checkout_error(s.cause.clone()));
    }
    let retry = retry_after(
        &state.deployment.config.checkout,
        status.as_ref(),
        bytes_total,
        (token.start_time * 1000.0) as i64,
        now,
    );
    wait(state, path, q, &token, retry)
}

/// Whether the file's copy in the checkout bucket can be handed out (starting its refresh
/// when it is getting old).
async fn copy_ready(state: &Shared, replica: &Replica, f: &FileMetadata) -> ApiResult<bool> {
    let blob = ObjectKey::blob(&f.checksums());
    let present = replica.checkout.head(&blob).await?;
    let (ready, refresh) = judge(state, present.as_ref(), &f.checksums(), f.size);
    if ready && refresh {
        prepare_file(state, replica, f).await;
    }
    Ok(ready)
}

/// For `GET /v1/files/{uuid}`: `Ok(None)` when the file's copy is ready in the checkout bucket,
/// else the `301` to send.
pub async fn file_ready(
    state: &Shared,
    replica: &Replica,
    f: &FileMetadata,
    path: &str,
    q: &Query,
) -> ApiResult<Option<Response>> {
    if copy_ready(state, replica, f).await? {
        return Ok(None);
    }
    not_ready(state, replica, path, q, f.size, Start::File(f))
        .await
        .map(Some)
}

/// For clients without retry tokens (DRS): `Ok(None)` when the file's copy is ready, else the
/// seconds to wait while the one copy job of this blob runs (started if none is).
pub async fn file_wait(
    state: &Shared,
    replica: &Replica,
    f: &FileMetadata,
) -> ApiResult<Option<u64>> {
    if copy_ready(state, replica, f).await? {
        return Ok(None);
    }
    let job = file_job(state, replica, f).await?;
    if let Some(s) = job.status.as_ref().filter(|s| s.status == JobState::Failed) {
        return Err(checkout_error(s.cause.clone()));
    }
    Ok(Some(retry_after(
        &state.deployment.config.checkout,
        job.status.as_ref(),
        f.size,
        job.started_ms,
        state.deployment.clock.now_ms(),
    )))
}

/// For `GET /v1/bundles/{uuid}?directurls|presignedurls`: `Ok(None)` when the bundle's copy
/// in the checkout bucket is complete and usable, else the `301` to send.
pub async fn bundle_ready(
    state: &Shared,
    replica: &Replica,
    uuid: &str,
    manifest: &BundleManifest,
    path: &str,
    q: &Query,
) -> ApiResult<Option<Response>> {
    let version = manifest.version.to_string();
    let prefix = bundle_prefix(uuid, &version);
    let copies: std::collections::HashMap<String, ObjectMeta> = replica
        .checkout
        .list_all(&format!("{prefix}/"))
        .await?
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let mut ready = copies.len() == manifest.files.len();
    let mut refresh = false;
    for f in &manifest.files {
        if !ready {
            break;
        }
        let copy = copies.get(&format!("{prefix}/{}", f.name));
        let (ok, old) = judge(state, copy, &f.checksums(), f.size);
        ready &= ok;
        refresh |= old;
    }
    let job = CheckoutJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        replica: replica.name.clone(),
        bundle: uuid.to_string(),
        version,
        destination: replica.checkout.bucket().to_string(),
        email: None,
    };
    if ready {
        if refresh && let Err(e) = submit_job(state, replica, &Job::Bundle(job)).await {
            tracing::warn!(error = %e.title, "could not start a checkout refresh");
        }
        return Ok(None);
    }
    let total = manifest.files.iter().map(|f| f.size).sum();
    not_ready(state, replica, path, q, total, Start::Bundle(job))
        .await
        .map(Some)
}
