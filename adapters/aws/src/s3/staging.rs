//! [`Staging`] on S3: `s3://bucket/key` sources of `PUT /files`, with the checksums their user
//! metadata or tags declare (`hca-dss-*`, as the official CLI writes them).

use std::sync::Arc;

use async_trait::async_trait;
use dss_shared::ports::{BlobError, BlobStore, Declared, Staging, valid_bucket_name};

use super::S3BlobStore;
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
}
