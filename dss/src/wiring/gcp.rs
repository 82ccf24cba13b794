//! Google Cloud (or its emulators): `gs://` replicas, the Pub/Sub queue backend, `gs://` staging
//! sources, and the event relay's ends.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use dss_config::{Config, QueueBackendKind, ReplicaLocation, replica_location};
use dss_core::names::{BUCKET_EVENTS_TOPIC, RELAY_MAX_RECEIVE, RELAY_QUEUE};
use dss_core::ports::{Queue, Topic};
use dss_gcp::{GcpOptions, GcsBlobStore, GcsBuckets, PubSub, PubSubQueue, PubSubQueues};
use dss_runtime::daemon::DaemonError;
use dss_runtime::deployment::{Deployment, Replica};

/// The Google Cloud connection settings of the configuration.
pub fn options(config: &Config) -> GcpOptions {
    let g = &config.gcp;
    GcpOptions {
        endpoint: g.storage_endpoint.clone(),
        pubsub_endpoint: g.pubsub_endpoint.clone(),
        monitoring_endpoint: g.monitoring_endpoint.clone(),
        project: g.project.clone(),
        anonymous: g.anonymous,
        requests: dss_gcp::RequestPolicy {
            connect_timeout: Duration::from_millis(g.connect_timeout_ms),
            read_timeout: Duration::from_millis(g.read_timeout_ms),
            max_attempts: g.max_attempts,
            retry_base: Duration::from_millis(g.retry_base_ms),
        },
    }
}

/// The GCS main and checkout buckets of replica `name`.
pub fn buckets(
    config: &Config,
    name: &str,
    bucket: &str,
) -> Result<(GcsBlobStore, GcsBlobStore), String> {
    let store = GcsBlobStore::connect(bucket, &options(config)).map_err(|e| e.to_string())?;
    let checkout = store.sibling(&super::checkout_bucket(config, name, bucket));
    Ok((store, checkout))
}

/// A Pub/Sub client of the configuration.
pub fn pubsub(config: &Config) -> Result<PubSub, String> {
    PubSub::connect(&options(config)).map_err(|e| e.to_string())
}

/// Adds the `gs://` replicas, the Pub/Sub queue backend (`queues.backend = "pubsub"`) and the
/// `gs://` staging sources (whenever the deployment talks to Google Cloud).
pub fn wire(d: &mut Deployment) -> anyhow::Result<()> {
    let config = d.config.clone();
    for (name, r) in &config.replicas {
        if let Ok(ReplicaLocation::Gcs(bucket)) = replica_location(&r.url) {
            let (store, checkout) = buckets(&config, name, &bucket)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("opening replica `{name}`"))?;
            let replica = Replica {
                name: name.clone(),
                buckets: Arc::new(GcsBuckets::like(&store)),
                store: Arc::new(store),
                checkout: Arc::new(checkout),
                download: r.download,
            };
            d.replicas.insert(name.clone(), replica);
        }
    }
    if config.queues.backend == QueueBackendKind::Pubsub {
        let ps = pubsub(&config)
            .map_err(anyhow::Error::msg)
            .context("opening the Pub/Sub queue backend")?;
        d.queues = Arc::new(PubSubQueues::new(ps, &config.queues.prefix));
    }
    if config.uses_gcp() {
        match GcsBlobStore::connect("staging", &options(&config)) {
            Ok(g) => {
                d.staging
                    .insert("gs".into(), Arc::new(GcsBuckets::like(&g)));
            }
            Err(e) => tracing::warn!(error = %e, "gs:// staging sources are off"),
        }
    }
    Ok(())
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
