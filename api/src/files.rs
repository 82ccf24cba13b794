//! `/v1/files/{uuid}`: register (PUT from a staging source, or direct upload), HEAD, GET.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use dss_core::checksum::{Checksums, DeclaredError, declared_checksums};
use dss_core::model::{DssVersion, FileMetadata, ObjectKey, ObjectUuid};
use dss_core::ports::{BlobError, BlobStore, ByteStream, PutOptions, Staging};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::typed;
use crate::copies;
use crate::error::{ApiError, ApiResult};
use crate::params::{Query, parse_uuid};
use crate::state::Shared;
use crate::storage;
use dss_config::DownloadMode;
use dss_runtime::deployment::Replica;

/// Title of every "no such file" answer.
const NO_FILE: &str = "Cannot find file!";

fn unprocessable(code: &'static str, title: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, title)
}

/// Checksums as given in a PUT body (`checksums`) — the `file://` counterpart of the `dss-*`
/// object metadata the original read from cloud sources.
#[derive(Debug, Deserialize)]
struct ChecksumsIn {
    sha256: Option<String>,
    sha1: Option<String>,
    s3_etag: Option<String>,
    crc32c: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PutFileBody {
    source_url: String,
    creator_uid: i64,
    #[serde(default)]
    checksums: Option<ChecksumsIn>,
    #[serde(default)]
    content_type: Option<String>,
}

/// Checks required properties with the original's message.
pub fn require_fields(m: &serde_json::Map<String, Value>, fields: &[&str]) -> ApiResult<()> {
    for f in fields {
        if !m.contains_key(*f) {
            return Err(ApiError::illegal_arguments(format!(
                "'{f}' is a required property"
            )));
        }
    }
    Ok(())
}

fn guess_content_type(path: &std::path::Path) -> String {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => "application/json",
        Some("txt") | Some("md") => "text/plain",
        Some("tsv") => "text/tab-separated-values",
        Some("csv") => "text/csv",
        Some("html") => "text/html",
        _ => "application/octet-stream",
    }
    .to_string()
}

fn full_checksums(c: &ChecksumsIn) -> ApiResult<Checksums> {
    let get = |v: &Option<String>, name: &str| {
        v.clone()
            .ok_or_else(|| unprocessable("missing_checksum", format!("missing checksums.{name}")))
    };
    let (a, b, e, d) = (
        get(&c.sha256, "sha256")?,
        get(&c.sha1, "sha1")?,
        get(&c.s3_etag, "s3_etag")?,
        get(&c.crc32c, "crc32c")?,
    );
    Checksums::new(&a, &b, &e, &d).map_err(|e| unprocessable("invalid_checksum", e.to_string()))
}

/// Writes `files/{uuid}.{version}` unless an identical one exists: 201 written, 200 identical,
/// 409 if a different one does.
async fn register(
    state: &Shared,
    replica: &Replica,
    uuid: &ObjectUuid,
    meta: &FileMetadata,
) -> ApiResult<Response> {
    let store = &*replica.store;
    let key = ObjectKey::file(uuid, &meta.version);
    let same = |existing: &FileMetadata| existing.same_meaning(meta);
    let conflict = || file_conflict(uuid, meta);
    let created =
        storage::create_or_match(store, &key, meta.to_json_text(), None, same, conflict).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // Downloads of cached files from checkout copies should never wait: make the copy now.
    if created
        && replica.download == DownloadMode::Checkout
        && meta.size <= PREWARM_MAX
        && state
            .deployment
            .config
            .checkout
            .cacheable(&meta.content_type, meta.size)
    {
        copies::prepare_file(state, replica, meta).await;
    }
    Ok(version_response(status, &meta.version))
}

/// Largest cached file whose checkout copy is made when it is stored (as the original).
const PREWARM_MAX: u64 = 64 * 1024 * 1024;

fn file_conflict(uuid: &ObjectUuid, meta: &FileMetadata) -> ApiError {
    let title = format!(
        "file with UUID {uuid} and version {} already exists",
        meta.version
    );
    ApiError::new(StatusCode::CONFLICT, "file_already_exists", title)
}

