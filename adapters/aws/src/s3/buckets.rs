//! [`Buckets`] on S3: the buckets one S3 client can reach (checkout destinations).

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::ports::{BlobError, BlobStore, Buckets, valid_bucket_name};

use super::S3BlobStore;

/// The buckets of an S3 account, opened through the client of one of them.
#[derive(Debug, Clone)]
pub struct S3Buckets {
    template: S3BlobStore,
}

impl S3Buckets {
    /// The buckets reachable like `store` (same client and service).
    pub fn like(store: &S3BlobStore) -> Self {
        Self {
            template: store.clone(),
        }
    }
}

#[async_trait]
impl Buckets for S3Buckets {
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn BlobStore>>, BlobError> {
        if !valid_bucket_name(name) {
            return Err(BlobError::InvalidKey {
                key: name.to_string(),
                reason: "not a bucket name",
            });
        }
        let store = self.template.sibling(name);
        Ok(match store.exists().await? {
            true => Some(Arc::new(store)),
            false => None,
        })
    }

    fn location(&self, name: &str, prefix: &str) -> String {
        format!("s3://{name}/{prefix}")
    }
}
