//! JSON request bodies: content type, size limit, time to read them, how many values they may
//! hold, syntax and shape, each a clear 4xx.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// What a route accepts as its JSON body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes.
    pub size: usize,
    /// JSON values (see [`crate::bounded_json`]).
    pub values: usize,
    /// Time to read the whole body.
    pub time: std::time::Duration,
}

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

/// Reads a JSON object body within `limits`.
pub async fn json_object(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> ApiResult<serde_json::Map<String, Value>> {
    let bytes = read_limited(body, limits).await?;
    if bytes.is_empty() {
        return Err(ApiError::illegal_arguments(
            "A JSON object request body is required",
        ));
    }
    parse_object(headers, &bytes, limits.values)
}

/// Reads an optional JSON object body: an empty body is an empty object.
pub async fn json_object_or_empty(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> ApiResult<serde_json::Map<String, Value>> {
    let bytes = read_limited(body, limits).await?;
    if bytes.is_empty() {
        return Ok(serde_json::Map::new());
    }
    parse_object(headers, &bytes, limits.values)
}

/// Reads a JSON body within `limits` straight into `T` (no generic value in between).
pub async fn json_typed<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> ApiResult<T> {
    let bytes = read_limited(body, limits).await?;
    if bytes.is_empty() {
        return Err(ApiError::illegal_arguments(
            "A JSON object request body is required",
        ));
    }
    check_json_type(headers)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::illegal_arguments(format!("Request body is not valid: {e}")))
}

/// 415 unless the request says its body is JSON.
fn check_json_type(headers: &HeaderMap) -> ApiResult<()> {
    if is_json(headers) {
        return Ok(());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Invalid Content-type ({ct}), expected JSON data"),
    ))
}

/// A non-empty body as a JSON object of at most `max_values` values, with the content type
/// checked.
fn parse_object(
    headers: &HeaderMap,
    bytes: &[u8],
    max_values: usize,
) -> ApiResult<serde_json::Map<String, Value>> {
    check_json_type(headers)?;
    match crate::bounded_json::parse(bytes, max_values) {
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

/// Reads a whole body within `limits` (size and time).
pub async fn read_limited(body: Body, limits: BodyLimits) -> ApiResult<bytes::Bytes> {
    let limited = http_body_util::Limited::new(body, limits.size);
    let timed_out = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                limits.time.as_secs()
            ),
        )
    };
    match tokio::time::timeout(limits.time, limited.collect()).await {
        Err(_) => Err(timed_out()),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body larger than {} bytes", limits.size),
        )),
        Ok(Err(e)) if crate::body_timeout::stalled(&*e) => Err(timed_out()),
        Ok(Err(e)) => Err(ApiError::illegal_arguments(format!(
            "could not read request body: {e}"
        ))),
    }
}
