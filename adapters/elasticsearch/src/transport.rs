//! Requests to the cluster: round the configured nodes with failover, authenticated (basic, API
//! key or AWS SigV4), with timeouts, and retried with exponential backoff and full jitter when
//! the cluster is overloaded or unreachable (429, 502, 503, 504, connection errors).
//!
//! Every request the adapter sends may be repeated: searches read, writes are conditional
//! (`if_seq_no`, create-only) or idempotent (index creation, aliases), so a retry after an
//! answer that was lost changes nothing a first success would not have.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use dss_config::SearchConfig;
use dss_core::backoff::Backoff;
use dss_core::ports::SearchError;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::sigv4::AwsSigning;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a node that could not be reached is passed over.
const DOWN_FOR: Duration = Duration::from_secs(10);

/// How requests prove who sends them.
#[derive(Debug)]
pub enum Auth {
    /// Nothing (a cluster open to the network it is on).
    None,
    /// An `Authorization` header (basic or API key), sensitive.
    Header(HeaderValue),
    /// AWS Signature Version 4.
    SigV4(AwsSigning),
}

impl Auth {
    /// The scheme `cfg` asks for; `aws` signs when `search.aws_sigv4` is set.
    pub fn from_config(cfg: &SearchConfig, aws: Option<AwsSigning>) -> Result<Self, SearchError> {
        let header = |value: String| {
            let mut h = HeaderValue::from_str(&value).map_err(|_| {
                SearchError::Backend("search credentials: not a header value".into())
            })?;
            h.set_sensitive(true);
            Ok(Auth::Header(h))
        };
        match (&cfg.username, &cfg.password, &cfg.api_key, aws) {
            (Some(user), Some(password), _, _) => {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                header(format!("Basic {pair}"))
            }
            (_, _, Some(key), _) => header(format!("ApiKey {}", key.trim())),
            (_, _, _, Some(signing)) => Ok(Auth::SigV4(signing)),
            _ => Ok(Auth::None),
        }
    }
}

/// A request body and its media type.
pub struct Body {
    content_type: &'static str,
    bytes: bytes::Bytes,
}

impl Body {
    /// A JSON document.
    pub fn json(v: &Value) -> Self {
        Self {
            content_type: "application/json",
            bytes: v.to_string().into(),
        }
    }

    /// The bytes sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its media type.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// Newline-delimited JSON (`_bulk`).
    pub fn ndjson(bytes: Vec<u8>) -> Self {
        Self {
            content_type: "application/x-ndjson",
            bytes: bytes.into(),
        }
    }
}

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    base: String,
    /// Passed over until then, after it could not be reached.
    down_until: Mutex<Option<Instant>>,
}

/// The HTTP side of the adapter.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    nodes: Vec<Node>,
    next: AtomicUsize,
    auth: Auth,
    attempts: u32,
    /// Full jitter, at most [`MAX_BACKOFF`].
    backoff: Backoff,
}

/// Why one attempt failed in a way another attempt may not.
enum Failure {
    /// Not reached or no answer: try another node.
    Unreachable(String),
    /// Overloaded or a proxy that cannot serve now; the cluster's wait if it said one.
    Busy(String, Option<Duration>),
}

impl Transport {
    /// A transport to the nodes of `cfg`.
    pub fn new(cfg: &SearchConfig, auth: Auth) -> Result<Self, SearchError> {
        let nodes: Vec<Node> = cfg
            .nodes()
            .into_iter()
            .map(|base| Node {
                base,
                down_until: Mutex::new(None),
            })
            .collect();
        if nodes.is_empty() {
            return Err(SearchError::Backend("no search.url configured".into()));
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(50));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                SearchError::Backend(format!("search.ca_file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SearchError::Backend(format!("search.ca_file {}: {e}", path.display()))
            })?;
            b = b.tls_certs_merge(certs);
        }
        let http = b
            .build()
            .map_err(|e| SearchError::Backend(format!("search client: {e}")))?;
        Ok(Self {
            http,
            nodes,
            next: AtomicUsize::new(0),
            auth,
            attempts: cfg.max_attempts.max(1),
            backoff: Backoff {
                base: Duration::from_millis(cfg.retry_base_ms),
                max: MAX_BACKOFF,
                jitter: 1.0,
            },
        })
    }

    /// Sends `method path` with `body`, retrying as the module says; the status and the answer
    /// (JSON, or the text as a JSON string). 429/5xx answers after the last attempt are
    /// [`SearchError::Unavailable`]; other statuses are returned.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Body>,
    ) -> Result<(StatusCode, Value), SearchError> {
        let mut last = String::new();
        for attempt in 0..self.attempts {
            let node = self.pick();
            let wait =
                match self.attempt(node, method.clone(), path, body).await {
                    Ok(answer) => return Ok(answer),
                    Err(Failure::Unreachable(why)) => {
                        *lock(&node.down_until) = Some(Instant::now() + DOWN_FOR);
                        last = format!("{}: {why}", node.base);
                        // Another node may answer at once; with one node, back off.
                        (self.nodes.len() == 1).then(|| self.backoff.delay(attempt + 1))
                    }
                    Err(Failure::Busy(why, after)) => {
                        last = format!("{}: {why}", node.base);
                        Some(after.map_or_else(
                            || self.backoff.delay(attempt + 1),
                            |a| a.min(MAX_BACKOFF),
                        ))
                    }
                };
            if attempt + 1 < self.attempts {
                tracing::warn!(method = %method, path, error = %last, attempt = attempt + 1, "search cluster request failed; retrying");
                if let Some(w) = wait {
                    tokio::time::sleep(w).await;
                }
            }
        }
        Err(SearchError::Unavailable(last))
    }

    async fn attempt(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        body: Option<&Body>,
    ) -> Result<(StatusCode, Value), Failure> {
        let url = format!("{}/{path}", node.base);
        let mut r = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            r = r.header(CONTENT_TYPE, b.content_type).body(b.bytes.clone());
        }
        match &self.auth {
            Auth::None => {}
            Auth::Header(h) => r = r.header(AUTHORIZATION, h.clone()),
            Auth::SigV4(signing) => {
                let headers = signing
                    .sign(method.as_str(), &url, body)
                    .await
                    .map_err(Failure::Unreachable)?;
                for (name, value) in headers {
                    r = r.header(name, value);
                }
            }
        }
        let res = r
            .send()
            .await
            .map_err(|e| Failure::Unreachable(describe(&e)))?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = res
            .text()
            .await
            .map_err(|e| Failure::Unreachable(describe(&e)))?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
            return Err(Failure::Busy(
                format!("{status}: {}", crate::layout::reason(&v)),
                retry_after,
            ));
        }
        Ok((status, v))
    }

    /// The next node round the list that is not passed over (or, if all are, the one that
    /// comes back first).
    fn pick(&self) -> &Node {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let n = self.nodes.len();
        (0..n)
            .map(|i| &self.nodes[(start + i) % n])
            .find(|node| lock(&node.down_until).is_none_or(|t| t <= now))
            .unwrap_or_else(|| {
                self.nodes
                    .iter()
                    .min_by_key(|node| lock(&node.down_until).unwrap_or(now))
                    .unwrap_or(&self.nodes[0])
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A transport error with its causes (reqwest's own text names only the outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
