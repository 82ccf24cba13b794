//! GCS object notifications (payload format `JSON_API_V1`) read into our [`BucketEvent`].

use std::collections::HashMap;

use dss_core::ports::{BucketEvent, BucketEventName};
use serde::Deserialize;
use time::OffsetDateTime;

/// A notification as the relay's queue hands it out.
#[derive(Deserialize)]
struct Envelope {
    attributes: HashMap<String, String>,
    #[serde(default)]
    data: String,
}

/// The fields of the object resource the event needs.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Object {
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    md5_hash: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// Hex of the base64 MD5 GCS sends.
fn hex_md5(b64: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (raw.len() == 16).then(|| hex::encode(raw))
}

/// The bucket event a notification describes; `None` for what is not a creation or a deletion
/// (metadata updates, archives, and deletions of generations that a newer write replaced).
pub fn parse(body: &str) -> Result<Option<BucketEvent>, String> {
    let env: Envelope =
        serde_json::from_str(body).map_err(|e| format!("not a relayed GCS notification: {e}"))?;
    let a = &env.attributes;
    let event_name = match a.get("eventType").map(String::as_str) {
        Some("OBJECT_FINALIZE") => BucketEventName::Created,
        Some("OBJECT_DELETE") if !a.contains_key("overwrittenByGeneration") => {
            BucketEventName::Removed
        }
        Some(_) => return Ok(None),
        None => return Err("a GCS notification without eventType".into()),
    };
    let (Some(bucket), Some(key)) = (a.get("bucketId"), a.get("objectId")) else {
        return Err("a GCS notification without bucketId or objectId".into());
    };
    let object: Object = serde_json::from_str(&env.data).unwrap_or_default();
    let time = a
        .get("eventTime")
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let (size, etag) = match event_name {
        BucketEventName::Created => (
            object.size.and_then(|s| s.parse().ok()).unwrap_or(0),
            object
                .metadata
                .get("dss-s3-etag")
                .cloned()
                .or_else(|| object.md5_hash.as_deref().and_then(hex_md5))
                .unwrap_or_default(),
        ),
        BucketEventName::Removed => (0, String::new()),
    };
    Ok(Some(BucketEvent {
        bucket: bucket.clone(),
        key: key.clone(),
        size,
        etag,
        event_name,
        time,
        // Recorded with the object by our GCS store, and sent in the notification's resource.
        correlation_id: object
            .metadata
            .get("dss-correlation-id")
            .filter(|id| dss_core::correlation::valid(id))
            .cloned(),
        traceparent: object
            .metadata
            .get("dss-traceparent")
            .filter(|tp| dss_core::correlation::valid_traceparent(tp))
            .cloned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(attrs: serde_json::Value, data: serde_json::Value) -> String {
        serde_json::json!({"attributes": attrs, "data": data.to_string()}).to_string()
    }

    #[test]
    fn finalisations_and_deletions_become_bucket_events() {
        let created = parse(&note(
            serde_json::json!({"eventType": "OBJECT_FINALIZE", "bucketId": "dss-gcp",
                "objectId": "files/a b.2026", "eventTime": "2026-12-02T06:00:00.5Z"}),
            serde_json::json!({"size": "5", "md5Hash": "XUFAKrxLKna5cZ2REBfFkg==",
                "metadata": {"dss-correlation-id": "req-5"}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(created.event_name, BucketEventName::Created);
        assert_eq!(created.correlation_id.as_deref(), Some("req-5"));
        assert_eq!(
            (created.bucket.as_str(), created.key.as_str()),
            ("dss-gcp", "files/a b.2026")
        );
        assert_eq!(created.size, 5);
        assert_eq!(created.etag, "5d41402abc4b2a76b9719d911017c592");
        let removed = parse(&note(
            serde_json::json!({"eventType": "OBJECT_DELETE", "bucketId": "b", "objectId": "k"}),
            serde_json::json!({}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(removed.event_name, BucketEventName::Removed);
        assert_eq!(removed.correlation_id, None);
    }

    #[test]
    fn overwrites_metadata_updates_and_archives_are_dropped() {
        for attrs in [
            serde_json::json!({"eventType": "OBJECT_DELETE", "bucketId": "b", "objectId": "k", "overwrittenByGeneration": "2"}),
            serde_json::json!({"eventType": "OBJECT_METADATA_UPDATE", "bucketId": "b", "objectId": "k"}),
            serde_json::json!({"eventType": "OBJECT_ARCHIVE", "bucketId": "b", "objectId": "k"}),
        ] {
            assert_eq!(parse(&note(attrs, serde_json::json!({}))).unwrap(), None);
        }
        assert!(parse("{\"Records\": []}").is_err());
        assert!(
            parse(&note(
                serde_json::json!({"bucketId": "b"}),
                serde_json::json!({})
            ))
            .is_err()
        );
    }
}