/// Answers an early re-PUT without copying anything: 200 if identical, 409 if not, `None` if new.
async fn existing_answer(
    store: &dyn BlobStore,
    uuid: &ObjectUuid,
    meta: &FileMetadata,
) -> ApiResult<Option<Response>> {
    match storage::read_json::<FileMetadata>(store, &ObjectKey::file(uuid, &meta.version)).await? {
        None => Ok(None),
        Some(existing) if existing.same_meaning(meta) => {
            Ok(Some(version_response(StatusCode::OK, &meta.version)))
        }
        Some(_) => Err(file_conflict(uuid, meta)),
    }
}

fn version_response(status: StatusCode, v: &DssVersion) -> Response {
    (status, axum::Json(json!({"version": v.as_str()}))).into_response()
}

fn checksum_error(e: BlobError) -> ApiError {
    match e {
        BlobError::ChecksumMismatch(names) => unprocessable(
            "checksum_mismatch",
            format!(
                "the data does not match the declared checksums: {}",
                names.join(", ")
            ),
        ),
        BlobError::SizeMismatch { expected, got } => unprocessable(
            "size_mismatch",
            format!("expected {expected} bytes, received {got}"),
        ),
        other => other.into(),
    }
}

/// Where a `PUT /files` source is.
enum SourceAt {
    /// A file under the staging directory.
    Local(PathBuf),
    /// A cloud staging object, with the staging buckets of its cloud.
    Cloud(dss_ingest::Source, Arc<dyn Staging>),
}

fn staging_source(state: &Shared, url: &str) -> ApiResult<SourceAt> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ApiError::illegal_arguments(format!(
            "'{url}' does not match '^(gs|s3|file)://'"
        )));
    };
    match scheme {
        "file" => {}
        "s3" | "gs" | "wasb" => {
            let Some(staging) = state.deployment.staging.get(scheme) else {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_source_schema",
                    format!("source_url schema {scheme} not supported by this deployment"),
                ));
            };
            let source = dss_ingest::Source::parse(url).ok_or_else(|| {
                ApiError::illegal_arguments(format!("'{url}' must be {scheme}://bucket/key"))
            })?;
            return Ok(SourceAt::Cloud(source, staging.clone()));
        }
        _ => {
            return Err(ApiError::illegal_arguments(format!(
                "'{url}' does not match '^(gs|s3|file)://'"
            )));
        }
    }
    let path = rest
        .strip_prefix('/')
        .map(|p| PathBuf::from(format!("/{p}")))
        .ok_or_else(|| {
            ApiError::illegal_arguments(format!(
                "'{url}' must be a file:///absolute/path under the staging directory"
            ))
        })?;
    let real = path
        .canonicalize()
        .map_err(|_| ApiError::illegal_arguments(format!("source object {url} does not exist")))?;
    if !real.starts_with(&state.staging_dir) || !real.is_file() {
        return Err(ApiError::illegal_arguments(format!(
            "source_url {url} is not a file under the staging directory"
        )));
    }
    Ok(SourceAt::Local(real))
}

/// The replica a `PUT /files` writes to: the one named by `replica`, else the one the source's
/// cloud names in the original (`s3` → `aws`, `gs` → `gcp`), else the first.
fn put_replica<'a>(state: &'a Shared, q: &Query, source: &SourceAt) -> ApiResult<&'a Replica> {
    if let Some(r) = q.get("replica") {
        return state.replica_named(r);
    }
    let replicas = &state.deployment.replicas;
    let by_cloud = match source {
        SourceAt::Cloud(s, _) if s.scheme == "s3" => replicas.get("aws"),
        SourceAt::Cloud(s, _) if s.scheme == "gs" => replicas.get("gcp"),
        _ => None,
    };
    by_cloud
        .or_else(|| replicas.values().next())
        .ok_or_else(|| ApiError::internal("config", "no replica"))
}

/// `PUT /v1/files/{uuid}?version=` — registers a file from a staging source.
pub async fn put(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let caller = state.auth.authenticate(&headers).await?;
    let obj = state.json_body(&headers, body).await?;
    require_fields(&obj, &["source_url", "creator_uid"])?;
    let req: PutFileBody = typed(obj)?;
    let cx = state.request_of(caller, "putFile", raw.as_deref())?;
    let q = &cx.query;
    let version = q.version_required("version")?;
    let uuid = parse_uuid(&raw_uuid)?;
    state.writable()?;
    cx.member()?;
    let source = staging_source(&state, &req.source_url)?;
    let replica = put_replica(&state, q, &source)?;
    match source {
        SourceAt::Local(path) => put_local(&state, replica, &uuid, version, &req, &path).await,
        SourceAt::Cloud(source, staging) => {
            put_cloud(&state, replica, &uuid, version, &req, source, &*staging).await
        }
    }
}

