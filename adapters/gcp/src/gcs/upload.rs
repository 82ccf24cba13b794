//! Uploads: one multipart request for a body of at most one part, else a resumable upload whose
//! last chunk waits until the body is verified.

use bytes::{Bytes, BytesMut};
use dss_core::checksum::{Checksums, declaration, s3_part_size};
use dss_core::ports::{BlobError, ByteStream, LocalFile, PutMode, PutOptions, stage_options};
use dss_core::upload::{Hashing, content_type, ended, fill, hash, hash_file, verify};
use reqwest::StatusCode;

use super::object::{self, Object, hex_of};
use super::{GcsBlobStore, transport, unexpected};

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
                chunk(store, key, &session, pending.into(), offset, None),
                hash(hasher, next.clone())
            );
            offset += sent?;
            hasher = hashed?;
            pending = next;
        }
        let size = hasher.hashed();
        let sums = hasher.finish();
        verify(opts, size, &sums)?;
        chunk(store, key, &session, pending.into(), offset, Some(size)).await?;
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
            let body = range(file, offset, part).await?;
            offset += chunk(store, key, &session, body, offset, None).await?;
            (file.sent)(part);
        }
        let sums = hashing.await?.finish();
        file.unchanged(&before).await?;
        let body = range(file, offset, size - offset).await?;
        chunk(store, key, &session, body, offset, Some(size)).await?;
        (file.sent)(size - offset);
        Ok::<_, BlobError>(sums)
    }
    .await;
    finish(store, key, &session, outcome, &opts, true).await
}

/// `len` bytes of `file` from `offset` on, read as they are sent.
async fn range(file: &LocalFile<'_>, offset: u64, len: u64) -> Result<Chunk, BlobError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(file.path)
        .await
        .map_err(BlobError::Body)?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(BlobError::Body)?;
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), FILE_READ);
    Ok(Chunk {
        body: reqwest::Body::wrap_stream(stream),
        len,
    })
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

/// A chunk of a resumable upload: its body and length.
struct Chunk {
    body: reqwest::Body,
    len: u64,
}

impl From<Bytes> for Chunk {
    fn from(data: Bytes) -> Self {
        Chunk {
            len: data.len() as u64,
            body: data.into(),
        }
    }
}

/// Sends `data` at `offset` of the session (the last chunk when `total` is given); its length.
async fn chunk(
    store: &GcsBlobStore,
    key: &str,
    session: &str,
    data: Chunk,
    offset: u64,
    total: Option<u64>,
) -> Result<u64, BlobError> {
    let Chunk { body, len } = data;
    let range = match total {
        Some(t) => format!("bytes {offset}-{}/{t}", offset + len - 1),
        None => format!("bytes {offset}-{}/*", offset + len - 1),
    };
    let req = store
        .http
        .put(session)
        .header("content-range", range)
        .header("content-length", len)
        .body(body);
    let r = store.send(req).await?;
    match (r.status(), total) {
        (StatusCode::PERMANENT_REDIRECT, None) => Ok(len),
        (s, Some(_)) if s.is_success() => Ok(len),
        (StatusCode::PRECONDITION_FAILED, _) => Err(BlobError::AlreadyExists(key.to_string())),
        _ => Err(unexpected("upload chunk", r).await),
    }
}
