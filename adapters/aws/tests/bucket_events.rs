//! Real S3 bucket events: S3 notifications → SNS → SQS on moto (which `infra/local/test.sh`
//! starts and names in `DSS_TEST_AWS_URL`), read into the same `BucketEvent` the embedded store
//! emits.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{options, unique};
use dss_aws::{S3BlobStore, SnsTopic, SqsQueue};
use dss_core::ports::{BlobStore, BucketEvent, BucketEventName, ByteStream, PutOptions, Queue};
use dss_runtime::bucket_events;

/// Receives until `want` events arrived (or 20 s passed), acking each message.
async fn events(q: &SqsQueue, want: usize) -> Vec<BucketEvent> {
    let mut out = Vec::new();
    for _ in 0..20 {
        for m in q
            .receive(10, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .expect("receive")
        {
            out.extend(bucket_events::parse(&m.body).expect("a bucket event notification"));
            q.ack(&m.receipt).await.expect("ack");
        }
        if out.len() >= want {
            break;
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs an AWS-protocol server: run infra/local/test.sh"]
async fn s3_notifications_through_sns_and_sqs_read_as_bucket_events() {
    let o = options();
    let bucket = unique("dss-events");
    let store = S3BlobStore::connect(&bucket, &o).await;
    store.ensure_bucket().await.expect("bucket");
    let topic = SnsTopic::declare(&o.sns().await, &unique("bucket-events"))
        .await
        .expect("topic");
    topic.allow_bucket(&bucket).await.expect("topic policy");
    let queue = SqsQueue::declare(&o.sqs().await, &unique("sync"), 5)
        .await
        .expect("queue");
    // Enveloped, as S3 → SNS → SQS delivers by default.
    topic.subscribe(&queue, false).await.expect("subscribe");
    store
        .publish_events_to(topic.arn())
        .await
        .expect("notification configuration");

    let key = "files/a b+c.json";
    store
        .put_bytes(key, Bytes::from_static(b"{}"), PutOptions::default())
        .await
        .expect("put");
    let big = Bytes::from(vec![7u8; 70 << 20]);
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..70)
        .map(|i| Ok(big.slice(i << 20..(i + 1) << 20)))
        .collect();
    let body: ByteStream = Box::pin(futures::stream::iter(chunks));
    store
        .put("blobs/big", body, PutOptions::default())
        .await
        .expect("multipart put");
    assert!(store.delete(key).await.expect("delete"));

    let got = events(&queue, 4).await;
    let created: Vec<&str> = got
        .iter()
        .filter(|e| e.event_name == BucketEventName::Created)
        .map(|e| e.key.as_str())
        .collect();
    assert!(created.contains(&key), "the key is decoded: {created:?}");
    assert!(created.contains(&"blobs/big"), "{created:?}");
    assert!(
        got.iter().all(|e| e.bucket == bucket),
        "every event names the bucket"
    );
    assert!(
        got.iter()
            .any(|e| e.event_name == BucketEventName::Removed && e.key == key),
        "the removal arrives too: {got:?}"
    );
    let small = got
        .iter()
        .find(|e| e.key == key && e.event_name == BucketEventName::Created);
    assert_eq!(small.map(|e| e.size), Some(2));
}
