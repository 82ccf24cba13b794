//! `/v1/bundles/{uuid}`: PUT (create a version), GET (manifest, paged), PATCH (derive a version),
//! DELETE (tombstone).

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dss_core::model::documents::valid_file_name;
use dss_core::model::documents::{BUNDLE_FORMAT, bundle_tombstone};
use dss_core::model::keys::Kind;
use dss_core::model::{
    BundleFileEntry, BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid, pyjson,
};
use dss_core::ports::BlobStore;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::copies;
use crate::error::{ApiError, ApiResult};
use crate::files::require_fields;
use crate::paging;
use crate::params::{parse_uuid, parse_version};
use crate::state::Shared;
use crate::storage;
use dss_config::DownloadMode;

const NO_BUNDLE: &str = "Cannot find bundle!";
/// Parallel file-metadata reads while building a manifest.
const LOOKUP_CONCURRENCY: usize = 64;

/// A requested bundle member.
#[derive(Debug, Clone)]
struct FileRef {
    uuid: ObjectUuid,
    version: DssVersion,
    name: String,
    indexed: bool,
}

fn parse_file_ref(v: &Value, field: &str) -> ApiResult<FileRef> {
    let m = v.as_object().ok_or_else(|| {
        ApiError::illegal_arguments(format!("{v} is not of type 'object' in {field}"))
    })?;
    require_fields(m, &["uuid", "version", "name", "indexed"])?;
    let s = |k: &str| {
        m[k].as_str()
            .ok_or_else(|| ApiError::illegal_arguments(format!("{} is not of type 'string'", m[k])))
    };
    let uuid = parse_uuid(s("uuid")?)?;
    let version = parse_version(s("version")?)?;
    let name = s("name")?.to_string();
    if !valid_file_name(&name) {
        return Err(ApiError::illegal_arguments(format!(
            "{name:?} is not a valid file name"
        )));
    }
    let indexed = m["indexed"].as_bool().ok_or_else(|| {
        ApiError::illegal_arguments(format!("{} is not of type 'boolean'", m["indexed"]))
    })?;
    Ok(FileRef {
        uuid,
        version,
        name,
        indexed,
    })
}

/// The body of `PUT /v1/bundles/{uuid}`.
#[derive(Debug, serde::Deserialize)]
struct PutBundleBody {
    files: Option<Vec<FileRefBody>>,
    creator_uid: Option<i64>,
}

/// A member as a PUT body names it.
#[derive(Debug, serde::Deserialize)]
struct FileRefBody {
    uuid: Option<String>,
    version: Option<String>,
    name: Option<String>,
    indexed: Option<bool>,
}

impl FileRefBody {
    fn checked(self) -> ApiResult<FileRef> {
        let uuid = parse_uuid(&self.uuid.ok_or_else(|| required("uuid"))?)?;
        let version = parse_version(&self.version.ok_or_else(|| required("version"))?)?;
        let name = self.name.ok_or_else(|| required("name"))?;
        let indexed = self.indexed.ok_or_else(|| required("indexed"))?;
        if !valid_file_name(&name) {
            return Err(ApiError::illegal_arguments(format!(
                "{name:?} is not a valid file name"
            )));
        }
        Ok(FileRef {
            uuid,
            version,
            name,
            indexed,
        })
    }
}

fn required(key: &str) -> ApiError {
    ApiError::illegal_arguments(format!("'{key}' is a required property"))
}

fn file_refs(m: &Map<String, Value>, field: &str, max: Option<usize>) -> ApiResult<Vec<FileRef>> {
    let Some(v) = m.get(field) else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::illegal_arguments(format!("{field} is not of type 'array'")))?;
    if let Some(max) = max.filter(|max| items.len() > *max) {
        return Err(ApiError::illegal_arguments(format!(
            "{field} is too long (at most {max} items)"
        )));
    }
    items.iter().map(|i| parse_file_ref(i, field)).collect()
}

