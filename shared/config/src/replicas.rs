//! `[replicas.{name}]`: the named replicas, where their buckets are and how downloads are served.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::invalid;

/// One replica.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Backend URL of the main bucket: `file:///path` (embedded); cloud schemes come with their adapters.
    pub url: String,
    /// Name of the replica's checkout bucket, a bucket of the same account as the main bucket
    /// (for `file://` replicas, a sibling directory); default `{replica}-checkout`.
    #[serde(default)]
    pub checkout_bucket: Option<String>,
    /// How clients get a file's bytes: `direct` (a URL of the stored blob, at once) or
    /// `checkout` (from a copy in the checkout bucket, made on first demand, as the original).
    #[serde(default)]
    pub download: DownloadMode,
}

impl ReplicaConfig {
    /// The checkout bucket's name for the replica called `replica`.
    pub fn checkout_bucket_name(&self, replica: &str) -> String {
        self.checkout_bucket
            .clone()
            .unwrap_or_else(|| format!("{replica}-checkout"))
    }
}

/// How downloads of a replica are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadMode {
    /// URLs point at the replica's own objects: answered at once.
    #[default]
    Direct,
    /// URLs point at copies in the checkout bucket; a missing copy is made first (301 with
    /// `Retry-After` until it is there). For main buckets that must not be exposed.
    Checkout,
}

/// Where a replica's main bucket is, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaLocation {
    /// A directory on this machine (`file://`).
    Local(PathBuf),
    /// An S3 bucket (`s3://bucket`).
    S3(String),
    /// A GCS bucket (`gs://bucket`).
    Gcs(String),
}

/// Where a replica URL points: `file:///path` (or `file://./relative`) or `s3://bucket`.
pub fn replica_location(url: &str) -> Result<ReplicaLocation, String> {
    if let Some(p) = url.strip_prefix("file://") {
        return match p.starts_with('/') || p.starts_with('.') {
            true => Ok(ReplicaLocation::Local(PathBuf::from(p))),
            false => Err(format!(
                "'{url}' must be file:///absolute/path or file://./relative/path"
            )),
        };
    }
    for (scheme, make) in [
        (
            "s3://",
            ReplicaLocation::S3 as fn(String) -> ReplicaLocation,
        ),
        ("gs://", ReplicaLocation::Gcs),
    ] {
        if let Some(b) = url.strip_prefix(scheme) {
            let b = b.strip_suffix('/').unwrap_or(b);
            return match dss_core::ports::buckets::valid_bucket_name(b)
                && (3..=63).contains(&b.len())
            {
                true => Ok(make(b.to_string())),
                false => Err(format!(
                    "'{url}' must be {scheme}bucket, with a bucket name of 3-63 letters, digits, '.' and '-'"
                )),
            };
        }
    }
    Err(format!(
        "'{url}' has an unsupported scheme; use file://, s3:// or gs://"
    ))
}

impl ReplicaConfig {
    /// Checks the replica called `name` and returns where its bucket is.
    pub(crate) fn validate(&self, name: &str) -> Result<ReplicaLocation, ConfigError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                format!("replicas.{name}"),
                "replica names use letters, digits, '-' and '_'",
            ));
        }
        let location =
            replica_location(&self.url).map_err(|m| invalid(format!("replicas.{name}.url"), m))?;
        if let Some(b) = &self.checkout_bucket
            && !dss_core::ports::buckets::valid_bucket_name(b)
        {
            return Err(invalid(
                format!("replicas.{name}.checkout_bucket"),
                format!("'{b}' is not a bucket name (letters, digits, '.', '-', '_')"),
            ));
        }
        Ok(location)
    }
}
