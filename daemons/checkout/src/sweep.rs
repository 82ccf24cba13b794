//! Expiry of checkout copies: objects under `blobs/` and `bundles/` of every replica's checkout
//! bucket are deleted `checkout.blob_ttl_secs` after they were made, except copies of files the
//! cache criteria keep; so are the pointers to copy jobs and the e-mail markers. Job statuses
//! are kept, as the original kept them. (Cloud checkout buckets also carry lifecycle
//! rules; the sweep makes the lifetime the same on every backend.)

use async_trait::async_trait;
use dss_core::clock::unix_ms;
use dss_core::ports::{BlobError, listing};
use dss_runtime::checkout::expired;
use dss_runtime::daemon::{Pass, PassResult};
use dss_runtime::deployment::Deployment;
use futures::TryStreamExt;

/// Prefixes holding what expires: copies, pointers to copy jobs, e-mail markers.
const SWEPT_PREFIXES: [&str; 4] = ["blobs/", "bundles/", "checkout/pending/", "checkout/mail/"];

/// Deletes every expired copy once; returns how many.
pub async fn sweep_once(deployment: &Deployment) -> Result<u64, BlobError> {
    let cfg = &deployment.config.checkout;
    let now = deployment.clock.now_ms();
    let mut deleted = 0;
    for replica in deployment.replicas.values() {
        let bucket = &*replica.checkout;
        for prefix in SWEPT_PREFIXES {
            let mut listed = std::pin::pin!(listing::objects(bucket, prefix, None, 1000));
            while let Some(o) = listed.try_next().await? {
                if expired(cfg, unix_ms(o.created), now)
                    && !cfg.cacheable(&o.content_type, o.size)
                    && bucket.delete(&o.key).await?
                {
                    deleted += 1;
                }
            }
        }
    }
    Ok(deleted)
}

/// The sweep as a periodic task of the daemon.
pub(crate) struct Sweep(pub(crate) Deployment);

#[async_trait]
impl Pass for Sweep {
    async fn run(&self) -> PassResult {
        let n = sweep_once(&self.0).await?;
        Ok((n > 0).then(|| format!("deleted {n} expired checkout copies")))
    }
}
