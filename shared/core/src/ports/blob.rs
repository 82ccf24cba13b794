//! The `BlobStore` port: one bucket of keyed, immutable-by-convention objects.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use time::OffsetDateTime;

use crate::checksum::Checksums;

/// A stream of object bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Errors of a blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No object under the key.
    #[error("no such object: {0}")]
    NotFound(String),
    /// A create-only put found an existing object.
    #[error("object already exists: {0}")]
    AlreadyExists(String),
    /// The key cannot be stored (empty, traversal, control characters, too long).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// The bytes did not match the checksums the caller expected; nothing was stored.
    #[error("checksum mismatch ({})", .0.join(", "))]
    ChecksumMismatch(Vec<&'static str>),
    /// The body ended before (or ran past) the declared size; nothing was stored.
    #[error("expected {expected} bytes, got {got}")]
    SizeMismatch {
        /// Declared size.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The body stream failed (client went away); nothing was stored.
    #[error("body stream failed: {0}")]
    Body(std::io::Error),
    /// A requested range lies outside the object.
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// The backend failed; may succeed on retry.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The backend has no space left (a full disk); nothing was stored, and the same call
    /// succeeds once space returns.
    #[error("no space left: {0}")]
    StorageFull(String),
}

impl BlobError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Backend(_) | BlobError::StorageFull(_))
    }
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The store's ETag (S3-style for the embedded store).
    pub etag: String,
    /// Media type.
    pub content_type: String,
    /// When the object was written.
    pub created: OffsetDateTime,
    /// All four checksums where the store computed them.
    pub checksums: Option<Checksums>,
    /// The replica this object was copied from, when it arrived by sync (recorded with the
    /// object, so that its bucket event is not replicated again).
    pub origin: Option<String>,
    /// The correlation id of the request whose work wrote it, where the store records one
    /// with the object (S3, GCS), so that the daemons its bucket event reaches log under it.
    /// The embedded store puts the id on its events instead.
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` of the span that wrote it, where the store records one with the
    /// object (S3, GCS), so that the handling of its bucket event joins the writer's trace.
    pub traceparent: Option<String>,
    /// Who wrote it, when the writer recorded that ([`PutOptions::creator`]): the e-mail of a
    /// bundle's creator, which decides who may derive new versions of it. Listings may leave
    /// it out.
    pub creator: Option<String>,
}

/// Create-only or overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Fail with [`BlobError::AlreadyExists`] if the key exists.
    Create,
}

/// How a put checks its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Compute all four checksums, compare them with `expected` when given, and record them.
    #[default]
    Full,
    /// The body is a copy of an object whose checksums are `expected` (required): only the
    /// size and one checksum are compared — the CRC-32C (hardware, ~13 GB/s) of bytes that pass
    /// through, or the S3 ETag the server computed for a server-side copy — and `expected` is
    /// recorded. For copies of already verified objects, where hashing all four would be
    /// the bottleneck.
    Copy,
}

/// Options of a put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Media type to record (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Exact size the body must have, when known.
    pub size: Option<u64>,
    /// Checksums the body must have; a mismatch stores nothing.
    pub expected: Option<Checksums>,
    /// Create-only or overwrite.
    pub mode: PutMode,
    /// What is computed and compared.
    pub verify: Verify,
    /// Record the object as a sync copy from this replica ([`ObjectMeta::origin`]).
    pub origin: Option<String>,
    /// Record who wrote it ([`ObjectMeta::creator`]).
    pub creator: Option<String>,
}

/// An inclusive byte range; `end: None` means "to the end".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: Option<u64>,
}

impl ByteRange {
    /// Resolves against an object size to `(start, len)`, or `None` if unsatisfiable.
    pub fn resolve(&self, size: u64) -> Option<(u64, u64)> {
        if self.start >= size {
            return None;
        }
        let end = self.end.unwrap_or(size - 1).min(size - 1);
        (end >= self.start).then(|| (self.start, end - self.start + 1))
    }
}

/// An object being read.
pub struct GetObject {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// `(start, len)` of the bytes in `body` when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStream,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Objects in key order.
    pub objects: Vec<ObjectMeta>,
    /// Pass as `start_after` to get the next page; `None` when the listing is complete.
    pub next_start_after: Option<String>,
}

/// Bytes written by one copy, counted into a shared total (a job's progress) as they go; a
/// failed copy takes its bytes back out of the total.
#[derive(Debug)]
pub struct CopyProgress {
    total: Arc<AtomicU64>,
    mine: AtomicU64,
}

impl CopyProgress {
    /// A copy counting into `total`.
    pub fn new(total: Arc<AtomicU64>) -> Self {
        Self {
            total,
            mine: AtomicU64::new(0),
        }
    }

    /// `n` more bytes written.
    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.mine.fetch_add(n, Ordering::Relaxed);
    }

    /// The copy failed: its bytes leave the total.
    pub fn undo(&self) {
        self.total
            .fetch_sub(self.mine.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// One object of [`BlobStore::copy_batch`]: `src_key` of the source, copied as `key`.
#[derive(Debug, Clone)]
pub struct BatchCopy {
    /// The source object.
    pub src_key: String,
    /// Where it goes.
    pub key: String,
    /// The put's options (how it is checked).
    pub opts: PutOptions,
}

/// One bucket.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// The bucket's name.
    fn bucket(&self) -> &str;

    /// Streams `body` into `key`, computing all four checksums on the way; verifies them against
    /// `opts.expected` and the size against `opts.size` before the object becomes visible.
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError>;

    /// Reads an object, or a range of it.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, BlobError>;

    /// Metadata of an object, `None` if absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError>;

    /// Up to `limit` objects under `prefix` with keys greater than `start_after`, in key order.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, BlobError>;

    /// Copies an object within the bucket.
    async fn copy(&self, from: &str, to: &str) -> Result<ObjectMeta, BlobError>;

    /// Deletes an object; `false` if it did not exist.
    async fn delete(&self, key: &str) -> Result<bool, BlobError>;

    /// The backend's own address of an object (`file:///…`, `s3://bucket/key`, `gs://bucket/key`),
    /// for clients with direct access to the storage.
    fn direct_url(&self, key: &str) -> Result<String, BlobError>;

    /// A URL from which the object can be downloaded without further credentials, valid for `ttl`.
    async fn download_url(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: Option<&str>,
    ) -> Result<String, BlobError>;

    /// The store as `Any`, so that a store of the same kind recognises it as a copy source
    /// (server-side copies between buckets of one service).
    fn as_any(&self) -> &dyn std::any::Any;

    /// The local file holding an object's bytes, for stores that keep objects as files on this
    /// machine (another store here may then copy it directly).
    fn local_file(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }

    /// Copies `src_key` of `src` here as `key`, as a put with `opts` (checked as `opts.verify`
    /// says), when this store can do it more directly than through a stream (from a local
    /// file, or server-side); `Ok(None)` when it cannot. `progress` counts the bytes written
    /// (the caller undoes it if the copy fails).
    async fn copy_from(
        &self,
        _src: &dyn BlobStore,
        _src_key: &str,
        _key: &str,
        _opts: PutOptions,
        _progress: Arc<CopyProgress>,
    ) -> Result<Option<ObjectMeta>, BlobError> {
        Ok(None)
    }

    /// Copies each of `items` here as [`BlobStore::copy_from`] would, together, when this
    /// store can do that more cheaply than one by one (small files between local buckets: one
    /// blocking task and one commit for the lot); `None` when it cannot. One result per item,
    /// in order; `progress` counts the bytes written by the items that succeed.
    async fn copy_batch(
        &self,
        _src: &dyn BlobStore,
        _items: Vec<BatchCopy>,
        _progress: Arc<AtomicU64>,
    ) -> Option<Vec<Result<ObjectMeta, BlobError>>> {
        None
    }

    /// Convenience: every object under `prefix`, in key order (for prefixes known to be small,
    /// such as one bundle's keys).
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BlobError> {
        use futures::TryStreamExt;
        super::listing::objects(self, prefix, None, 1000)
            .try_collect()
            .await
    }

    /// Convenience: puts an in-memory buffer.
    async fn put_bytes(
        &self,
        key: &str,
        data: Bytes,
        mut opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        opts.size.get_or_insert(data.len() as u64);
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(data) }));
        self.put(key, body, opts).await
    }

    /// Convenience: reads a whole object into memory.
    async fn get_bytes(&self, key: &str) -> Result<Bytes, BlobError> {
        use futures::TryStreamExt;
        let obj = self.get(key, None).await?;
        let chunks: Vec<Bytes> = obj
            .body
            .try_collect()
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        if chunks.len() == 1 {
            return Ok(chunks.into_iter().next().unwrap_or_default());
        }
        let mut out = bytes::BytesMut::with_capacity(obj.meta.size as usize);
        for c in chunks {
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }
}

/// Writes a JSON document only if `key` is free, recording `creator` with it: `true` when it
/// was written now, `false` when something is already there.
pub async fn create_json(
    store: &dyn BlobStore,
    key: &str,
    text: String,
    creator: Option<String>,
) -> Result<bool, BlobError> {
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        mode: PutMode::Create,
        creator,
        ..Default::default()
    };
    match store.put_bytes(key, text.into(), opts).await {
        Ok(_) => Ok(true),
        Err(BlobError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_size() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(r(0, None).resolve(10), Some((0, 10)));
        assert_eq!(r(3, Some(5)).resolve(10), Some((3, 3)));
        assert_eq!(r(3, Some(50)).resolve(10), Some((3, 7)));
        assert_eq!(r(10, None).resolve(10), None);
        assert_eq!(r(5, Some(4)).resolve(10), None);
        assert_eq!(r(0, None).resolve(0), None);
    }
}
