//! Correlation ids: one id per API request (the caller's `X-Request-Id`, or a new one), carried
//! through the work it causes — the bucket events of what it wrote, the jobs it queued, and the
//! handling of those in every daemon — so one id finds a request's log lines everywhere.
//!
//! Beside it travels the W3C `traceparent` of the span that caused the work (see
//! `dss_runtime::telemetry`), so the spans of every hop join one trace.

use std::future::Future;

tokio::task_local! {
    static CORRELATION_ID: String;
    static TRACEPARENT: String;
}

/// Whether `tp` is a W3C `traceparent` of version `00`: `00-{trace id: 32 hex}-{parent id: 16
/// hex}-{flags: 2 hex}`, lower-case, neither id all zeros.
pub fn valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(parts[..], [v, trace, parent, flags]
        if v == "00" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)
            && trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0'))
}

/// The `traceparent` of the work the calling task does, if any: the parent of what it causes.
pub fn traceparent() -> Option<String> {
    TRACEPARENT.try_with(Clone::clone).ok()
}

/// Runs `work` with `tp` as its `traceparent`.
pub async fn trace_scope<F: Future>(tp: String, work: F) -> F::Output {
    TRACEPARENT.scope(tp, work).await
}

/// The longest id accepted from a caller.
const MAX_LEN: usize = 128;

/// Whether `id` may be used as given: 1–128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The id of the work the calling task does, if any.
pub fn current() -> Option<String> {
    CORRELATION_ID.try_with(Clone::clone).ok()
}

/// Runs `work` with `id` as its correlation id.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    CORRELATION_ID.scope(id, work).await
}

/// Runs `work` under `id` when the calling task has none of its own, noting it on the current
/// span: for work announced by a bucket event that carried no id (S3 notifications), once the
/// object read shows the id its writer recorded ([`crate::ports::ObjectMeta::correlation_id`]).
pub async fn adopt<F: Future>(id: Option<&str>, work: F) -> F::Output {
    match id.filter(|id| valid(id) && current().is_none()) {
        Some(id) => {
            tracing::Span::current().record("correlation_id", tracing::field::display(id));
            scope(id.to_string(), work).await
        }
        None => work.await,
    }
}

/// The JSON message body of `message` (which serializes as an object), with the calling task's
/// correlation id added as `correlation_id` when it has one — for messages that carry work
/// onwards. Serialized once.
pub fn body<T: serde::Serialize>(message: &T) -> serde_json::Result<String> {
    #[derive(serde::Serialize)]
    struct Traced<'a, T> {
        #[serde(flatten)]
        message: &'a T,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    }
    serde_json::to_string(&Traced {
        message,
        correlation_id: current(),
        traceparent: traceparent(),
    })
}

/// What a JSON message body carries of the work that caused it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Carried {
    /// Its valid `correlation_id`.
    pub correlation_id: Option<String>,
    /// Its valid `traceparent`.
    pub traceparent: Option<String>,
}

/// The correlation id and `traceparent` of a JSON message body, read in one pass (a cheap look
/// first: most bodies have neither). Members that are not valid strings are left out.
pub fn carried(body: &str) -> Carried {
    if !body.contains("\"correlation_id\"") && !body.contains("\"traceparent\"") {
        return Carried::default();
    }
    #[derive(serde::Deserialize)]
    struct Carrier {
        correlation_id: Option<serde_json::Value>,
        traceparent: Option<serde_json::Value>,
    }
    let Ok(c) = serde_json::from_str::<Carrier>(body) else {
        return Carried::default();
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    Carried {
        correlation_id: text(c.correlation_id).filter(|id| valid(id)),
        traceparent: text(c.traceparent).filter(|tp| valid_traceparent(tp)),
    }
}

/// The `traceparent` of a JSON message body, when it has a valid one.
pub fn traceparent_of_body(body: &str) -> Option<String> {
    carried(body).traceparent
}

/// The `correlation_id` of a JSON message body, when it has a valid one.
pub fn of_body(body: &str) -> Option<String> {
    carried(body).correlation_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_id_found_later_is_adopted_only_by_work_that_has_none() {
        let seen = adopt(Some("from-object"), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("from-object"));
        let kept = scope(
            "from-message".into(),
            adopt(Some("from-object"), async { current() }),
        );
        assert_eq!(kept.await.as_deref(), Some("from-message"));
        assert_eq!(adopt(Some("bad id"), async { current() }).await, None);
        assert_eq!(adopt(None, async { current() }).await, None);
    }

    #[test]
    fn ids_from_callers_are_checked() {
        assert!(valid("4f1c-req.7:a_b"));
        assert!(!valid(""));
        assert!(!valid("has space"));
        assert!(!valid("new\nline"));
        assert!(!valid(&"x".repeat(129)));
        assert!(valid(&new_id()));
    }

    #[test]
    fn bodies_carry_their_id() {
        assert_eq!(
            of_body(r#"{"key": "k", "correlation_id": "abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(of_body(r#"{"key": "k"}"#), None);
        assert_eq!(of_body(r#"{"correlation_id": "bad id"}"#), None);
        assert_eq!(of_body("not json \"correlation_id\""), None);
    }

    #[tokio::test]
    async fn message_bodies_carry_the_current_id() {
        #[derive(serde::Serialize)]
        #[serde(tag = "kind")]
        enum Job {
            Copy { key: String },
        }
        let job = Job::Copy { key: "k".into() };
        assert_eq!(
            body(&job).unwrap(),
            r#"{"kind":"Copy","key":"k"}"#,
            "no id, no field"
        );
        let traced = scope("req-2".into(), async { body(&job).unwrap() }).await;
        assert_eq!(
            traced,
            r#"{"kind":"Copy","key":"k","correlation_id":"req-2"}"#
        );
        assert_eq!(of_body(&traced).as_deref(), Some("req-2"));
    }

    #[tokio::test]
    async fn bodies_carry_the_traceparent_of_their_cause() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(valid_traceparent(tp));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
        let body = trace_scope(tp.into(), async {
            body(&serde_json::json!({"k": 1})).unwrap()
        })
        .await;
        assert_eq!(traceparent_of_body(&body).as_deref(), Some(tp));
        assert_eq!(traceparent_of_body(r#"{"traceparent": "junk"}"#), None);
        assert_eq!(traceparent(), None);
    }

    #[tokio::test]
    async fn the_id_is_visible_inside_its_scope_only() {
        assert_eq!(current(), None);
        let inside = scope("req-1".into(), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("req-1"));
        assert_eq!(current(), None);
    }
}
