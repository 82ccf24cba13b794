//! Reference order: what must exist in the destination before an object may be copied there.
//!
//! * a file's metadata waits for its blob;
//! * a bundle manifest waits for the metadata of every file it lists;
//! * a collection waits for every file, bundle and collection it contains;
//! * blobs and tombstones wait for nothing.
//!
//! The references are read from the **source** object and looked up in the **destination**
//! (the original looked the bundle's files up in the source by mistake, so bundles could arrive
//! before their files).

use std::sync::Arc;

use dss_core::model::keys::Kind;
use dss_core::model::{BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid};
use dss_core::ports::{BlobError, BlobStore};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

/// Metadata documents larger than this are not read (the original's limit).
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Lookups in the destination run this many at a time.
const LOOKUPS_AT_ONCE: usize = 16;

/// Why the references of an object could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// The source document is not what its key says it is; copying cannot help.
    #[error("{key} is not a valid document: {why}")]
    Invalid {
        /// The document's key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The source object went away.
    #[error("{0} no longer exists in the source")]
    Gone(String),
    /// Reading failed; may succeed later.
    #[error(transparent)]
    Store(BlobError),
}

/// A key that must exist in the destination, with the size its object must have when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The key.
    pub key: String,
    /// Its object's size, when the referrer states it.
    pub size: Option<u64>,
}

/// The references of the object `key` (of `size` bytes) in `src`.
pub async fn references(
    src: &Arc<dyn BlobStore>,
    key: &ObjectKey,
    size: u64,
) -> Result<Vec<Reference>, DepsError> {
    let text = key.to_string();
    let read = || async {
        if size > MAX_DOCUMENT_BYTES {
            return Err(DepsError::Invalid {
                key: text.clone(),
                why: format!("{size} bytes is more than a document may have"),
            });
        }
        match src.get_bytes(&text).await {
            Ok(b) => Ok(b),
            Err(BlobError::NotFound(_)) => Err(DepsError::Gone(text.clone())),
            Err(e) => Err(DepsError::Store(e)),
        }
    };
    let invalid = |why: String| DepsError::Invalid {
        key: text.clone(),
        why,
    };
    match key {
        ObjectKey::Blob(_) | ObjectKey::VersionTombstone(..) | ObjectKey::Tombstone(..) => {
            Ok(Vec::new())
        }
        ObjectKey::Versioned(Kind::File, ..) => {
            let meta: FileMetadata =
                serde_json::from_slice(&read().await?).map_err(|e| invalid(e.to_string()))?;
            Ok(vec![Reference {
                key: ObjectKey::blob(&meta.checksums()),
                size: Some(meta.size),
            }])
        }
        ObjectKey::Versioned(Kind::Bundle, ..) => {
            let manifest: BundleManifest =
                serde_json::from_slice(&read().await?).map_err(|e| invalid(e.to_string()))?;
            Ok(manifest
                .files
                .iter()
                .map(|f| Reference {
                    key: ObjectKey::file(&f.uuid, &f.version),
                    size: None,
                })
                .collect())
        }
        ObjectKey::Versioned(Kind::Collection, ..) => {
            let doc: Value =
                serde_json::from_slice(&read().await?).map_err(|e| invalid(e.to_string()))?;
            let items = doc
                .get("contents")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("no 'contents' list".into()))?;
            items
                .iter()
                .map(|i| collection_item(i).map_err(invalid))
                .collect()
        }
    }
}

/// The key an item of a collection refers to: a file, bundle or collection, or (any other
/// type) a fragment of a file's JSON, which needs the file.
fn collection_item(item: &Value) -> Result<Reference, String> {
    let field = |name: &str| {
        item.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("an item without '{name}'"))
    };
    let uuid = ObjectUuid::parse(field("uuid")?).map_err(|e| e.to_string())?;
    let version = DssVersion::parse(field("version")?).map_err(|e| e.to_string())?;
    let key = match field("type")? {
        "bundle" => ObjectKey::bundle(&uuid, &version),
        "collection" => ObjectKey::collection(&uuid, &version),
        _ => ObjectKey::file(&uuid, &version),
    };
    Ok(Reference { key, size: None })
}

/// The references missing from `dst` (at most `LOOKUPS_AT_ONCE` lookups at a time).
pub async fn missing(
    dst: &Arc<dyn BlobStore>,
    refs: Vec<Reference>,
) -> Result<Vec<String>, BlobError> {
    let found: Vec<Option<String>> = futures::stream::iter(refs)
        .map(|r| async move {
            let there = dst.head(&r.key).await?;
            let ok = there.is_some_and(|m| r.size.is_none_or(|s| s == m.size));
            Ok::<_, BlobError>((!ok).then_some(r.key))
        })
        .buffered(LOOKUPS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}
