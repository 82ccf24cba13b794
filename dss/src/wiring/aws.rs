//! AWS (or servers speaking its protocols): `s3://` replicas, the SQS/SNS queue backend and
//! `s3://` staging sources.

use std::sync::Arc;

use dss_aws::{AwsOptions, AwsQueues, S3BlobStore, S3Buckets, S3Staging};
use dss_config::{Config, QueueBackendKind, ReplicaLocation, replica_location};
use dss_runtime::deployment::{Deployment, Replica};

/// The AWS connection settings of the configuration.
pub fn options(config: &Config) -> AwsOptions {
    let a = &config.aws;
    AwsOptions {
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        path_style: a.path_style,
        credentials: a.access_key_id.clone().zip(a.secret_access_key.clone()),
    }
}

/// The S3 main and checkout buckets of replica `name`.
pub async fn buckets(config: &Config, name: &str, bucket: &str) -> (S3BlobStore, S3BlobStore) {
    let store = S3BlobStore::connect(bucket, &options(config)).await;
    let checkout = store.sibling(&super::checkout_bucket(config, name, bucket));
    (store, checkout)
}

/// Adds the `s3://` replicas, the SQS/SNS queue backend (`queues.backend = "aws"`) and the
/// `s3://` staging sources (whenever the deployment talks to AWS).
pub async fn wire(d: &mut Deployment) -> anyhow::Result<()> {
    let config = d.config.clone();
    for (name, r) in &config.replicas {
        if let Ok(ReplicaLocation::S3(bucket)) = replica_location(&r.url) {
            let (store, checkout) = buckets(&config, name, &bucket).await;
            let replica = Replica {
                name: name.clone(),
                buckets: Arc::new(S3Buckets::like(&store)),
                store: Arc::new(store),
                checkout: Arc::new(checkout),
                download: r.download,
            };
            d.replicas.insert(name.clone(), replica);
        }
    }
    if config.queues.backend == QueueBackendKind::Aws {
        d.queues = Arc::new(AwsQueues::connect(&options(&config), &config.queues.prefix).await);
    }
    if config.uses_aws() {
        let s3 = S3Staging::connect(&options(&config)).await;
        d.staging.insert("s3".into(), Arc::new(s3));
    }
    Ok(())
}
