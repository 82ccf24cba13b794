//! Bucket events as the queues deliver them: our own [`BucketEvent`] (embedded buckets, the GCS
//! event relay) and S3 event notifications (`{"Records": [...]}`, delivered by S3 to SQS or
//! through SNS), all read into the same [`BucketEvent`].

use serde::Deserialize;
use time::OffsetDateTime;

use crate::worker::{HandlerError, Outcome};
use dss_core::ports::{BucketEvent, BucketEventName};

#[derive(Deserialize)]
struct S3Notification {
    #[serde(rename = "Records")]
    records: Vec<S3Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_name: String,
    #[serde(with = "time::serde::rfc3339")]
    event_time: OffsetDateTime,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    e_tag: String,
}

/// An S3 event key: URL-encoded, with `+` for spaces.
fn decode_key(key: &str) -> String {
    form_urlencoded::parse(format!("k={key}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| key.to_string())
}

/// The bucket events in a queue message body. S3's test event (sent when notifications are
/// configured) and event kinds other than creations and removals hold none. Several events may
/// describe one write (S3's `CompleteMultipartUpload` comes with a `Put`): handlers are
/// idempotent.
pub fn parse(body: &str) -> Result<Vec<BucketEvent>, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("Records").is_some() {
        let n: S3Notification = serde_json::from_value(value)
            .map_err(|e| format!("not an S3 event notification: {e}"))?;
        return Ok(n
            .records
            .into_iter()
            .filter_map(|r| {
                let event_name = if r.event_name.starts_with("ObjectCreated:") {
                    BucketEventName::Created
                } else if r.event_name.starts_with("ObjectRemoved:") {
                    BucketEventName::Removed
                } else {
                    return None;
                };
                Some(BucketEvent {
                    bucket: r.s3.bucket.name,
                    key: decode_key(&r.s3.object.key),
                    size: r.s3.object.size,
                    etag: r.s3.object.e_tag.trim_matches('"').to_string(),
                    event_name,
                    time: r.event_time,
                    correlation_id: None,
                    traceparent: None,
                })
            })
            .collect());
    }
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    serde_json::from_value(value)
        .map(|e| vec![e])
        .map_err(|e| format!("not a bucket event: {e}"))
}

/// Runs `handle` on each bucket event of a message body ([`handle_all`]); a body that holds no
/// bucket event is a permanent failure.
pub async fn handle_each<F>(
    body: &str,
    handle: impl FnMut(BucketEvent) -> F,
) -> Result<Outcome, HandlerError>
where
    F: Future<Output = Result<Outcome, HandlerError>>,
{
    handle_all(parse(body).map_err(HandlerError::Permanent)?, handle).await
}

/// Runs `handle` on each of one message's events, in order, stopping at the first that is not
/// done: its outcome is the message's (handlers are idempotent, so a retried message may repeat
/// the events before it).
pub async fn handle_all<F>(
    events: Vec<BucketEvent>,
    mut handle: impl FnMut(BucketEvent) -> F,
) -> Result<Outcome, HandlerError>
where
    F: Future<Output = Result<Outcome, HandlerError>>,
{
    for event in events {
        let outcome = handle(event).await?;
        if outcome != Outcome::Done {
            return Ok(outcome);
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_notifications_read_as_bucket_events() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2026-11-25T14:35:09.990Z","eventName":"ObjectCreated:CompleteMultipartUpload",
            "s3":{"s3SchemaVersion":"1.0","bucket":{"name":"dss-aws","arn":"arn:aws:s3:::dss-aws"},
            "object":{"key":"files%2Fa+b%2Bc.json","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592"}}},
            {"eventTime":"2026-11-25T14:35:10Z","eventName":"ObjectRemoved:Delete",
            "s3":{"bucket":{"name":"dss-aws"},"object":{"key":"blobs/x"}}},
            {"eventTime":"2026-11-25T14:35:10Z","eventName":"ObjectRestore:Completed",
            "s3":{"bucket":{"name":"dss-aws"},"object":{"key":"blobs/y"}}}]}"#;
        let events = parse(body).unwrap();
        assert_eq!(events.len(), 2, "restores are no creations or removals");
        assert_eq!(events[0].key, "files/a b+c.json", "keys are URL-decoded");
        assert_eq!((events[0].bucket.as_str(), events[0].size), ("dss-aws", 5));
        assert_eq!(events[0].event_name, BucketEventName::Created);
        assert_eq!(events[0].etag, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(events[1].event_name, BucketEventName::Removed);
        assert_eq!(events[1].size, 0);
    }

    #[test]
    fn our_events_and_s3_test_events_parse_and_others_are_refused() {
        let ours = r#"{"bucket":"aws","key":"k","size":1,"etag":"e","event_name":"ObjectCreated:Put","time":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(parse(ours).unwrap().len(), 1);
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-25T14:35:09Z","Bucket":"b"}"#;
        assert!(parse(test).unwrap().is_empty());
        assert!(parse("nope").is_err());
        assert!(parse(r#"{"Records": 1}"#).is_err());
        assert!(parse(r#"{"bucket": "aws"}"#).is_err());
    }
}
