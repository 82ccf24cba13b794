//! `Queue` on SQS.
//!
//! * A queue is declared with its dead-letter queue `{name}-dlq` and a redrive policy, so SQS
//!   itself moves a message received more than `max_receive` times; [`Queue::dead_letter`] sends
//!   the body to the dead-letter queue (with the reason as the `dss-dead-reason` attribute) and
//!   then deletes the original.
//! * Bodies that arrive in an SNS envelope (a subscription without raw delivery) are unwrapped,
//!   so consumers see the published message either way.
//! * SQS counts time in whole seconds: visibility timeouts, delays and long-poll waits are rounded
//!   up; delays are at most 15 minutes ([`Queue::max_delay`]). It reports no oldest-message age.
//! * SQS accepts the receipt of an earlier delivery of a message (the embedded queue refuses it
//!   as stale): a handler that outlived its visibility timeout may change or ack the message's
//!   newer delivery. Handlers are idempotent, so this costs at most a repeated effect.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use dss_core::ports::{Message, OutgoingMessage, Queue, QueueError, QueueStats};
use serde_json::Value;
use time::OffsetDateTime;

/// The longest delay SQS accepts.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// Entries per batch call.
const BATCH: usize = 10;
/// The longest long poll SQS accepts.
const MAX_WAIT_SECS: i32 = 20;

/// One SQS queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
    arn: String,
    dlq_url: String,
}

fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> QueueError {
    QueueError::Backend(DisplayErrorContext(e).to_string())
}

/// A batch call of which `failed` of `total` entries failed, the first for `why`.
fn partly(failed: usize, total: usize, what: &str, why: &str) -> QueueError {
    QueueError::Backend(format!("{failed} of {total} {what} failed: {why}"))
}

/// Whole seconds, rounded up, within `0..=max`.
fn secs(d: Duration, max: i32) -> i32 {
    let s = d.as_millis().div_ceil(1000);
    i32::try_from(s).unwrap_or(max).min(max)
}

/// The message an SNS envelope carries, or the body itself.
fn unwrap_envelope(body: &str) -> String {
    if !body.starts_with('{') || !body.contains("\"TopicArn\"") {
        return body.to_string();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["Type"] == "Notification" => match v["Message"].as_str() {
            Some(m) => m.to_string(),
            None => body.to_string(),
        },
        _ => body.to_string(),
    }
}

/// Creates a queue (or finds it) and sets `attributes`; returns its URL and ARN.
async fn create(
    client: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<(String, String), QueueError> {
    let url = match client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await
    {
        Ok(out) => out.queue_url().unwrap_or_default().to_string(),
        // It exists with other attributes: look it up and update them.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_name_exists()) =>
        {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(backend)?
                .queue_url()
                .unwrap_or_default()
                .to_string();
            client
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(backend)?;
            url
        }
        Err(e) => return Err(backend(e)),
    };
    let arn = queue_arn(client, name, &url).await?;
    Ok((url, arn))
}

/// The URL of the queue `name`, `None` if there is none.
async fn queue_url(client: &Client, name: &str) -> Result<Option<String>, QueueError> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(Some(out.queue_url().unwrap_or_default().to_string())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Ok(None)
        }
        Err(e) => Err(backend(e)),
    }
}

/// The ARN of the queue `name` at `url`.
async fn queue_arn(client: &Client, name: &str, url: &str) -> Result<String, QueueError> {
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(backend)?;
    attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Backend(format!("queue {name} has no ARN")))
}

