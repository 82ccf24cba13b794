//! The `Staging` port: the staging buckets of one cloud (`s3://`, `gs://`), from which
//! `PUT /files` copies a file's bytes after reading the checksums the object declares.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;

use super::blob::{BlobError, BlobStore, ByteStream, ObjectMeta, PutOptions};
use crate::checksum::Checksums;

/// What a staging object declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub content_type: String,
    /// The S3-style ETag the store computed from its bytes, when it has one.
    pub etag: Option<String>,
    /// Its user metadata and tags (tags win), names lower-cased; see
    /// [`crate::checksum::declared_checksums`].
    pub values: BTreeMap<String, String>,
}

/// The put of a file being staged: `size` bytes of `content_type`, all four checksums computed
/// on the way (the store's [`ObjectMeta::checksums`] then holds them, see [`staged_checksums`]).
pub fn stage_options(size: u64, content_type: &str) -> PutOptions {
    PutOptions {
        content_type: Some(content_type.to_string()),
        size: Some(size),
        ..Default::default()
    }
}

/// The checksums the put of [`stage_options`] computed for `meta`.
pub fn staged_checksums(meta: ObjectMeta) -> Result<Checksums, BlobError> {
    meta.checksums
        .ok_or_else(|| BlobError::Backend(format!("{}: no checksums computed", meta.key)))
}

/// Told of each count of bytes a staging upload has sent.
pub type Sent = Arc<dyn Fn(u64) + Send + Sync>;

/// A local file to stage.
pub struct LocalFile<'a> {
    /// Where it is.
    pub path: &'a Path,
    /// Its size when it was listed: a file found of another size, or changed while it is
    /// read, leaves nothing staged.
    pub size: u64,
    /// Its media type.
    pub content_type: &'a str,
    /// Told of the bytes as they are sent.
    pub sent: Sent,
}

/// [`Staging::stage`] of the bytes of `file`, read from it as they are sent.
pub async fn stream_file(
    staging: &(impl Staging + ?Sized),
    bucket: &str,
    key: &str,
    file: LocalFile<'_>,
) -> Result<Checksums, BlobError> {
    let opened = tokio::fs::File::open(file.path)
        .await
        .map_err(BlobError::Body)?;
    let sent = file.sent;
    let body: ByteStream = Box::pin(
        tokio_util::io::ReaderStream::with_capacity(opened, 1024 * 1024)
            .inspect_ok(move |chunk| sent(chunk.len() as u64)),
    );
    staging
        .stage(bucket, key, body, file.size, file.content_type)
        .await
}

/// The staging buckets of one cloud.
#[async_trait]
pub trait Staging: Send + Sync + std::fmt::Debug {
    /// The bucket `name`, to copy from.
    fn bucket(&self, name: &str) -> Result<Arc<dyn BlobStore>, BlobError>;

    /// What object `key` of bucket `bucket` declares; `None` if there is no such object.
    async fn declared(&self, bucket: &str, key: &str) -> Result<Option<Declared>, BlobError>;

    /// Writes `body` (`size` bytes of `content_type`) as object `key` of bucket `bucket`,
    /// computing its four checksums as it goes (one pass over the bytes), then declares them
    /// as the official CLI does ([`crate::checksum::declaration`]), so any deployment, the
    /// original too, can register it with `PUT /files`. Returns the checksums. A body of
    /// another size leaves nothing behind.
    async fn stage(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<Checksums, BlobError>;

    /// [`Staging::stage`] of a local file. By default its bytes are streamed to `stage`; a
    /// store whose uploads go in parts may instead send each part straight from the file.
    async fn stage_file(
        &self,
        bucket: &str,
        key: &str,
        file: LocalFile<'_>,
    ) -> Result<Checksums, BlobError> {
        stream_file(self, bucket, key, file).await
    }
}
