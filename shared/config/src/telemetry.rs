//! `[log]`, `[metrics]` and `[telemetry]`: log output, where processes without the API serve
//! `/metrics`, and where traces go.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{http_url, invalid, positive, socket_address};

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

/// Trace export: OpenTelemetry over OTLP/HTTP (protobuf) when `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, …), e.g.
    /// `http://collector:4318`; spans go to `{otlp_endpoint}/v1/traces`. Unset: no export
    /// (W3C `traceparent` is still carried from requests through queues to webhooks).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the spans (default `dss-{component}`, e.g. `dss-api`, `dss-index`).
    pub service_name: Option<String>,
    /// Share of new traces recorded, 0–1 (a trace a caller started keeps the caller's choice).
    pub sample_ratio: f64,
    /// Time for one export request, in milliseconds.
    pub otlp_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: 1.0,
            otlp_timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        http_url("telemetry.otlp_endpoint", self.otlp_endpoint.as_ref())?;
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid("telemetry.sample_ratio", "must be between 0 and 1"));
        }
        positive(&[("telemetry.otlp_timeout_ms", self.otlp_timeout_ms)])
    }
}
