//! `[metadata]`: where the deployment's shared records live — subscriptions, the webhook outbox,
//! the collection owner index and the events journal: the embedded database in `data_dir`, or a
//! PostgreSQL database every host of the deployment shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{invalid, positive};

/// The metadata backend.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// `postgres://user:password@host:port/database?sslmode=…` of a shared PostgreSQL database
    /// (parts left out come from the usual `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE` and `PGSSLMODE` variables); unset means the embedded database.
    pub url: Option<String>,
    /// A PEM file of CA certificates trusted for the server's TLS certificate, besides the
    /// platform's roots (e.g. the RDS or Cloud SQL CA bundle).
    pub ca_file: Option<PathBuf>,
    /// Connections each process keeps open at most.
    pub pool_size: u64,
    /// How long connecting (and waiting for a free connection) may take.
    pub connect_timeout_ms: u64,
    /// How long one statement may run before the server cancels it.
    pub statement_timeout_ms: u64,
    /// How long a lease of once-per-deployment work (a periodic pass) lasts unless renewed: a
    /// dead holder's work is taken over within this time and a third of it.
    pub lease_secs: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            pool_size: 16,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            lease_secs: 30,
        }
    }
}

impl MetadataConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("metadata.pool_size", self.pool_size),
            ("metadata.connect_timeout_ms", self.connect_timeout_ms),
            ("metadata.statement_timeout_ms", self.statement_timeout_ms),
            ("metadata.lease_secs", self.lease_secs),
        ])?;
        if let Some(u) = &self.url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return Err(invalid(
                "metadata.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        if self.ca_file.is_some() && self.url.is_none() {
            return Err(invalid(
                "metadata.ca_file",
                "is for the TLS connection to metadata.url, which is not set",
            ));
        }
        Ok(())
    }

    /// Whether the records live in a shared database rather than in `data_dir`.
    pub fn is_shared(&self) -> bool {
        self.url.is_some()
    }
}
