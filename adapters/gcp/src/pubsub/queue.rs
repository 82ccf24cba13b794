//! [`PubSubQueue`] and [`PubSubTopic`].
//!
//! * Delays: a message sent with a delay carries its due time (`dss-not-before`); one pulled
//!   early has its deadline set to the time left (at most 10 minutes, [`Queue::max_delay`]) and is
//!   not handed out. That hop counts as a delivery for Pub/Sub; the receive count reported leaves
//!   it out.
//! * Dead letters: a message received more often than the queue allows is moved to the
//!   dead-letter queue by the queue itself (Pub/Sub's own policy, at least 5 attempts, is a
//!   backstop), with the reason as the `dss-dead-reason` attribute.
//! * Long polls are repeated immediate pulls with growing pauses (at most 1 s) until `wait`.
//! * Pub/Sub accepts acks and deadline changes of expired deliveries. Its gauges come from
//!   Cloud Monitoring ([`super::gauges`]); emulators have none.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use dss_core::ports::{Message, OutgoingMessage, Queue, QueueError, QueueStats, Topic};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{Found, PubSub};

/// Attribute of a delayed message: when it is due (ms since the epoch).
const NOT_BEFORE: &str = "dss-not-before";
/// Attribute of a dead letter: why.
const DEAD_REASON: &str = "dss-dead-reason";
/// The longest ack deadline Pub/Sub accepts.
const MAX_DEADLINE: Duration = Duration::from_secs(600);
/// How long a missing events subscription is not asked for again.
const ABSENT_FOR: Duration = Duration::from_secs(30);

