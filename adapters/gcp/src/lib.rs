//! Adapters for Google Cloud and servers speaking its protocols: `BlobStore` on GCS
//! ([`GcsBlobStore`]) over the JSON API; `Queue`, `Topic` and a deployment's queue backend on
//! Pub/Sub ([`PubSubQueue`], [`PubSubTopic`], [`PubSubQueues`]) over gRPC with `gcloud-pubsub`.
//!
//! Why not a storage SDK: `object_store` uploads through the XML API and the official
//! `google-cloud-storage` runs its control plane (listing, deleting, rewriting) over the v2 gRPC
//! API; the GCS emulator that runs here (fake-gcs-server) speaks neither, so neither could be
//! tested against a real server. The JSON API is small; credentials and signing (the generic,
//! security-sensitive part) come from the official `google-cloud-auth`.

mod auth;
pub mod gcs;
mod options;
pub mod pubsub;
mod retry;

pub use gcs::{GcsBlobStore, GcsBuckets};
pub use options::GcpOptions;
pub use pubsub::{PubSub, PubSubQueue, PubSubQueues, PubSubTopic};
pub use retry::RequestPolicy;
