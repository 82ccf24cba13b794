//! Uploads: one multipart request for a body of at most one part, else a resumable upload whose
//! last chunk waits until the body is verified.

use bytes::{Bytes, BytesMut};
use dss_core::checksum::{Checksums, declaration, s3_part_size};
use dss_core::ports::{BlobError, ByteStream, LocalFile, PutMode, PutOptions, stage_options};
use dss_core::upload::{Hashing, content_type, ended, fill, hash, hash_file, verify};
use reqwest::{Response, StatusCode};

use super::object::{self, Object, hex_of};
use super::{GcsBlobStore, transport, unexpected};
use crate::retry;

/// Puts `body` at `key` as `opts` say; the object written. With `declare`, its metadata also
/// declares the checksums as a staging object's (`hca-dss-*`).
pub async fn put(
    store: &GcsBlobStore,
    key: &str,
    mut body: ByteStream,
    opts: &PutOptions,
    declare: bool,
) -> Result<Object, BlobError> {
    // The DSS part size; a multiple of the 256 KiB resumable chunks need.
    let part = s3_part_size(opts.size.unwrap_or(0)) as usize;
    let hasher = Hashing::for_put(opts);
    let mut carry = Bytes::new();
    let first = fill(&mut body, part, &mut carry).await?;
    let hasher = hash(hasher, first.clone()).await?;
    if first.len() < part || (carry.is_empty() && ended(&mut body, &mut carry).await?) {
        let size = hasher.hashed();
        let sums = hasher.finish();
        verify(opts, size, &sums)?;
        let written = single(store, key, first, &sums, opts, declare).await?;
        return checked(store, written, &sums).await;
    }
    resumable(store, key, first, body, carry, part, hasher, opts, declare).await
}

/// The server's CRC-32C of `written` must be ours; a corrupted object is deleted.
async fn checked(
    store: &GcsBlobStore,
    written: Object,
    sums: &Checksums,
) -> Result<Object, BlobError> {
    match written.crc32c.as_deref().and_then(hex_of) {
        Some(c) if c != sums.crc32c => {
            let _ = super::BlobStore::delete(store, &written.name).await;
            Err(BlobError::Backend(format!(
                "{} was corrupted on the way: the server's CRC-32C is {c}, the body's {}",
                written.name, sums.crc32c
            )))
        }
        _ => Ok(written),
    }
}

/// The create-only precondition, as a query parameter.
fn precondition(opts: &PutOptions) -> Vec<(&'static str, &'static str)> {
    match opts.mode {
        PutMode::Create => vec![("ifGenerationMatch", "0")],
        PutMode::Overwrite => vec![],
    }
}

/// The custom metadata recording `sums` (also as `hca-dss-*` declarations with `declare`).
fn recorded(
    sums: Option<&Checksums>,
    opts: &PutOptions,
    declare: bool,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = object::metadata(sums, opts.origin.as_deref(), opts.creator.as_deref());
    if let (true, Some(s)) = (declare, sums) {
        m.extend(declaration(s).into_iter().map(|(k, v)| (k, v.into())));
    }
    m
}

/// The object resource of a new upload.
fn resource(
    key: &str,
    opts: &PutOptions,
    sums: Option<&Checksums>,
    declare: bool,
) -> serde_json::Value {
    serde_json::json!({
        "name": key,
        "contentType": content_type(opts),
        "metadata": recorded(sums, opts, declare),
    })
}

/// One `uploadType=multipart` request: the resource (with the checksums) and the bytes.
async fn single(
    store: &GcsBlobStore,
    key: &str,
    data: Bytes,
    sums: &Checksums,
    opts: &PutOptions,
    declare: bool,
) -> Result<Object, BlobError> {
    let boundary = format!("dss-{}", hex::encode(rand::random::<[u8; 16]>()));
    let meta = resource(key, opts, Some(sums), declare).to_string();
    let mut body = BytesMut::with_capacity(data.len() + meta.len() + 256);
    body.extend_from_slice(
        format!("--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{boundary}\r\ncontent-type: {}\r\n\r\n", content_type(opts)).as_bytes(),
    );
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = store
        .http
        .post(store.upload_url())
        .query(&[("uploadType", "multipart")])
        .query(&precondition(opts))
        .header(
            "content-type",
            format!("multipart/related; boundary={boundary}"),
        )
        .body(body.freeze());
    let r = store.send(req).await?;
    match r.status() {
        s if s.is_success() => r.json().await.map_err(transport),
        StatusCode::PRECONDITION_FAILED => Err(BlobError::AlreadyExists(key.to_string())),
        _ => Err(unexpected("upload", r).await),
    }
}

