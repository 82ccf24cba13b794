//! The Pub/Sub [`QueueBackend`]: daemon queues and the bucket events topic, every name behind
//! the deployment's prefix.

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::ports::{Queue, QueueBackend, QueueError, QueueSpec, Topic};

use super::{PubSub, PubSubQueue, PubSubTopic};

/// Queues on Pub/Sub.
#[derive(Debug, Clone)]
pub struct PubSubQueues {
    ps: PubSub,
    prefix: String,
}

impl PubSubQueues {
    /// The queues and topic named `{prefix}{name}` of `ps`.
    pub fn new(ps: PubSub, prefix: &str) -> Self {
        Self {
            ps,
            prefix: prefix.to_string(),
        }
    }

    /// The name in the cloud of the queue or topic `name`.
    pub fn cloud_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Declares the topic `topic` (GCS notifications and the event relay publish to it).
    pub async fn pubsub_topic(&self, topic: &str) -> Result<PubSubTopic, QueueError> {
        PubSubTopic::declare(&self.ps, &self.cloud_name(topic)).await
    }
}

#[async_trait]
impl QueueBackend for PubSubQueues {
    async fn queue(&self, spec: &QueueSpec) -> Result<Arc<dyn Queue>, QueueError> {
        let name = self.cloud_name(&spec.name);
        match PubSubQueue::open(&self.ps, &name, spec.max_receive_count).await {
            Ok(q) => Ok(Arc::new(q)),
            Err(QueueError::NotFound(_)) => Err(QueueError::NotFound(format!(
                "{name} (declare the queues with `dss infra local` or Terraform)"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn declare(&self, topic: &str, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let topic = self.pubsub_topic(topic).await?;
        for spec in specs {
            let q = PubSubQueue::declare(
                &self.ps,
                &self.cloud_name(&spec.name),
                spec.max_receive_count,
            )
            .await?;
            match spec.bucket_events {
                true => q.subscribe_to(dss_core::ports::Topic::name(&topic)).await?,
                false => q.unsubscribe_events().await?,
            }
        }
        Ok(())
    }

    async fn topic(&self, topic: &str) -> Result<Arc<dyn Topic>, QueueError> {
        Ok(Arc::new(self.pubsub_topic(topic).await?))
    }

    fn declares_at_start(&self) -> bool {
        false
    }
}
