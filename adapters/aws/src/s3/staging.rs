//! [`Staging`] on S3: `s3://bucket/key` sources of `PUT /files`, with the checksums their user
//! metadata or tags declare (`hca-dss-*`, as the official CLI writes them); and the objects
//! `dss upload` stages there, tagged the same way.

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::checksum::Checksums;
use dss_core::ports::{
    BlobError, BlobStore, ByteStream, Declared, LocalFile, Staging, stage_options,
    staged_checksums, valid_bucket_name,
};

use super::{Record, S3BlobStore};
use crate::AwsOptions;

/// The staging buckets one S3 client reaches.
#[derive(Debug, Clone)]
pub struct S3Staging {
    template: S3BlobStore,
}

impl S3Staging {
    /// Staging buckets reached as `options` say.
    pub async fn connect(options: &AwsOptions) -> Self {
        Self {
            template: S3BlobStore::connect("staging", options).await,
        }
    }

    fn store(&self, bucket: &str) -> Result<S3BlobStore, BlobError> {
        match valid_bucket_name(bucket) {
            true => Ok(self.template.sibling(bucket)),
            false => Err(BlobError::InvalidKey {
                key: bucket.to_string(),
                reason: "not a bucket name",
            }),
        }
    }
}

#[async_trait]
impl Staging for S3Staging {
    fn bucket(&self, name: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
        Ok(Arc::new(self.store(name)?))
    }

    async fn declared(&self, bucket: &str, key: &str) -> Result<Option<Declared>, BlobError> {
        self.store(bucket)?.declared(key).await
    }

    /// A put (multipart in DSS parts, so the object's ETag is the `s3_etag`) with the
    /// `hca-dss-*` tags: on the request of a single put, after a multipart one completes (whose
    /// metadata then holds no checksums: recording them there would copy the object onto
    /// itself).
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
        staged_checksums(store.put_object(key, body, opts, Record::Tags).await?)
    }

    /// A multipart upload whose parts the SDK reads from the file, tagged once it completes.
    async fn stage_parts(
        &self,
        bucket: &str,
        key: &str,
        file: &LocalFile<'_>,
    ) -> Result<Option<Checksums>, BlobError> {
        self.store(bucket)?.put_file(key, file).await.map(Some)
    }
}
