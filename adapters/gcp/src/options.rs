//! How to reach Google Cloud Storage (or a server speaking its JSON API).

/// Connection settings of the GCS adapter.
#[derive(Debug, Clone, Default)]
pub struct GcpOptions {
    /// Endpoint of a compatible server (`http://127.0.0.1:4443` for fake-gcs-server); default
    /// `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    /// Project that new buckets belong to.
    pub project: Option<String>,
    /// Send no credentials (local emulators); otherwise Application Default Credentials.
    pub anonymous: bool,
}

/// Google's own endpoint.
pub const GOOGLE_ENDPOINT: &str = "https://storage.googleapis.com";

impl GcpOptions {
    /// The endpoint requests go to, without a trailing `/`.
    pub fn base(&self) -> String {
        self.endpoint
            .as_deref()
            .unwrap_or(GOOGLE_ENDPOINT)
            .trim_end_matches('/')
            .to_string()
    }
}
