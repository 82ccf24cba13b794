//! `[api]`: the HTTP API.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{http_url, invalid, positive, socket_address};

/// HTTP API settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: String,
    /// Public base URL used in links and download URLs (default `http://{listen}`).
    pub public_url: Option<String>,
    /// Maximum size of a JSON request body in bytes.
    pub max_json_body: usize,
    /// Maximum size of a direct upload in bytes.
    pub max_upload: u64,
    /// Lifetime of signed download URLs in seconds.
    pub download_url_ttl_secs: u64,
    /// How long PUT/PATCH bundle wait for member files that are not there yet (replication lag),
    /// in milliseconds.
    pub bundle_file_wait_ms: u64,
    /// Reported by `GET /version`.
    pub deployment_version: Option<String>,
    /// Refuse every write with 503 `read_only`.
    pub read_only: bool,
    /// Maximum size of the JSON body of a request open to anyone (search, checkout) or that
    /// needs no more (subscriptions, file registrations, tombstones), in bytes; bundle and
    /// collection writes take up to `max_json_body`.
    pub max_small_json_body: usize,
    /// Values (objects, arrays, strings, numbers…) a small JSON body may hold: bounds the
    /// memory of parsing it.
    pub max_small_json_values: usize,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Requests being handled at once; more are answered 503 with `Retry-After` at once.
    pub max_in_flight: usize,
    /// Time to read a request's head, and to wait for the next request on an idle
    /// connection, in seconds.
    pub header_read_timeout_secs: u64,
    /// Time to read a JSON body, and the longest pause within any request body (uploads), in
    /// seconds.
    pub body_read_timeout_secs: u64,
    /// How long shutdown waits for requests in flight, in seconds.
    pub shutdown_grace_secs: u64,
    /// Searches per second one client may make (a token bucket per client address).
    pub search_rate: f64,
    /// Searches one client may make in a burst.
    pub search_burst: u32,
    /// Checkouts per second one client may start.
    pub checkout_rate: f64,
    /// Checkouts one client may start in a burst.
    pub checkout_burst: u32,
    /// The header that carries the client's address when the API is behind a proxy or load
    /// balancer (its last address is taken: the one the proxy saw); unset means the peer.
    pub client_ip_header: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5000".into(),
            public_url: None,
            max_json_body: 64 * 1024 * 1024,
            max_upload: 5 * 1024 * 1024 * 1024 * 1024,
            download_url_ttl_secs: 3600,
            bundle_file_wait_ms: 2000,
            deployment_version: None,
            read_only: false,
            max_small_json_body: 1024 * 1024,
            max_small_json_values: 100_000,
            max_connections: 4096,
            max_in_flight: 512,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 60,
            shutdown_grace_secs: 60,
            search_rate: 20.0,
            search_burst: 100,
            checkout_rate: 2.0,
            checkout_burst: 20,
            client_ip_header: None,
        }
    }
}

/// `name` as a lower-case header name, if it is one.
fn header_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}

impl ApiConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        socket_address("api.listen", Some(&self.listen))?;
        http_url("api.public_url", self.public_url.as_ref())?;
        positive(&[
            ("api.max_json_body", self.max_json_body as u64),
            ("api.max_small_json_body", self.max_small_json_body as u64),
            (
                "api.max_small_json_values",
                self.max_small_json_values as u64,
            ),
            ("api.max_connections", self.max_connections as u64),
            ("api.max_in_flight", self.max_in_flight as u64),
            (
                "api.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("api.body_read_timeout_secs", self.body_read_timeout_secs),
            ("api.search_burst", u64::from(self.search_burst)),
            ("api.checkout_burst", u64::from(self.checkout_burst)),
        ])?;
        for (key, rate) in [
            ("api.search_rate", self.search_rate),
            ("api.checkout_rate", self.checkout_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(invalid(
                    key,
                    "must be a number of requests per second above 0",
                ));
            }
        }
        if let Some(h) = &self.client_ip_header
            && header_name(h).is_none()
        {
            return Err(invalid(
                "api.client_ip_header",
                format!("'{h}' is not a header name"),
            ));
        }
        Ok(())
    }
}
