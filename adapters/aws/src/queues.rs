//! The AWS [`QueueBackend`]: daemon queues on SQS (each with its dead-letter queue) and the
//! bucket events topic on SNS, every name behind the deployment's prefix.

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::ports::{Queue, QueueBackend, QueueError, QueueSpec, Topic};

use crate::{AwsOptions, SnsTopic, SqsQueue};

/// Queues on SQS, the topic on SNS.
#[derive(Debug, Clone)]
pub struct AwsQueues {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    prefix: String,
}

impl AwsQueues {
    /// The queues and topic named `{prefix}{name}`, reached as `options` say.
    pub async fn connect(options: &AwsOptions, prefix: &str) -> Self {
        Self {
            sqs: options.sqs().await,
            sns: options.sns().await,
            prefix: prefix.to_string(),
        }
    }

    /// The name in the cloud of the queue or topic `name`.
    pub fn cloud_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Declares the topic `topic` (S3 buckets publish their events to it; see
    /// `SnsTopic::allow_bucket` and `S3BlobStore::publish_events_to`).
    pub async fn sns_topic(&self, topic: &str) -> Result<SnsTopic, QueueError> {
        SnsTopic::declare(&self.sns, &self.cloud_name(topic)).await
    }
}

#[async_trait]
impl QueueBackend for AwsQueues {
    async fn queue(&self, spec: &QueueSpec) -> Result<Arc<dyn Queue>, QueueError> {
        let name = self.cloud_name(&spec.name);
        match SqsQueue::open(&self.sqs, &name).await {
            Ok(q) => Ok(Arc::new(q)),
            Err(QueueError::NotFound(_)) => Err(QueueError::NotFound(format!(
                "{name} (declare the queues with `dss infra local` or Terraform)"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn declare(&self, topic: &str, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let topic = self.sns_topic(topic).await?;
        for spec in specs {
            let q = SqsQueue::declare(
                &self.sqs,
                &self.cloud_name(&spec.name),
                spec.max_receive_count,
            )
            .await?;
            match spec.bucket_events {
                true => topic.subscribe(&q, true).await?,
                false => topic.unsubscribe(&q).await?,
            }
        }
        Ok(())
    }

    async fn topic(&self, topic: &str) -> Result<Arc<dyn Topic>, QueueError> {
        Ok(Arc::new(self.sns_topic(topic).await?))
    }

    fn declares_at_start(&self) -> bool {
        false
    }
}
