//! Request bodies that stall: a pause longer than `api.body_read_timeout_secs` between two
//! parts of a body ends it with [`Stalled`] (the client gets 408), so a client that sends
//! slowly or not at all cannot hold a handler, a connection and its buffers for ever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error of a body that paused too long.
#[derive(Debug, thiserror::Error)]
#[error("the request body paused for more than {0:?}")]
pub struct Stalled(pub Duration);

/// Whether `e` (or an error it wraps) is [`Stalled`].
pub fn stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(err) = at {
        if err.is::<Stalled>() {
            return true;
        }
        at = err.source();
    }
    false
}

struct Idle {
    inner: Body,
    pause: Duration,
    timer: Pin<Box<Sleep>>,
}

impl hyper::body::Body for Idle {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + self.pause;
                self.timer.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(Stalled(self.pause))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Gives every request body a limit on its pauses.
pub async fn limit_pauses(pause: Duration, req: Request, next: Next) -> Response {
    let (parts, inner) = req.into_parts();
    if inner.is_end_stream() {
        return next.run(Request::from_parts(parts, inner)).await;
    }
    let body = Body::new(Idle {
        inner,
        pause,
        timer: Box::pin(tokio::time::sleep(pause)),
    });
    next.run(Request::from_parts(parts, body)).await
}
