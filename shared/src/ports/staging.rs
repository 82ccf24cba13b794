//! The `Staging` port: the staging buckets of one cloud (`s3://`, `gs://`), from which
//! `PUT /files` copies a file's bytes after reading the checksums the object declares.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

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
}
