//! The connection to one deployment: its base URL, the bearer token, retries of transient
//! failures, and paged JSON answers.

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use url::Url;

use crate::error::ClientError;
use crate::paging;

/// A DSS deployment reached over HTTP.
#[derive(Clone)]
pub struct DssClient {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
    attempts: u32,
    backoff: Duration,
}

/// A URL without its query (which may hold a presigned URL's signature), for messages.
pub(crate) fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

impl DssClient {
    /// A client of the deployment at `base` (`http://host:port`, with or without `/v1`),
    /// sending `token` as the bearer token of every request when given.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let trimmed = base.trim().trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
        let url = Url::parse(&format!("{trimmed}/"))
            .map_err(|e| ClientError::Invalid(format!("'{base}' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ClientError::Invalid(format!(
                "'{base}' is not an http:// or https:// URL of a deployment"
            )));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dss-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| ClientError::Http {
                what: "HTTP client".into(),
                source,
            })?;
        Ok(Self {
            base: url,
            token: token.filter(|t| !t.trim().is_empty()),
            http,
            attempts: 5,
            backoff: Duration::from_millis(500),
        })
    }

    /// Tries a request that failed transiently up to `attempts` times in all, waiting `first`
    /// and then twice as long before each further try (default 5 tries from 0.5 s).
    pub fn with_retries(mut self, attempts: u32, first: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = first;
        self
    }

    /// The deployment's base URL (without `/v1`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `path` (below the base, e.g. `v1/bundles/…`) with `query`.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Invalid(format!("path '{path}': {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A request to `url`, with the bearer token when `url` is on the deployment (never sent
    /// to another host, such as a presigned blob URL's).
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let same_origin = url.origin() == self.base.origin();
        let rb = self.http.request(method, url);
        match &self.token {
            Some(t) if same_origin => rb.bearer_auth(t),
            _ => rb,
        }
    }

    /// Sends `rb`; a 4xx or 5xx answer becomes [`ClientError::Api`], others are returned.
    pub(crate) async fn send(&self, rb: RequestBuilder) -> Result<Response, ClientError> {
        let (client, req) = rb.build_split();
        let req = req.map_err(|source| ClientError::Http {
            what: "request".into(),
            source,
        })?;
        let (method, url) = (req.method().to_string(), req.url().clone());
        let res = client
            .execute(req)
            .await
            .map_err(|source| ClientError::Http {
                what: format!("{method} {}", shown(&url)),
                source,
            })?;
        let status = res.status();
        if status.is_client_error() || status.is_server_error() {
            let text = res.text().await.unwrap_or_default();
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            let field = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            return Err(ClientError::Api {
                method,
                url: shown(&url),
                status: status.as_u16(),
                code: field("code")
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").into()),
                title: field("title").unwrap_or_else(|| text.chars().take(200).collect()),
            });
        }
        Ok(res)
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the tries are used up, waiting
    /// longer before each retry.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut wait = self.backoff;
        let mut tries = 1;
        loop {
            match attempt().await {
                Err(e) if e.transient() && tries < self.attempts => {
                    tracing::warn!(what, error = %e, tries, "retrying in {:?}", wait);
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// `method url` with an optional JSON `body`, retried when transient: the status, headers
    /// and JSON body of the answer.
    pub(crate) async fn json(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Value), ClientError> {
        self.retry(&format!("{method} {}", shown(url)), || async {
            let mut rb = self.request(method.clone(), url.clone());
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let res = self.send(rb).await?;
            let (status, headers) = (res.status(), res.headers().clone());
            let bytes = res.bytes().await.map_err(|source| ClientError::Http {
                what: format!("{method} {}", shown(url)),
                source,
            })?;
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    ClientError::Invalid(format!("{method} {}: not JSON: {e}", shown(url)))
                })?
            };
            Ok((status, headers, value))
        })
        .await
    }

    /// Follows a paged answer from `url`: calls `on_page` with each page's body (its list taken
    /// out) and the list, until the last page or `on_page` returns false.
    pub(crate) async fn each_page(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        mut on_page: impl FnMut(&Value, Vec<Value>) -> bool,
    ) -> Result<(), ClientError> {
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let (_, headers, mut page) = self.json(method.clone(), &url, body).await?;
            let items = paging::take_list(&mut page, &paging::content_key(&headers));
            if !on_page(&page, items) {
                break;
            }
            if let Some(link) = paging::next_link(&headers) {
                next =
                    Some(url.join(&link).map_err(|e| {
                        ClientError::Invalid(format!("next page link '{link}': {e}"))
                    })?);
            }
        }
        Ok(())
    }
}
