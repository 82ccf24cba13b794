//! `[log]` and `[metrics]`: log output and where processes without the API serve `/metrics`.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{invalid, socket_address};

/// Where a process without the API serves `/metrics` (the API serves it on its own address).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics` listener of `dss index`, `dss sync`, … (e.g.
    /// `127.0.0.1:9100`); unset: none.
    pub listen: Option<String>,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// Filter directive, e.g. `info` or `dss_api=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl MetricsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        socket_address("metrics.listen", self.listen.as_ref())
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !["text", "json"].contains(&self.format.as_str()) {
            return Err(invalid(
                "log.format",
                format!("'{}' is not one of text, json", self.format),
            ));
        }
        Ok(())
    }
}
