//! What arrives on the sync queue: bucket events, and copy requests of the reconciler and of
//! operators (the original's operator message shape).

use dss_core::ports::BucketEvent;
use serde::{Deserialize, Serialize};

/// Copy `key` from one replica to another, if it is missing or differs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The replica holding the object.
    pub source_replica: String,
    /// The replica to copy it to.
    pub dest_replica: String,
    /// The object's key (the same in both).
    pub key: String,
}

/// One message of the sync queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Objects were written to or removed from a replica (one event, or the records of a cloud
    /// notification).
    Events(Vec<BucketEvent>),
    /// An explicit copy.
    Request(SyncRequest),
}

impl Incoming {
    /// Parses a message body; `Err` names why it is neither kind.
    pub fn parse(body: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("source_replica").is_some() {
            return serde_json::from_value(value)
                .map(Incoming::Request)
                .map_err(|e| format!("not a sync request: {e}"));
        }
        dss_runtime::bucket_events::parse(body).map(Incoming::Events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_parse_and_others_are_refused() {
        let r = r#"{"source_replica":"aws","dest_replica":"gcp","key":"files/x"}"#;
        assert!(matches!(Incoming::parse(r), Ok(Incoming::Request(q)) if q.key == "files/x"));
        let e = r#"{"bucket":"aws","key":"k","size":1,"etag":"e","event_name":"ObjectCreated:Put","time":"2026-01-01T00:00:00Z"}"#;
        assert!(matches!(Incoming::parse(e), Ok(Incoming::Events(ev)) if ev[0].bucket == "aws"));
        assert!(Incoming::parse("nope").is_err());
        assert!(Incoming::parse(r#"{"source_replica":"aws"}"#).is_err());
        assert!(Incoming::parse(r#"{"bucket":"aws"}"#).is_err());
    }
}
