//! A reverse proxy for adapter tests, in front of a real server, for what the server itself does
//! not do: it checks each request with a gate (authentication, protocol parts an emulator lacks),
//! fails requests on purpose (overload answers, dropped connections, answers lost after the
//! server acted), can speak TLS, and records what passed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Whether it reached the server.
    pub forwarded: bool,
}

impl Seen {
    /// The header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the proxy does to a request instead of (or after) forwarding it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answers with this status without forwarding (`Retry-After: 0` with 429).
    Status(u16),
    /// Closes the connection without forwarding or answering.
    Drop,
    /// Forwards the request, then answers this status instead of the server's answer: the
    /// server acted, the client does not know.
    AfterForward(u16),
}

/// An answer the proxy gives itself.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers besides `content-type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: String,
}

impl Answer {
    /// A JSON answer with `status`.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// Decides whether a request may pass: `Err(answer)` answers it instead.
pub type Gate = Arc<dyn Fn(&Seen) -> Result<(), Answer> + Send + Sync>;
/// Sees each forwarded request with the server's status and headers.
pub type Observer = Arc<dyn Fn(&Seen, u16, &HeaderMap) + Send + Sync>;
/// Picks the fault for a request, if any (besides the queued ones).
pub type FaultRule = Arc<dyn Fn(&Seen) -> Option<Fault> + Send + Sync>;

/// How a proxy behaves beyond forwarding.
#[derive(Clone, Default)]
pub struct Options {
    /// Lets requests through (default: all).
    pub gate: Option<Gate>,
    /// Sees the server's answers.
    pub observe: Option<Observer>,
    /// Chooses faults by request (after the queued faults of [`Proxy::fail_next`]).
    pub faults: Option<FaultRule>,
    /// Speaks TLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A running proxy.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

struct State {
    upstream: String,
    me: String,
    http: reqwest::Client,
    options: Options,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

/// Headers the proxy does not pass on (hop-by-hop, or set by its own client).
const NOT_FORWARDED: &[&str] = &["host", "connection", "content-length", "transfer-encoding"];

impl Proxy {
    /// A plain-HTTP proxy to `upstream` letting everything through.
    pub async fn open(upstream: &str) -> Self {
        Self::start(upstream, Options::default()).await
    }

    /// A proxy to `upstream` behaving as `options` say.
    pub async fn start(upstream: &str, options: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(VecDeque::new()));
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            me: format!("{scheme}://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            options,
            seen: seen.clone(),
            faults: faults.clone(),
        });
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
        lock(&self.faults).extend(faults);
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    let mut seen = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
        forwarded: false,
    };
    let queued = lock(&state.faults).pop_front();
    let fault = queued.or_else(|| state.options.faults.as_ref().and_then(|rule| rule(&seen)));
    let recorded = |seen: &Seen| lock(&state.seen).push(seen.clone());
    match fault {
        Some(Fault::Drop) => {
            recorded(&seen);
            return Err(Dropped);
        }
        Some(Fault::Status(code)) => {
            recorded(&seen);
            let mut a = Answer::json(
                code,
                r#"{"error":{"type":"test_fault","reason":"on purpose"}}"#,
            );
            if code == 429 {
                a.headers.push(("retry-after", "0".into()));
            }
            return Ok(respond(a.status, &a.headers, Bytes::from(a.body)));
        }
        _ => {}
    }
    if let Some(gate) = &state.options.gate
        && let Err(a) = gate(&seen)
    {
        recorded(&seen);
        return Ok(respond(a.status, &a.headers, Bytes::from(a.body)));
    }
    let mut forward = state.http.request(
        parts.method.clone(),
        format!("{}{}", state.upstream, seen.target),
    );
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            forward = forward.header(name, value);
        }
    }
    let res = forward.body(body).send().await.map_err(|_| Dropped)?;
    seen.forwarded = true;
    recorded(&seen);
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    if let Some(observe) = &state.options.observe {
        observe(&seen, status, &headers);
    }
    let text = res.bytes().await.map_err(|_| Dropped)?;
    if let Some(Fault::AfterForward(code)) = fault {
        let a = Answer::json(code, r#"{"error":{"message":"answer lost on purpose"}}"#);
        return Ok(respond(a.status, &a.headers, Bytes::from(a.body)));
    }
    // The server's headers; links to the server (a resumable upload's session) lead through
    // the proxy.
    let passed: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !NOT_FORWARDED.contains(&name.as_str()))
        .filter_map(|(name, v)| {
            let v = v.to_str().ok()?;
            Some((name.to_string(), v.replacen(&state.upstream, &state.me, 1)))
        })
        .collect();
    Ok(respond(status, &passed, text))
}

fn respond<N: AsRef<str>>(
    code: u16,
    headers: &[(N, String)],
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_ref().as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            r.headers_mut().insert(n, v);
        }
    }
    r
}
