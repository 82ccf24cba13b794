//! Load shedding: at most `api.max_in_flight` requests are handled at once; the next ones are
//! answered at once with 503 and `Retry-After: 1` (queueing them would only make every answer
//! late and hold their connections). Health checks and metrics are never shed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Requests that may be handled at once.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// At most `n` at once.
    pub fn new(n: usize) -> Self {
        Self(Arc::new(Semaphore::new(n.max(1))))
    }
}

/// Runs the request if there is room, else answers 503.
pub async fn shed(State(limit): State<InFlight>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/internal/health" | "/metrics") {
        return next.run(req).await;
    }
    let Ok(_slot) = limit.0.try_acquire() else {
        let mut res = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "too many requests in flight; retry shortly",
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    };
    next.run(req).await
}
