//! The HTTP request of one delivery attempt: method, body in the subscription's encoding
//! (`application/json`, or `multipart/form-data` with the static form fields first and the
//! payload's JSON text last), and the HMAC signature when the subscription has a secret.

use dss_core::model::pyjson;
use dss_core::ports::{Delivery, SubscriptionKind};
use serde_json::Value;
use time::OffsetDateTime;

use crate::payload::EVENT_TIMESTAMP;
use crate::signature;

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST` or `PUT`.
    pub method: http::Method,
    /// The callback URL.
    pub url: String,
    /// Headers besides `Content-Length`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Builds the request of `delivery`'s next attempt for the subscription document `sub` at
/// `now`. Errors name what is wrong with the subscription.
pub fn build(sub: &Value, delivery: &Delivery, now: OffsetDateTime) -> Result<Request, String> {
    let field = |k: &str| sub.get(k).and_then(Value::as_str);
    let url = field("callback_url").ok_or("the subscription has no callback_url")?;
    let method = match field("method").unwrap_or("POST") {
        "POST" => http::Method::POST,
        "PUT" => http::Method::PUT,
        other => return Err(format!("unsupported method {other}")),
    };
    let mut payload = delivery.new.payload.clone();
    if let Some(ts) = payload.get_mut(EVENT_TIMESTAMP) {
        *ts = dss_core::model::DssVersion::from_datetime(now)
            .to_string()
            .into();
    }
    let json = pyjson::to_string(&payload);
    let (content_type, body) = match field("encoding").unwrap_or("application/json") {
        "application/json" => ("application/json".to_string(), json.into_bytes()),
        "multipart/form-data" => {
            let mut fields: Vec<(String, String)> = sub
                .get("form_fields")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let name = field("payload_form_field").unwrap_or("payload");
            fields.push((name.to_string(), json));
            multipart(&fields)
        }
        other => return Err(format!("unsupported encoding {other}")),
    };
    let mut headers = vec![("content-type", content_type)];
    if delivery.new.kind == SubscriptionKind::Elasticsearch {
        headers.push(("x-dss-notify-attempt", delivery.attempts.to_string()));
    }
    if let Some(secret) = field("hmac_secret_key") {
        let default_id = format!("hca-dss:{}", delivery.new.subscription);
        let key_id = field("hmac_key_id").unwrap_or(&default_id);
        let s = signature::sign(key_id, secret.as_bytes(), &body, now);
        headers.push(("date", s.date));
        headers.push(("digest", s.digest));
        headers.push(("authorization", s.authorization));
    }
    Ok(Request {
        method,
        url: url.to_string(),
        headers,
        body,
    })
}

/// A `multipart/form-data` body of text fields, in order; returns the content type with its
/// boundary, and the body.
fn multipart(fields: &[(String, String)]) -> (String, Vec<u8>) {
    let boundary = format!("dss{:032x}", rand::random::<u128>());
    let mut body = Vec::new();
    for (name, value) in fields {
        let name = name.replace('"', "%22").replace(['\r', '\n'], " ");
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_core::ports::{DeliveryState, NewDelivery};
    use serde_json::json;
    use time::macros::datetime;

    fn delivery(kind: SubscriptionKind, payload: Value) -> Delivery {
        Delivery {
            new: NewDelivery {
                id: "t1".into(),
                subscription: "s1".into(),
                replica: "aws".into(),
                kind,
                owner: "o@example.org".into(),
                event_key: "k".into(),
                event_type: "CREATE".into(),
                bundle_uuid: "b".into(),
                bundle_version: Some("v".into()),
                payload,
            },
            state: DeliveryState::Pending,
            attempts: 2,
            round_start: 0,
            round_started_ms: 0,
            created_ms: 0,
            updated_ms: 0,
            last_status: None,
            last_error: None,
        }
    }

    const NOW: OffsetDateTime = datetime!(2020-03-24 17:02:03.5 UTC);

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn json_body_gets_the_timestamp_of_the_attempt_and_no_attempt_header() {
        let d = delivery(
            SubscriptionKind::Jmespath,
            json!({"subscription_id": "s1", "event_timestamp": null, "transaction_id": "t1"}),
        );
        let r = build(
            &json!({"callback_url": "http://h/x", "method": "PUT"}),
            &d,
            NOW,
        )
        .expect("build");
        assert_eq!(r.method, http::Method::PUT);
        assert_eq!(
            String::from_utf8(r.body.clone()).expect("utf-8"),
            r#"{"subscription_id": "s1", "event_timestamp": "2020-03-24T170203.500000Z", "transaction_id": "t1"}"#
        );
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(header(&r, "x-dss-notify-attempt"), None);
        assert_eq!(
            header(&r, "authorization"),
            None,
            "unsigned without a secret"
        );
    }

    #[test]
    fn signed_with_the_default_key_id_and_attempt_header_for_query_subscriptions() {
        let d = delivery(SubscriptionKind::Elasticsearch, json!({"a": 1}));
        let r = build(
            &json!({"callback_url": "http://h/x", "hmac_secret_key": "secret"}),
            &d,
            NOW,
        )
        .expect("build");
        assert_eq!(header(&r, "x-dss-notify-attempt"), Some("2"));
        assert_eq!(header(&r, "date"), Some("Tue, 24 Mar 2020 17:02:03 GMT"));
        let auth = header(&r, "authorization").expect("signed");
        assert!(
            auth.starts_with("Signature keyId=\"hca-dss:s1\","),
            "{auth}"
        );
    }

    #[test]
    fn multipart_puts_static_fields_first_and_the_payload_last() {
        let d = delivery(SubscriptionKind::Jmespath, json!({"a": 1}));
        let sub = json!({
            "callback_url": "http://h/x",
            "encoding": "multipart/form-data",
            "form_fields": {"foo": "bar"},
            "payload_form_field": "file",
        });
        let r = build(&sub, &d, NOW).expect("build");
        let ct = header(&r, "content-type").expect("content type");
        let boundary = ct
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        let body = String::from_utf8(r.body.clone()).expect("utf-8");
        assert_eq!(
            body,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"foo\"\r\n\r\nbar\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n{{\"a\": 1}}\r\n\
                 --{boundary}--\r\n"
            )
        );
        assert!(
            build(
                &json!({"callback_url": "http://h", "encoding": "text/xml"}),
                &d,
                NOW
            )
            .is_err()
        );
    }
}
