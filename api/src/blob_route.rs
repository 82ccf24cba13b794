//! Serves object bytes from local-disk replicas through signed, expiring URLs, with `Range`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dss_shared::ports::{BlobError, ByteRange};

use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// Parses a single `bytes=` range; `None` for absent or multi-range headers (served whole).
fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<ByteRange>, ()> {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        return Ok(Some(ByteRange {
            start: size.saturating_sub(n),
            end: None,
        }));
    }
    let start: u64 = a.parse().map_err(|_| ())?;
    let end = if b.is_empty() {
        None
    } else {
        Some(b.parse::<u64>().map_err(|_| ())?)
    };
    if end.is_some_and(|e| e < start) {
        return Err(());
    }
    Ok(Some(ByteRange { start, end }))
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
    let replica = state
        .deployment
        .replicas
        .values()
        .find(|r| r.store.bucket() == signed.bucket)
        .ok_or_else(|| ApiError::not_found("no such bucket"))?;
    let store = &replica.store;
    let meta = store
        .head(&signed.key)
        .await?
        .ok_or_else(|| ApiError::not_found("no such object"))?;
    let unsatisfiable = || {
        let mut r = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            "requested range not satisfiable",
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        r
    };
    let range = match parse_range(&headers, meta.size) {
        Ok(r) => r,
        Err(()) => return Ok(unsatisfiable()),
    };
    let obj = match store.get(&signed.key, range).await {
        Ok(o) => o,
        Err(BlobError::RangeNotSatisfiable) => return Ok(unsatisfiable()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        m
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
        assert_eq!(parse_range(&h("bytes=4-2"), 10), Err(()));
        assert_eq!(parse_range(&h("bytes=x-"), 10), Err(()));
        assert_eq!(parse_range(&HeaderMap::new(), 10), Ok(None));
    }
}
