//! The `Staging` port: the staging buckets of one cloud (`s3://`, `gs://`), from which
//! `PUT /files` copies a file's bytes after reading the checksums the object declares.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::TryStreamExt;

use super::blob::{BlobError, BlobStore, ByteStream, ObjectMeta, PutOptions};
use crate::checksum::{Checksums, s3_part_size};

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

/// A local file's size and modification time, to tell whether it changed.
#[derive(Debug, PartialEq, Eq)]
pub struct FileStamp(u64, Option<SystemTime>);

impl LocalFile<'_> {
    async fn stamp(&self) -> Result<FileStamp, BlobError> {
        let meta = tokio::fs::metadata(self.path)
            .await
            .map_err(BlobError::Body)?;
        Ok(FileStamp(meta.len(), meta.modified().ok()))
    }

    /// The file as it is now, which must be of its listed size (else a
    /// [`BlobError::SizeMismatch`]): take it before sending parts read from the file.
    pub async fn listed(&self) -> Result<FileStamp, BlobError> {
        let now = self.stamp().await?;
        match now.0 == self.size {
            true => Ok(now),
            false => Err(BlobError::SizeMismatch {
                expected: self.size,
                got: now.0,
            }),
        }
    }

    /// Fails unless the file is still as it was at `before`: check it before the upload of
    /// parts read from the file completes, so its checksums are those of the bytes sent.
    pub async fn unchanged(&self, before: &FileStamp) -> Result<(), BlobError> {
        match self.stamp().await? == *before {
            true => Ok(()),
            false => Err(BlobError::Body(std::io::Error::other(
                "the file changed while it was uploaded",
            ))),
        }
    }
}

/// [`Staging::stage`] of the bytes of `file`, read from it as they are sent.
async fn stream_file(
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

    /// Stages a local file larger than one DSS part by sending its parts straight from the
    /// file, as [`Staging::stage`] would stage its bytes (see [`LocalFile::listed`] and
    /// [`LocalFile::unchanged`]): its checksums. `None`, the default, when the store cannot:
    /// the file is then streamed to `stage`.
    async fn stage_parts(
        &self,
        _bucket: &str,
        _key: &str,
        _file: &LocalFile<'_>,
    ) -> Result<Option<Checksums>, BlobError> {
        Ok(None)
    }

    /// [`Staging::stage`] of a local file: in parts sent from the file when it is larger than
    /// one DSS part and the store can ([`Staging::stage_parts`]), else streamed to `stage`.
    async fn stage_file(
        &self,
        bucket: &str,
        key: &str,
        file: LocalFile<'_>,
    ) -> Result<Checksums, BlobError> {
        if file.size > s3_part_size(file.size)
            && let Some(sums) = self.stage_parts(bucket, key, &file).await?
        {
            return Ok(sums);
        }
        stream_file(self, bucket, key, file).await
    }
}
