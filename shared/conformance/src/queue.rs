//! The `Queue` / `Topic` conformance suite. It runs in real time with second-scale timeouts, so
//! it works unchanged against cloud queues.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use dss_core::ports::queue::{OutgoingMessage, Queue, QueueError, Topic};

/// Creates fresh queues and topics on the adapter under test.
#[async_trait]
pub trait QueueFactory: Send + Sync {
    /// A new, empty queue with the given redrive limit, and its dead-letter queue.
    async fn queue(&self, name: &str, max_receive: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>);
    /// A new topic fanning out to the given queues.
    async fn topic(&self, name: &str, subscribers: &[Arc<dyn Queue>]) -> Arc<dyn Topic>;
    /// Whether the queue refuses the receipt of an earlier delivery with
    /// [`QueueError::StaleReceipt`] (the embedded queue does; SQS accepts such receipts).
    fn refuses_stale_receipts(&self) -> bool {
        true
    }
}

const VIS: Duration = Duration::from_secs(1);

async fn receive_all(
    q: &dyn Queue,
    want: usize,
    max_wait: Duration,
) -> Vec<dss_core::ports::queue::Message> {
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut out = Vec::new();
    while out.len() < want && tokio::time::Instant::now() < deadline {
        out.extend(
            q.receive(
                want - out.len(),
                Duration::from_secs(30),
                Duration::from_millis(500),
            )
            .await
            .expect("receive"),
        );
    }
    out
}

/// Runs every check; `ns` keeps queue names unique per run.
pub async fn run(f: &dyn QueueFactory, ns: &str) {
    send_receive_ack(f, ns).await;
    visibility_and_redelivery(f, ns).await;
    delayed_messages(f, ns).await;
    redrive_to_dead_letter(f, ns).await;
    explicit_dead_letter(f, ns).await;
    batches(f, ns).await;
    long_poll_wakes_early(f, ns).await;
    topic_fan_out(f, ns).await;
}

