//! [`PubSubQueue`] and [`PubSubTopic`].
//!
//! * Receiving: each subscription of the queue has at most one long-polling `Pull` under way (no
//!   polling by sleeps). A receive waits up to its `wait` for one to answer; a pull that has not
//!   answered by then goes on, and what it brings is handed out by the next receive, so no pull
//!   is cut short while the server may be handing it messages. Messages beyond the receive's
//!   `max` are kept for the next one.
//! * Delays: a message sent with a delay carries its due time (`dss-not-before`); one pulled
//!   early has its deadline set to the time left (at most 10 minutes, [`Queue::max_delay`]) and is
//!   not handed out. That hop counts as a delivery for Pub/Sub; the receive count reported leaves
//!   it out.
//! * Dead letters: a message received more often than the queue allows is moved to the
//!   dead-letter queue by the queue itself (Pub/Sub's own policy, at least 5 attempts, is a
//!   backstop), with the reason as the `dss-dead-reason` attribute.
//! * Pub/Sub accepts acks and deadline changes of expired deliveries. Its gauges come from
//!   Cloud Monitoring ([`super::gauges`]); emulators have none.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dss_core::ports::{Message, OutgoingMessage, Queue, QueueError, QueueStats, Topic};
use gcloud_googleapis::pubsub::v1::{
    AcknowledgeRequest, ModifyAckDeadlineRequest, PullRequest, ReceivedMessage,
};
use serde_json::json;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;

use super::{PubSub, failed};

/// Attribute of a delayed message: when it is due (ms since the epoch).
const NOT_BEFORE: &str = "dss-not-before";
/// Attribute of a dead letter: why.
const DEAD_REASON: &str = "dss-dead-reason";
/// The longest ack deadline Pub/Sub accepts.
const MAX_DEADLINE: Duration = Duration::from_secs(600);
/// How long a missing events subscription is not asked for again.
const ABSENT_FOR: Duration = Duration::from_secs(30);
/// The ack deadline of the queues' subscriptions: how long a pulled message waits for its
/// receive before Pub/Sub hands it out again.
pub(crate) const SUBSCRIPTION_DEADLINE_SECS: i32 = 60;
/// Messages pulled longer ago than this are left to be redelivered, not handed out.
const STALE_AFTER: Duration = Duration::from_secs(45);

/// What a pull brought: when it answered, and its messages (`None`: no such subscription).
type Pulled = (Instant, Result<Option<Vec<ReceivedMessage>>, QueueError>);

/// A pull under way on one subscription.
#[derive(Debug)]
struct Pending {
    subscription: String,
    task: JoinHandle<Pulled>,
}

/// One queue: subscription `N` of topic `N`, and `N-events` of the bucket events topic.
#[derive(Debug)]
pub struct PubSubQueue {
    ps: PubSub,
    name: String,
    max_receive: u32,
    events_absent_until: Mutex<Option<Instant>>,
    /// Hand out `{"attributes": {…}, "data": "…"}` instead of the data alone.
    with_attributes: bool,
    /// Pulls under way, carried from one receive to the next.
    pulls: tokio::sync::Mutex<Vec<Pending>>,
    /// Messages received beyond a receive's `max`, for the next one.
    kept: Mutex<Vec<Message>>,
}

impl Drop for PubSubQueue {
    fn drop(&mut self) {
        if let Ok(pulls) = self.pulls.try_lock() {
            for p in pulls.iter() {
                p.task.abort();
            }
        }
    }
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Whole seconds, rounded up, within the ack deadline's range.
fn deadline_secs(d: Duration) -> i32 {
    d.min(MAX_DEADLINE).as_millis().div_ceil(1000) as i32
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
        match ps.subscription_exists(name).await? {
            true => Ok(Self::handle(ps, name, max_receive)),
            false => Err(QueueError::NotFound(name.to_string())),
        }
    }

