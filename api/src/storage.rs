//! Reading DSS objects from a replica: metadata documents, version listing, tombstone rules.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use dss_core::model::keys::Kind;
use dss_core::model::{BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid};
use dss_core::ports::{BlobError, BlobStore};
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
    create_by(store, key, text, None).await
}

/// As [`create`], recording `creator` with the object.
pub async fn create_by(
    store: &dyn BlobStore,
    key: &str,
    text: String,
    creator: Option<String>,
) -> ApiResult<bool> {
    Ok(dss_core::ports::blob::create_json(store, key, text, creator).await?)
}

/// Writes a document create-only (recording `creator` with it). If the key is taken, answers
/// `Ok(false)` when the stored document means the same (`same`), else `conflict`; `Ok(true)`
/// when it was written now.
pub async fn create_or_match<T: DeserializeOwned>(
    store: &dyn BlobStore,
    key: &str,
    text: String,
    creator: Option<String>,
    same: impl FnOnce(&T) -> bool,
    conflict: impl FnOnce() -> ApiError,
) -> ApiResult<bool> {
    if create_by(store, key, text, creator).await? {
        return Ok(true);
    }
    match read_json::<T>(store, key).await? {
        Some(existing) if same(&existing) => Ok(false),
        _ => Err(conflict()),
    }
}

/// Every key under `kind/uuid.` in order, with the object's ETag.
pub async fn keys_of(
    store: &dyn BlobStore,
    kind: Kind,
    uuid: &ObjectUuid,
) -> ApiResult<Vec<(ObjectKey, String)>> {
    let prefix = ObjectKey::versions_prefix(kind, uuid);
    Ok(store
        .list_all(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| ObjectKey::parse(&o.key).map(|k| (k, o.etag)))
        .collect())
}

/// The newest version of a file.
pub async fn latest_file_version(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
) -> ApiResult<Option<DssVersion>> {
    Ok(keys_of(store, Kind::File, uuid)
        .await?
        .into_iter()
        .filter_map(|(k, _)| match k {
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

/// A resolved bundle version and the ETag of its manifest object.
#[derive(Debug, Clone)]
pub struct ResolvedBundle {
    /// The version.
    pub version: DssVersion,
    /// ETag of `bundles/{uuid}.{version}`.
    pub etag: String,
}

/// Resolves a bundle version with the tombstone rules: a whole-bundle tombstone hides every
/// version; a versioned tombstone hides that version; no version means the newest live one.
pub async fn resolve_bundle(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    version: Option<&DssVersion>,
) -> ApiResult<Option<ResolvedBundle>> {
    let keys = keys_of(store, Kind::Bundle, uuid).await?;
    let mut versions = Vec::new();
    let mut dead = Vec::new();
    for (k, etag) in keys {
        match k {
            ObjectKey::Tombstone(..) => return Ok(None),
            ObjectKey::VersionTombstone(_, _, v) => dead.push(v),
            ObjectKey::Versioned(_, _, v) => versions.push(ResolvedBundle { version: v, etag }),
            ObjectKey::Blob(_) => {}
        }
    }
    let live = |r: &ResolvedBundle| !dead.contains(&r.version);
    Ok(match version {
        Some(v) => versions.into_iter().find(|x| &x.version == v).filter(live),
        None => versions
            .into_iter()
            .filter(live)
            .max_by(|a, b| a.version.cmp(&b.version)),
    })
}

type CacheEntries = lru::LruCache<(String, String), (String, Arc<BundleManifest>)>;

/// Manifests are written create-only, so a parsed manifest stays valid while its object's ETag
/// (seen in the version listing every read does anyway) is unchanged.
pub struct ManifestCache {
    entries: Mutex<CacheEntries>,
    max_files: usize,
}

impl ManifestCache {
    /// Holds up to `entries` manifests of at most `max_files` files each.
    pub fn new(entries: usize, max_files: usize) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(lru::LruCache::new(cap)),
            max_files,
        }
    }

    /// The manifest of a resolved version, from the cache or the store.
    pub async fn get(
        &self,
        store: &dyn BlobStore,
        uuid: &ObjectUuid,
        r: &ResolvedBundle,
    ) -> ApiResult<Option<Arc<BundleManifest>>> {
        let id = (
            store.bucket().to_string(),
            ObjectKey::bundle(uuid, &r.version),
        );
        if let Some((etag, m)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            && *etag == r.etag
        {
            return Ok(Some(m.clone()));
        }
        let Some(m) = read_json::<BundleManifest>(store, &id.1).await? else {
            return Ok(None);
        };
        let m = Arc::new(m);
        if m.files.len() <= self.max_files {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.put(id, (r.etag.clone(), m.clone()));
        }
        Ok(Some(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_config::Durability;
    use dss_core::ports::PutOptions;
    use dss_embedded::{Db, LocalBlobStore};

    fn manifest(creator_uid: i64) -> BundleManifest {
        BundleManifest {
            format: "0.0.1".into(),
            version: DssVersion::parse("2026-01-01T000000.000000Z").unwrap(),
            files: Vec::new(),
            creator_uid,
        }
    }

    #[tokio::test]
    async fn cached_manifests_are_revalidated_by_etag() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db"), Durability::Process).unwrap();
        let clock = dss_core::clock::system();
        let store =
            LocalBlobStore::open(&db, "aws", &dir.path().join("aws"), None, None, clock).unwrap();
        let uuid = ObjectUuid::new_v4();
        let key = ObjectKey::bundle(&uuid, &manifest(1).version);
        let cache = ManifestCache::new(8, 10);
        for creator in [1, 2] {
            let text = manifest(creator).to_json_text();
            store
                .put_bytes(&key, text.into(), PutOptions::default())
                .await
                .unwrap();
            let r = resolve_bundle(&store, &uuid, None).await.unwrap().unwrap();
            assert_eq!(
                cache
                    .get(&store, &uuid, &r)
                    .await
                    .unwrap()
                    .unwrap()
                    .creator_uid,
                creator
            );
            assert_eq!(
                cache
                    .get(&store, &uuid, &r)
                    .await
                    .unwrap()
                    .unwrap()
                    .creator_uid,
                creator
            );
        }
    }
}
