//! `[index]`: what one bundle may put into its search documents, and the index daemon's parallelism.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::positive;

/// Index daemon settings: what one bundle may put into its documents, and parallelism.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// JSON files larger than this (bytes) are left out of a bundle's documents.
    pub max_json_file_bytes: u64,
    /// Bytes of JSON read per bundle at most; further files are left out.
    pub max_json_bundle_bytes: u64,
    /// JSON files read per bundle at most.
    pub max_json_files: usize,
    /// Files of one bundle read at once.
    pub read_concurrency: usize,
    /// Events handled at once.
    pub concurrency: usize,
    /// How long a received event stays hidden from other index processes, in seconds
    /// (extended while it is handled); after a crash it is handled again this much later.
    pub visibility_secs: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            max_json_file_bytes: 16 * 1024 * 1024,
            max_json_bundle_bytes: 256 * 1024 * 1024,
            max_json_files: 10_000,
            read_concurrency: 8,
            concurrency: 8,
            visibility_secs: 60,
        }
    }
}

impl IndexConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("index.max_json_file_bytes", self.max_json_file_bytes),
            ("index.max_json_bundle_bytes", self.max_json_bundle_bytes),
            ("index.max_json_files", self.max_json_files as u64),
            ("index.read_concurrency", self.read_concurrency as u64),
            ("index.concurrency", self.concurrency as u64),
            ("index.visibility_secs", self.visibility_secs),
        ])
    }
}
