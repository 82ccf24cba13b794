//! `[sync]`: replication between replicas and the reconciler.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::positive;

/// Replication settings (the sync daemon and its reconciler).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Objects copied at once (copies of small objects wait mostly on the disk, so many at
    /// once pay off even on two cores).
    pub concurrency: usize,
    /// Receives of one message before it is dead-lettered (an object waiting for what it
    /// refers to is retried with growing delays, capped at `retry_max_secs`).
    pub max_attempts: u32,
    /// Longest delay between two tries of an object that is not ready to copy, in seconds.
    pub retry_max_secs: u64,
    /// How long a message stays hidden while a copy runs, in seconds (extended while it
    /// runs); the copies of a sync process that died are taken over after this.
    pub visibility_secs: u64,
    /// How often the reconciler compares every replica, in seconds; 0 turns the scheduled
    /// run off (run it from one sync process only; `dss sync reconcile` runs it on demand).
    pub reconcile_every_secs: u64,
    /// Keys listed per page by the reconciler.
    pub reconcile_page: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            max_attempts: 40,
            retry_max_secs: 300,
            visibility_secs: 60,
            reconcile_every_secs: 6 * 3600,
            reconcile_page: 1000,
        }
    }
}

impl SyncConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("sync.concurrency", self.concurrency as u64),
            ("sync.max_attempts", u64::from(self.max_attempts)),
            ("sync.retry_max_secs", self.retry_max_secs),
            ("sync.visibility_secs", self.visibility_secs),
            ("sync.reconcile_page", self.reconcile_page as u64),
        ])
    }
}
