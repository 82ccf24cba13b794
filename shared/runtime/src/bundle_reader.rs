//! Reading a bundle version and its JSON metadata files from a replica (the index and notify
//! daemons build their documents from them).

use std::sync::Arc;

use dss_config::IndexConfig;
use dss_core::model::BundleManifest;
use dss_core::model::keys::Kind;
use dss_core::model::metadata::MetadataFile;
use dss_core::model::{DssVersion, ObjectKey, ObjectUuid};
use dss_core::ports::listing;
use dss_core::ports::{BlobError, BlobStore};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::Value;

/// Bounds on what one bundle may contribute to its documents.
#[derive(Debug, Clone)]
pub struct Limits {
    /// JSON files larger than this are not read (logged and left out).
    pub max_file_bytes: u64,
    /// Once this many bytes of JSON are read, further files are left out.
    pub max_total_bytes: u64,
    /// At most this many JSON files of one bundle are read; the rest are left out.
    pub max_files: usize,
    /// Files read at once.
    pub concurrency: usize,
}

impl From<&IndexConfig> for Limits {
    fn from(c: &IndexConfig) -> Self {
        Self {
            max_file_bytes: c.max_json_file_bytes,
            max_total_bytes: c.max_json_bundle_bytes,
            max_files: c.max_json_files,
            concurrency: c.read_concurrency,
        }
    }
}

/// Why a bundle could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object is not (or no longer) there.
    #[error("{0} does not exist")]
    Missing(String),
    /// A stored document is not what it should be; retrying cannot help.
    #[error("{0}")]
    Corrupt(String),
    /// A member blob is not there yet (replication lag) or storage failed: retry.
    #[error("{0}")]
    Retry(String),
}

/// Reads and parses a JSON object stored under `key`.
pub async fn read_json(store: &Arc<dyn BlobStore>, key: &str) -> Result<Value, LoadError> {
    let bytes = match store.get_bytes(key).await {
        Ok(b) => b,
        Err(BlobError::NotFound(_)) => return Err(LoadError::Missing(key.to_string())),
        Err(e) => return Err(LoadError::Retry(format!("reading {key}: {e}"))),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| LoadError::Corrupt(format!("{key} is not JSON: {e}")))
}

/// A bundle manifest as stored (what documents embed) and typed (what readers walk).
pub struct Manifest {
    /// The stored JSON.
    pub stored: Value,
    /// The same, typed.
    pub typed: BundleManifest,
}

/// Reads the bundle manifest stored under `key`: parsed once, typed from the parsed value.
pub async fn read_manifest(store: &Arc<dyn BlobStore>, key: &str) -> Result<Manifest, LoadError> {
    let stored = read_json(store, key).await?;
    let typed = BundleManifest::deserialize(&stored)
        .map_err(|e| LoadError::Corrupt(format!("{key} is not a bundle manifest: {e}")))?;
    Ok(Manifest { stored, typed })
}

/// Files left out of a bundle's documents, reported in one log line per bundle.
#[derive(Default)]
struct LeftOut {
    count: usize,
    examples: Vec<String>,
}

impl LeftOut {
    fn add(&mut self, name: &str, why: &str) {
        self.count += 1;
        if self.examples.len() < 5 {
            self.examples.push(format!("{name}: {why}"));
        }
    }

    fn report(&self, bundle: &str) {
        if self.count > 0 {
            tracing::warn!(bundle, left_out = self.count, examples = ?self.examples,
                "some files of the bundle are not in its documents");
        }
    }
}

/// The bundle's files whose content type starts with `application/json`, parsed, in manifest
/// order. Files that are too large, too many or do not parse are left out (one warning per
/// bundle); a missing blob is an error to retry (it may still be replicating).
pub async fn json_files(
    store: &Arc<dyn BlobStore>,
    bundle: &str,
    manifest: &BundleManifest,
    limits: &Limits,
) -> Result<Vec<MetadataFile>, LoadError> {
    let mut budget = limits.max_total_bytes;
    let mut left_out = LeftOut::default();
    let mut wanted = Vec::new();
    for e in &manifest.files {
        let name = e.name.clone();
        if !e.content_type.starts_with("application/json") {
            if e.indexed {
                left_out.add(
                    &name,
                    &format!("marked indexed but content type is {}", e.content_type),
                );
            }
            continue;
        }
        let size = e.size;
        if size > limits.max_file_bytes || size > budget || wanted.len() >= limits.max_files {
            left_out.add(&name, "over the bundle's size or file-count limit");
            continue;
        }
        budget -= size;
        wanted.push((name, e.indexed, ObjectKey::blob(&e.checksums())));
    }
    let reads = futures::stream::iter(wanted.into_iter().map(|(name, indexed, key)| {
        let store = store.clone();
        async move {
            match store.get_bytes(&key).await {
                Ok(b) => Ok((name, indexed, b)),
                Err(BlobError::NotFound(_)) => Err(LoadError::Retry(format!(
                    "blob of {name} ({key}) is not there yet"
                ))),
                Err(e) => Err(LoadError::Retry(format!("reading {key}: {e}"))),
            }
        }
    }))
    .buffered(limits.concurrency.max(1));
    let read: Vec<Result<_, LoadError>> = reads.collect().await;
    let mut out = Vec::new();
    for r in read {
        let (name, indexed, bytes) = r?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(content) => out.push(MetadataFile {
                name,
                indexed,
                content,
            }),
            Err(e) => left_out.add(&name, &format!("not JSON ({e})")),
        }
    }
    left_out.report(bundle);
    Ok(out)
}

/// A version of a bundle present in a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleVersion {
    /// The version.
    pub version: DssVersion,
    /// Whether it has its own tombstone (`bundles/{uuid}.{version}.dead`).
    pub tombstoned: bool,
}

/// Every version of a bundle present in the replica, in key order.
pub async fn versions(
    store: &Arc<dyn BlobStore>,
    uuid: &ObjectUuid,
) -> Result<Vec<BundleVersion>, LoadError> {
    let prefix = format!("{}{uuid}.", Kind::Bundle.prefix());
    let mut out: Vec<BundleVersion> = Vec::new();
    let mut dead = Vec::new();
    let mut listed = std::pin::pin!(listing::objects(&**store, &prefix, None, 1000));
    while let Some(o) = listed
        .try_next()
        .await
        .map_err(|e| LoadError::Retry(format!("listing {prefix}: {e}")))?
    {
        match ObjectKey::parse(&o.key) {
            Some(ObjectKey::Versioned(Kind::Bundle, _, version)) => out.push(BundleVersion {
                version,
                tombstoned: false,
            }),
            Some(ObjectKey::VersionTombstone(Kind::Bundle, _, v)) => dead.push(v),
            _ => {}
        }
    }
    for v in &mut out {
        v.tombstoned = dead.contains(&v.version);
    }
    Ok(out)
}
