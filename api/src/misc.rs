//! `/version`, and the answers for unknown routes and methods.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::Shared;

/// `GET /version`.
pub async fn version(State(state): State<Shared>) -> Response {
    let v = state
        .deployment
        .config
        .api
        .deployment_version
        .clone()
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    axum::Json(json!({"version_info": {"version": v}})).into_response()
}

/// Unknown path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("No such route")
}

/// Known path, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed on this route",
    )
}

/// `GET /metrics` — the process's metrics in the Prometheus text format: requests by route and
/// status with latencies, and every worker's message counts, queue depth and oldest age.
pub async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            dss_runtime::metrics::CONTENT_TYPE,
        )],
        state.deployment.metrics.render(),
    )
        .into_response()
}
