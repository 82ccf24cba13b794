//! GA4GH Data Repository Service 1.x: `/ga4gh/drs/v1/…` — DSS files and bundles as DRS
//! objects (bundles as DRS bundles with `contents`), their access URLs, and `service-info`.
//!
//! Object ids are `{uuid}` (the newest version; `?version=` picks one) or `{uuid}.{version}`.
//! `?replica=` picks the replica (default: the first configured). No authentication, as the
//! original's DRS route. Errors use DRS's `{"msg", "status_code"}`.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dss_core::model::{BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid};
use dss_runtime::deployment::Replica;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::copies;
use crate::error::ApiError;
use crate::params::Query;
use crate::state::Shared;
use crate::storage;
use dss_config::DownloadMode;

/// A DRS error: answered as `{"msg", "status_code"}`.
#[derive(Debug)]
pub struct DrsError {
    status: StatusCode,
    msg: String,
}

impl DrsError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No object {what}"))
    }
}

impl From<ApiError> for DrsError {
    fn from(e: ApiError) -> Self {
        Self::new(e.status, e.title)
    }
}

impl IntoResponse for DrsError {
    fn into_response(self) -> Response {
        let body = json!({"msg": self.msg, "status_code": self.status.as_u16()});
        (self.status, axum::Json(body)).into_response()
    }
}

type DrsResult<T> = Result<T, DrsError>;

fn rfc3339(v: &DssVersion) -> String {
    v.to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The DRS checksums of a file (IANA names; `etag` is the S3 ETag).
fn file_checksums(m: &FileMetadata) -> Value {
    json!([
        {"type": "sha-256", "checksum": m.sha256},
        {"type": "sha-1", "checksum": m.sha1},
        {"type": "crc32c", "checksum": m.crc32c},
        {"type": "etag", "checksum": m.s3_etag},
    ])
}

/// A bundle's checksums by the DRS rule: for each type, the hash of the concatenated,
/// alphabetically sorted checksums of its direct contents.
fn bundle_checksums(b: &BundleManifest) -> Value {
    let sorted = |pick: fn(&dss_core::model::BundleFileEntry) -> &str| {
        let mut v: Vec<&str> = b.files.iter().map(pick).collect();
        v.sort_unstable();
        v.concat()
    };
    let sha256 = hex::encode(Sha256::digest(sorted(|f| &f.sha256).as_bytes()));
    let sha1 = hex::encode(Sha1::digest(sorted(|f| &f.sha1).as_bytes()));
    let crc = format!("{:08x}", crc32c::crc32c(sorted(|f| &f.crc32c).as_bytes()));
    json!([
        {"type": "sha-256", "checksum": sha256},
        {"type": "sha-1", "checksum": sha1},
        {"type": "crc32c", "checksum": crc},
    ])
}

/// `{uuid}` or `{uuid}.{version}`, and the `version` parameter.
fn parse_id(object_id: &str, q: &Query) -> DrsResult<(ObjectUuid, Option<DssVersion>)> {
    let (raw_uuid, raw_version) = match object_id.split_once('.') {
        Some((u, v)) => (u, Some(v)),
        None => (object_id, q.get("version")),
    };
    let uuid = ObjectUuid::parse(raw_uuid).map_err(|_| DrsError::not_found(object_id))?;
    let version = raw_version
        .map(|v| {
            DssVersion::parse(v).map_err(|_| {
                DrsError::new(
                    StatusCode::BAD_REQUEST,
                    format!("'{v}' is not a DSS version"),
                )
            })
        })
        .transpose()?;
    Ok((uuid, version))
}

fn replica<'a>(state: &'a Shared, q: &Query) -> DrsResult<&'a Replica> {
    match q.get("replica") {
        Some(name) => Ok(state.replica_named(name)?),
        None => state.deployment.replicas.values().next().ok_or_else(|| {
            DrsError::new(StatusCode::INTERNAL_SERVER_ERROR, "no replica configured")
        }),
    }
}

/// `drs://{host}/{id}` for the deployment.
fn drs_uri(state: &Shared, id: &str) -> String {
    let public = state.deployment.config.public_url();
    let host = public
        .split_once("://")
        .map_or(public.as_str(), |(_, rest)| rest)
        .trim_end_matches('/');
    format!("drs://{host}/{id}")
}

/// A file or a bundle, found by uuid and optional version.
enum Object {
    File(FileMetadata),
    Bundle(std::sync::Arc<BundleManifest>),
}

async fn find(
    state: &Shared,
    r: &Replica,
    uuid: &ObjectUuid,
    version: Option<&DssVersion>,
) -> DrsResult<Option<Object>> {
    if let Some(m) = storage::file_metadata(&*r.store, uuid, version).await? {
        return Ok(Some(Object::File(m)));
    }
    let Some(resolved) = storage::resolve_bundle(&*r.store, uuid, version).await? else {
        return Ok(None);
    };
    Ok(state
        .manifests
        .get(&*r.store, uuid, &resolved)
        .await?
        .map(Object::Bundle))
}