/// A resumable upload: each part is sent once the next one has been read, so the last one goes
/// only after the whole body is hashed and verified; a body that fails is never finalised.
#[allow(clippy::too_many_arguments)]
async fn resumable(
    store: &GcsBlobStore,
    key: &str,
    first: Bytes,
    mut body: ByteStream,
    mut carry: Bytes,
    part: usize,
    mut hasher: Hashing,
    opts: &PutOptions,
    declare: bool,
) -> Result<Object, BlobError> {
    let session = start(store, key, opts, declare).await?;
    let outcome = async {
        let (mut pending, mut offset) = (first, 0u64);
        loop {
            let next = fill(&mut body, part, &mut carry).await?;
            if next.is_empty() {
                break;
            }
            let (sent, hashed) = tokio::join!(
                chunk(store, key, &session, Source::Memory(pending), offset, None),
                hash(hasher, next.clone())
            );
            offset += sent?;
            hasher = hashed?;
            pending = next;
        }
        let size = hasher.hashed();
        let sums = hasher.finish();
        verify(opts, size, &sums)?;
        chunk(
            store,
            key,
            &session,
            Source::Memory(pending),
            offset,
            Some(size),
        )
        .await?;
        Ok::<_, BlobError>(sums)
    }
    .await;
    finish(store, key, &session, outcome, opts, declare).await
}

/// Stages the local file `file` as `key` in a resumable upload whose chunks (of `part` bytes)
/// are read from the file as they are sent, while one pass over the file computes its
/// checksums: nothing is held in memory. The last chunk goes once the file is hashed, its size
/// verified and the file found unchanged. The object declares its checksums (`hca-dss-*`).
pub async fn put_file(
    store: &GcsBlobStore,
    key: &str,
    file: &LocalFile<'_>,
    part: u64,
) -> Result<Object, BlobError> {
    let before = file.listed().await?;
    let opts = stage_options(file.size, file.content_type);
    let hashing = hash_file(file.path, file.size, Hashing::for_put(&opts));
    let session = start(store, key, &opts, true).await?;
    let outcome = async {
        let (size, mut offset) = (file.size, 0);
        while size - offset > part {
            let source = Source::File { file, len: part };
            offset += chunk(store, key, &session, source, offset, None).await?;
            (file.sent)(part);
        }
        let sums = hashing.await?.finish();
        file.unchanged(&before).await?;
        let source = Source::File {
            file,
            len: size - offset,
        };
        chunk(store, key, &session, source, offset, Some(size)).await?;
        (file.sent)(size - offset);
        Ok::<_, BlobError>(sums)
    }
    .await;
    finish(store, key, &session, outcome, &opts, true).await
}

/// `len` bytes of `file` from `offset` on, read as they are sent.
async fn range(file: &LocalFile<'_>, offset: u64, len: u64) -> Result<reqwest::Body, BlobError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(file.path)
        .await
        .map_err(BlobError::Body)?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(BlobError::Body)?;
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), FILE_READ);
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Starts a resumable upload of `key`: its session URL.
async fn start(
    store: &GcsBlobStore,
    key: &str,
    opts: &PutOptions,
    declare: bool,
) -> Result<String, BlobError> {
    let start = store
        .http
        .post(store.upload_url())
        .query(&[("uploadType", "resumable"), ("name", key)])
        .query(&precondition(opts))
        .header("x-upload-content-type", content_type(opts))
        .json(&resource(key, opts, opts.expected.as_ref(), declare));
    let r = store.send(start).await?;
    match r.status() {
        s if s.is_success() => {}
        StatusCode::PRECONDITION_FAILED => return Err(BlobError::AlreadyExists(key.to_string())),
        _ => return Err(unexpected("upload start", r).await),
    }
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| BlobError::Backend("resumable upload without a session URL".into()))
}

/// Ends the resumable upload `session` whose body was sent (`outcome`: its checksums): the
/// object written, its checksums recorded if they were not known at the start and the
/// server's CRC-32C checked. A failed body cancels the session: nothing becomes visible.
async fn finish(
    store: &GcsBlobStore,
    key: &str,
    session: &str,
    outcome: Result<Checksums, BlobError>,
    opts: &PutOptions,
    declare: bool,
) -> Result<Object, BlobError> {
    let sums = match outcome {
        Ok(s) => s,
        Err(e) => {
            let _ = store.send(store.http.delete(session)).await;
            return Err(e);
        }
    };
    let written = match opts.expected {
        Some(_) => store
            .object(key)
            .await?
            .ok_or_else(|| BlobError::Backend(format!("{key} missing after its upload")))?,
        // The checksums were not known when the upload began: record them now.
        None => {
            store
                .set_metadata(key, recorded(Some(&sums), opts, declare))
                .await?
        }
    };
    checked(store, written, &sums).await
}

/// Read size of chunks sent from a local file.
const FILE_READ: usize = 256 * 1024;