    fn handle(ps: &PubSub, name: &str, max_receive: u32) -> Self {
        Self {
            ps: ps.clone(),
            name: name.to_string(),
            max_receive,
            events_absent_until: Mutex::new(None),
            with_attributes: false,
            pulls: tokio::sync::Mutex::new(Vec::new()),
            kept: Mutex::new(Vec::new()),
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
        *lock(&self.events_absent_until) = None;
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
        let absent = lock(&self.events_absent_until).is_some_and(|t| Instant::now() < t);
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
        let request = ModifyAckDeadlineRequest {
            subscription: self.ps.subscription_path(subscription),
            ack_ids,
            ack_deadline_seconds: deadline_secs(d),
        };
        self.ps
            .rpc
            .subscriber()
            .await?
            .modify_ack_deadline(request, None)
            .await
            .map(|_| ())
            .map_err(|s| failed(&format!("deadline change on {subscription}"), s))
    }

    async fn acknowledge(
        &self,
        subscription: &str,
        ack_ids: Vec<String>,
    ) -> Result<(), QueueError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let request = AcknowledgeRequest {
            subscription: self.ps.subscription_path(subscription),
            ack_ids,
        };
        self.ps
            .rpc
            .subscriber()
            .await?
            .acknowledge(request, None)
            .await
            .map(|_| ())
            .map_err(|s| failed(&format!("ack on {subscription}"), s))
    }

    /// Starts a long-polling pull of up to `max` messages from `subscription`.
    fn pull(&self, subscription: &str, max: usize) -> Pending {
        let ps = self.ps.clone();
        let path = ps.subscription_path(subscription);
        let task = tokio::spawn(async move {
            #[allow(deprecated)]
            let request = PullRequest {
                subscription: path.clone(),
                return_immediately: false,
                max_messages: max.min(1000) as i32,
            };
            let answer = match ps.rpc.subscriber().await {
                Ok(s) => match s.pull(request, None).await {
                    Ok(r) => Ok(Some(r.into_inner().received_messages)),
                    Err(s) if s.code() == Code::NotFound => Ok(None),
                    // The server's wait ended without messages.
                    Err(s) if s.code() == Code::DeadlineExceeded => Ok(Some(Vec::new())),
                    Err(s) => Err(failed(&format!("pull from {path}"), s)),
                },
                Err(e) => Err(e),
            };
            (Instant::now(), answer)
        });
        Pending {
            subscription: subscription.to_string(),
            task,
        }
    }

    /// The messages of a finished pull of `subscription`, ready to hand out: early ones wait
    /// out their delay, ones received too often are dead-lettered, the rest get `visibility`.
    async fn take(
        &self,
        subscription: &str,
        (answered, pulled): Pulled,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let received = match pulled? {
            Some(r) => r,
            None if subscription != self.name => {
                *lock(&self.events_absent_until) = Some(Instant::now() + ABSENT_FOR);
                return Ok(Vec::new());
            }
            None => return Err(QueueError::NotFound(self.name.clone())),
        };
        if answered.elapsed() > STALE_AFTER {
            // Their deadlines are running out: Pub/Sub hands them out again.
            tracing::info!(queue = %self.name, messages = received.len(), "messages pulled long ago are left to be redelivered");
            return Ok(Vec::new());
        }
        let (mut keep, mut early, mut dead) = (Vec::new(), Vec::new(), Vec::new());
        for r in received {
            let Some(message) = r.message else {
                continue;
            };
            let due = message
                .attributes
                .get(NOT_BEFORE)
                .and_then(|v| v.parse::<i64>().ok());
            let now = now_ms();
            if let Some(due) = due.filter(|d| *d > now) {
                early.push((r.ack_id, Duration::from_millis((due - now) as u64)));
                continue;
            }
            let attempt = u32::try_from(r.delivery_attempt).unwrap_or(1).max(1);
            // A delayed message was probably pulled early once: that hop is not a receive.
            let count = match due.is_some() && attempt > 1 {
                true => attempt - 1,
                false => attempt,
            };
            let body = String::from_utf8(message.data).map_err(|_| {
                QueueError::Backend(format!("message {} is not UTF-8 text", message.message_id))
            })?;
            let body = match self.with_attributes {
                true => json!({"attributes": message.attributes, "data": body}).to_string(),
                false => body,
            };
            let sent_at = message
                .publish_time
                .and_then(|t| {
                    OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
                    )
                    .ok()
                })
                .unwrap_or_else(OffsetDateTime::now_utc);
            let m = Message {
                id: message.message_id,
                receipt: format!("{subscription}|{}", r.ack_id),
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
            self.modify(subscription, vec![ack], wait).await?;
        }
        for m in dead {
            let reason = format!("received {} times", m.receive_count);
            self.dead_letter(&m, &reason).await?;
        }
        let ids: Vec<String> = keep
            .iter()
            .filter_map(|m| m.receipt.split_once('|').map(|(_, a)| a.to_string()))
            .collect();
        self.modify(subscription, ids, visibility).await?;
        Ok(keep)
    }

