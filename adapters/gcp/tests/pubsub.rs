//! The `Queue` / `Topic` conformance suite (and Pub/Sub specifics) against the Pub/Sub emulator
//! that `infra/local/test.sh` starts and names in `DSS_TEST_PUBSUB_URL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dss_conformance::queue::QueueFactory;
use dss_core::ports::{Queue, QueueBackend, QueueError, QueueSpec, Topic};
use dss_gcp::{GcpOptions, PubSub, PubSubQueue, PubSubQueues, PubSubTopic};

/// The emulator's connection settings.
fn options() -> GcpOptions {
    GcpOptions {
        pubsub_endpoint: Some(std::env::var("DSS_TEST_PUBSUB_URL").expect(
            "DSS_TEST_PUBSUB_URL names a Pub/Sub server (infra/local/test.sh starts the emulator)",
        )),
        project: Some("dss-test".into()),
        anonymous: true,
        ..GcpOptions::default()
    }
}

fn pubsub() -> PubSub {
    PubSub::connect(&options()).expect("client")
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{nanos}")
}

struct Factory {
    ps: PubSub,
    queues: Mutex<HashMap<String, Arc<PubSubQueue>>>,
}

#[async_trait]
impl QueueFactory for Factory {
    async fn queue(&self, name: &str, max_receive: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        let q = PubSubQueue::declare(&self.ps, name, max_receive)
            .await
            .expect("declare");
        PubSubQueue::declare(&self.ps, name, max_receive)
            .await
            .expect("declaring again");
        let dlq = q.dead_letter_queue();
        let q = Arc::new(q);
        self.queues
            .lock()
            .unwrap()
            .insert(name.to_string(), q.clone());
        (q, Arc::new(dlq))
    }

    fn refuses_stale_receipts(&self) -> bool {
        false
    }

    async fn topic(&self, name: &str, subscribers: &[Arc<dyn Queue>]) -> Arc<dyn Topic> {
        let t = PubSubTopic::declare(&self.ps, name).await.expect("topic");
        for s in subscribers {
            let q = self.queues.lock().unwrap()[s.name()].clone();
            q.subscribe_to(name).await.expect("subscribe");
        }
        Arc::new(t)
    }
}

#[tokio::test]
#[ignore = "needs a Pub/Sub server: run infra/local/test.sh"]
async fn pubsub_queue_conforms() {
    let f = Factory {
        ps: pubsub(),
        queues: Mutex::default(),
    };
    dss_conformance::queue::run(&f, &unique("conformance")).await;
}

