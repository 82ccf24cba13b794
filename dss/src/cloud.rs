//! Cloud adapters for a deployment: opens `s3://` and `gs://` replicas, the SQS/SNS and Pub/Sub
//! queue backends, the staging sources and the event relay's ends, and creates the cloud
//! resources a deployment needs (`dss infra local`).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use dss_aws::{AwsOptions, AwsQueues, S3BlobStore, S3Buckets, S3Staging};
use dss_config::{Config, QueueBackendKind, ReplicaLocation, replica_location};
use dss_core::names::{BUCKET_EVENTS_TOPIC, RELAY_MAX_RECEIVE, RELAY_QUEUE};
use dss_core::ports::{BlobStore, Queue, QueueBackend, Staging, Topic};
use dss_gcp::{GcpOptions, GcsBlobStore, GcsBuckets, PubSub, PubSubQueue, PubSubQueues};
use dss_runtime::daemon::DaemonError;
use dss_runtime::deployment::{CloudOpener, CloudReplica, Deployment};

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

/// The Google Cloud connection settings of the configuration.
fn gcp_options(config: &Config) -> GcpOptions {
    let g = &config.gcp;
    GcpOptions {
        endpoint: g.storage_endpoint.clone(),
        pubsub_endpoint: g.pubsub_endpoint.clone(),
        project: g.project.clone(),
        anonymous: g.anonymous,
    }
}

/// The checkout bucket of replica `name` whose main bucket is `bucket` (default
/// `{bucket}-checkout`: cloud bucket names are global).
fn checkout_bucket(config: &Config, name: &str, bucket: &str) -> String {
    config.replicas[name]
        .checkout_bucket
        .clone()
        .unwrap_or_else(|| format!("{bucket}-checkout"))
}

/// The S3 main and checkout buckets of replica `name`.
async fn s3_buckets(config: &Config, name: &str, bucket: &str) -> (S3BlobStore, S3BlobStore) {
    let store = S3BlobStore::connect(bucket, &aws_options(config)).await;
    let checkout = store.sibling(&checkout_bucket(config, name, bucket));
    (store, checkout)
}

/// The GCS main and checkout buckets of replica `name`.
fn gcs_buckets(
    config: &Config,
    name: &str,
    bucket: &str,
) -> Result<(GcsBlobStore, GcsBlobStore), String> {
    let store = GcsBlobStore::connect(bucket, &gcp_options(config)).map_err(|e| e.to_string())?;
    let checkout = store.sibling(&checkout_bucket(config, name, bucket));
    Ok((store, checkout))
}

fn pubsub(config: &Config) -> Result<PubSub, String> {
    PubSub::connect(&gcp_options(config)).map_err(|e| e.to_string())
}

/// Whether any replica is a `gs://` bucket (then the event relay runs).
pub fn has_gcs_replica(config: &Config) -> bool {
    config
        .replicas
        .values()
        .any(|r| matches!(replica_location(&r.url), Ok(ReplicaLocation::Gcs(_))))
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
            ReplicaLocation::Gcs(bucket) => {
                let (store, checkout) = gcs_buckets(config, name, bucket)?;
                Ok(CloudReplica {
                    buckets: Arc::new(GcsBuckets::like(&store)),
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
            QueueBackendKind::Pubsub => Ok(Arc::new(PubSubQueues::new(
                pubsub(config)?,
                &config.queues.prefix,
            ))),
            QueueBackendKind::Embedded => Err("the embedded queues are not a cloud".into()),
        }
    }

    async fn staging(&self, config: &Config) -> Vec<(String, Arc<dyn Staging>)> {
        let mut sources: Vec<(String, Arc<dyn Staging>)> = Vec::new();
        if config.uses_aws() {
            let s3 = S3Staging::connect(&aws_options(config)).await;
            sources.push(("s3".into(), Arc::new(s3)));
        }
        if config.uses_gcp() {
            match GcsBlobStore::connect("staging", &gcp_options(config)) {
                Ok(g) => sources.push(("gs".into(), Arc::new(GcsBuckets::like(&g)))),
                Err(e) => tracing::warn!(error = %e, "gs:// staging sources are off"),
            }
        }
        sources
    }
}

/// Opens the deployment `config` describes, local and cloud parts alike, with its configured
/// search backend and mailer.
pub async fn open(config: &Config) -> anyhow::Result<Deployment> {
    let mut deployment = Deployment::open_with(config.clone(), dss_core::clock::system(), &Clouds)
        .await
        .context("opening the deployment")?;
    if let Some(url) = &config.search.url {
        deployment.search = Arc::new(
            dss_elasticsearch::ElasticsearchIndex::new(url, &config.search.index_prefix)
                .context("search.url")?,
        );
        tracing::info!(%url, "search documents live in Elasticsearch/OpenSearch");
    }
    if config.mail.smtp_host.is_some() {
        let mailer = dss_smtp::SmtpMailer::new(&config.mail).context("mail.smtp_host")?;
        tracing::info!(?mailer, "e-mail goes out over SMTP");
        deployment.mailer = Arc::new(mailer);
    }
    Ok(deployment)
}

/// The event relay's ends: the GCS notifications (its Pub/Sub subscription) and the bucket
/// events topic of the deployment's queue backend.
pub struct RelayEnds;

#[async_trait]
impl dss_event_relay::RelayEnds for RelayEnds {
    async fn open(
        &self,
        deployment: &Deployment,
    ) -> Result<(Arc<dyn Queue>, Arc<dyn Topic>), DaemonError> {
        let config = &deployment.config;
        let ps = pubsub(config)?;
        let name = format!("{}{RELAY_QUEUE}", config.queues.prefix);
        let source = PubSubQueue::open(&ps, &name, RELAY_MAX_RECEIVE)
            .await
            .map_err(|e| {
                format!("the relay's subscription {name} (create it with `dss infra local`): {e}")
            })?
            .with_attributes();
        let topic = deployment
            .queues
            .topic(BUCKET_EVENTS_TOPIC)
            .await
            .map_err(|e| format!("the bucket events topic: {e}"))?;
        Ok((Arc::new(source), topic))
    }
}

/// Creates what the deployment needs on its cloud services (or their local emulators), as
/// Terraform does in production: every replica's main and checkout bucket, the bucket events
/// topic with each S3 main bucket's notifications to it, the GCS notifications topic with the
/// event relay's subscription and each GCS main bucket's notifications, and every daemon
/// queue with its dead-letter queue and subscription. Idempotent.
pub async fn infra_local(deployment: &Deployment) -> anyhow::Result<()> {
    let config = &deployment.config;
    let sns = match config.queues.backend {
        QueueBackendKind::Aws => Some(
            AwsQueues::connect(&aws_options(config), &config.queues.prefix)
                .await
                .sns_topic(BUCKET_EVENTS_TOPIC)
                .await
                .context("declaring the bucket events topic")?,
        ),
        _ => None,
    };
    let gcs_events = match has_gcs_replica(config) {
        true => {
            let ps = pubsub(config).map_err(anyhow::Error::msg)?;
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
                let (store, checkout) = s3_buckets(config, name, &bucket).await;
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
                    gcs_buckets(config, name, &bucket).map_err(anyhow::Error::msg)?;
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
