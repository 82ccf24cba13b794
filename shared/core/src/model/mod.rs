//! Domain model: identifiers, version strings, the bucket key layout and the stored JSON documents.

pub mod documents;
pub mod ids;
pub mod keys;
pub mod metadata;
pub mod pyjson;
pub mod version;

#[cfg(test)]
mod properties;

pub use documents::{BundleFileEntry, BundleManifest, FileMetadata};
pub use ids::{Fqid, ObjectUuid};
pub use keys::ObjectKey;
pub use version::DssVersion;