/// Reads the metadata of every referenced file (in parallel, order kept), waiting up to the
/// configured time for files that are not there yet.
async fn resolve_files(
    state: &Shared,
    store: &dyn BlobStore,
    refs: &[FileRef],
) -> ApiResult<Vec<BundleFileEntry>> {
    let deadline = tokio::time::Instant::now() + state.file_wait;
    let mut found: Vec<Option<FileMetadata>> = vec![None; refs.len()];
    let mut pending: Vec<usize> = (0..refs.len()).collect();
    loop {
        let results: Vec<(usize, ApiResult<Option<FileMetadata>>)> =
            futures::stream::iter(pending.iter().copied())
                .map(|i| async move {
                    (
                        i,
                        storage::read_json::<FileMetadata>(
                            store,
                            &ObjectKey::file(&refs[i].uuid, &refs[i].version),
                        )
                        .await,
                    )
                })
                .buffer_unordered(LOOKUP_CONCURRENCY)
                .collect()
                .await;
        let mut still = Vec::new();
        for (i, r) in results {
            match r? {
                Some(m) => found[i] = Some(m),
                None => still.push(i),
            }
        }
        if still.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            still.sort_unstable();
            let r = &refs[still[0]];
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "file_missing",
                format!("Could not find file {}/{}.", r.uuid, r.version),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        pending = still;
    }
    Ok(refs
        .iter()
        .zip(found)
        .filter_map(|(r, m)| {
            m.map(|m| BundleFileEntry::from_metadata(r.name.clone(), r.uuid.clone(), r.indexed, &m))
        })
        .collect())
}

/// 400 `duplicate_filename` if a name repeats.
fn check_duplicates<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> ApiResult<()> {
    let mut seen = HashSet::with_capacity(names.len());
    for name in names {
        if !seen.insert(name) {
            let title = format!("Duplicate file name in bundle: {name}");
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "duplicate_filename",
                title,
            ));
        }
    }
    Ok(())
}

/// Who a bundle belongs to: the creator recorded with a version of it.
enum Owner {
    /// No version yet.
    New,
    /// The e-mail of the caller who created it.
    By(String),
    /// Versions written before creators were recorded.
    Unknown,
}

/// The owner of bundle `uuid` by the creator recorded with `version`, or with its newest
/// version when `None`.
async fn owner(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    version: Option<&DssVersion>,
) -> ApiResult<Owner> {
    let keys = storage::keys_of(store, Kind::Bundle, uuid).await?;
    let newest = keys
        .iter()
        .filter_map(|(k, _)| match k {
            ObjectKey::Versioned(_, _, v) if version.is_none_or(|w| v == w) => Some(v),
            _ => None,
        })
        .max();
    let Some(v) = newest else {
        return Ok(Owner::New);
    };
    let meta = store.head(&ObjectKey::bundle(uuid, v)).await?;
    Ok(match meta.and_then(|m| m.creator) {
        Some(c) => Owner::By(c),
        None => Owner::Unknown,
    })
}

/// The creator a new version records, if `caller` may add one to a bundle of `owner`: anyone
/// to a new bundle, only its creator or an administrator to an existing one (the original let
/// any caller derive a newer "latest" version of anyone's bundle).
fn version_creator(state: &Shared, caller: &Caller, owner: Owner) -> ApiResult<Option<String>> {
    let email = state.auth.email(caller)?;
    let admin = state.auth.is_admin(caller);
    match owner {
        Owner::New => Ok(Some(email.to_string())),
        Owner::By(c) if admin || c.eq_ignore_ascii_case(email) => Ok(Some(c)),
        Owner::Unknown if admin => Ok(None),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Only the bundle's creator or an administrator may add versions to it",
        )),
    }
}

