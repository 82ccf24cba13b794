//! `Queue` and `Topic` on Google Cloud Pub/Sub, over its gRPC API with the `gcloud-pubsub`
//! client's RPCs (retried on `UNAVAILABLE` and the like with backoff, connections pooled,
//! credentials from `google-cloud-auth` as everywhere else in this crate).
//!
//! Why `gcloud-pubsub` and not Google's `google-cloud-pubsub`: the `Queue` port needs deadline
//! changes of single messages (visibility timeouts, delays), and in `google-cloud-pubsub` 1.7
//! `ModifyAckDeadline` is private: its subscriber only acks or nacks, leasing messages itself.
//! `gcloud-pubsub` exposes every RPC of the API; see docs/architecture.md.
//!
//! A queue `N` is the subscription `N` of the topic `N` (what is sent to the queue is published
//! there), plus — for queues that read bucket events — the subscription `N-events` of the bucket
//! events topic; it pulls from both. Its dead-letter queue is the subscription `N-dlq` of the topic
//! `N-dlq`, the target of both subscriptions' dead-letter policies.

mod backend;
mod gauges;
mod grpc;
mod queue;

use std::collections::HashMap;
use std::sync::Arc;

use dss_core::ports::QueueError;
use gcloud_googleapis::pubsub::v1::{
    DeadLetterPolicy, GetSubscriptionRequest, PubsubMessage, Subscription,
    UpdateSubscriptionRequest,
};
use tonic::Code;

use crate::GcpOptions;

pub use backend::PubSubQueues;
pub use queue::{PubSubQueue, PubSubTopic};

/// Messages per publish request at most (the API's limit is 1,000).
const PUBLISH_BATCH: usize = 1000;
/// Bytes of message data per publish request at most (the API's limit is 10 MB, attributes and
/// framing included).
const PUBLISH_BYTES: usize = 9 << 20;

/// A Pub/Sub client for one project.
#[derive(Debug, Clone)]
pub struct PubSub {
    rpc: Arc<grpc::Rpc>,
    project: String,
    /// Where the queue gauges come from, if anywhere.
    gauges: Option<Arc<gauges::Gauges>>,
}

/// The error of a failed RPC.
fn failed(what: &str, s: tonic::Status) -> QueueError {
    QueueError::Backend(format!("Pub/Sub {what}: {:?} {}", s.code(), s.message()))
}

impl PubSub {
    /// The Pub/Sub of `options.project`, reached as `options` say (connections open on first
    /// use).
    pub fn connect(options: &GcpOptions) -> Result<Self, QueueError> {
        let project = options
            .project
            .clone()
            .ok_or_else(|| QueueError::Backend("Pub/Sub needs a project".into()))?;
        let gauges = gauges::Gauges::connect(options, &project)?.map(Arc::new);
        Ok(Self {
            rpc: Arc::new(grpc::Rpc::new(options, &project)?),
            project,
            gauges,
        })
    }

    /// `projects/{p}/topics/{name}`.
    pub fn topic_path(&self, name: &str) -> String {
        format!("projects/{}/topics/{name}", self.project)
    }

    /// `projects/{p}/subscriptions/{name}`.
    pub fn subscription_path(&self, name: &str) -> String {
        format!("projects/{}/subscriptions/{name}", self.project)
    }