/// Registers a file from the staging directory, with the checksums the request gives.
async fn put_local(
    state: &Shared,
    replica: &Replica,
    uuid: &ObjectUuid,
    version: DssVersion,
    req: &PutFileBody,
    source: &std::path::Path,
) -> ApiResult<Response> {
    let store = &*replica.store;
    let sums = match &req.checksums {
        Some(c) => full_checksums(c)?,
        None => {
            return Err(unprocessable(
                "missing_checksum",
                "missing checksums (sha256, sha1, s3_etag, crc32c)",
            ));
        }
    };
    let size = tokio::fs::metadata(source)
        .await
        .map_err(|e| ApiError::internal("stat source", e))?
        .len();
    let content_type = req
        .content_type
        .clone()
        .unwrap_or_else(|| guess_content_type(source));
    let meta = FileMetadata::new(req.creator_uid, version, content_type.clone(), size, &sums);
    if let Some(r) = existing_answer(store, uuid, &meta).await? {
        return Ok(r);
    }
    if !dss_ingest::blob_present(store, &sums).await? {
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| ApiError::internal("open source", e))?;
        let stream: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file,
            1024 * 1024,
        ));
        let opts = PutOptions {
            content_type: Some(content_type),
            size: Some(size),
            expected: Some(sums.clone()),
            ..Default::default()
        };
        store
            .put(&ObjectKey::blob(&sums), stream, opts)
            .await
            .map_err(checksum_error)?;
    }
    register(state, replica, uuid, &meta).await
}