/// One queue: subscription `N` of topic `N`, and `N-events` of the bucket events topic.
#[derive(Debug)]
pub struct PubSubQueue {
    ps: PubSub,
    name: String,
    max_receive: u32,
    events_absent_until: Mutex<Option<Instant>>,
    /// Hand out `{"attributes": {…}, "data": "…"}` instead of the data alone.
    with_attributes: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pulled {
    #[serde(default)]
    received_messages: Vec<Received>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Received {
    ack_id: String,
    message: PubsubMessage,
    #[serde(default)]
    delivery_attempt: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PubsubMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: std::collections::HashMap<String, String>,
    message_id: String,
    #[serde(default)]
    publish_time: Option<String>,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Whole seconds, rounded up, within the ack deadline's range.
fn deadline_secs(d: Duration) -> u64 {
    d.min(MAX_DEADLINE).as_millis().div_ceil(1000) as u64
}

impl PubSubQueue {
    /// Declares the queue `name` (topic, subscription, dead-letter topic and subscription),
    /// dead-lettering messages received more than `max_receive` times. Idempotent.
    pub async fn declare(ps: &PubSub, name: &str, max_receive: u32) -> Result<Self, QueueError> {
        let dlq = format!("{name}-dlq");
        ps.ensure_topic(name).await?;
        ps.ensure_topic(&dlq).await?;
        ps.ensure_subscription(&dlq, &dlq, None).await?;
        ps.ensure_subscription(name, name, Some((&dlq, max_receive.saturating_add(2))))
            .await?;
        Ok(Self::handle(ps, name, max_receive))
    }

    /// The existing queue `name`; [`QueueError::NotFound`] if it was never declared.
    pub async fn open(ps: &PubSub, name: &str, max_receive: u32) -> Result<Self, QueueError> {
        match ps
            .call::<Value>(Method::GET, &ps.subscription_path(name), None)
            .await?
        {
            Found::Yes(_) => Ok(Self::handle(ps, name, max_receive)),
            Found::No => Err(QueueError::NotFound(name.to_string())),
        }
    }

    fn handle(ps: &PubSub, name: &str, max_receive: u32) -> Self {
        Self {
            ps: ps.clone(),
            name: name.to_string(),
            max_receive,
            events_absent_until: Mutex::new(None),
            with_attributes: false,
        }
    }

    /// The same queue, handing out each message as `{"attributes": {…}, "data": "…"}`: for
    /// messages whose meaning is in their attributes (GCS notifications).
    pub fn with_attributes(mut self) -> Self {
        self.with_attributes = true;
        self
    }

    /// The dead-letter queue, as a queue of its own (it dead-letters nothing).
    pub fn dead_letter_queue(&self) -> Self {
        Self::handle(&self.ps, &format!("{}-dlq", self.name), u32::MAX)
    }

    fn events_subscription(&self) -> String {
        format!("{}-events", self.name)
    }

    /// Subscribes the queue to topic `topic` (the bucket events): every message published
    /// from now on reaches it. Idempotent.
    pub async fn subscribe_to(&self, topic: &str) -> Result<(), QueueError> {
        let dlq = format!("{}-dlq", self.name);
        self.ps
            .ensure_subscription(
                &self.events_subscription(),
                topic,
                Some((&dlq, self.max_receive.saturating_add(2))),
            )
            .await?;
        *self
            .events_absent_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Ends the queue's subscription to the bucket events (what it holds is dropped).
    pub async fn unsubscribe_events(&self) -> Result<(), QueueError> {
        self.ps
            .delete_subscription(&self.events_subscription())
            .await
    }

    /// The subscriptions to pull from now.
    fn subscriptions(&self) -> Vec<String> {
        let absent = self
            .events_absent_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| Instant::now() < t);
        match absent {
            true => vec![self.name.clone()],
            false => vec![self.name.clone(), self.events_subscription()],
        }
    }

    async fn modify(
        &self,
        subscription: &str,
        ack_ids: Vec<String>,
        d: Duration,
    ) -> Result<(), QueueError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let path = format!(
            "{}:modifyAckDeadline",
            self.ps.subscription_path(subscription)
        );
        let body = json!({"ackIds": ack_ids, "ackDeadlineSeconds": deadline_secs(d)});
        self.ps
            .must::<Value>(Method::POST, &path, Some(&body))
            .await
            .map(|_| ())
    }

    async fn acknowledge(
        &self,
        subscription: &str,
        ack_ids: Vec<String>,
    ) -> Result<(), QueueError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let path = format!("{}:acknowledge", self.ps.subscription_path(subscription));
        self.ps
            .must::<Value>(Method::POST, &path, Some(&json!({"ackIds": ack_ids})))
            .await
            .map(|_| ())
    }

    /// One immediate pull of up to `max` messages from every subscription.
    async fn pull_once(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let mut out = Vec::new();
        for sub in self.subscriptions() {
            if out.len() >= max {
                break;
            }
            let path = format!("{}:pull", self.ps.subscription_path(&sub));
            let body = json!({"maxMessages": max - out.len(), "returnImmediately": true});
            let pulled: Pulled = match self.ps.call(Method::POST, &path, Some(&body)).await? {
                Found::Yes(p) => p,
                Found::No if sub != self.name => {
                    *self
                        .events_absent_until
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + ABSENT_FOR);
                    continue;
                }
                Found::No => return Err(QueueError::NotFound(self.name.clone())),
            };
            let (mut keep, mut early, mut dead) = (Vec::new(), Vec::new(), Vec::new());
            for r in pulled.received_messages {
                let due = r
                    .message
                    .attributes
                    .get(NOT_BEFORE)
                    .and_then(|v| v.parse::<i64>().ok());
                let now = now_ms();
                if let Some(due) = due.filter(|d| *d > now) {
                    early.push((r.ack_id, Duration::from_millis((due - now) as u64)));
                    continue;
                }
                let attempt = r.delivery_attempt.unwrap_or(1).max(1);
                // A delayed message was probably pulled early once: that hop is not a receive.
                let count = match due.is_some() && attempt > 1 {
                    true => attempt - 1,
                    false => attempt,
                };
                let body = base64::engine::general_purpose::STANDARD
                    .decode(&r.message.data)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        QueueError::Backend(format!(
                            "message {} is not UTF-8 text",
                            r.message.message_id
                        ))
                    })?;
                let body = match self.with_attributes {
                    true => json!({"attributes": r.message.attributes, "data": body}).to_string(),
                    false => body,
                };
                let sent_at = r
                    .message
                    .publish_time
                    .as_deref()
                    .and_then(|t| {
                        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(OffsetDateTime::now_utc);
                let m = Message {
                    id: r.message.message_id,
                    receipt: format!("{sub}|{}", r.ack_id),
                    body,
                    receive_count: count,
                    sent_at,
                };
                match count > self.max_receive {
                    true => dead.push(m),
                    false => keep.push(m),
                }
            }
            for (ack, wait) in early {
                self.modify(&sub, vec![ack], wait).await?;
            }
            for m in dead {
                let reason = format!("received {} times", m.receive_count);
                self.dead_letter(&m, &reason).await?;
            }
            let ids: Vec<String> = keep
                .iter()
                .filter_map(|m| m.receipt.split_once('|').map(|(_, a)| a.to_string()))
                .collect();
            self.modify(&sub, ids, visibility).await?;
            out.extend(keep);
        }
        Ok(out)
    }
}

