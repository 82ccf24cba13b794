//! API errors, served as `application/problem+json` `{status, code, title}` with the original codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dss_core::ports::BlobError;

/// Characters of an error's title at most.
pub const MAX_TITLE: usize = 2000;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (the original's).
    pub code: &'static str,
    /// Human-readable text.
    pub title: String,
}

impl ApiError {
    /// An error with the given status, code and title (at most [`MAX_TITLE`] characters:
    /// titles quote input, which may be megabytes).
    pub fn new(status: StatusCode, code: &'static str, title: impl Into<String>) -> Self {
        let mut title = title.into();
        if let Some((i, _)) = title.char_indices().nth(MAX_TITLE) {
            title.truncate(i);
            title.push('…');
        }
        Self {
            status,
            code,
            title,
        }
    }

    /// 400 `illegal_arguments`.
    pub fn illegal_arguments(title: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "illegal_arguments", title)
    }

    /// 404 `not_found`.
    pub fn not_found(title: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", title)
    }

    /// 500 `unhandled_exception`, logged.
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unhandled_exception",
            format!("{context}: {e}"),
        )
    }

    /// 503 `service_unavailable`: the store of `what` (subscriptions, collections, the events
    /// journal — the metadata database on many hosts) failed; logged. Nothing was changed
    /// unless the store committed, so the client may retry.
    pub fn metadata(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what} failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("the {what} is unavailable; retry later ({e})"),
        )
    }

    /// Maps a storage failure that the handler did not expect.
    pub fn storage(e: BlobError) -> Self {
        match e {
            BlobError::InvalidKey { key, reason } => {
                Self::illegal_arguments(format!("invalid object key {key:?}: {reason}"))
            }
            BlobError::StorageFull(m) => {
                tracing::error!(error = %m, "storage is full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    format!("the deployment's storage is full; nothing was stored ({m})"),
                )
            }
            BlobError::Backend(m) => {
                tracing::error!(error = %m, "storage backend failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    format!("storage backend failed: {m}"),
                )
            }
            other => Self::internal("storage", other),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        Self::storage(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"status": self.status.as_u16(), "code": self.code, "title": self.title});
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
