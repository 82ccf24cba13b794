//! Bundle checkout: `POST /v1/bundles/{uuid}/checkout` queues a job for the checkout daemon,
//! `GET /v1/bundles/checkout/{checkout_job_id}` reads its status.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dss_core::model::DssVersion;
use dss_core::ports::mail::valid_address;
use dss_core::ports::valid_bucket_name;
use dss_runtime::checkout::{CheckoutJob, Job, read_status};
use serde_json::{Value, json};

use crate::copies;
use crate::error::{ApiError, ApiResult};
use crate::params::parse_uuid;
use crate::state::Shared;
use crate::storage;

/// `POST /v1/bundles/{uuid}/checkout?replica=[&version=]` with `{"destination"?, "email"?}`.
pub async fn start(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let m = state.json_body_or_empty(&headers, body).await?;
    let text = |k: &str| -> ApiResult<Option<String>> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::illegal_arguments(format!(
                "{other} is not of type 'string'"
            ))),
        }
    };
    let (destination, email) = (text("destination")?, text("email")?);
    let cx = state.open_request("postBundlesCheckout", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let uuid = parse_uuid(&raw_uuid)?;
    let version = q.version_optional("version")?;
    if let Some(e) = email.as_deref().filter(|e| !valid_address(e)) {
        return Err(ApiError::illegal_arguments(format!(
            "'{e}' is not a 'email'"
        )));
    }
    let destination = match destination {
        Some(d) if !valid_bucket_name(&d) || state.deployment.is_main_bucket(&d) => {
            return Err(ApiError::illegal_arguments(format!(
                "Destination bucket invalid! ('{d}' is not a bucket that can receive checkouts)"
            )));
        }
        Some(d) => d,
        None => replica.checkout.bucket().to_string(),
    };
    // Checkout into the replica's checkout bucket is open, as in the original; another
    // bucket or an e-mail needs a caller (the service writes with its own credentials and
    // sends from its own address).
    let custom = destination != replica.checkout.bucket();
    if custom || email.is_some() {
        let caller = state.auth.authenticate(&headers).await?;
        let own = state.auth.email(&caller)?;
        if custom
            && !state
                .deployment
                .config
                .checkout
                .allowed_destinations
                .contains(&destination)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "'{destination}' is not a checkout destination of this deployment (checkout.allowed_destinations)"
                ),
            ));
        }
        if let Some(to) = email.as_deref()
            && !to.eq_ignore_ascii_case(own)
            && !state.auth.is_admin(&caller)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "the checkout e-mail goes to the caller's own address",
            ));
        }
    }
    state.writable()?;
    let resolved: DssVersion = storage::resolve_bundle(&*replica.store, &uuid, version.as_ref())
        .await?
        .ok_or_else(|| ApiError::not_found("Cannot find bundle!"))?
        .version;
    let job = CheckoutJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        replica: replica.name.clone(),
        bundle: uuid.to_string(),
        version: resolved.to_string(),
        destination,
        email,
    };
    tracing::info!(job = %job.job_id, bundle = %job.bundle, version = %job.version, destination = %job.destination, "checkout job queued");
    let id = job.job_id.clone();
    copies::submit_job(&state, replica, &Job::Bundle(job)).await?;
    Ok((StatusCode::OK, axum::Json(json!({"checkout_job_id": id}))).into_response())
}

/// `GET /v1/bundles/checkout/{checkout_job_id}?replica=`.
pub async fn status(
    State(state): State<Shared>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cx = state.open_request("getBundlesCheckout", raw.as_deref())?;
    let replica = cx.replica()?;
    let id = parse_uuid(&raw_id)?;
    let status = read_status(&*replica.checkout, id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("Cannot find checkout!"))?;
    Ok((StatusCode::OK, axum::Json(status)).into_response())
}
