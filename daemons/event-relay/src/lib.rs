//! The event relay (the original's `dss-gs-event-relay`): reads the object notifications GCS
//! publishes to Pub/Sub and republishes each creation or deletion in a `gs://` replica as our
//! [`BucketEvent`] on the bucket events topic, where the index, notify and sync daemons read it
//! as they read every other bucket's events. Redelivered notifications are republished again,
//! which those daemons tolerate (they are idempotent).

mod gcs_event;

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::ports::{Message, Queue, Topic};
use dss_runtime::daemon::{Daemon, DaemonError, Task};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::{Handler, HandlerError, Outcome, Worker, WorkerConfig};

pub use gcs_event::parse;

/// Republishes the notifications of the deployment's `gs://` main buckets.
pub struct Relay {
    deployment: Deployment,
    topic: Arc<dyn Topic>,
}

impl Relay {
    /// Relays to `topic` the events of `deployment`'s buckets.
    pub fn new(deployment: &Deployment, topic: Arc<dyn Topic>) -> Self {
        Self {
            deployment: deployment.clone(),
            topic,
        }
    }
}

#[async_trait]
impl Handler for Relay {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        let Some(event) = parse(&message.body).map_err(HandlerError::Permanent)? else {
            return Ok(Outcome::Done);
        };
        // The notification topic may serve other buckets too (and other deployments).
        if self.deployment.replica_of_bucket(&event.bucket).is_none() {
            return Ok(Outcome::Done);
        }
        if let Some(id) = &event.correlation_id {
            tracing::Span::current().record("correlation_id", tracing::field::display(id));
        }
        let body =
            serde_json::to_string(&event).map_err(|e| HandlerError::Permanent(e.to_string()))?;
        self.topic
            .publish(&body)
            .await
            .map_err(HandlerError::transient)?;
        tracing::debug!(bucket = %event.bucket, key = %event.key, event = ?event.event_name, "relayed");
        Ok(Outcome::Done)
    }
}

/// Where the relay reads and writes: the Pub/Sub subscription to the GCS notifications and the
/// deployment's bucket events topic. Opened by the cloud wiring, which `dss` supplies.
#[async_trait]
pub trait RelayEnds: Send + Sync {
    /// The notifications (as `{"attributes", "data"}` bodies) and the topic.
    async fn open(
        &self,
        deployment: &Deployment,
    ) -> Result<(Arc<dyn Queue>, Arc<dyn Topic>), DaemonError>;
}

/// The event relay daemon: GCS notifications of the `gs://` main buckets → bucket events.
pub struct RelayDaemon {
    ends: Box<dyn RelayEnds>,
}

impl RelayDaemon {
    /// The relay between the ends `ends` opens.
    pub fn new(ends: impl RelayEnds + 'static) -> Self {
        Self {
            ends: Box::new(ends),
        }
    }
}

#[async_trait]
impl Daemon for RelayDaemon {
    fn name(&self) -> &'static str {
        "event-relay"
    }

    fn about(&self) -> &'static str {
        "GCS notifications from Pub/Sub → the bucket events topic"
    }

    fn idle_reason(&self, deployment: &Deployment) -> Option<String> {
        (!deployment.config.has_gcs_replica())
            .then(|| "no replica is a gs:// bucket: there are no GCS events to relay".to_string())
    }

    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError> {
        let (source, topic) = self.ends.open(deployment).await?;
        let mut cfg = WorkerConfig::named("event-relay");
        cfg.concurrency = 16;
        cfg.batch_size = 10;
        let worker = Worker::new(source, Arc::new(Relay::new(deployment, topic)), cfg)
            .with_clock(deployment.clock.clone());
        deployment.metrics.track("event-relay", worker.metrics());
        Ok(vec![Task::Worker(worker)])
    }
}
