//! Answers given before the request's body was read: they close the connection, and say so.
//!
//! A handler may answer without reading the whole body (a full disk, a refused token, a
//! conflict found first). The rest of the body is then still on the connection, so the server
//! closes it after the answer; without `Connection: close` in that answer a client may reuse
//! the connection for its next request and see it fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

/// Whether the request carries a body (a positive length, or chunks).
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Runs the request, marking the answer `Connection: close` when its body was not read to
/// the end.
pub async fn close_when_body_unread(req: Request, next: Next) -> Response {
    if !has_body(&req) {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let at_end = read.clone();
    let body = body
        .into_data_stream()
        .chain(futures::stream::poll_fn(move |_| {
            at_end.store(true, Ordering::Release);
            Poll::Ready(None)
        }));
    let mut res = next
        .run(Request::from_parts(parts, Body::from_stream(body)))
        .await;
    if !read.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
