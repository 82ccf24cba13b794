//! `[search]`: where search documents live (the embedded engine, or a search cluster).

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{http_url, invalid};

/// Search backend: the embedded engine, or an Elasticsearch / OpenSearch cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Base URL of an Elasticsearch 7/8 or OpenSearch 1–3 cluster; unset means the embedded engine.
    pub url: Option<String>,
    /// Prefix of the cluster's index and alias names (`{prefix}-{replica}-docs-…`).
    pub index_prefix: String,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            url: None,
            index_prefix: "dss".into(),
        }
    }
}

impl SearchConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        http_url("search.url", self.url.as_ref())?;
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
        Ok(())
    }
}