/// A signed URL of a file's bytes, or (replicas serving downloads from checkout copies) the
/// seconds until its copy is there.
async fn signed_url(
    state: &Shared,
    r: &Replica,
    m: &FileMetadata,
) -> DrsResult<Result<String, u64>> {
    let store = match r.download {
        DownloadMode::Direct => &r.store,
        DownloadMode::Checkout => match copies::file_wait(state, r, m).await? {
            None => &r.checkout,
            Some(wait) => return Ok(Err(wait)),
        },
    };
    let ttl = Duration::from_secs(state.deployment.config.api.download_url_ttl_secs);
    store
        .download_url(&ObjectKey::blob(&m.checksums()), ttl, None)
        .await
        .map(Ok)
        .map_err(|e| ApiError::from(e).into())
}

/// `GET /ga4gh/drs/v1/objects/{object_id}`.
pub async fn object(
    State(state): State<Shared>,
    Path(object_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> DrsResult<Response> {
    let q = Query::parse(raw.as_deref());
    let (uuid, version) = parse_id(&object_id, &q)?;
    let r = replica(&state, &q)?;
    let found = find(&state, r, &uuid, version.as_ref())
        .await?
        .ok_or_else(|| DrsError::not_found(&object_id))?;
    match found {
        Object::File(m) => {
            let mut method = json!({"type": "https", "access_id": r.name});
            // A copy still being made: clients get the URL from the access endpoint (202 until then).
            if let Ok(url) = signed_url(&state, r, &m).await? {
                method["access_url"] = json!({"url": url});
            }
            let id = format!("{uuid}.{}", m.version);
            Ok(axum::Json(json!({
                "id": id,
                "name": uuid.as_str(),
                "self_uri": drs_uri(&state, &id),
                "size": m.size,
                "created_time": rfc3339(&m.version),
                "updated_time": rfc3339(&m.version),
                "version": m.version.as_str(),
                "mime_type": m.content_type,
                "checksums": file_checksums(&m),
                "access_methods": [method],
            }))
            .into_response())
        }
        Object::Bundle(b) => {
            let id = format!("{uuid}.{}", b.version);
            let contents: Vec<Value> = b
                .files
                .iter()
                .map(|f| {
                    let fid = format!("{}.{}", f.uuid, f.version);
                    json!({"name": f.name, "id": fid, "drs_uri": [drs_uri(&state, &fid)]})
                })
                .collect();
            Ok(axum::Json(json!({
                "id": id,
                "name": uuid.as_str(),
                "self_uri": drs_uri(&state, &id),
                "size": b.files.iter().map(|f| f.size).sum::<u64>(),
                "created_time": rfc3339(&b.version),
                "updated_time": rfc3339(&b.version),
                "version": b.version.as_str(),
                "checksums": bundle_checksums(&b),
                "contents": contents,
            }))
            .into_response())
        }
    }
}

/// `GET /ga4gh/drs/v1/objects/{object_id}/access/{access_id}` — a fresh URL of a file's bytes;
/// the access id is the replica's name.
pub async fn access(
    State(state): State<Shared>,
    Path((object_id, access_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> DrsResult<Response> {
    let q = Query::parse(raw.as_deref());
    let (uuid, version) = parse_id(&object_id, &q)?;
    let r = state.deployment.replicas.get(&access_id).ok_or_else(|| {
        DrsError::new(
            StatusCode::NOT_FOUND,
            format!("No access method {access_id}"),
        )
    })?;
    match find(&state, r, &uuid, version.as_ref()).await? {
        Some(Object::File(m)) => match signed_url(&state, r, &m).await? {
            Ok(url) => Ok(axum::Json(json!({"url": url})).into_response()),
            Err(wait) => {
                let mut res = (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({"msg": "the file's copy is being made; retry after Retry-After seconds", "status_code": 202})),
                )
                    .into_response();
                res.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, wait.into());
                Ok(res)
            }
        },
        Some(Object::Bundle(_)) => Err(DrsError::new(
            StatusCode::BAD_REQUEST,
            format!("{object_id} is a bundle; fetch its contents"),
        )),
        None => Err(DrsError::not_found(&object_id)),
    }
}

/// `GET /ga4gh/drs/v1/service-info` — the GA4GH service-info document.
pub async fn service_info(State(state): State<Shared>) -> Response {
    let public = state.deployment.config.public_url();
    axum::Json(json!({
        "id": "org.humancellatlas.dss.drs",
        "name": "DSS Data Repository Service",
        "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.2.0"},
        "description": "Files and bundles of this Data Storage System as DRS objects.",
        "organization": {"name": "Data Storage System", "url": public},
        "version": state.deployment.config.api.deployment_version.clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
    }))
    .into_response()
}
