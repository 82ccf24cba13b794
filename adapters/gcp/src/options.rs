//! How to reach Google Cloud Storage (or a server speaking its JSON API).

/// Connection settings of the GCS adapter.
#[derive(Debug, Clone, Default)]
pub struct GcpOptions {
    /// Endpoint of a compatible server (`http://127.0.0.1:4443` for fake-gcs-server); default
    /// `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    /// Endpoint of a Pub/Sub-compatible server (`http://127.0.0.1:8085` for the emulator);
    /// default `https://pubsub.googleapis.com`.
    pub pubsub_endpoint: Option<String>,
    /// Endpoint of Cloud Monitoring, which holds Pub/Sub's queue gauges; default
    /// `https://monitoring.googleapis.com` (none for an anonymous emulator unless set).
    pub monitoring_endpoint: Option<String>,
    /// Project of new buckets, and of the Pub/Sub topics and subscriptions.
    pub project: Option<String>,
    /// Send no credentials (local emulators); otherwise Application Default Credentials.
    pub anonymous: bool,
    /// Timeouts and retries of Cloud Storage requests.
    pub requests: crate::RequestPolicy,
}

/// Google's own storage endpoint.
pub const GOOGLE_ENDPOINT: &str = "https://storage.googleapis.com";
/// Google's own Pub/Sub endpoint.
pub const PUBSUB_ENDPOINT: &str = "https://pubsub.googleapis.com";

impl GcpOptions {
    /// The endpoint requests go to, without a trailing `/`.
    pub fn base(&self) -> String {
        self.endpoint
            .as_deref()
            .unwrap_or(GOOGLE_ENDPOINT)
            .trim_end_matches('/')
            .to_string()
    }

    /// The Pub/Sub endpoint, without a trailing `/`.
    pub fn pubsub_base(&self) -> String {
        self.pubsub_endpoint
            .as_deref()
            .unwrap_or(PUBSUB_ENDPOINT)
            .trim_end_matches('/')
            .to_string()
    }
}