/// `(subscription, ack id)` of a receipt.
fn parse_receipt(receipt: &str) -> Result<(&str, &str), QueueError> {
    receipt
        .split_once('|')
        .ok_or_else(|| QueueError::StaleReceipt(receipt.to_string()))
}

#[async_trait]
impl Queue for PubSubQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let now = now_ms();
        let msgs: Vec<(String, Map<String, Value>)> = messages
            .iter()
            .map(|m| {
                let mut attrs = Map::new();
                if !m.delay.is_zero() {
                    let due = now + m.delay.min(MAX_DEADLINE).as_millis() as i64;
                    attrs.insert(NOT_BEFORE.into(), due.to_string().into());
                }
                (m.body.clone(), attrs)
            })
            .collect();
        self.ps.publish(&self.name, &msgs).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(50);
        loop {
            let got = self.pull_once(max.max(1), visibility).await?;
            let now = Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn ack_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
        let mut by_sub: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for r in receipts {
            let (sub, ack) = parse_receipt(r)?;
            by_sub.entry(sub).or_default().push(ack.to_string());
        }
        for (sub, ids) in by_sub {
            for chunk in ids.chunks(1000) {
                self.acknowledge(sub, chunk.to_vec()).await?;
            }
        }
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        let (sub, ack) = parse_receipt(receipt)?;
        self.modify(sub, vec![ack.to_string()], timeout).await
    }

    async fn dead_letter(&self, message: &Message, reason: &str) -> Result<(), QueueError> {
        let mut attrs = Map::new();
        attrs.insert(DEAD_REASON.into(), reason.to_string().into());
        self.ps
            .publish(
                &format!("{}-dlq", self.name),
                &[(message.body.clone(), attrs)],
            )
            .await?;
        self.ack(&message.receipt).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        match &self.ps.gauges {
            Some(g) => {
                g.stats(&[self.name.clone(), self.events_subscription()])
                    .await
            }
            None => Err(QueueError::Backend(format!(
                "the Pub/Sub emulator reports no gauges of {}",
                self.name
            ))),
        }
    }

    fn reports_gauges(&self) -> bool {
        self.ps.gauges.is_some()
    }

    fn max_delay(&self) -> Duration {
        MAX_DEADLINE
    }
}

/// A Pub/Sub topic.
#[derive(Debug, Clone)]
pub struct PubSubTopic {
    ps: PubSub,
    name: String,
}

impl PubSubTopic {
    /// Declares the topic `name` (idempotent).
    pub async fn declare(ps: &PubSub, name: &str) -> Result<Self, QueueError> {
        ps.ensure_topic(name).await?;
        Ok(Self {
            ps: ps.clone(),
            name: name.to_string(),
        })
    }
}

#[async_trait]
impl Topic for PubSubTopic {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, body: &str) -> Result<(), QueueError> {
        self.ps
            .publish(&self.name, &[(body.to_string(), Map::new())])
            .await
    }
}
