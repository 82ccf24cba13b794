//! Answers given before the request's body was read: they close the connection, and say so.
//!
//! A handler may answer without reading the whole body (a full disk, a refused token, a
//! conflict found first). The rest of the body is then still on the connection, so the server
//! closes it after the answer; without `Connection: close` in that answer a client may reuse
//! the connection for its next request and see it fail.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as _, Frame, SizeHint};

/// A request body that notes when it has been read to its end (its size hint kept, so
/// length limits still refuse an oversized body before reading it).
struct Watched {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs the request, marking the answer `Connection: close` when its body was not read to
/// the end.
pub async fn close_when_body_unread(req: Request, next: Next) -> Response {
    let (parts, inner) = req.into_parts();
    if inner.is_end_stream() {
        return next.run(Request::from_parts(parts, inner)).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let body = Body::new(Watched {
        inner,
        read: read.clone(),
    });
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if !read.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