/// Saves a manifest, recording `creator` with it: 201 new, 200 identical, 409 different.
async fn save_manifest(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    manifest: &BundleManifest,
    creator: Option<String>,
) -> ApiResult<StatusCode> {
    let key = ObjectKey::bundle(uuid, &manifest.version);
    let conflict = || {
        let title = format!(
            "bundle with UUID {uuid} and version {} already exists",
            manifest.version
        );
        ApiError::new(StatusCode::CONFLICT, "bundle_already_exists", title)
    };
    let same = |existing: &BundleManifest| existing.same_meaning(manifest);
    let created = storage::create_or_match(
        store,
        &key,
        manifest.to_json_text(),
        creator,
        same,
        conflict,
    )
    .await?;
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// `PUT /v1/bundles/{uuid}?replica=&version=`.
pub async fn put(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Writers only (the original took any valid token).
    let caller = state.auth.authenticate(&headers).await?;
    state.auth.require_group(&caller)?;
    // Typed from the bytes: a bundle of 100,000 files is tens of megabytes of JSON, and a
    // generic value of it several times that.
    let b: PutBundleBody = crate::body::json_typed(&headers, body, state.large_body()).await?;
    let files = b.files.ok_or_else(|| required("files"))?;
    let creator_uid = b.creator_uid.ok_or_else(|| required("creator_uid"))?;
    let refs = files
        .into_iter()
        .map(FileRefBody::checked)
        .collect::<ApiResult<Vec<_>>>()?;
    let cx = state.request_of(caller, "putBundle", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let version = q.version_required("version")?;
    let uuid = parse_uuid(&raw_uuid)?;
    state.writable()?;
    let store = &*replica.store;
    check_duplicates(refs.iter().map(|r| r.name.as_str()))?;
    let creator = version_creator(&state, cx.caller()?, owner(store, &uuid, None).await?)?;
    let files = resolve_files(&state, store, &refs).await?;
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.into(),
        version: version.clone(),
        files,
        creator_uid,
    };
    let status = save_manifest(store, &uuid, &manifest, creator).await?;
    // An identical earlier PUT answers with the manifest as it was stored.
    let stored = match status {
        StatusCode::OK => storage::read_json(store, &ObjectKey::bundle(&uuid, &version))
            .await?
            .unwrap_or(manifest),
        _ => manifest,
    };
    let body = json!({"version": version.as_str(), "manifest": serde_json::to_value(&stored).unwrap_or(Value::Null)});
    Ok((status, axum::Json(body)).into_response())
}

/// `GET /v1/bundles/{uuid}?replica=[&version][&per_page][&start_at][&directurls|presignedurls]`.
pub async fn get(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cx = state.open_request("getBundle", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let directurls = q.flag("directurls");
    let presigned = q.flag("presignedurls");
    let per_page = q.int("per_page")? as usize;
    let start_at = q.int("start_at")? as usize;
    let uuid = parse_uuid(&raw_uuid)?;
    if directurls && presigned {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "only_one_urltype",
            "only one of directurls or presignedurls may be true",
        ));
    }
    let store = &*replica.store;
    let asked = match q.get("version") {
        Some(v) => Some(DssVersion::parse(v).map_err(|_| ApiError::not_found(NO_BUNDLE))?),
        None => None,
    };
    let resolved = storage::resolve_bundle(store, &uuid, asked.as_ref())
        .await?
        .ok_or_else(|| ApiError::not_found(NO_BUNDLE))?;
    let manifest = state
        .manifests
        .get(store, &uuid, &resolved)
        .await?
        .ok_or_else(|| ApiError::not_found(NO_BUNDLE))?;
    let version = resolved.version;
    let mut url_store = store;
    if (directurls || presigned) && replica.download == DownloadMode::Checkout {
        let path = format!("/v1/bundles/{raw_uuid}");
        if let Some(wait) =
            copies::bundle_ready(&state, replica, uuid.as_str(), &manifest, &path, q).await?
        {
            return Ok(wait);
        }
        url_store = &*replica.checkout;
    }
    let total = manifest.files.len();
    let page = manifest.files.iter().skip(start_at).take(per_page);
    let ttl = std::time::Duration::from_secs(state.deployment.config.api.download_url_ttl_secs);
    let mut files = Vec::with_capacity(per_page.min(total));
    for f in page {
        let mut v = f.to_api_json();
        if directurls || presigned {
            let key = match replica.download {
                DownloadMode::Direct => ObjectKey::blob(&f.checksums()),
                DownloadMode::Checkout => {
                    dss_runtime::checkout::file_key(uuid.as_str(), version.as_str(), &f.name)
                }
            };
            let url = if directurls {
                url_store.direct_url(&key)?
            } else {
                url_store.download_url(&key, ttl, None).await?
            };
            if let Value::Object(m) = &mut v {
                m.insert("url".into(), url.into());
            }
        }
        files.push(v);
    }
    let body = json!({"bundle": {"uuid": uuid.as_str(), "version": version.as_str(), "creator_uid": manifest.creator_uid, "files": files}});
    let more = total.saturating_sub(start_at) > per_page;
    let next = more.then(|| {
        let q = q.with(&[
            ("start_at", (start_at + per_page).to_string()),
            ("version", version.to_string()),
        ]);
        state.url(&format!("/v1/bundles/{uuid}"), &q)
    });
    paging::page(body, "bundle.files", next)
}

