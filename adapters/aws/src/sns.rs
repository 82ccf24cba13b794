//! `Topic` on SNS: publishing, and subscribing SQS queues (raw delivery, with the queue policy
//! that lets the topic send).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::DisplayErrorContext;
use dss_core::ports::{QueueError, Topic};

use crate::SqsQueue;

/// One SNS topic.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    name: String,
    arn: String,
}

fn backend(e: impl std::error::Error + 'static) -> QueueError {
    QueueError::Backend(DisplayErrorContext(e).to_string())
}

impl SnsTopic {
    /// Declares the topic `name` (idempotent).
    pub async fn declare(client: &Client, name: &str) -> Result<Self, QueueError> {
        let out = client
            .create_topic()
            .name(name)
            .send()
            .await
            .map_err(backend)?;
        let arn = out
            .topic_arn()
            .ok_or_else(|| QueueError::Backend(format!("topic {name} has no ARN")))?
            .to_string();
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            arn,
        })
    }

    /// The topic's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Lets the S3 bucket `bucket` publish its event notifications to this topic (AWS
    /// requires the topic policy).
    pub async fn allow_bucket(&self, bucket: &str) -> Result<(), QueueError> {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "SNS:Publish",
                "Resource": self.arn,
                "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{bucket}")}},
            }],
        });
        self.client
            .set_topic_attributes()
            .topic_arn(&self.arn)
            .attribute_name("Policy")
            .attribute_value(policy.to_string())
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The ARNs of the subscriptions that deliver to `endpoint`.
    async fn subscriptions_of(&self, endpoint: &str) -> Result<Vec<String>, QueueError> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .list_subscriptions_by_topic()
            .topic_arn(&self.arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(backend)?;
            for s in page.subscriptions() {
                if s.endpoint() == Some(endpoint)
                    && let Some(arn) = s.subscription_arn()
                {
                    found.push(arn.to_string());
                }
            }
        }
        Ok(found)
    }

    /// Unsubscribes `queue` (nothing published from now on reaches it). Idempotent.
    pub async fn unsubscribe(&self, queue: &SqsQueue) -> Result<(), QueueError> {
        for arn in self.subscriptions_of(queue.arn()).await? {
            self.client
                .unsubscribe()
                .subscription_arn(arn)
                .send()
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Subscribes `queue`: every message published from now on reaches it, unwrapped when
    /// `raw` (else in the SNS envelope, which [`SqsQueue`] unwraps on receipt). Idempotent:
    /// a queue already subscribed keeps its one subscription.
    pub async fn subscribe(&self, queue: &SqsQueue, raw: bool) -> Result<(), QueueError> {
        queue.allow_topic(&self.arn).await?;
        if let Some(existing) = self.subscriptions_of(queue.arn()).await?.first() {
            self.client
                .set_subscription_attributes()
                .subscription_arn(existing)
                .attribute_name("RawMessageDelivery")
                .attribute_value(if raw { "true" } else { "false" })
                .send()
                .await
                .map_err(backend)?;
            return Ok(());
        }
        self.client
            .subscribe()
            .topic_arn(&self.arn)
            .protocol("sqs")
            .endpoint(queue.arn())
            .attributes("RawMessageDelivery", if raw { "true" } else { "false" })
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Topic for SnsTopic {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, body: &str) -> Result<(), QueueError> {
        self.client
            .publish()
            .topic_arn(&self.arn)
            .message(body)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}
