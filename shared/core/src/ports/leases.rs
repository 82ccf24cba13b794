//! The `Leases` port: named leases in the deployment's shared store, so that work meant to run
//! once per deployment (periodic passes) runs on one process at a time, whichever hosts run it.
//! A holder renews its lease before it lapses; a dead holder's lease lapses and another takes it.

use std::time::Duration;

use async_trait::async_trait;

/// Errors of a lease store.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The backend failed; may succeed on retry.
    #[error("lease store backend error: {0}")]
    Backend(String),
}

/// Named leases with a holder and an expiry, judged by the store's own clock.
#[async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// Takes lease `name` for `holder` for `ttl` if it is free or lapsed, or renews it if
    /// `holder` holds it; whether `holder` holds it now.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, LeaseError>;

    /// Gives lease `name` up if `holder` holds it, so that another may take it at once.
    async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError>;
}
