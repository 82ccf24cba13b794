//! Paged JSON answers: 206 with `Link: <next>; rel='next'` while more follows, 200 on the last
//! page, and the headers the official CLIs page by.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// A page of `body` whose list lives at `content_key`; `next` is the URL of the following page.
pub fn page(body: Value, content_key: &'static str, next: Option<String>) -> ApiResult<Response> {
    let status = if next.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut r = (status, axum::Json(body)).into_response();
    let h = r.headers_mut();
    h.insert(
        "x-openapi-paginated-content-key",
        HeaderValue::from_static(content_key),
    );
    let more = if next.is_some() { "true" } else { "false" };
    h.insert("x-openapi-pagination", HeaderValue::from_static(more));
    if let Some(url) = next {
        let link = HeaderValue::from_str(&format!("<{url}>; rel='next'"))
            .map_err(|e| ApiError::internal("link header", e))?;
        h.insert(header::LINK, link);
    }
    Ok(r)
}
