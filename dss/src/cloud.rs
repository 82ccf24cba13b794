//! Cloud adapters for a deployment: opens `s3://` replicas and the SQS/SNS queue backend, and
//! creates the cloud resources a deployment needs (`dss infra local`).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use dss_aws::{AwsOptions, AwsQueues, S3BlobStore, S3Buckets, S3Staging};
use dss_shared::config::{Config, QueueBackendKind, ReplicaLocation, replica_location};
use dss_shared::deployment::{BUCKET_EVENTS_TOPIC, CloudOpener, CloudReplica, Deployment};
use dss_shared::ports::{BlobStore, QueueBackend, Staging};

/// Opens cloud replicas and queues with the cloud adapter crates.
pub struct Clouds;

/// The AWS connection settings of the configuration.
fn aws_options(config: &Config) -> AwsOptions {
    let a = &config.aws;
    AwsOptions {
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        path_style: a.path_style,
        credentials: a.access_key_id.clone().zip(a.secret_access_key.clone()),
    }
}

/// The S3 main and checkout buckets of replica `name` (the checkout bucket defaults to
/// `{bucket}-checkout`: S3 bucket names are global).
async fn s3_buckets(config: &Config, name: &str, bucket: &str) -> (S3BlobStore, S3BlobStore) {
    let store = S3BlobStore::connect(bucket, &aws_options(config)).await;
    let checkout = config.replicas[name]
        .checkout_bucket
        .clone()
        .unwrap_or_else(|| format!("{bucket}-checkout"));
    let checkout = store.sibling(&checkout);
    (store, checkout)
}

#[async_trait]
impl CloudOpener for Clouds {
    async fn replica(
        &self,
        name: &str,
        location: &ReplicaLocation,
        config: &Config,
    ) -> Result<CloudReplica, String> {
        match location {
            ReplicaLocation::S3(bucket) => {
                let (store, checkout) = s3_buckets(config, name, bucket).await;
                Ok(CloudReplica {
                    buckets: Arc::new(S3Buckets::like(&store)),
                    store: Arc::new(store),
                    checkout: Arc::new(checkout),
                })
            }
            ReplicaLocation::Local(_) => Err("a local replica is not a cloud bucket".into()),
        }
    }

    async fn queues(&self, config: &Config) -> Result<Arc<dyn QueueBackend>, String> {
        match config.queues.backend {
            QueueBackendKind::Aws => Ok(Arc::new(
                AwsQueues::connect(&aws_options(config), &config.queues.prefix).await,
            )),
            QueueBackendKind::Embedded => Err("the embedded queues are not a cloud".into()),
        }
    }

    async fn staging(&self, config: &Config) -> Vec<(String, Arc<dyn Staging>)> {
        let mut sources: Vec<(String, Arc<dyn Staging>)> = Vec::new();
        if config.uses_aws() {
            let s3 = S3Staging::connect(&aws_options(config)).await;
            sources.push(("s3".into(), Arc::new(s3)));
        }
        sources
    }
}

/// Opens the deployment `config` describes, local and cloud parts alike.
pub async fn open(config: &Config) -> anyhow::Result<Deployment> {
    Deployment::open_with(config.clone(), dss_shared::clock::system(), &Clouds)
        .await
        .context("opening the deployment")
}

/// Creates what the deployment needs on its cloud services (or their local emulators), as
/// Terraform does in production: every replica's main and checkout bucket, the bucket events
/// topic with each main bucket's notifications to it, and every daemon queue with its
/// dead-letter queue and subscription. Idempotent.
pub async fn infra_local(deployment: &Deployment) -> anyhow::Result<()> {
    let config = &deployment.config;
    let topic = match config.queues.backend {
        QueueBackendKind::Aws => Some(
            AwsQueues::connect(&aws_options(config), &config.queues.prefix)
                .await
                .topic(BUCKET_EVENTS_TOPIC)
                .await
                .context("declaring the bucket events topic")?,
        ),
        QueueBackendKind::Embedded => None,
    };
    for (name, r) in &config.replicas {
        let Ok(ReplicaLocation::S3(bucket)) = replica_location(&r.url) else {
            continue;
        };
        let (store, checkout) = s3_buckets(config, name, &bucket).await;
        for b in [&store, &checkout] {
            b.ensure_bucket()
                .await
                .with_context(|| format!("creating bucket {}", b.bucket()))?;
        }
        if let Some(topic) = &topic {
            topic
                .allow_bucket(&bucket)
                .await
                .with_context(|| format!("letting bucket {bucket} publish"))?;
            store
                .publish_events_to(topic.arn())
                .await
                .with_context(|| format!("bucket notifications of {bucket}"))?;
        }
        tracing::info!(replica = %name, %bucket, "buckets ready");
    }
    deployment
        .declare_all_queues()
        .await
        .context("declaring the queues")?;
    tracing::info!(queues = deployment.queue_specs().len(), "queues ready");
    Ok(())
}
