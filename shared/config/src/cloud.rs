//! `[queues]`, `[aws]` and `[gcp]`: where the queues and topics live, and how to reach the clouds.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{http_url, invalid, positive};

/// Which service carries the queues and the bucket events topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackendKind {
    /// The embedded database (every component on one machine).
    #[default]
    Embedded,
    /// SQS queues and an SNS topic, fed by S3 bucket notifications.
    Aws,
    /// Pub/Sub subscriptions and topics.
    Pubsub,
}

/// Queue settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuesConfig {
    /// `embedded` (default), `aws` or `pubsub`.
    pub backend: QueueBackendKind,
    /// Put before every queue and topic name in the cloud (a stage, e.g. `dss-dev-`), so that
    /// deployments can share an account.
    pub prefix: String,
}

/// AWS connection settings (the SDK's default chains where a value is absent).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Endpoint URL of a compatible server (moto, MinIO, …); default: AWS itself.
    pub endpoint: Option<String>,
    /// Region; default: the SDK's region chain (`AWS_REGION`, profile, instance).
    pub region: Option<String>,
    /// Path-style S3 addressing (`host/bucket/key`), which local servers need.
    pub path_style: bool,
    /// Access key id; with `secret_access_key`. Default: the SDK's credentials chain.
    pub access_key_id: Option<String>,
    /// Secret access key; with `access_key_id`.
    pub secret_access_key: Option<String>,
}

/// Google Cloud connection settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcpConfig {
    /// Cloud Storage endpoint of a compatible server (fake-gcs-server); default Google's.
    pub storage_endpoint: Option<String>,
    /// Pub/Sub endpoint of a compatible server (the emulator); default Google's.
    pub pubsub_endpoint: Option<String>,
    /// Cloud Monitoring endpoint, where Pub/Sub's queue gauges are read; default Google's
    /// (with `anonymous`, none unless set: emulators report no gauges).
    pub monitoring_endpoint: Option<String>,
    /// Project of new buckets and of the Pub/Sub topics and subscriptions.
    pub project: Option<String>,
    /// Send no credentials (emulators); otherwise Application Default Credentials.
    pub anonymous: bool,
    /// The Pub/Sub topic the `gs://` main buckets notify, which the event relay reads;
    /// default `{queues.prefix}gcs-events`.
    pub events_topic: Option<String>,
    /// Time to connect to Cloud Storage, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time Cloud Storage may leave a request without an answer, or a body without a byte, in
    /// milliseconds.
    pub read_timeout_ms: u64,
    /// Attempts of one Cloud Storage request meeting a dropped connection or 408, 429, 5xx
    /// (resumable uploads go on from the bytes the server persisted).
    pub max_attempts: u32,
    /// Backoff before the second attempt, in milliseconds (doubling, full jitter, at most 32 s).
    pub retry_base_ms: u64,
}

impl Default for GcpConfig {
    fn default() -> Self {
        Self {
            storage_endpoint: None,
            pubsub_endpoint: None,
            monitoring_endpoint: None,
            project: None,
            anonymous: false,
            events_topic: None,
            connect_timeout_ms: 10_000,
            read_timeout_ms: 60_000,
            max_attempts: 5,
            retry_base_ms: 500,
        }
    }
}

impl QueuesConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !self
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || self.prefix.len() > 40
        {
            return Err(invalid(
                "queues.prefix",
                "use at most 40 letters, digits, '-' and '_' (SQS and SNS name rules)",
            ));
        }
        Ok(())
    }
}

impl AwsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(invalid(
                "aws.secret_access_key",
                "give both aws.access_key_id and aws.secret_access_key, or neither",
            ));
        }
        http_url("aws.endpoint", self.endpoint.as_ref())
    }
}

impl GcpConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        http_url("gcp.storage_endpoint", self.storage_endpoint.as_ref())?;
        http_url("gcp.pubsub_endpoint", self.pubsub_endpoint.as_ref())?;
        http_url("gcp.monitoring_endpoint", self.monitoring_endpoint.as_ref())?;
        positive(&[
            ("gcp.connect_timeout_ms", self.connect_timeout_ms),
            ("gcp.read_timeout_ms", self.read_timeout_ms),
            ("gcp.max_attempts", u64::from(self.max_attempts)),
        ])
    }
}