    /// Creates the topic `name` unless it exists.
    pub async fn ensure_topic(&self, name: &str) -> Result<(), QueueError> {
        let topic = self.rpc.client().await?.topic(name);
        match topic.exists(None).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(s) => return Err(failed(&self.topic_path(name), s)),
        }
        match topic.create(None, None).await {
            Ok(()) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(failed(&format!("creating {}", self.topic_path(name)), s)),
        }
    }

    /// Creates the subscription `name` of topic `topic`, dead-lettering into topic `dead` after
    /// `max_attempts` deliveries (a backstop: queues dead-letter exactly at their own limit);
    /// updates the policy of an existing one.
    pub async fn ensure_subscription(
        &self,
        name: &str,
        topic: &str,
        dead: Option<(&str, u32)>,
    ) -> Result<(), QueueError> {
        let subscriber = self.rpc.subscriber().await?;
        let path = self.subscription_path(name);
        let wanted = Subscription {
            name: path.clone(),
            topic: self.topic_path(topic),
            ack_deadline_seconds: queue::SUBSCRIPTION_DEADLINE_SECS,
            message_retention_duration: Some(prost_types::Duration {
                seconds: 604_800,
                nanos: 0,
            }),
            dead_letter_policy: dead.map(|(dead_topic, attempts)| DeadLetterPolicy {
                dead_letter_topic: self.topic_path(dead_topic),
                max_delivery_attempts: attempts.clamp(5, 100) as i32,
            }),
            ..Subscription::default()
        };
        let get = GetSubscriptionRequest {
            subscription: path.clone(),
        };
        match subscriber.get_subscription(get, None).await {
            Err(s) if s.code() == Code::NotFound => {
                match subscriber.create_subscription(wanted, None).await {
                    Ok(_) => Ok(()),
                    Err(s) if s.code() == Code::AlreadyExists => Ok(()),
                    Err(s) => Err(failed(&format!("creating {path}"), s)),
                }
            }
            Err(s) => Err(failed(&path, s)),
            Ok(_) if dead.is_some() => {
                let update = UpdateSubscriptionRequest {
                    subscription: Some(wanted),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["dead_letter_policy".into()],
                    }),
                };
                subscriber
                    .update_subscription(update, None)
                    .await
                    .map(|_| ())
                    .map_err(|s| failed(&format!("updating {path}"), s))
            }
            Ok(_) => Ok(()),
        }
    }

    /// Whether the subscription `name` exists.
    pub async fn subscription_exists(&self, name: &str) -> Result<bool, QueueError> {
        let subscriber = self.rpc.subscriber().await?;
        let path = self.subscription_path(name);
        let get = GetSubscriptionRequest {
            subscription: path.clone(),
        };
        match subscriber.get_subscription(get, None).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(failed(&path, s)),
        }
    }

    /// Deletes the subscription `name` if it exists.
    pub async fn delete_subscription(&self, name: &str) -> Result<(), QueueError> {
        let subscriber = self.rpc.subscriber().await?;
        let path = self.subscription_path(name);
        let delete = gcloud_googleapis::pubsub::v1::DeleteSubscriptionRequest {
            subscription: path.clone(),
        };
        match subscriber.delete_subscription(delete, None).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(failed(&format!("deleting {path}"), s)),
        }
    }

    /// Publishes `(body, attributes)` messages to topic `name`, in requests within the API's
    /// limits of count and size.
    pub async fn publish(
        &self,
        topic: &str,
        messages: &[(String, HashMap<String, String>)],
    ) -> Result<(), QueueError> {
        let publisher = self.rpc.publisher(topic).await?;
        let path = self.topic_path(topic);
        for batch in batches(messages) {
            let messages = batch
                .iter()
                .map(|(body, attributes)| PubsubMessage {
                    data: body.as_bytes().to_vec(),
                    attributes: attributes.clone(),
                    ..PubsubMessage::default()
                })
                .collect();
            publisher
                .publish_immediately(messages, None)
                .await
                .map_err(|s| match s.code() {
                    Code::NotFound => QueueError::NotFound(path.clone()),
                    _ => failed(&format!("publishing to {path}"), s),
                })?;
        }
        Ok(())
    }
}

/// `messages` cut into runs of at most [`PUBLISH_BATCH`] messages and [`PUBLISH_BYTES`] bytes
/// (a larger message goes alone; the API refuses it).
fn batches<T: AsRef<str>, A>(messages: &[(T, A)]) -> Vec<&[(T, A)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (body, _)) in messages.iter().enumerate() {
        let size = body.as_ref().len() + 64;
        if i > start && (i - start >= PUBLISH_BATCH || bytes + size > PUBLISH_BYTES) {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn publish_batches_keep_to_the_count_and_size_limits() {
        let small: Vec<(String, ())> = (0..2500).map(|_| ("x".to_string(), ())).collect();
        let sizes: Vec<usize> = super::batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let big: Vec<(String, ())> = (0..5).map(|_| ("y".repeat(4 << 20), ())).collect();
        let sizes: Vec<usize> = super::batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let none: Vec<(String, ())> = Vec::new();
        assert!(super::batches(&none).is_empty());
    }
}
