//! `/v1/collections` — named, versioned lists of references to files, bundles, other collections
//! and fragments of JSON files, owned by the caller's e-mail. Stored in the replica's bucket
//! (`collections/{uuid}.{version}`, so replication carries them) and listed through the owner
//! index.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dss_core::model::keys::Kind;
use dss_core::model::{DssVersion, FileMetadata, ObjectKey, ObjectUuid, pyjson};
use dss_runtime::deployment::Replica;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::parse_uuid;
use crate::state::Shared;
use crate::{paging, storage};

/// Referenced objects larger than this are refused (a manifest of that size is not a link
/// target the original accepted either).
const MAX_LINKED_BYTES: u64 = 1024 * 1024;

/// Items one PATCH may add or remove.
const MAX_PATCH_ITEMS: usize = 1000;

fn index_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::metadata("collection index", e)
}

fn invalid_link(item: &Value, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_link",
        format!("Error while parsing the link \"{item}\": {why}"),
    )
}

fn not_found(uuid: &ObjectUuid) -> ApiError {
    ApiError::not_found(format!("Could not find collection for UUID {uuid}"))
}

/// Checks an item's shape: `type`, `uuid`, `version` (and `fragment` a string if present).
fn check_item(item: &Value) -> ApiResult<(String, ObjectUuid, DssVersion)> {
    let bad = |why: &str| ApiError::illegal_arguments(format!("content item {item}: {why}"));
    let m = item.as_object().ok_or_else(|| bad("is not an object"))?;
    let field = |k: &str| m.get(k).and_then(Value::as_str);
    let kind = field("type").ok_or_else(|| bad("'type' is a required string"))?;
    let uuid = field("uuid")
        .and_then(|u| ObjectUuid::parse(u).ok())
        .ok_or_else(|| bad("'uuid' must be a UUID"))?;
    let version = field("version")
        .and_then(|v| DssVersion::parse(v).ok())
        .ok_or_else(|| bad("'version' must be a DSS version"))?;
    if m.get("fragment").is_some_and(|f| !f.is_string()) {
        return Err(bad("'fragment' must be a string"));
    }
    Ok((kind.to_string(), uuid, version))
}

/// Verifies that an item's target exists in the replica.
async fn verify(r: &Replica, item: &Value) -> ApiResult<()> {
    let (kind, uuid, version) = check_item(item)?;
    let store = &*r.store;
    let key = match kind.as_str() {
        "file" => ObjectKey::file(&uuid, &version),
        "bundle" => ObjectKey::bundle(&uuid, &version),
        "collection" => ObjectKey::collection(&uuid, &version),
        _ => {
            // A fragment of a JSON file.
            let Some(pointer) = item.get("fragment").and_then(Value::as_str) else {
                return Err(invalid_link(item, "a metadata fragment needs 'fragment'"));
            };
            let key = ObjectKey::file(&uuid, &version);
            let meta: FileMetadata = storage::read_json(store, &key)
                .await?
                .ok_or_else(|| invalid_link(item, format!("{key} does not exist")))?;
            if meta.size > MAX_LINKED_BYTES {
                return Err(invalid_link(item, "the file is too large"));
            }
            let bytes = store.get_bytes(&ObjectKey::blob(&meta.checksums())).await?;
            let doc: Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid_link(item, format!("the file is not JSON: {e}")))?;
            return match doc.pointer(pointer) {
                Some(_) => Ok(()),
                None => Err(invalid_link(item, format!("no {pointer} in the file"))),
            };
        }
    };
    match store.head(&key).await? {
        Some(m) if m.size <= MAX_LINKED_BYTES => Ok(()),
        Some(_) => Err(invalid_link(item, format!("{key} is too large"))),
        None => Err(invalid_link(item, format!("{key} does not exist"))),
    }
}

/// Verifies items, 16 at a time.
async fn verify_all(r: &Replica, items: &[Value]) -> ApiResult<()> {
    for chunk in items.chunks(16) {
        let checks: Vec<_> = chunk.iter().map(|i| Box::pin(verify(r, i))).collect();
        futures::future::try_join_all(checks).await?;
    }
    Ok(())
}

