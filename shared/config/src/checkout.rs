//! `[checkout]`: bundle checkouts, their copies' lifetimes and the destinations callers may name.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{invalid, positive};

/// Bundle checkout settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckoutConfig {
    /// Checkout jobs run at once.
    pub jobs: usize,
    /// Files of one job copied at once.
    pub concurrency: usize,
    /// How long a job's queue message stays hidden while the daemon works on it, in seconds
    /// (extended while it runs); a daemon that died is taken over after this.
    pub visibility_secs: u64,
    /// Attempts of a job that keeps failing transiently before it is marked FAILED.
    pub max_attempts: u32,
    /// How often a running job writes its progress into its status, in milliseconds.
    pub progress_every_ms: u64,
    /// Checkout copies in the replicas' checkout buckets are deleted this long after they were
    /// made, in seconds (except cached files); a copy is handed out only while it outlives the
    /// download URL.
    pub blob_ttl_secs: u64,
    /// Copies older than this are refreshed when handed out, in seconds.
    pub blob_public_ttl_secs: u64,
    /// Files whose copies are kept, and made as soon as the file is stored.
    pub cache_criteria: Vec<CacheRule>,
    /// How often expired copies are deleted, in seconds.
    pub sweep_every_secs: u64,
    /// Copy speed assumed for `Retry-After` before a copy has reported progress, in bytes/s.
    pub estimate_bytes_per_sec: u64,
    /// Buckets besides the replicas' checkout buckets that authenticated callers may name as
    /// a checkout `destination` (none by default: the service's credentials may write buckets
    /// that callers must not reach through it).
    pub allowed_destinations: Vec<String>,
}

impl CheckoutConfig {
    /// Whether copies of a file of this type and size are kept (and pre-made).
    pub fn cacheable(&self, content_type: &str, size: u64) -> bool {
        self.cache_criteria
            .iter()
            .any(|r| content_type.starts_with(&r.content_type) && size <= r.max_size)
    }
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        Self {
            jobs: 4,
            concurrency: 8,
            visibility_secs: 30,
            max_attempts: 8,
            progress_every_ms: 1000,
            blob_ttl_secs: 14 * 24 * 3600,
            blob_public_ttl_secs: 7 * 24 * 3600,
            cache_criteria: vec![CacheRule {
                content_type: "application/json".into(),
                max_size: 12_314,
            }],
            sweep_every_secs: 3600,
            estimate_bytes_per_sec: 100 * 1024 * 1024,
            allowed_destinations: Vec::new(),
        }
    }
}

/// Files whose checkout copies are kept (not expired), as the original's
/// `CHECKOUT_CACHE_CRITERIA`: content type starting with `type`, size at most `max_size`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Content-type prefix.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Largest size in bytes.
    pub max_size: u64,
}

impl CheckoutConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.blob_public_ttl_secs == 0
            || self.blob_ttl_secs.saturating_sub(self.blob_public_ttl_secs)
                < self.blob_public_ttl_secs
        {
            return Err(invalid(
                "checkout.blob_public_ttl_secs",
                "must be above 0 and at most half of checkout.blob_ttl_secs (a refreshed copy must outlive the copies handed out before)",
            ));
        }
        positive(&[
            ("checkout.jobs", self.jobs as u64),
            ("checkout.concurrency", self.concurrency as u64),
            ("checkout.visibility_secs", self.visibility_secs),
            ("checkout.max_attempts", u64::from(self.max_attempts)),
            ("checkout.progress_every_ms", self.progress_every_ms),
        ])
    }
}
