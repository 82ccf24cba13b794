//! Embedded adapters: local-disk buckets, a durable SQLite queue and topic, a search index,
//! the events journal, webhook subscriptions and their delivery outbox, leases. They are the
//! default, so a whole deployment runs on one machine with no cloud.

mod beneath;
pub mod collections;
pub mod db;
pub mod deliveries;
pub mod file_mailer;
mod group_commit;
pub mod journal;
pub mod leases;
pub mod local_blob;
pub mod local_buckets;
mod local_copy;
pub mod queue;
pub mod queue_backend;
pub mod search;
pub mod subscriptions;
#[cfg(test)]
mod transfer_tests;

pub use collections::EmbeddedCollections;
pub use db::{Db, DbError};
pub use deliveries::EmbeddedDeliveries;
pub use file_mailer::FileMailer;
pub use journal::EmbeddedJournal;
pub use leases::EmbeddedLeases;
pub use local_blob::LocalBlobStore;
pub use local_buckets::LocalBuckets;
pub use queue::{EmbeddedQueue, EmbeddedTopic, QueueConfig};
pub use queue_backend::EmbeddedQueues;
pub use search::EmbeddedSearch;
pub use subscriptions::EmbeddedSubscriptions;
