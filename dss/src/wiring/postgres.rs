//! A shared PostgreSQL database (`metadata.url`) in place of the embedded one for the records
//! every host must see: subscriptions, the webhook outbox, collection owners, the events journal
//! and the leases of once-per-deployment work.

use std::sync::Arc;

use dss_postgres::PgMetadata;
use dss_runtime::deployment::Deployment;

/// Puts the metadata adapters on the configured database, when one is.
pub async fn wire(d: &mut Deployment) -> anyhow::Result<()> {
    let config = &d.config.metadata;
    if !config.is_shared() {
        return Ok(());
    }
    // The error names `metadata.url` and never carries the password.
    let db = PgMetadata::connect(config).await?;
    d.subscriptions = Arc::new(db.subscriptions());
    d.deliveries = Arc::new(db.deliveries());
    d.collections = Arc::new(db.collections());
    d.journal = Arc::new(db.journal(d.clock.clone()));
    d.leases = Arc::new(db.leases());
    tracing::info!(?db, "metadata lives in the shared PostgreSQL database");
    Ok(())
}