/// Registers a file from a cloud staging object, with the checksums its metadata or tags
/// declare; a copy of more than [`dss_ingest::SYNC_MAX`] bytes runs in the background (202).
async fn put_cloud(
    state: &Shared,
    replica: &Replica,
    uuid: &ObjectUuid,
    version: DssVersion,
    req: &PutFileBody,
    source: dss_ingest::Source,
    staging: &dyn Staging,
) -> ApiResult<Response> {
    let store = &*replica.store;
    let declared = staging
        .declared(&source.bucket, &source.key)
        .await?
        .ok_or_else(|| {
            ApiError::illegal_arguments(format!("source object {} does not exist", source.url()))
        })?;
    let sums = declared_checksums(&declared.values).map_err(|e| match e {
        DeclaredError::Missing(name) => {
            unprocessable("missing_checksum", format!("missing hca-dss-{name}"))
        }
        DeclaredError::Malformed(name) => unprocessable(
            "invalid_checksum",
            format!("malformed checksum hca-dss-{name}"),
        ),
    })?;
    if let Some(c) = &req.checksums
        && full_checksums(c)? != sums
    {
        return Err(unprocessable(
            "checksum_mismatch",
            "the request's checksums differ from those the source declares",
        ));
    }
    let content_type = req
        .content_type
        .clone()
        .or_else(|| Some(declared.content_type.clone()).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| "application/octet-stream".into());
    let meta = FileMetadata::new(req.creator_uid, version, content_type, declared.size, &sums);
    if let Some(r) = existing_answer(store, uuid, &meta).await? {
        return Ok(r);
    }
    // An existing blob is trusted only when the store's own ETag of the source agrees with
    // the declared one (else the source is copied and all four checksums are verified).
    if !dss_ingest::already_stored(store, &sums, declared.etag.as_deref()).await? {
        if declared.size > dss_ingest::SYNC_MAX {
            dss_ingest::clear_failure(replica, uuid, &meta.version).await?;
            let job = dss_ingest::IngestJob {
                task_id: ObjectUuid::new_v4().to_string(),
                replica: replica.name.clone(),
                uuid: uuid.clone(),
                source,
                source_etag: declared.etag.clone(),
                metadata: meta,
            };
            dss_ingest::submit(&state.deployment, &job)
                .await
                .map_err(|e| ApiError::internal("ingest queue", e))?;
            let body = json!({"task_id": job.task_id, "version": job.metadata.version.as_str()});
            return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
        }
        dss_ingest::copy_blob(staging, &source, store, &meta)
            .await
            .map_err(checksum_error)?;
    }
    register(state, replica, uuid, &meta).await
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `PUT /v1/files/{uuid}/content?version=&replica=` — extension: streams the request body into the
/// replica, computing all four checksums and verifying any given in `X-DSS-SHA256`, `X-DSS-SHA1`,
/// `X-DSS-S3-ETAG`, `X-DSS-CRC32C`; `Content-Type` becomes the file's content type.
pub async fn upload(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let cx = state
        .request("uploadFile", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    let version = q.version_required("version")?;
    let replica = cx.replica()?;
    let uuid = parse_uuid(&raw_uuid)?;
    state.writable()?;
    cx.member()?;
    let store = &*replica.store;
    let creator_uid: i64 = match header_str(&headers, "x-dss-creator-uid").or(q.get("creator_uid"))
    {
        Some(v) => v.parse().map_err(|_| {
            ApiError::illegal_arguments(format!("creator_uid '{v}' is not an integer"))
        })?,
        None => 0,
    };
    let content_type = header_str(&headers, "content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    let declared = ChecksumsIn {
        sha256: header_str(&headers, "x-dss-sha256").map(str::to_string),
        sha1: header_str(&headers, "x-dss-sha1").map(str::to_string),
        s3_etag: header_str(&headers, "x-dss-s3-etag").map(str::to_string),
        crc32c: header_str(&headers, "x-dss-crc32c").map(str::to_string),
    };
    let size: Option<u64> = header_str(&headers, "content-length").and_then(|v| v.parse().ok());
    let max = state.deployment.config.api.max_upload;
    if size.is_some_and(|s| s > max) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("uploads are limited to {max} bytes"),
        ));
    }
    let complete = [
        &declared.sha256,
        &declared.sha1,
        &declared.s3_etag,
        &declared.crc32c,
    ]
    .iter()
    .all(|c| c.is_some());
    let expected = if complete {
        Some(full_checksums(&declared)?)
    } else {
        None
    };
    let partial: Vec<(&'static str, String)> = [
        ("sha256", &declared.sha256),
        ("sha1", &declared.sha1),
        ("s3_etag", &declared.s3_etag),
        ("crc32c", &declared.crc32c),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.as_ref().map(|v| (n, v.to_ascii_lowercase())))
    .collect();
    if let (Some(sums), Some(size)) = (&expected, size) {
        let meta = FileMetadata::new(
            creator_uid,
            version.clone(),
            content_type.clone(),
            size,
            sums,
        );
        if let Some(r) = existing_answer(store, &uuid, &meta).await? {
            return Ok(r);
        }
        if dss_ingest::blob_present(store, sums).await? {
            return register(&state, replica, &uuid, &meta).await;
        }
    }
    let mut received = 0u64;
    let stream: ByteStream = Box::pin(
        body.into_data_stream()
            .map_err(std::io::Error::other)
            .and_then(move |chunk| {
                received += chunk.len() as u64;
                let over = received > max;
                async move {
                    if over {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::FileTooLarge,
                            "upload too large",
                        ))
                    } else {
                        Ok(chunk)
                    }
                }
            }),
    );
    let opts = PutOptions {
        content_type: Some(content_type.clone()),
        size,
        expected: expected.clone(),
        ..Default::default()
    };
    let (sums, size) = match &expected {
        Some(sums) => {
            let m = store
                .put(&ObjectKey::blob(sums), stream, opts)
                .await
                .map_err(upload_error)?;
            (sums.clone(), m.size)
        }
        None => {
            let temp = format!("uploads/{}", uuid::Uuid::new_v4());
            let m = store.put(&temp, stream, opts).await.map_err(upload_error)?;
            let sums = m
                .checksums
                .clone()
                .ok_or_else(|| ApiError::internal("upload", "store returned no checksums"))?;
            let computed = [
                ("sha256", &sums.sha256),
                ("sha1", &sums.sha1),
                ("s3_etag", &sums.s3_etag),
                ("crc32c", &sums.crc32c),
            ];
            let bad: Vec<&str> = partial
                .iter()
                .filter(|(n, v)| computed.iter().any(|(cn, cv)| cn == n && *cv != v))
                .map(|(n, _)| *n)
                .collect();
            let placed = if !bad.is_empty() {
                Err(unprocessable(
                    "checksum_mismatch",
                    format!(
                        "the data does not match the declared checksums: {}",
                        bad.join(", ")
                    ),
                ))
            } else if dss_ingest::blob_present(store, &sums).await? {
                Ok(())
            } else {
                store
                    .copy(&temp, &ObjectKey::blob(&sums))
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from)
            };
            if let Err(e) = store.delete(&temp).await {
                tracing::warn!(key = temp, error = %e, "could not remove upload temp object");
            }
            placed?;
            (sums, m.size)
        }
    };
    let meta = FileMetadata::new(creator_uid, version.clone(), content_type, size, &sums);
    register(&state, replica, &uuid, &meta).await
}