    /// Up to `max` messages kept from an earlier receive, their visibility renewed.
    async fn kept(&self, max: usize, visibility: Duration) -> Result<Vec<Message>, QueueError> {
        let out: Vec<Message> = {
            let mut kept = lock(&self.kept);
            let n = kept.len().min(max);
            kept.drain(..n).collect()
        };
        let mut by_sub: HashMap<&str, Vec<String>> = HashMap::new();
        for m in &out {
            let (sub, ack) = parse_receipt(&m.receipt)?;
            by_sub.entry(sub).or_default().push(ack.to_string());
        }
        for (sub, ids) in by_sub {
            self.modify(sub, ids, visibility).await?;
        }
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `(subscription, ack id)` of a receipt.
fn parse_receipt(receipt: &str) -> Result<(&str, &str), QueueError> {
    receipt
        .split_once('|')
        .ok_or_else(|| QueueError::StaleReceipt(receipt.to_string()))
}

fn lost(e: tokio::task::JoinError) -> QueueError {
    QueueError::Backend(format!("a Pub/Sub pull stopped: {e}"))
}

#[async_trait]
impl Queue for PubSubQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let now = now_ms();
        let msgs: Vec<(String, HashMap<String, String>)> = messages
            .iter()
            .map(|m| {
                let mut attrs = HashMap::new();
                if !m.delay.is_zero() {
                    let due = now + m.delay.min(MAX_DEADLINE).as_millis() as i64;
                    attrs.insert(NOT_BEFORE.into(), due.to_string());
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
        let max = max.max(1);
        let mut pulls = self.pulls.lock().await;
        let out = self.kept(max, visibility).await?;
        if !out.is_empty() {
            return Ok(out);
        }
        let deadline = Instant::now() + wait;
        loop {
            for sub in self.subscriptions() {
                if !pulls.iter().any(|p| p.subscription == sub) {
                    pulls.push(self.pull(&sub, max));
                }
            }
            let first = futures::future::select_all(pulls.iter_mut().map(|p| &mut p.task));
            let Ok((answer, index, _)) = tokio::time::timeout_at(deadline, first).await else {
                // The pulls go on; what they bring is handed out next time.
                return Ok(Vec::new());
            };
            let sub = pulls.remove(index).subscription;
            let mut out = self.take(&sub, answer.map_err(lost)?, visibility).await?;
            // Pulls that answered meanwhile too.
            let mut i = 0;
            while i < pulls.len() {
                if pulls[i].task.is_finished() {
                    let done = pulls.remove(i);
                    let answer = done.task.await.map_err(lost)?;
                    out.extend(self.take(&done.subscription, answer, visibility).await?);
                } else {
                    i += 1;
                }
            }
            if out.len() > max {
                lock(&self.kept).extend(out.split_off(max));
            }
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
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
        let attrs = HashMap::from([(DEAD_REASON.to_string(), reason.to_string())]);
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
            .publish(&self.name, &[(body.to_string(), HashMap::new())])
            .await
    }
}