impl SqsQueue {
    /// Declares the queue `name` with its dead-letter queue `{name}-dlq`, moving messages
    /// received more than `max_receive` times there. Idempotent.
    pub async fn declare(
        client: &Client,
        name: &str,
        max_receive: u32,
    ) -> Result<Self, QueueError> {
        let dlq_name = format!("{name}-dlq");
        let retention = HashMap::from([(
            QueueAttributeName::MessageRetentionPeriod,
            "1209600".to_string(),
        )]);
        let (dlq_url, dlq_arn) = create(client, &dlq_name, retention.clone()).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive.max(1).to_string(),
        });
        let mut attributes = retention;
        attributes.insert(QueueAttributeName::RedrivePolicy, redrive.to_string());
        let (url, arn) = create(client, name, attributes).await?;
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            url,
            arn,
            dlq_url,
        })
    }

    /// The existing queue `name` with its dead-letter queue `{name}-dlq` (a queue without one
    /// dead-letters into itself, as dead-letter queues do). [`QueueError::NotFound`] when the
    /// queue was never declared.
    pub async fn open(client: &Client, name: &str) -> Result<Self, QueueError> {
        let url = queue_url(client, name)
            .await?
            .ok_or_else(|| QueueError::NotFound(name.to_string()))?;
        let dlq_url = queue_url(client, &format!("{name}-dlq"))
            .await?
            .unwrap_or_else(|| url.clone());
        let arn = queue_arn(client, name, &url).await?;
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            url,
            arn,
            dlq_url,
        })
    }

    /// The dead-letter queue, as a queue of its own (no redrive of its own).
    pub async fn dead_letter_queue(&self) -> Result<Self, QueueError> {
        let (url, arn) =
            create(&self.client, &format!("{}-dlq", self.name), HashMap::new()).await?;
        Ok(Self {
            client: self.client.clone(),
            name: format!("{}-dlq", self.name),
            dlq_url: url.clone(),
            url,
            arn,
        })
    }

    /// The queue's ARN (what SNS subscriptions and S3 notifications name).
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lets the SNS topic `topic_arn` send to this queue (AWS requires the queue policy).
    pub async fn allow_topic(&self, topic_arn: &str) -> Result<(), QueueError> {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": self.arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }],
        });
        self.client
            .set_queue_attributes()
            .queue_url(&self.url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn send_to(
        &self,
        url: &str,
        messages: &[OutgoingMessage],
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        for chunk in messages.chunks(BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                let mut e = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .delay_seconds(secs(m.delay.min(MAX_DELAY), 900));
                if let Some(r) = reason {
                    let attr = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(r)
                        .build()
                        .map_err(|e| QueueError::Backend(e.to_string()))?;
                    e = e.message_attributes("dss-dead-reason", attr);
                }
                entries.push(e.build().map_err(|e| QueueError::Backend(e.to_string()))?);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(backend)?;
            if let Some(f) = out.failed().first() {
                return Err(partly(
                    out.failed().len(),
                    chunk.len(),
                    "sends",
                    f.message().unwrap_or(f.code()),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        self.send_to(&self.url, messages, None).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, BATCH) as i32)
            .visibility_timeout(secs(visibility, 43_200).max(1))
            .wait_time_seconds(secs(wait, MAX_WAIT_SECS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(backend)?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let attr = |n: &MessageSystemAttributeName| {
                    m.attributes()
                        .and_then(|a| a.get(n))
                        .and_then(|v| v.parse::<i64>().ok())
                };
                let sent_ms = attr(&MessageSystemAttributeName::SentTimestamp).unwrap_or(0);
                Message {
                    id: m.message_id().unwrap_or_default().to_string(),
                    receipt: m.receipt_handle().unwrap_or_default().to_string(),
                    body: unwrap_envelope(m.body().unwrap_or_default()),
                    receive_count: attr(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(1),
                    sent_at: OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(sent_ms) * 1_000_000,
                    )
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                }
            })
            .collect())
    }

    async fn ack_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .map_err(|e| QueueError::Backend(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(backend)?;
            if let Some(f) = out.failed().first() {
                return Err(partly(
                    out.failed().len(),
                    chunk.len(),
                    "acks",
                    f.message().unwrap_or(f.code()),
                ));
            }
        }
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(timeout, 43_200))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_receipt_handle_is_invalid() || s.is_message_not_inflight()
                }) =>
            {
                Err(QueueError::StaleReceipt(receipt.chars().take(16).collect()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn dead_letter(&self, message: &Message, reason: &str) -> Result<(), QueueError> {
        self.send_to(
            &self.dlq_url,
            &[OutgoingMessage::new(message.body.clone())],
            Some(reason),
        )
        .await?;
        self.ack(&message.receipt).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(backend)?;
        let get = |n: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&n))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueStats {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            oldest_age: None,
        })
    }

    fn max_delay(&self) -> Duration {
        MAX_DELAY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_up_to_whole_seconds() {
        assert_eq!(secs(Duration::ZERO, 20), 0);
        assert_eq!(secs(Duration::from_millis(1), 20), 1);
        assert_eq!(secs(Duration::from_millis(1500), 20), 2);
        assert_eq!(secs(Duration::from_secs(60), 20), 20);
    }

    #[test]
    fn sns_envelopes_are_unwrapped() {
        let env = r#"{"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "{\"a\":1}"}"#;
        assert_eq!(unwrap_envelope(env), r#"{"a":1}"#);
        assert_eq!(unwrap_envelope(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(unwrap_envelope("plain"), "plain");
        let other = r#"{"Type": "SubscriptionConfirmation", "TopicArn": "x"}"#;
        assert_eq!(unwrap_envelope(other), other);
    }
}
