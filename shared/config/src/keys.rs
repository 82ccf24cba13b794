//! `[keys]`: where the key material lives — the URL-signing secret and the local token issuer's
//! key. Every process of a deployment must read the same keys: on many hosts, a directory they
//! all share (a mounted secret), never each host's own data directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Key material.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The directory holding `url-signing.key` and `local-issuer.pk8` (created there on first
    /// use when absent); unset means `{data_dir}/keys`.
    pub dir: Option<PathBuf>,
}

impl KeysConfig {
    /// The key directory of a deployment whose data directory is `data_dir`.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("keys"))
    }

    /// The URL-signing secret's file.
    pub fn url_signing(&self, data_dir: &Path) -> PathBuf {
        self.dir_in(data_dir).join("url-signing.key")
    }
}
