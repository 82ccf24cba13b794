//! A reverse proxy in front of the test's search server, for what the server itself does not
//! do: it checks each request with a `gate` (authentication), can fail the next requests on
//! purpose (overload answers, dropped connections), can speak TLS, and records what passed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// What the proxy does with the next request instead of forwarding it.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answers with this status (and `Retry-After: 0` for 429).
    Status(u16),
    /// Closes the connection without an answer.
    Drop,
}

/// Decides whether a request may pass: `Err(status, body)` answers it instead.
pub type Gate = Arc<dyn Fn(&Seen) -> Result<(), (u16, String)> + Send + Sync>;

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

struct State {
    upstream: String,
    http: reqwest::Client,
    gate: Gate,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

impl Proxy {
    /// A plain-HTTP proxy to `upstream` letting through what `gate` lets through.
    pub async fn start(upstream: &str, gate: Gate) -> Self {
        Self::start_with_tls(upstream, gate, None).await
    }

    /// The same, speaking TLS with `tls` when given.
    pub async fn start_with_tls(
        upstream: &str,
        gate: Gate,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(VecDeque::new()));
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            gate,
            seen: seen.clone(),
            faults: faults.clone(),
        });
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (state, acceptor) = (state.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(a) => {
                            if let Ok(stream) = a.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self { addr, seen, faults }
    }

    /// Its base URL.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// Fails the next requests with `faults`, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().unwrap().extend(faults);
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// An error ends the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    state.seen.lock().unwrap().push(seen.clone());
    let fault = state.faults.lock().unwrap().pop_front();
    match fault {
        Some(Fault::Drop) => return Err(Dropped),
        Some(Fault::Status(code)) => {
            let mut r = answer(
                code,
                r#"{"error":{"type":"test_fault","reason":"on purpose"}}"#,
            );
            if code == 429 {
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("0"));
            }
            return Ok(r);
        }
        None => {}
    }
    if let Err((code, text)) = (state.gate)(&seen) {
        return Ok(answer(code, &text));
    }
    let mut forward = state.http.request(
        parts.method.clone(),
        format!("{}{}", state.upstream, seen.target),
    );
    if let Some(ct) = parts.headers.get("content-type") {
        forward = forward.header("content-type", ct);
    }
    let res = forward.body(body).send().await.map_err(|_| Dropped)?;
    let status = res.status().as_u16();
    let text = res.bytes().await.map_err(|_| Dropped)?;
    Ok(answer_bytes(status, text))
}

fn answer(code: u16, text: &str) -> Response<Full<Bytes>> {
    answer_bytes(code, Bytes::from(text.to_string()))
}

fn answer_bytes(code: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A gate letting everything through.
pub fn open() -> Gate {
    Arc::new(|_| Ok(()))
}
