//! [`Buckets`] and [`Staging`] on GCS: the buckets one client reaches, as checkout
//! destinations and as `gs://` sources of `PUT /files` (checksums from object metadata).

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::checksum::Checksums;
use dss_core::ports::{
    BlobError, BlobStore, Buckets, ByteStream, Declared, LocalFile, Staging, stage_options,
    staged_checksums, valid_bucket_name,
};

use super::GcsBlobStore;
use super::object::hex_of;

/// The buckets of a GCS project, opened through the client of one of them.
#[derive(Debug, Clone)]
pub struct GcsBuckets {
    template: GcsBlobStore,
}

impl GcsBuckets {
    /// The buckets reachable like `store`.
    pub fn like(store: &GcsBlobStore) -> Self {
        Self {
            template: store.clone(),
        }
    }

    fn store(&self, name: &str) -> Result<GcsBlobStore, BlobError> {
        match valid_bucket_name(name) {
            true => Ok(self.template.sibling(name)),
            false => Err(BlobError::InvalidKey {
                key: name.to_string(),
                reason: "not a bucket name",
            }),
        }
    }
}

#[async_trait]
impl Buckets for GcsBuckets {
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn BlobStore>>, BlobError> {
        let store = self.store(name)?;
        Ok(match store.exists().await? {
            true => Some(Arc::new(store)),
            false => None,
        })
    }

    fn location(&self, name: &str, prefix: &str) -> String {
        format!("gs://{name}/{prefix}")
    }
}

#[async_trait]
impl Staging for GcsBuckets {
    fn bucket(&self, name: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
        Ok(Arc::new(self.store(name)?))
    }

    /// Its custom metadata (names lower-cased); the ETag is the MD5 of its bytes, which the
    /// server computed (what S3 reports for objects of one part).
    async fn declared(&self, bucket: &str, key: &str) -> Result<Option<Declared>, BlobError> {
        let Some(o) = self.store(bucket)?.object(key).await? else {
            return Ok(None);
        };
        Ok(Some(Declared {
            size: o.size()?,
            content_type: o.content_type.clone().unwrap_or_default(),
            etag: o.md5_hash.as_deref().and_then(hex_of),
            values: o
                .metadata
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
        }))
    }

    /// An upload whose custom metadata declares the `hca-dss-*` checksums next to the ones
    /// our own stores record.
    async fn stage(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<Checksums, BlobError> {
        let store = self.store(bucket)?;
        let opts = stage_options(size, content_type);
        staged_checksums(store.put_object(key, body, opts, true).await?)
    }

    /// A resumable upload whose chunks are read from the file.
    async fn stage_parts(
        &self,
        bucket: &str,
        key: &str,
        file: &LocalFile<'_>,
    ) -> Result<Option<Checksums>, BlobError> {
        staged_checksums(self.store(bucket)?.put_file(key, file).await?).map(Some)
    }
}
