//! Health endpoints: `/healthz` (liveness: the process answers; it calls no dependency, so an
//! orchestrator does not restart every instance when a dependency blinks), `/readyz` (readiness:
//! every dependency answers in time; a load balancer sends no traffic until it does) and the
//! original's `/internal/health` (the same probes, in the original's shape). The API serves all
//! three; a process without the API serves `/healthz` and `/readyz` beside `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dss_runtime::deployment::Deployment;
use serde_json::{Map, Value, json};

use crate::state::Shared;

/// How long each dependency may take to answer a probe.
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

/// The dependencies' answers: each replica's bucket, the queue backend and the search index,
/// probed at once. `checks` says `ok` or `failing` per dependency, `errors` why.
pub struct Readiness {
    /// `ok` or `failing`, by dependency.
    pub checks: Map<String, Value>,
    /// Why, by failing dependency.
    pub errors: Map<String, Value>,
}

impl Readiness {
    /// Probes every dependency of `d`.
    pub async fn of(d: &Deployment) -> Self {
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
        let mut checks = Map::new();
        let mut errors = Map::new();
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
        Self { checks, errors }
    }

    /// Whether every dependency answered.
    pub fn ready(&self) -> bool {
        self.errors.is_empty()
    }

    fn status(&self) -> StatusCode {
        match self.ready() {
            true => StatusCode::OK,
            false => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `GET /healthz`: 200 while the process answers.
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

/// `GET /readyz` on `deployment`: 200 when every dependency answers, else 503.
pub async fn readyz_of(deployment: &Deployment) -> Response {
    let r = Readiness::of(deployment).await;
    let body = json!({"ready": r.ready(), "checks": r.checks, "errors": r.errors});
    (r.status(), axum::Json(body)).into_response()
}

/// `GET /readyz` of the API.
pub async fn readyz(State(state): State<Shared>) -> Response {
    readyz_of(&state.deployment).await
}

/// `GET /internal/health` — the probes of `/readyz` in the original's shape:
/// `{"Healthy", "checks", "errors"}`, 200 or 503.
pub async fn health(State(state): State<Shared>) -> Response {
    let r = Readiness::of(&state.deployment).await;
    let body = json!({"Healthy": r.ready(), "checks": r.checks, "errors": r.errors});
    (r.status(), axum::Json(body)).into_response()
}
