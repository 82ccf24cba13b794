//! The `Queue` and `Topic` ports, and the bucket event every store emits.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Errors of a queue or topic.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue or topic does not exist.
    #[error("no such queue or topic: {0}")]
    NotFound(String),
    /// The receipt is stale (the message was re-delivered or already acked).
    #[error("stale receipt for message {0}")]
    StaleReceipt(String),
    /// The backend failed; may succeed on retry.
    #[error("queue backend error: {0}")]
    Backend(String),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body (JSON by convention).
    pub body: String,
    /// Delay before the message becomes visible.
    pub delay: Duration,
}

impl OutgoingMessage {
    /// A message visible at once.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Stable id of the message.
    pub id: String,
    /// Handle for ack / visibility changes of this delivery.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times the message has been received, this delivery included.
    pub receive_count: u32,
    /// When it was first sent.
    pub sent_at: OffsetDateTime,
}

/// Queue gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages visible now.
    pub visible: u64,
    /// Messages received and not yet acked or returned.
    pub in_flight: u64,
    /// Messages waiting for their delay.
    pub delayed: u64,
    /// Age of the oldest message, if any.
    pub oldest_age: Option<Duration>,
}

impl QueueStats {
    /// Every message in the queue.
    pub fn depth(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// A durable, at-least-once queue with visibility timeouts and a dead-letter queue.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// The queue's name.
    fn name(&self) -> &str;

    /// Sends messages; they are durable when this returns.
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError>;

    /// Receives up to `max` visible messages, hiding them for `visibility`; waits up to `wait` for one.
    /// Messages received more often than the queue's maximum are moved to its dead-letter queue instead.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, QueueError>;

    /// Deletes delivered messages.
    async fn ack_batch(&self, receipts: &[String]) -> Result<(), QueueError>;

    /// Makes a delivered message visible again after `timeout` (0 = now); also extends in-flight work.
    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError>;

    /// Moves a delivered message to the dead-letter queue now with `message.body` (which may
    /// differ from the body as received), recording why.
    async fn dead_letter(&self, message: &Message, reason: &str) -> Result<(), QueueError>;

    /// Current gauges (see [`Queue::reports_gauges`]).
    async fn stats(&self) -> Result<QueueStats, QueueError>;

    /// Whether the backend reports gauges; Pub/Sub does not (its counts live in Cloud
    /// Monitoring), and its `stats` is an error.
    fn reports_gauges(&self) -> bool {
        true
    }

    /// The longest delay a message may be sent with (SQS allows 15 minutes); longer waits are
    /// made of several hops.
    fn max_delay(&self) -> Duration {
        Duration::MAX
    }

    /// Sends one message.
    async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.send_batch(&[OutgoingMessage {
            body: body.to_string(),
            delay,
        }])
        .await
    }

    /// Deletes one delivered message.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.ack_batch(&[receipt.to_string()]).await
    }
}

/// A fan-out topic: each published message reaches every subscribed queue.
#[async_trait]
pub trait Topic: Send + Sync + std::fmt::Debug {
    /// The topic's name.
    fn name(&self) -> &str;
    /// Publishes one message to every subscribed queue.
    async fn publish(&self, body: &str) -> Result<(), QueueError>;
}

/// A queue to declare: its name and the receives of one message before it moves to the
/// dead-letter queue `{name}-dlq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue's name (without the deployment's prefix).
    pub name: String,
    /// Receives before a message is dead-lettered.
    pub max_receive_count: u32,
    /// Whether the queue is subscribed to the bucket events topic.
    pub bucket_events: bool,
}

/// Where a deployment's queues and bucket events topic live (the embedded database, SQS and
/// SNS, …): opens queues by name and creates the whole set.
#[async_trait]
pub trait QueueBackend: Send + Sync + std::fmt::Debug {
    /// The queue `spec.name`, with its dead-letter queue. The embedded backend creates it when
    /// missing; cloud backends expect it declared (by [`QueueBackend::declare`] or Terraform)
    /// and answer [`QueueError::NotFound`] otherwise.
    async fn queue(&self, spec: &QueueSpec) -> Result<std::sync::Arc<dyn Queue>, QueueError>;

    /// Creates every queue of `specs` with its dead-letter queue, the bucket events topic
    /// `topic`, and makes exactly the queues marked `bucket_events` its subscribers.
    /// Idempotent.
    async fn declare(&self, topic: &str, specs: &[QueueSpec]) -> Result<(), QueueError>;

    /// The bucket events topic `topic`, to publish to (the event relay does).
    async fn topic(&self, topic: &str) -> Result<std::sync::Arc<dyn Topic>, QueueError>;

    /// Whether every component declares the queues when it starts (the embedded backend,
    /// where that is free and always allowed); else `dss infra local` or Terraform does.
    fn declares_at_start(&self) -> bool;
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketEventName {
    /// The object was written.
    #[serde(rename = "ObjectCreated:Put")]
    Created,
    /// The object was deleted.
    #[serde(rename = "ObjectRemoved:Delete")]
    Removed,
}

/// A bucket notification, the same for every backend (S3, GCS and the embedded store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEvent {
    /// The bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// Size in bytes (0 for removals).
    pub size: u64,
    /// ETag of the object written (empty for removals).
    pub etag: String,
    /// Created or removed.
    pub event_name: BucketEventName,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The correlation id of the request whose write caused it: set by embedded buckets and
    /// by the GCS event relay (from the object's metadata); S3 notifications carry none, so
    /// daemons read it from the object ([`super::blob::ObjectMeta::correlation_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` of the span whose write caused it, where the bucket carries one
    /// (embedded buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl BucketEvent {
    /// The event `bucket` emitted when the object `o` was written (to replay it).
    pub fn created(bucket: &str, o: &super::blob::ObjectMeta) -> Self {
        Self {
            bucket: bucket.to_string(),
            key: o.key.clone(),
            size: o.size,
            etag: o.etag.clone(),
            event_name: BucketEventName::Created,
            time: o.created,
            correlation_id: None,
            traceparent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_events_serialize_with_s3_event_names() {
        let e = BucketEvent {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            etag: "e".into(),
            event_name: BucketEventName::Created,
            time: OffsetDateTime::UNIX_EPOCH,
            correlation_id: None,
            traceparent: None,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"ObjectCreated:Put\""), "{text}");
        assert!(!text.contains("correlation_id"), "{text}");
        assert_eq!(serde_json::from_str::<BucketEvent>(&text).unwrap(), e);
        let traced = BucketEvent {
            correlation_id: Some("req-1".into()),
            ..e
        };
        let text = serde_json::to_string(&traced).unwrap();
        assert_eq!(crate::correlation::of_body(&text).as_deref(), Some("req-1"));
    }
}