async fn send_receive_ack(f: &dyn QueueFactory, ns: &str) {
    let (q, _) = f.queue(&format!("{ns}-basic"), 5).await;
    q.send("{\"hello\":1}", Duration::ZERO).await.expect("send");
    let got = receive_all(&*q, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "a sent message is received");
    assert_eq!(got[0].body, "{\"hello\":1}", "body round-trips");
    assert_eq!(got[0].receive_count, 1, "first delivery counts 1");
    if q.reports_gauges() {
        let s = q.stats().await.expect("stats");
        assert_eq!(
            (s.visible, s.in_flight),
            (0, 1),
            "received message is in flight: {s:?}"
        );
    }
    q.ack(&got[0].receipt).await.expect("ack");
    let again = q
        .receive(10, VIS, Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(again.is_empty(), "an acked message is gone");
    if q.reports_gauges() {
        assert_eq!(
            q.stats().await.expect("stats").depth(),
            0,
            "queue is empty after ack"
        );
    }
}

async fn visibility_and_redelivery(f: &dyn QueueFactory, ns: &str) {
    let (q, _) = f.queue(&format!("{ns}-vis"), 10).await;
    q.send("m", Duration::ZERO).await.expect("send");
    let first = receive_all(&*q, 1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    let hidden = q.receive(10, VIS, Duration::ZERO).await.expect("receive");
    assert!(
        hidden.is_empty(),
        "a received message is hidden during its visibility timeout"
    );
    q.change_visibility(&first[0].receipt, Duration::ZERO)
        .await
        .expect("change visibility");
    let second = receive_all(&*q, 1, Duration::from_secs(5)).await;
    assert_eq!(second.len(), 1, "visibility 0 makes it visible again");
    assert_eq!(second[0].id, first[0].id, "same message");
    assert_eq!(second[0].receive_count, 2, "receive count grows");
    if f.refuses_stale_receipts() {
        let stale = q.change_visibility(&first[0].receipt, Duration::ZERO).await;
        assert!(
            matches!(stale, Err(QueueError::StaleReceipt(_))),
            "an old receipt is stale: {stale:?}"
        );
    }
    // Let the visibility timeout lapse on its own.
    let third = q
        .receive(1, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive");
    assert!(third.is_empty());
    q.change_visibility(&second[0].receipt, VIS)
        .await
        .expect("shorten");
    tokio::time::sleep(VIS + Duration::from_millis(200)).await;
    let after = receive_all(&*q, 1, Duration::from_secs(5)).await;
    assert_eq!(after.len(), 1, "an expired visibility timeout redelivers");
    q.ack(&after[0].receipt).await.expect("ack");
}

async fn delayed_messages(f: &dyn QueueFactory, ns: &str) {
    let (q, _) = f.queue(&format!("{ns}-delay"), 5).await;
    q.send("later", Duration::from_secs(2)).await.expect("send");
    let early = q
        .receive(1, VIS, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(early.is_empty(), "a delayed message is not delivered early");
    if q.reports_gauges() {
        assert_eq!(
            q.stats().await.expect("stats").delayed,
            1,
            "it counts as delayed"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receive_all(&*q, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "a delayed message arrives after its delay");
    q.ack(&got[0].receipt).await.expect("ack");
}

async fn redrive_to_dead_letter(f: &dyn QueueFactory, ns: &str) {
    let (q, dlq) = f.queue(&format!("{ns}-redrive"), 2).await;
    q.send("poison", Duration::ZERO).await.expect("send");
    for attempt in 1..=2 {
        let got = receive_all(&*q, 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1, "delivery {attempt}");
        q.change_visibility(&got[0].receipt, Duration::ZERO)
            .await
            .expect("nack");
    }
    let none = q
        .receive(1, VIS, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(
        none.is_empty(),
        "past the maximum receive count the message is not delivered again"
    );
    let dead = receive_all(&*dlq, 1, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1, "it is in the dead-letter queue");
    assert_eq!(dead[0].body, "poison");
}

async fn explicit_dead_letter(f: &dyn QueueFactory, ns: &str) {
    let (q, dlq) = f.queue(&format!("{ns}-dead"), 10).await;
    q.send("bad", Duration::ZERO).await.expect("send");
    let got = receive_all(&*q, 1, Duration::from_secs(5)).await;
    q.dead_letter(&got[0], "malformed")
        .await
        .expect("dead letter");
    assert!(
        q.receive(1, VIS, Duration::from_millis(300))
            .await
            .expect("receive")
            .is_empty()
    );
    let dead = receive_all(&*dlq, 1, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1, "dead_letter moves the message now");
}

async fn batches(f: &dyn QueueFactory, ns: &str) {
    let (q, _) = f.queue(&format!("{ns}-batch"), 5).await;
    let msgs: Vec<OutgoingMessage> = (0..50)
        .map(|i| OutgoingMessage::new(format!("m{i}")))
        .collect();
    for chunk in msgs.chunks(10) {
        q.send_batch(chunk).await.expect("send batch");
    }
    let mut bodies = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bodies.len() < 50 && tokio::time::Instant::now() < deadline {
        let got = q
            .receive(10, Duration::from_secs(30), Duration::from_millis(500))
            .await
            .expect("receive");
        assert!(got.len() <= 10, "receive honours max");
        for m in &got {
            assert!(
                bodies.insert(m.body.clone()),
                "no duplicate delivery within the visibility timeout"
            );
        }
        q.ack_batch(&got.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>())
            .await
            .expect("ack batch");
    }
    assert_eq!(
        bodies.len(),
        50,
        "every message of the batches is delivered once"
    );
}

async fn long_poll_wakes_early(f: &dyn QueueFactory, ns: &str) {
    let (q, _) = f.queue(&format!("{ns}-poll"), 5).await;
    let sender = q.clone();
    let t = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send("wake", Duration::ZERO).await.expect("send");
    });
    let start = tokio::time::Instant::now();
    let got = q
        .receive(1, VIS, Duration::from_secs(10))
        .await
        .expect("receive");
    t.await.expect("sender");
    assert_eq!(got.len(), 1, "long poll returns the message");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "long poll returns when a message arrives"
    );
    q.ack(&got[0].receipt).await.expect("ack");
}

async fn topic_fan_out(f: &dyn QueueFactory, ns: &str) {
    let (a, _) = f.queue(&format!("{ns}-fan-a"), 5).await;
    let (b, _) = f.queue(&format!("{ns}-fan-b"), 5).await;
    let t = f
        .topic(&format!("{ns}-topic"), &[a.clone(), b.clone()])
        .await;
    t.publish("event").await.expect("publish");
    for q in [a, b] {
        let got = receive_all(&*q, 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1, "every subscribed queue gets the message");
        assert_eq!(got[0].body, "event");
    }
}