fn upload_error(e: BlobError) -> ApiError {
    match e {
        BlobError::Body(io) if io.kind() == std::io::ErrorKind::FileTooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "upload exceeds the configured maximum",
        ),
        BlobError::Body(io) if crate::body_timeout::stalled(&io) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("upload body failed: {io}"),
        ),
        BlobError::Body(io) => ApiError::illegal_arguments(format!("upload body failed: {io}")),
        other => checksum_error(other),
    }
}

fn dss_headers(meta: &FileMetadata) -> Vec<(HeaderName, HeaderValue)> {
    let pairs = [
        ("x-dss-creator-uid", meta.creator_uid.to_string()),
        ("x-dss-version", meta.version.to_string()),
        ("x-dss-content-type", meta.content_type.clone()),
        ("x-dss-size", meta.size.to_string()),
        ("x-dss-crc32c", meta.crc32c.clone()),
        ("x-dss-s3-etag", meta.s3_etag.clone()),
        ("x-dss-sha1", meta.sha1.clone()),
        ("x-dss-sha256", meta.sha256.clone()),
    ];
    pairs
        .into_iter()
        .filter_map(|(n, v)| Some((HeaderName::from_static(n), HeaderValue::from_str(&v).ok()?)))
        .collect()
}

async fn lookup<'a>(
    state: &'a Shared,
    raw_uuid: &str,
    q: &Query,
) -> ApiResult<(FileMetadata, &'a Replica)> {
    let replica = state.replica(q)?;
    let Ok(uuid) = ObjectUuid::parse(raw_uuid) else {
        return Err(ApiError::not_found(NO_FILE));
    };
    let version = match q.get("version") {
        Some(v) => Some(DssVersion::parse(v).map_err(|_| ApiError::not_found(NO_FILE))?),
        None => None,
    };
    let Some(meta) = storage::file_metadata(&*replica.store, &uuid, version.as_ref()).await? else {
        // A version whose background copy failed says why.
        if let Some(v) = &version
            && let Some(f) = dss_ingest::failure(replica, &uuid, v).await?
        {
            return Err(unprocessable(dss_ingest::failure_code(&f.code), f.title));
        }
        return Err(ApiError::not_found(NO_FILE));
    };
    Ok((meta, replica))
}

/// `HEAD /v1/files/{uuid}` — metadata in `X-DSS-*` headers.
pub async fn head(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cx = state.open_request("headFile", raw.as_deref())?;
    let q = &cx.query;
    let (meta, _) = lookup(&state, &raw_uuid, q).await?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().extend(dss_headers(&meta));
    Ok(r)
}

/// `GET /v1/files/{uuid}` — 302 to a URL serving the bytes.
pub async fn get(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cx = state.open_request("getFile", raw.as_deref())?;
    let q = &cx.query;
    parse_uuid(&raw_uuid)?;
    let direct = q.flag("directurl");
    let (meta, replica) = lookup(&state, &raw_uuid, q).await?;
    let mut store = &replica.store;
    if replica.download == DownloadMode::Checkout {
        let path = format!("/v1/files/{raw_uuid}");
        if let Some(wait) = copies::file_ready(&state, replica, &meta, &path, q).await? {
            return Ok(wait);
        }
        store = &replica.checkout;
    }
    let blob = ObjectKey::blob(&meta.checksums());
    let location = if direct {
        store.direct_url(&blob)?
    } else {
        let ttl = Duration::from_secs(state.deployment.config.api.download_url_ttl_secs);
        store
            .download_url(&blob, ttl, q.get("content_disposition"))
            .await?
    };
    let mut r = StatusCode::FOUND.into_response();
    let h = r.headers_mut();
    h.extend(dss_headers(&meta));
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|e| ApiError::internal("location", e))?,
    );
    Ok(r)
}
