//! Reading DSS objects from a replica: metadata documents, version listing, tombstone rules.

use dss_shared::model::keys::Kind;
use dss_shared::model::{BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid};
use dss_shared::ports::{BlobError, BlobStore, PutMode, PutOptions};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// Reads and parses a JSON document; `None` when absent.
pub async fn read_json<T: DeserializeOwned>(
    store: &dyn BlobStore,
    key: &str,
) -> ApiResult<Option<T>> {
    match store.get_bytes(key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| ApiError::internal(&format!("corrupt document {key}"), e)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a document only if the key is free; returns `false` if something is already there.
pub async fn create(store: &dyn BlobStore, key: &str, text: String) -> ApiResult<bool> {
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_bytes(key, text.into(), opts).await {
        Ok(_) => Ok(true),
        Err(BlobError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Every key under `kind/uuid.` in order.
pub async fn keys_of(
    store: &dyn BlobStore,
    kind: Kind,
    uuid: &ObjectUuid,
) -> ApiResult<Vec<ObjectKey>> {
    let prefix = ObjectKey::versions_prefix(kind, uuid);
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(&prefix, after.as_deref(), 1000).await?;
        out.extend(page.objects.iter().filter_map(|o| ObjectKey::parse(&o.key)));
        match page.next_start_after {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// The newest version of a file.
pub async fn latest_file_version(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
) -> ApiResult<Option<DssVersion>> {
    Ok(keys_of(store, Kind::File, uuid)
        .await?
        .into_iter()
        .filter_map(|k| match k {
            ObjectKey::Versioned(_, _, v) => Some(v),
            _ => None,
        })
        .max())
}

/// Loads a file's metadata (latest version when `version` is `None`).
pub async fn file_metadata(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    version: Option<&DssVersion>,
) -> ApiResult<Option<FileMetadata>> {
    let version = match version {
        Some(v) => v.clone(),
        None => match latest_file_version(store, uuid).await? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    read_json(store, &ObjectKey::file(uuid, &version)).await
}

/// Resolves a bundle version with the tombstone rules: a whole-bundle tombstone hides every
/// version; a versioned tombstone hides that version; no version means the newest live one.
pub async fn resolve_bundle(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    version: Option<&DssVersion>,
) -> ApiResult<Option<DssVersion>> {
    let keys = keys_of(store, Kind::Bundle, uuid).await?;
    let mut versions = Vec::new();
    let mut dead = Vec::new();
    for k in keys {
        match k {
            ObjectKey::Tombstone(..) => return Ok(None),
            ObjectKey::VersionTombstone(_, _, v) => dead.push(v),
            ObjectKey::Versioned(_, _, v) => versions.push(v),
            ObjectKey::Blob(_) => {}
        }
    }
    let live = |v: &DssVersion| !dead.contains(v);
    Ok(match version {
        Some(v) => versions
            .iter()
            .find(|x| *x == v)
            .filter(|x| live(x))
            .cloned(),
        None => versions.into_iter().filter(|v| live(v)).max(),
    })
}

/// Loads a manifest at an already resolved version.
pub async fn manifest(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    version: &DssVersion,
) -> ApiResult<Option<BundleManifest>> {
    read_json(store, &ObjectKey::bundle(uuid, version)).await
}
