//! `dss infra local`: creates what a deployment needs on its cloud services (or their local
//! emulators), as Terraform does in production.

use anyhow::Context;
use dss_aws::AwsQueues;
use dss_config::{QueueBackendKind, ReplicaLocation, replica_location};
use dss_core::names::{BUCKET_EVENTS_TOPIC, RELAY_MAX_RECEIVE, RELAY_QUEUE};
use dss_core::ports::BlobStore;
use dss_gcp::PubSubQueue;
use dss_runtime::deployment::Deployment;

use crate::wiring::{aws, gcp};

/// Creates what the deployment needs on its cloud services (or their local emulators), as
/// Terraform does in production: every replica's main and checkout bucket, the bucket events
/// topic with each S3 main bucket's notifications to it, the GCS notifications topic with the
/// event relay's subscription and each GCS main bucket's notifications, and every daemon
/// queue with its dead-letter queue and subscription. Idempotent.
pub async fn local(deployment: &Deployment) -> anyhow::Result<()> {
    let config = &deployment.config;
    let sns = match config.queues.backend {
        QueueBackendKind::Aws => Some(
            AwsQueues::connect(&aws::options(config), &config.queues.prefix)
                .await
                .sns_topic(BUCKET_EVENTS_TOPIC)
                .await
                .context("declaring the bucket events topic")?,
        ),
        _ => None,
    };
    let gcs_events = match config.has_gcs_replica() {
        true => {
            let ps = gcp::pubsub(config).map_err(anyhow::Error::msg)?;
            let topic = config.gcs_events_topic();
            ps.ensure_topic(&topic)
                .await
                .context("the GCS notifications topic")?;
            let relay = format!("{}{RELAY_QUEUE}", config.queues.prefix);
            PubSubQueue::declare(&ps, &relay, RELAY_MAX_RECEIVE)
                .await
                .context("the event relay's queue")?
                .subscribe_to(&topic)
                .await
                .context("the event relay's subscription")?;
            Some(ps.topic_path(&topic))
        }
        false => None,
    };
    for (name, r) in &config.replicas {
        match replica_location(&r.url) {
            Ok(ReplicaLocation::S3(bucket)) => {
                let (store, checkout) = aws::buckets(config, name, &bucket).await;
                for b in [&store, &checkout] {
                    b.ensure_bucket()
                        .await
                        .with_context(|| format!("creating bucket {}", b.bucket()))?;
                }
                if let Some(topic) = &sns {
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
            Ok(ReplicaLocation::Gcs(bucket)) => {
                let (store, checkout) =
                    gcp::buckets(config, name, &bucket).map_err(anyhow::Error::msg)?;
                for b in [&store, &checkout] {
                    b.ensure_bucket()
                        .await
                        .with_context(|| format!("creating bucket {}", b.bucket()))?;
                }
                if let Some(topic) = &gcs_events {
                    let configured = store
                        .publish_events_to(topic)
                        .await
                        .with_context(|| format!("bucket notifications of {bucket}"))?;
                    if !configured {
                        tracing::warn!(%bucket, %topic, "this server has no per-bucket notifications: configure its events to publish to the topic (fake-gcs-server: -event.pubsub-topic)");
                    }
                }
                tracing::info!(replica = %name, %bucket, "buckets ready");
            }
            _ => {}
        }
    }
    deployment
        .declare_all_queues()
        .await
        .context("declaring the queues")?;
    tracing::info!(queues = deployment.queue_specs().len(), "queues ready");
    Ok(())
}