/// Items equal as key/value sets are kept once, at their first position.
fn dedupe(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The newest live version of a collection; 404 when deleted or absent.
async fn latest(
    store: &dyn dss_core::ports::BlobStore,
    uuid: &ObjectUuid,
) -> ApiResult<DssVersion> {
    let mut newest = None;
    for (k, _) in storage::keys_of(store, Kind::Collection, uuid).await? {
        match k {
            ObjectKey::Tombstone(..) => return Err(not_found(uuid)),
            ObjectKey::Versioned(_, _, v) => newest = newest.max(Some(v)),
            _ => {}
        }
    }
    newest.ok_or_else(|| not_found(uuid))
}

/// One version of a collection; 404 when absent.
async fn read(
    r: &Replica,
    uuid: &ObjectUuid,
    version: &DssVersion,
) -> ApiResult<Map<String, Value>> {
    storage::read_json(&*r.store, &ObjectKey::collection(uuid, version))
        .await?
        .ok_or_else(|| not_found(uuid))
}

/// The newest version and its document, which must be the caller's: 404 when absent or
/// deleted, 403 for someone else's.
async fn owned(
    r: &Replica,
    uuid: &ObjectUuid,
    caller: &str,
) -> ApiResult<(DssVersion, Map<String, Value>)> {
    let newest = latest(&*r.store, uuid).await?;
    let doc = read(r, uuid, &newest).await?;
    if doc.get("owner").and_then(Value::as_str) != Some(caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Collection access denied",
        ));
    }
    Ok((newest, doc))
}

/// The caller's collection at `version` (the newest when `None`); who owns it is decided by the
/// newest version, as in the original.
async fn owned_at(
    r: &Replica,
    uuid: &ObjectUuid,
    version: Option<&DssVersion>,
    caller: &str,
) -> ApiResult<Map<String, Value>> {
    let (newest, doc) = owned(r, uuid, caller).await?;
    match version {
        Some(v) if *v != newest => read(r, uuid, v).await,
        _ => Ok(doc),
    }
}

/// Writes a collection version; the same document again is fine, a different one is a conflict.
async fn write(
    r: &Replica,
    uuid: &ObjectUuid,
    version: &DssVersion,
    doc: &Map<String, Value>,
) -> ApiResult<()> {
    let doc = Value::Object(doc.clone());
    let text = pyjson::to_string(&doc);
    storage::create_or_match::<Value>(
        &*r.store,
        &ObjectKey::collection(uuid, version),
        text,
        None,
        |existing| *existing == doc,
        || {
            ApiError::new(
                StatusCode::CONFLICT,
                "collection_already_exists",
                format!("Collection {uuid}.{version} already exists with other contents"),
            )
        },
    )
    .await
    .map(|_| ())
}

fn created(uuid: &ObjectUuid, version: &DssVersion, status: StatusCode) -> Response {
    (
        status,
        axum::Json(json!({"uuid": uuid.as_str(), "version": version.as_str()})),
    )
        .into_response()
}

/// `GET /v1/collections?[per_page][&start_at]` — the caller's collection versions.
pub async fn list(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cx = state
        .request("getCollections", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    cx.member()?;
    let owner = cx.owner()?;
    let per_page = usize::try_from(q.int("per_page")?).unwrap_or(500);
    let start = usize::try_from(q.int("start_at")?).unwrap_or(0);
    let (items, total) = state
        .deployment
        .collections
        .list(owner, start, per_page)
        .await
        .map_err(index_error)?;
    let collections: Vec<Value> = items
        .into_iter()
        .map(|(uuid, version)| json!({"uuid": uuid, "version": version}))
        .collect();
    let next = (total > start + per_page).then(|| {
        state.url(
            "/v1/collections",
            &q.with(&[("start_at", (start + per_page).to_string())]),
        )
    });
    paging::page(json!({"collections": collections}), "collections", next)
}

/// The body of a collection write, read (after the caller was authenticated) within the
/// large body limits.
async fn object_body(state: &Shared, body: axum::body::Body) -> ApiResult<Map<String, Value>> {
    let limits = state.large_body();
    let bytes = crate::body::read_limited(body, limits).await?;
    match crate::bounded_json::parse(&bytes, limits.values) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::illegal_arguments(format!(
            "the body is not a JSON object: {other} is not of type 'object'"
        ))),
        Err(e) => Err(ApiError::illegal_arguments(format!(
            "the body is not a JSON object: {e}"
        ))),
    }
}

