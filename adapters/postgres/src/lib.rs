//! Metadata adapters on a shared PostgreSQL database, so that every host of a deployment sees
//! the same subscriptions, webhook outbox, collection owners, events journal and leases.
//!
//! [`PgMetadata::connect`] opens a connection pool (TLS with rustls when the server offers or
//! the URL requires it), applies the schema migrations this binary knows under an advisory lock
//! and refuses a schema newer than them; the adapters share its pool.

mod collections;
mod connect;
mod deliveries;
mod error;
mod journal;
mod leases;
mod migrate;
mod pool;
mod subscriptions;

pub use collections::PgCollections;
pub use connect::PgMetadata;
pub use deliveries::PgDeliveries;
pub use error::PgError;
pub use journal::PgJournal;
pub use leases::PgLeases;
pub use subscriptions::PgSubscriptions;
