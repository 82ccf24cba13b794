//! `/version`, `/internal/health`, and the answers for unknown routes and methods.

use std::time::Duration;

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

/// How long each dependency may take to answer a health probe.
const PROBE: Duration = Duration::from_secs(2);

/// The outcome of one probe: `None` when it answered in time, else why not.
async fn probe<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Option<String> {
    match tokio::time::timeout(PROBE, f).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", PROBE.as_secs())),
    }
}

/// `GET /internal/health` — probes every dependency with a timeout, at once: each replica's
/// bucket, the queue backend and the search index. 200 when all answer, else 503; `checks`
/// says `ok` or `failing` per dependency and `errors` why.
pub async fn health(State(state): State<Shared>) -> Response {
    let d = &state.deployment;
    let replicas = d.replicas.iter().map(|(name, r)| async move {
        (
            format!("replica:{name}"),
            probe(r.store.list("bundles/", None, 1)).await,
        )
    });
    let first = d.replicas.keys().next().cloned().unwrap_or_default();
    // The backend itself, not the process's already opened queue.
    let index = d.queue_spec(dss_core::names::INDEX_QUEUE);
    let (mut results, queues, search) = tokio::join!(
        futures::future::join_all(replicas),
        probe(d.queues.queue(&index)),
        probe(d.search.get(&first, "health-probe")),
    );
    results.push(("queues".into(), queues));
    results.push(("search".into(), search));
    let mut checks = serde_json::Map::new();
    let mut errors = serde_json::Map::new();
    for (name, failure) in results {
        checks.insert(
            name.clone(),
            json!(if failure.is_none() { "ok" } else { "failing" }),
        );
        if let Some(e) = failure {
            tracing::warn!(dependency = %name, error = %e, "health probe failed");
            errors.insert(name, json!(e));
        }
    }
    let healthy = errors.is_empty();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"Healthy": healthy, "checks": checks, "errors": errors})),
    )
        .into_response()
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