/// `PUT /v1/collections?replica=&uuid=&version=` — a new collection version.
pub async fn put(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let cx = state
        .request("putCollection", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    cx.member()?;
    let owner = cx.owner()?.to_string();
    let r = cx.replica()?;
    let uuid = parse_uuid(&q.required("uuid")?.to_lowercase())?;
    let version = q.version_required("version")?;
    state.writable()?;
    let mut doc = object_body(&state, body).await?;
    for (key, ok) in [
        ("name", doc.get("name").is_some_and(Value::is_string)),
        (
            "description",
            doc.get("description").is_some_and(Value::is_string),
        ),
        ("details", doc.get("details").is_some_and(Value::is_object)),
        ("contents", doc.get("contents").is_some_and(Value::is_array)),
    ] {
        if !ok {
            return Err(ApiError::illegal_arguments(format!(
                "'{key}' is required (name and description strings, details an object, contents an array)"
            )));
        }
    }
    let contents = match doc.remove("contents") {
        Some(Value::Array(items)) => dedupe(items),
        _ => Vec::new(),
    };
    for item in &contents {
        check_item(item)?;
    }
    // A uuid in use is its owner's: someone else's collection cannot get new versions.
    match owned(r, &uuid, &owner).await {
        Err(e) if e.status != StatusCode::NOT_FOUND => return Err(e),
        _ => {}
    }
    verify_all(r, &contents).await?;
    doc.insert("contents".into(), Value::Array(contents));
    doc.insert("owner".into(), owner.clone().into());
    write(r, &uuid, &version, &doc).await?;
    state
        .deployment
        .collections
        .add(&owner, uuid.as_str(), version.as_str())
        .await
        .map_err(index_error)?;
    Ok(created(&uuid, &version, StatusCode::CREATED))
}

/// `GET /v1/collections/{uuid}?replica=[&version]` — the stored document.
pub async fn get(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cx = state
        .request("getCollection", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    cx.member()?;
    let owner = cx.owner()?;
    let uuid = parse_uuid(&raw_uuid)?;
    let r = cx.replica()?;
    let version = match q.get("version") {
        Some(v) => Some(DssVersion::parse(v).map_err(|_| not_found(&uuid))?),
        None => None,
    };
    let doc = owned_at(r, &uuid, version.as_ref(), owner).await?;
    Ok(axum::Json(Value::Object(doc)).into_response())
}

/// `PATCH /v1/collections/{uuid}?replica=&version=` — a new version with changes.
pub async fn patch(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let cx = state
        .request("patchCollection", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    cx.member()?;
    let owner = cx.owner()?;
    let uuid = parse_uuid(&raw_uuid)?;
    let r = cx.replica()?;
    let version = q.version_required("version")?;
    state.writable()?;
    let changes = object_body(&state, body).await?;
    let items = |key: &str| -> ApiResult<Vec<Value>> {
        match changes.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) if a.len() <= MAX_PATCH_ITEMS => {
                for i in a {
                    check_item(i)?;
                }
                Ok(a.clone())
            }
            Some(Value::Array(_)) => Err(ApiError::illegal_arguments(format!(
                "'{key}' has more than {MAX_PATCH_ITEMS} items"
            ))),
            Some(_) => Err(ApiError::illegal_arguments(format!(
                "'{key}' must be an array"
            ))),
        }
    };
    let (add, remove) = (items("add_contents")?, items("remove_contents")?);
    for (key, ok) in [
        ("name", changes.get("name").is_none_or(Value::is_string)),
        (
            "description",
            changes.get("description").is_none_or(Value::is_string),
        ),
        (
            "details",
            changes.get("details").is_none_or(Value::is_object),
        ),
    ] {
        if !ok {
            return Err(ApiError::illegal_arguments(format!(
                "'{key}' has the wrong type"
            )));
        }
    }
    let mut doc = owned_at(r, &uuid, Some(&version), owner).await?;
    for key in ["name", "description", "details"] {
        if let Some(v) = changes.get(key) {
            doc.insert(key.into(), v.clone());
        }
    }
    let mut contents = match doc.remove("contents") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    contents.retain(|i| !remove.contains(i));
    verify_all(r, &add).await?;
    contents.extend(add);
    doc.insert("contents".into(), Value::Array(dedupe(contents)));
    let new_version = DssVersion::from_datetime(state.deployment.clock.now());
    write(r, &uuid, &new_version, &doc).await?;
    Ok(created(&uuid, &new_version, StatusCode::OK))
}

/// `DELETE /v1/collections/{uuid}?replica=` — every version goes (a tombstone).
pub async fn delete(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cx = state
        .request("deleteCollection", &headers, raw.as_deref())
        .await?;
    let owner = cx.owner()?;
    let uuid = parse_uuid(&raw_uuid)?;
    let r = cx.replica()?;
    owned(r, &uuid, owner).await?;
    state.writable()?;
    let tomb = json!({"email": owner});
    storage::create_or_match::<Value>(
        &*r.store,
        &format!("{}{uuid}.dead", Kind::Collection.prefix()),
        pyjson::to_string(&tomb),
        None,
        |existing| *existing == tomb,
        || {
            ApiError::new(
                StatusCode::CONFLICT,
                "collection_tombstone_already_exists",
                "A different tombstone exists",
            )
        },
    )
    .await?;
    state
        .deployment
        .collections
        .remove(owner, uuid.as_str())
        .await
        .map_err(index_error)?;
    Ok(axum::Json(json!({})).into_response())
}
