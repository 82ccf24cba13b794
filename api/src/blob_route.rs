//! Serves object bytes from local-disk replicas through signed, expiring URLs, with `Range`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dss_core::ports::{BlobError, ByteRange};

use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// A `Range` header that is malformed or names no byte of the object (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single `bytes=` range; `None` for absent or multi-range headers (served whole).
pub fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<ByteRange>, Unsatisfiable> {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        return Ok(Some(ByteRange {
            start: size.saturating_sub(n),
            end: None,
        }));
    }
    let start: u64 = a.parse().map_err(|_| Unsatisfiable)?;
    let end = if b.is_empty() {
        None
    } else {
        Some(b.parse::<u64>().map_err(|_| Unsatisfiable)?)
    };
    if end.is_some_and(|e| e < start) {
        return Err(Unsatisfiable);
    }
    Ok(Some(ByteRange { start, end }))
}

/// The bucket a signed URL names: a replica's main or checkout bucket, or another bucket of a
/// replica's account (a checkout destination).
async fn signed_bucket(
    state: &Shared,
    name: &str,
) -> ApiResult<Option<std::sync::Arc<dyn dss_core::ports::BlobStore>>> {
    let replicas = state.deployment.replicas.values();
    if let Some(r) = replicas.clone().find(|r| r.store.bucket() == name) {
        return Ok(Some(r.store.clone()));
    }
    if let Some(r) = replicas.clone().find(|r| r.checkout.bucket() == name) {
        return Ok(Some(r.checkout.clone()));
    }
    for r in replicas {
        if let Some(b) = r.buckets.open(name).await? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// `GET|HEAD /internal/blob?bucket=&key=&expires=&signature=`.
pub async fn download(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let now = state.deployment.clock.now().unix_timestamp();
    let signed = state
        .deployment
        .signer
        .verify(raw.as_deref().unwrap_or(""), now)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "Forbidden", e.to_string()))?;
    if let Some(replica) = signed.bucket.strip_prefix("journal/") {
        return journal_stream(&state, replica, &signed.key, &headers).await;
    }
    let store = signed_bucket(&state, &signed.bucket)
        .await?
        .ok_or_else(|| ApiError::not_found("no such bucket"))?;
    let meta = store
        .head(&signed.key)
        .await?
        .ok_or_else(|| ApiError::not_found("no such object"))?;
    let range = match parse_range(&headers, meta.size) {
        Ok(r) => r,
        Err(Unsatisfiable) => return Ok(unsatisfiable(meta.size)),
    };
    let obj = match store.get(&signed.key, range).await {
        Ok(o) => o,
        Err(BlobError::RangeNotSatisfiable) => return Ok(unsatisfiable(meta.size)),
        Err(e) => return Err(e.into()),
    };
    let (status, len) = match obj.range {
        Some((_, len)) => (StatusCode::PARTIAL_CONTENT, len),
        None => (StatusCode::OK, obj.meta.size),
    };
    let mut r = Response::new(Body::from_stream(obj.body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let ct = HeaderValue::from_str(&obj.meta.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", obj.meta.etag)) {
        h.insert(header::ETAG, v);
    }
    if let Some((start, len)) = obj.range
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            start,
            start + len - 1,
            obj.meta.size
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(d) = signed
        .content_disposition
        .and_then(|d| HeaderValue::from_str(&d).ok())
    {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    Ok(r)
}

fn unsatisfiable(size: u64) -> Response {
    let mut r = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        "requested range not satisfiable",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Serves the concatenated documents of journal events `first-last` (an event stream).
async fn journal_stream(
    state: &Shared,
    replica: &str,
    span: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let (first, last) = span
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| ApiError::not_found("no such event stream"))?;
    let bytes = state
        .deployment
        .journal
        .read(replica, first, last)
        .await
        .map_err(|e| ApiError::metadata("events journal", e))?;
    let size = bytes.len() as u64;
    let range = match parse_range(headers, size) {
        Ok(r) => r,
        Err(Unsatisfiable) => return Ok(unsatisfiable(size)),
    };
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(r) => match r.resolve(size) {
            Some((start, len)) => (StatusCode::PARTIAL_CONTENT, start, len),
            None => return Ok(unsatisfiable(size)),
        },
    };
    let body = bytes[start as usize..(start + len) as usize].to_vec();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        m
    }

    proptest::proptest! {
        /// Any header: no panic, and a range that resolves lies within the object.
        #[test]
        fn any_range_header_is_parsed_safely(v in proptest::prelude::any::<String>(), size in 0u64..1_000) {
            let Ok(value) = HeaderValue::from_str(&format!("bytes={v}")) else { return Ok(()) };
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, value);
            if let Ok(Some(r)) = parse_range(&m, size)
                && let Some((start, len)) = r.resolve(size)
            {
                proptest::prop_assert!(start + len <= size && len > 0);
            }
        }
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(
            parse_range(&h("bytes=5-"), 10),
            Ok(Some(ByteRange {
                start: 5,
                end: None
            }))
        );
        assert_eq!(
            parse_range(&h("bytes=2-4"), 10),
            Ok(Some(ByteRange {
                start: 2,
                end: Some(4)
            }))
        );
        assert_eq!(
            parse_range(&h("bytes=-3"), 10),
            Ok(Some(ByteRange {
                start: 7,
                end: None
            }))
        );
        assert_eq!(parse_range(&h("bytes=0-1,5-6"), 10), Ok(None));
        assert_eq!(parse_range(&h("bytes=4-2"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(&h("bytes=x-"), 10), Err(Unsatisfiable));
        assert_eq!(parse_range(&HeaderMap::new(), 10), Ok(None));
    }
}