#[tokio::test]
#[ignore = "needs a Pub/Sub server: run infra/local/test.sh"]
async fn the_backend_declares_queues_that_components_then_open() {
    let backend = PubSubQueues::new(pubsub(), &format!("{}-", unique("dss")));
    let spec = |name: &str, bucket_events: bool| QueueSpec {
        name: name.into(),
        max_receive_count: 3,
        bucket_events,
    };
    let missing = backend.queue(&spec("index", true)).await;
    assert!(
        matches!(missing, Err(QueueError::NotFound(_))),
        "{missing:?}"
    );
    let specs = [spec("index", true), spec("checkout", false)];
    backend
        .declare("bucket-events", &specs)
        .await
        .expect("declare");
    backend
        .declare("bucket-events", &specs)
        .await
        .expect("declare again");
    let index = backend.queue(&specs[0]).await.expect("open");
    let checkout = backend.queue(&specs[1]).await.expect("open");
    backend
        .topic("bucket-events")
        .await
        .expect("topic")
        .publish("an event")
        .await
        .expect("publish");
    checkout.send("a job", Duration::ZERO).await.expect("send");
    for (q, body) in [(&index, "an event"), (&checkout, "a job")] {
        let got = q
            .receive(10, Duration::from_secs(30), Duration::from_secs(5))
            .await
            .expect("receive");
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            [body]
        );
        q.ack(&got[0].receipt).await.expect("ack");
    }
    assert!(!index.reports_gauges());
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator; run by infra/local/test.sh"]
async fn queue_gauges_come_from_cloud_monitoring_where_it_reports_them() {
    use dss_conformance::proxy::{Answer, Options, Proxy, Seen};
    let name = unique("gauges");
    let queue = PubSubQueue::declare(&pubsub(), &name, 5)
        .await
        .expect("declare");
    // The emulator has no Cloud Monitoring: no gauges, and stats says so.
    assert!(!queue.reports_gauges());
    let err = queue.stats().await.expect_err("no gauges");
    assert!(err.to_string().contains("emulator"), "{err}");

    // A Cloud Monitoring of the test's own: one series per subscription of the queue.
    let (queue_sub, events_sub) = (name.clone(), format!("{name}-events"));
    let monitoring = Proxy::start(
        "http://127.0.0.1:9",
        Options {
            gate: Some(Arc::new(move |seen: &Seen| {
                let query = seen.target.replace("%22", "\"").replace('+', " ");
                let series = |a: i64, b: i64| {
                    format!(
                        r#"{{"timeSeries": [{{"points": [{{"value": {{"int64Value": "{a}"}}}}, {{"value": {{"int64Value": "1"}}}}]}}, {{"points": [{{"value": {{"int64Value": "{b}"}}}}]}}]}}"#
                    )
                };
                let right = seen.target.starts_with("/v3/projects/dss-test/timeSeries?")
                    && query.contains(&format!("\"{queue_sub}\""))
                    && query.contains(&format!("\"{events_sub}\""));
                let body = if !right {
                    return Err(Answer::json(400, r#"{"error": {"message": "unexpected"}}"#));
                } else if query.contains("num_undelivered_messages") {
                    series(7, 5)
                } else if query.contains("oldest_unacked_message_age") {
                    series(30, 90)
                } else {
                    return Err(Answer::json(400, r#"{"error": {"message": "no metric"}}"#));
                };
                Err(Answer::json(200, body))
            })),
            ..Options::default()
        },
    )
    .await;
    let watched = PubSub::connect(&GcpOptions {
        monitoring_endpoint: Some(monitoring.url("http")),
        ..options()
    })
    .expect("client");
    let queue = PubSubQueue::open(&watched, &name, 5).await.expect("open");
    assert!(queue.reports_gauges());
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        stats.depth(),
        12,
        "the newest sample of each subscription, summed"
    );
    assert_eq!(stats.oldest_age, Some(Duration::from_secs(90)));
    // Kept for a minute: the workers' refreshes do not each cost a Monitoring read.
    let asked = monitoring.seen().len();
    assert_eq!(asked, 2);
    queue.stats().await.expect("stats");
    assert_eq!(monitoring.seen().len(), asked);
}

#[tokio::test]
#[ignore = "needs the Pub/Sub emulator; run by infra/local/test.sh"]
async fn a_pull_outlives_a_receive_that_stopped_waiting_and_extra_messages_wait_their_turn() {
    use dss_core::ports::OutgoingMessage;
    let name = unique("long-poll");
    let queue = PubSubQueue::declare(&pubsub(), &name, 5)
        .await
        .expect("declare");
    let visibility = Duration::from_secs(30);
    // Nothing there: the receive gives up after its wait, its pull goes on.
    let t = std::time::Instant::now();
    let none = queue
        .receive(10, visibility, Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(none.is_empty());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Sent now, it reaches the pull already under way.
    let messages: Vec<OutgoingMessage> = (0..5)
        .map(|i| OutgoingMessage {
            body: format!("m{i}"),
            delay: Duration::ZERO,
        })
        .collect();
    queue.send_batch(&messages).await.expect("send");
    let mut bodies = Vec::new();
    let t = std::time::Instant::now();
    while bodies.len() < 5 && t.elapsed() < Duration::from_secs(20) {
        let got = queue
            .receive(2, visibility, Duration::from_secs(2))
            .await
            .expect("receive");
        assert!(got.len() <= 2, "at most the receive's max: {}", got.len());
        queue
            .ack_batch(&got.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>())
            .await
            .expect("ack");
        bodies.extend(got.into_iter().map(|m| m.body));
    }
    bodies.sort();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4"]);
}