/// `PATCH /v1/bundles/{uuid}?replica=&version=` — a new version with files added/removed.
pub async fn patch(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let caller = state.auth.authenticate(&headers).await?;
    state.auth.require_group(&caller)?;
    let m = state.json_body(&headers, body).await?;
    let add = file_refs(&m, "add_files", Some(1000))?;
    let remove = file_refs(&m, "remove_files", Some(1000))?;
    let cx = state.request_of(caller, "patchBundle", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let base = q.version_required("version")?;
    let uuid = parse_uuid(&raw_uuid)?;
    state.writable()?;
    let store = &*replica.store;
    let resolved = storage::resolve_bundle(store, &uuid, Some(&base))
        .await?
        .ok_or_else(|| ApiError::not_found(NO_BUNDLE))?;
    let creator = version_creator(
        &state,
        cx.caller()?,
        owner(store, &uuid, Some(&base)).await?,
    )?;
    let mut manifest = BundleManifest::clone(
        &*state
            .manifests
            .get(store, &uuid, &resolved)
            .await?
            .ok_or_else(|| ApiError::not_found(NO_BUNDLE))?,
    );
    manifest.files.retain(|f| {
        !remove
            .iter()
            .any(|r| r.name == f.name && r.uuid == f.uuid && r.version == f.version)
    });
    manifest
        .files
        .extend(resolve_files(&state, store, &add).await?);
    check_duplicates(manifest.files.iter().map(|f| f.name.as_str()))?;
    manifest.version = DssVersion::from_datetime(state.deployment.clock.now());
    save_manifest(store, &uuid, &manifest, creator).await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({"uuid": uuid.as_str(), "version": manifest.version.as_str()})),
    )
        .into_response())
}

/// `DELETE /v1/bundles/{uuid}?replica=[&version]` with `{"reason"}` — writes a tombstone.
pub async fn delete(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let caller = state.auth.authenticate(&headers).await?;
    let m = state.json_body(&headers, body).await?;
    require_fields(&m, &["reason"])?;
    let reason = m["reason"].as_str().ok_or_else(|| {
        ApiError::illegal_arguments(format!("{} is not of type 'string'", m["reason"]))
    })?;
    let cx = state.request_of(caller, "deleteBundle", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let version = q.version_optional("version")?;
    let uuid = parse_uuid(&raw_uuid)?;
    state.writable()?;
    state.auth.require_admin(cx.caller()?)?;
    let email = cx.owner()?;
    let store = &*replica.store;
    let keys = storage::keys_of(store, Kind::Bundle, &uuid).await?;
    let exists = keys.iter().any(|(k, _)| match (k, &version) {
        (ObjectKey::Versioned(_, _, v), Some(want)) => v == want,
        (ObjectKey::Versioned(..), None) => true,
        _ => false,
    });
    if !exists {
        return Err(ApiError::not_found(NO_BUNDLE));
    }
    let key = ObjectKey::bundle_tombstone(&uuid, version.as_ref());
    let doc = bundle_tombstone(email, reason);
    if !storage::create(store, &key, pyjson::to_string(&doc)).await? {
        let existing: Option<Value> = storage::read_json(store, &key).await?;
        if existing.as_ref() != Some(&doc) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "bundle_tombstone_already_exists",
                format!("a different tombstone for bundle {uuid} already exists"),
            ));
        }
    }
    Ok((StatusCode::OK, axum::Json(json!({}))).into_response())
}