/// Where a chunk's bytes come from, so that any rest of it can be sent again.
enum Source<'a> {
    /// Bytes in memory.
    Memory(Bytes),
    /// `len` bytes of a local file from the chunk's offset on.
    File { file: &'a LocalFile<'a>, len: u64 },
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    /// The chunk's bytes after its first `skip`, as a request body.
    async fn body(&self, offset: u64, skip: u64) -> Result<reqwest::Body, BlobError> {
        match self {
            Source::Memory(b) => Ok(b.slice(skip as usize..).into()),
            Source::File { file, len } => range(file, offset + skip, len - skip).await,
        }
    }
}

/// What the server holds of a resumable upload.
enum Persisted {
    /// The first this many bytes.
    Bytes(u64),
    /// All of it: the object exists.
    Complete,
    /// Unknown for now (the status query failed in a way that may pass).
    Unknown,
}

/// The bytes a `308` answer says the server persisted (`Range: bytes=0-N`; none without it).
fn persisted(r: &Response) -> u64 {
    r.headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(0, |last| last + 1)
}

/// Asks the server how much of the upload `session` it persisted.
async fn status(
    store: &GcsBlobStore,
    session: &str,
    total: Option<u64>,
) -> Result<Persisted, BlobError> {
    let total = total.map_or("*".to_string(), |t| t.to_string());
    let req = store
        .http
        .put(session)
        .header("content-range", format!("bytes */{total}"))
        .header("content-length", 0);
    let r = match store.send_once(req).await? {
        Ok(r) => r,
        Err(e) if retry::transient(&e) => return Ok(Persisted::Unknown),
        Err(e) => return Err(transport(e)),
    };
    match r.status() {
        StatusCode::PERMANENT_REDIRECT => Ok(Persisted::Bytes(persisted(&r))),
        s if s.is_success() => Ok(Persisted::Complete),
        s if retry::retryable(s) => Ok(Persisted::Unknown),
        _ => Err(unexpected("upload status", r).await),
    }
}

/// Sends the chunk `source` at `offset` of the session (the last chunk when `total` is given);
/// its length. When a send fails — a dropped connection, a retryable answer — the server is
/// asked what it persisted and the rest is sent from there, with backoff, while attempts
/// remain; a server that persisted only part of a chunk gets the rest at once.
async fn chunk(
    store: &GcsBlobStore,
    key: &str,
    session: &str,
    source: Source<'_>,
    offset: u64,
    total: Option<u64>,
) -> Result<u64, BlobError> {
    let len = source.len();
    let end = offset + len;
    let mut from = offset;
    let mut failures = 0;
    loop {
        let range = match total {
            Some(t) => format!("bytes {from}-{}/{t}", end - 1),
            None => format!("bytes {from}-{}/*", end - 1),
        };
        let req = store
            .http
            .put(session)
            .header("content-range", range)
            .header("content-length", end - from)
            .body(source.body(offset, from - offset).await?);
        let why = match store.send_once(req).await? {
            Ok(r) => match (r.status(), total) {
                (StatusCode::PERMANENT_REDIRECT, None) => {
                    let held = persisted(&r);
                    if held >= end {
                        return Ok(len);
                    }
                    if held < offset {
                        return Err(lost(key, held, offset));
                    }
                    // Part of the chunk was persisted: the rest goes at once.
                    from = held;
                    continue;
                }
                (s, Some(_)) if s.is_success() => return Ok(len),
                (StatusCode::PRECONDITION_FAILED, _) => {
                    return Err(BlobError::AlreadyExists(key.to_string()));
                }
                (s, _) if retry::retryable(s) => s.to_string(),
                _ => return Err(unexpected("upload chunk", r).await),
            },
            Err(e) if retry::transient(&e) => e.to_string(),
            Err(e) => return Err(transport(e)),
        };
        failures += 1;
        if failures >= store.policy.attempts() {
            return Err(BlobError::Backend(format!(
                "GCS upload of {key}: the chunk at {from} kept failing: {why}"
            )));
        }
        tracing::warn!(key, offset = from, error = %why, attempt = failures, "GCS upload chunk failed; asking the server what it holds");
        tokio::time::sleep(store.policy.backoff(failures - 1)).await;
        match status(store, session, total).await? {
            Persisted::Complete if total.is_some() => return Ok(len),
            Persisted::Complete => {
                return Err(BlobError::Backend(format!(
                    "GCS upload of {key} was finalised before its last chunk"
                )));
            }
            Persisted::Bytes(held) if held < offset => return Err(lost(key, held, offset)),
            Persisted::Bytes(held) if held >= end && total.is_none() => return Ok(len),
            Persisted::Bytes(held) => from = held.min(end),
            Persisted::Unknown => {}
        }
    }
}

/// The server holds fewer bytes than it confirmed before: the upload cannot go on.
fn lost(key: &str, held: u64, confirmed: u64) -> BlobError {
    BlobError::Backend(format!(
        "GCS upload of {key}: the server holds {held} bytes after confirming {confirmed}"
    ))
}
