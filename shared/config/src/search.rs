//! `[search]`: where search documents live (the embedded engine, or a search cluster), and how
//! to reach and authenticate to the cluster.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{http_url, invalid, positive};

/// Search backend: the embedded engine, or an Elasticsearch / OpenSearch cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Base URL of an Elasticsearch 7/8 or OpenSearch 1–3 cluster; unset (and no `urls`) means
    /// the embedded engine.
    pub url: Option<String>,
    /// Further nodes of the same cluster; requests go round the nodes and fail over.
    pub urls: Vec<String>,
    /// Prefix of the cluster's index and alias names (`{prefix}-{replica}-docs-…`).
    pub index_prefix: String,
    /// User name of HTTP basic authentication (with `password`).
    pub username: Option<String>,
    /// Password of HTTP basic authentication.
    pub password: Option<String>,
    /// An Elasticsearch API key, as the cluster hands it out (the base64 `encoded` form), sent
    /// as `Authorization: ApiKey …`.
    pub api_key: Option<String>,
    /// PEM file of certificate authorities trusted besides the platform's (a private cluster's
    /// own CA).
    pub ca_file: Option<PathBuf>,
    /// Sign requests with AWS Signature Version 4 (Amazon OpenSearch Service), with the
    /// credentials and region of `[aws]` (else the SDK's chains).
    pub aws_sigv4: bool,
    /// The service name requests are signed for: `es` (OpenSearch Service domains) or `aoss`
    /// (OpenSearch Serverless).
    pub aws_service: String,
    /// Time to connect to a node, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time for one request, answer included, in milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts of one request that meets an overloaded or unreachable cluster (429, 502, 503,
    /// 504, connection errors), with exponential backoff and jitter between them.
    pub max_attempts: u32,
    /// Backoff before the second attempt, in milliseconds (doubling, at most 5 s).
    pub retry_base_ms: u64,
    /// Documents in one `_bulk` request at most.
    pub bulk_max_docs: usize,
    /// Bytes in one `_bulk` request at most (a document larger than this goes alone).
    pub bulk_max_bytes: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            url: None,
            urls: Vec::new(),
            index_prefix: "dss".into(),
            username: None,
            password: None,
            api_key: None,
            ca_file: None,
            aws_sigv4: false,
            aws_service: "es".into(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 60_000,
            max_attempts: 4,
            retry_base_ms: 200,
            bulk_max_docs: 500,
            bulk_max_bytes: 5 << 20,
        }
    }
}

impl SearchConfig {
    /// The cluster's node URLs (`url` first), without trailing slashes; empty for the embedded
    /// engine.
    pub fn nodes(&self) -> Vec<String> {
        self.url
            .iter()
            .chain(&self.urls)
            .map(|u| u.trim_end_matches('/').to_string())
            .collect()
    }

    /// Whether search documents live in a cluster (not in the embedded engine).
    pub fn is_cluster(&self) -> bool {
        self.url.is_some() || !self.urls.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        http_url("search.url", self.url.as_ref())?;
        for u in &self.urls {
            http_url("search.urls", Some(u))?;
        }
        for (key, u) in self
            .url
            .iter()
            .map(|u| ("search.url", u))
            .chain(self.urls.iter().map(|u| ("search.urls", u)))
        {
            if carries_credentials(u) {
                return Err(invalid(
                    key,
                    "put credentials in search.username and search.password (or search.api_key), \
                     not in the URL: URLs end up in logs and error messages",
                ));
            }
        }
        if self.index_prefix.is_empty()
            || !self
                .index_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "search.index_prefix",
                "use lower-case letters, digits, '-' and '_'",
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(invalid(
                "search.password",
                "give both search.username and search.password, or neither",
            ));
        }
        let schemes = [
            self.username.is_some(),
            self.api_key.is_some(),
            self.aws_sigv4,
        ];
        if schemes.iter().filter(|s| **s).count() > 1 {
            return Err(invalid(
                "search.api_key",
                "choose one way to authenticate: search.username/password, search.api_key or search.aws_sigv4",
            ));
        }
        if !["es", "aoss"].contains(&self.aws_service.as_str()) {
            return Err(invalid(
                "search.aws_service",
                format!("'{}' is not one of es, aoss", self.aws_service),
            ));
        }
        positive(&[
            ("search.connect_timeout_ms", self.connect_timeout_ms),
            ("search.request_timeout_ms", self.request_timeout_ms),
            ("search.max_attempts", u64::from(self.max_attempts)),
            ("search.bulk_max_docs", self.bulk_max_docs as u64),
            ("search.bulk_max_bytes", self.bulk_max_bytes as u64),
        ])
    }
}

/// Whether `url` has a user name or password in its authority.
fn carries_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn error_key(toml: &str) -> String {
        match Config::from_toml(toml) {
            Err(crate::ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn nodes_are_url_then_urls() {
        let c = Config::from_toml(
            "[search]\nurl = \"https://a:9200/\"\nurls = [\"https://b:9200\", \"https://c:9200\"]",
        )
        .unwrap();
        assert_eq!(
            c.search.nodes(),
            ["https://a:9200", "https://b:9200", "https://c:9200"]
        );
        assert!(c.search.is_cluster());
        assert!(!Config::from_toml("").unwrap().search.is_cluster());
    }

    #[test]
    fn bad_search_settings_name_their_key() {
        for (toml, key) in [
            (
                "[search]\nurl = \"https://elastic:pw@es:9200\"",
                "search.url",
            ),
            ("[search]\nurls = [\"https://u@es:9200\"]", "search.urls"),
            ("[search]\nurls = [\"es:9200\"]", "search.urls"),
            ("[search]\nusername = \"u\"", "search.password"),
            (
                "[search]\nusername = \"u\"\npassword = \"p\"\napi_key = \"k\"",
                "search.api_key",
            ),
            (
                "[search]\napi_key = \"k\"\naws_sigv4 = true",
                "search.api_key",
            ),
            ("[search]\naws_service = \"s3\"", "search.aws_service"),
            ("[search]\nmax_attempts = 0", "search.max_attempts"),
            ("[search]\nbulk_max_bytes = 0", "search.bulk_max_bytes"),
        ] {
            assert_eq!(error_key(toml), key, "{toml}");
        }
    }

    #[test]
    fn an_at_sign_in_the_path_is_no_credential() {
        assert!(!super::carries_credentials("https://es:9200/a@b"));
        assert!(super::carries_credentials("https://u:p@es:9200/"));
    }
}
