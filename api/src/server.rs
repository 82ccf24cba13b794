//! The HTTP/1.1 server under the router: a connection cap, a timer for reading request heads
//! (a client that trickles its headers, or holds an idle keep-alive connection, is dropped
//! after `api.header_read_timeout_secs`), the peer address on every request, a lingering close,
//! and graceful shutdown (requests in flight finish, idle connections close).
//!
//! Lingering close: an answer given before the request's body was read (413 for a declared
//! size over the limit, 401 before an upload) ends the connection with the rest of the body
//! unread. Closing a socket with unread input resets it, and the reset can destroy the answer
//! before the client reads it. So the server half-closes its side after the last answer and
//! reads (and discards) what the client still sends, for a short while, as web servers do.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time to read a request's head (and to wait for the next one on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

/// How long a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Bytes a closing connection reads at most.
const LINGER_BYTES: usize = 64 << 20;

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (within the grace period).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let stopping = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(limits.header_read_timeout))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max, "too many connections; closing a new one");
            continue;
        };
        // Small answers go out at once: with Nagle's algorithm a response written in two parts
        // waits for the client's delayed ACK (40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        // A boxed future per request: the connection is then `Unpin`, as running it without
        // shutting its socket down requires.
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = crate::strip_trailing_slash(req);
            let app = app.clone();
            Box::pin(async move { app.oneshot(req).await })
                as Pin<Box<dyn Future<Output = _> + Send>>
        });
        let mut conn = builder.serve_connection(TokioIo::new(tcp), svc);
        let stop = stopping.clone();
        tokio::spawn(async move {
            let mut stopped = std::pin::pin!(stop.cancelled_owned());
            let mut graceful = false;
            let ended = std::future::poll_fn(|cx| {
                if !graceful && stopped.as_mut().poll(cx).is_ready() {
                    graceful = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                conn.poll_without_shutdown(cx)
            })
            .await;
            match ended {
                Ok(()) => linger(conn.into_parts().io.into_inner()).await,
                Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            }
            drop(slot);
        });
    }
    stopping.cancel();
    let drained = tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(max as u32)).await;
    if drained.is_err() {
        tracing::warn!("requests still in flight at the end of the grace period; closing");
    }
    Ok(())
}

/// Ends a connection whose answers are all sent: half-closes it, then reads what the client
/// still sends until it closes too (or [`LINGER`] / [`LINGER_BYTES`] run out).
async fn linger(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut read = 0;
    while read < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => read += n,
            _ => break,
        }
    }
}

/// The address of the peer of a request served by [`serve`].
pub fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
