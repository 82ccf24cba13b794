//! The HTTP client of deliveries: connect and answer timeouts, no redirects followed, and a
//! resolver that only hands out callback addresses the SSRF policy allows, so a name that
//! starts resolving to an internal address after its subscription was accepted is refused at
//! delivery (addresses written literally in the URL are checked before each request).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dss_config::NotifyConfig;
use dss_core::callback::{AllowedNet, allowed};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::request::Request;

/// Resolves names with the system resolver, dropping addresses callbacks may not reach.
#[derive(Debug)]
struct GuardedResolver {
    allow: Vec<AllowedNet>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                addrs.into_iter().partition(|a| allowed(a.ip(), &allow));
            if ok.is_empty() {
                return Err(format!(
                    "'{host}' resolves to internal addresses only ({refused:?}); callbacks there must be allowed in notify.callback_allow"
                )
                .into());
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Sends delivery requests.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client with the timeouts and allow-list of `cfg`.
    pub fn new(cfg: &NotifyConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // A proxy would resolve callback names itself, past the guarded resolver.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .pool_max_idle_per_host(cfg.endpoint_concurrency)
            .dns_resolver(Arc::new(GuardedResolver {
                allow: cfg.allowed_nets(),
            }))
            .user_agent(concat!("dss-notify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// Sends `req`; the receiver's status, or why there is none.
    pub async fn send(&self, req: Request, allow: &[AllowedNet]) -> Result<u16, String> {
        let url = url::Url::parse(&req.url).map_err(|e| format!("bad callback URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "callback URL scheme {} is not allowed",
                url.scheme()
            ));
        }
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host() {
            let host = url.host_str().unwrap_or_default();
            let ip: Option<IpAddr> = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok();
            if let Some(ip) = ip
                && !allowed(ip, allow)
            {
                return Err(format!(
                    "{ip} is an internal address; callbacks there must be allowed in notify.callback_allow"
                ));
            }
        }
        let mut builder = self.http.request(req.method, url);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        // The receiver may continue the trace of the write that caused the notification.
        if let Some(tp) = dss_core::correlation::traceparent() {
            builder = builder.header("traceparent", tp);
        }
        match builder.body(req.body).send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// The error with its causes (reqwest's own message omits them).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
