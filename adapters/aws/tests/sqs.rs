//! The `Queue` / `Topic` conformance suite on SQS and SNS against a real server: moto, which
//! `infra/local/test.sh` starts and names in `DSS_TEST_AWS_URL`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{options, unique};
use dss_aws::{SnsTopic, SqsQueue};
use dss_conformance::queue::{QueueFactory, run};
use dss_core::ports::{Queue, Topic};

struct Factory {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    queues: Mutex<HashMap<String, SqsQueue>>,
}

#[async_trait]
impl QueueFactory for Factory {
    async fn queue(&self, name: &str, max_receive: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        let q = SqsQueue::declare(&self.sqs, name, max_receive)
            .await
            .expect("declare");
        let again = SqsQueue::declare(&self.sqs, name, max_receive)
            .await
            .expect("declaring again");
        assert_eq!(again.url(), q.url());
        let dlq = q.dead_letter_queue().await.expect("dlq");
        self.queues
            .lock()
            .unwrap()
            .insert(name.to_string(), q.clone());
        (Arc::new(q), Arc::new(dlq))
    }

    fn refuses_stale_receipts(&self) -> bool {
        false
    }

    async fn topic(&self, name: &str, subscribers: &[Arc<dyn Queue>]) -> Arc<dyn Topic> {
        let t = SnsTopic::declare(&self.sns, name).await.expect("topic");
        for s in subscribers {
            let q = self.queues.lock().unwrap()[s.name()].clone();
            t.subscribe(&q, true).await.expect("subscribe");
        }
        Arc::new(t)
    }
}

async fn factory() -> Factory {
    let o = options();
    Factory {
        sqs: o.sqs().await,
        sns: o.sns().await,
        queues: Mutex::default(),
    }
}

#[tokio::test]
#[ignore = "needs an AWS-protocol server: run infra/local/test.sh"]
async fn sqs_and_sns_conform() {
    run(&factory().await, &unique("c")).await;
}

#[tokio::test]
#[ignore = "needs an AWS-protocol server: run infra/local/test.sh"]
async fn enveloped_deliveries_are_unwrapped_and_dead_letters_keep_their_reason() {
    let f = factory().await;
    let (q, dlq) = f.queue(&unique("env"), 5).await;
    let t = SnsTopic::declare(&f.sns, &unique("env-topic"))
        .await
        .expect("topic");
    let sqs = f.queues.lock().unwrap()[q.name()].clone();
    t.subscribe(&sqs, false)
        .await
        .expect("subscribe (enveloped)");
    t.publish(r#"{"event": 1}"#).await.expect("publish");
    let mut got = Vec::new();
    for _ in 0..10 {
        got = q
            .receive(1, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .expect("receive");
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, r#"{"event": 1}"#, "the envelope is unwrapped");
    q.dead_letter(&got[0], "malformed")
        .await
        .expect("dead letter");
    let dlq_url = sqs.url().replace(q.name(), &format!("{}-dlq", q.name()));
    let raw = aws_sdk_sqs::Client::receive_message(&f.sqs)
        .queue_url(dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive from the dlq");
    let m = &raw.messages()[0];
    assert_eq!(
        m.message_attributes()
            .and_then(|a| a.get("dss-dead-reason"))
            .and_then(|v| v.string_value()),
        Some("malformed")
    );
    drop(dlq);
}
