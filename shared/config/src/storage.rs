//! `[embedded]` and `[staging]`: the embedded database's durability and the staging directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Survives a crash of the process (kill -9): SQLite `synchronous=NORMAL`.
    #[default]
    Process,
    /// Survives power loss too: `synchronous=FULL` and directory fsyncs after renames.
    Power,
}

/// Embedded database settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// `process` (survives kill -9) or `power` (survives power loss; slower).
    pub durability: Durability,
}

/// Staging area settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StagingConfig {
    /// Directory under which `file://` source URLs must lie (default `{data_dir}/staging`).
    pub dir: Option<PathBuf>,
}
