//! JSON request bodies: content type, size limit, syntax and shape, each a clear 4xx.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Whether a media type is JSON (`application/json` or `*/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| m == "application/json" || (m.contains('/') && m.ends_with("+json")))
}

/// Reads a JSON object body of at most `limit` bytes.
pub async fn json_object(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<serde_json::Map<String, Value>> {
    let bytes = read_limited(body, limit).await?;
    if bytes.is_empty() {
        return Err(ApiError::illegal_arguments(
            "A JSON object request body is required",
        ));
    }
    parse_object(headers, &bytes)
}

/// Reads an optional JSON object body: an empty body is an empty object.
pub async fn json_object_or_empty(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<serde_json::Map<String, Value>> {
    let bytes = read_limited(body, limit).await?;
    if bytes.is_empty() {
        return Ok(serde_json::Map::new());
    }
    parse_object(headers, &bytes)
}

/// A non-empty body as a JSON object, with the content type checked.
fn parse_object(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<serde_json::Map<String, Value>> {
    if !is_json(headers) {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Invalid Content-type ({ct}), expected JSON data"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::illegal_arguments(format!(
            "{other} is not of type 'object'"
        ))),
        Err(e) => Err(ApiError::illegal_arguments(format!(
            "Request body is not valid JSON: {e}"
        ))),
    }
}

/// Deserialises a validated object into `T`, turning serde's message into a 400.
pub fn typed<T: DeserializeOwned>(m: serde_json::Map<String, Value>) -> ApiResult<T> {
    serde_json::from_value(Value::Object(m)).map_err(|e| ApiError::illegal_arguments(e.to_string()))
}

async fn read_limited(body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::illegal_arguments(format!(
            "could not read request body: {e}"
        ))),
    }
}
