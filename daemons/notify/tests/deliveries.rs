//! The notify daemon on a real embedded deployment, delivering to real HTTP receivers on
//! 127.0.0.1.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use dss_core::clock::Clock;
use dss_core::ports::{DeliveryState, SubscriptionKind};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ALLOW: &str = "callback_allow = [\"127.0.0.1\"]";

/// Verifies a draft-cavage HMAC signature as a receiver would.
fn verify(r: &Received, secret: &[u8]) -> bool {
    let (Some(date), Some(digest), Some(auth)) = (
        r.header("date"),
        r.header("digest"),
        r.header("authorization"),
    ) else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    if digest != format!("SHA-256={}", b64.encode(Sha256::digest(&r.body))) {
        return false;
    }
    let Some(sig) = auth
        .split(',')
        .find_map(|p| p.strip_prefix("signature=\""))
        .and_then(|s| s.strip_suffix('"'))
        .and_then(|s| b64.decode(s).ok())
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("key");
    mac.update(format!("date: {date}\ndigest: {digest}").as_bytes());
    mac.verify_slice(&sig).is_ok()
}

#[tokio::test]
async fn jmespath_subscriptions_get_signed_json_and_multipart_callbacks() {
    let env = start(ALLOW).await;
    let rx = Receiver::start().await;
    let signed = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": rx.url, "jmespath_query": "files.project_json[0].title == 'Kidney'",
                   "hmac_secret_key": "s3cret", "hmac_key_id": "my-key",
                   "attachments": {"title": {"type": "jmespath", "expression": "files.project_json[0].title"}}}),
        )
        .await;
    let form = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("{}/form", rx.url), "method": "PUT",
                   "encoding": "multipart/form-data", "form_fields": {"foo": "bar"},
                   "payload_form_field": "file"}),
        )
        .await;
    let _other = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": rx.url, "jmespath_query": "files.project_json[0].title == 'Liver'"}),
        )
        .await;
    env.bundle(U1, V1, "Kidney").await;
    let got = rx.wait(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rx.received().len(),
        2,
        "the Liver subscription does not match"
    );

    let json_req = got
        .iter()
        .find(|r| r.path == "/hook")
        .expect("JSON callback");
    assert_eq!(json_req.method, "POST");
    assert_eq!(json_req.header("content-type"), Some("application/json"));
    assert!(
        verify(json_req, b"s3cret"),
        "signature verifies with the secret"
    );
    assert!(!verify(json_req, b"wrong"), "and not with another key");
    assert!(
        json_req
            .header("authorization")
            .is_some_and(|a| a.starts_with(
                "Signature keyId=\"my-key\",algorithm=\"hmac-sha256\",headers=\"date digest\""
            ))
    );
    assert_eq!(json_req.header("x-dss-notify-attempt"), None);
    let p = json_req.json();
    let keys: Vec<&str> = p
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "bundle_url",
            "dss_api",
            "subscription_id",
            "event_timestamp",
            "event_type",
            "match",
            "transaction_id",
            "jmespath_query",
            "attachments"
        ]
    );
    assert_eq!(
        p["bundle_url"],
        format!("https://dss.example.org/v1/bundles/{U1}?version={V1}")
    );
    assert_eq!(p["dss_api"], "https://dss.example.org");
    assert_eq!(p["subscription_id"], signed);
    assert_eq!(p["event_type"], "CREATE");
    assert_eq!(p["match"], json!({"bundle_uuid": U1, "bundle_version": V1}));
    assert_eq!(p["attachments"], json!({"title": "Kidney"}));
    assert_eq!(p["event_timestamp"], "2026-01-01T000000.000000Z");
    let log = env.attempts(&signed).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].outcome, DeliveryState::Delivered);
    assert_eq!(
        p["transaction_id"], log[0].delivery,
        "transaction id = delivery id"
    );

    let form_req = got
        .iter()
        .find(|r| r.path == "/hook/form")
        .expect("form callback");
    assert_eq!(form_req.method, "PUT");
    let ct = form_req.header("content-type").expect("content type");
    let boundary = ct
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    let body = String::from_utf8(form_req.body.to_vec()).expect("utf-8");
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    assert_eq!(
        parts.len(),
        4,
        "two fields, then the closing boundary: {body}"
    );
    assert!(parts[1].contains("name=\"foo\"\r\n\r\nbar\r\n"));
    let payload_text = parts[2]
        .split_once("name=\"file\"\r\n\r\n")
        .map(|(_, rest)| rest.trim_end_matches("\r\n"))
        .expect("payload field");
    let payload: Value = serde_json::from_str(payload_text).expect("payload JSON");
    assert_eq!(payload["subscription_id"], form);
    assert!(
        payload.get("jmespath_query").is_none(),
        "absent without a query"
    );
    assert!(
        payload.get("attachments").is_none(),
        "absent without attachments"
    );
    assert!(
        form_req.header("authorization").is_none(),
        "unsigned without a secret"
    );
}

#[tokio::test]
async fn query_subscriptions_match_the_search_document_and_tombstones() {
    let env = start(ALLOW).await;
    let rx = Receiver::start().await;
    let live = env
        .subscribe(
            SubscriptionKind::Elasticsearch,
            json!({"callback_url": rx.url, "hmac_secret_key": "k",
                   "es_query": {"query": {"match": {"files.project_json.title.text": "kidney"}}},
                   "attachments": {"t": {"type": "jmespath", "expression": "files.project_json[0].title"}}}),
        )
        .await;
    let dead = env
        .subscribe(
            SubscriptionKind::Elasticsearch,
            json!({"callback_url": format!("{}/dead", rx.url),
                   "es_query": {"query": {"term": {"admin_deleted": true}}}}),
        )
        .await;
    env.bundle(U1, V1, "Kidney cells").await;
    let got = rx.wait(1).await;
    let r = &got[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("x-dss-notify-attempt"), Some("0"));
    assert!(
        r.header("authorization")
            .is_some_and(|a| a.contains("keyId=\"hca-dss:"))
    );
    assert!(verify(r, b"k"));
    let p = r.json();
    let keys: Vec<&str> = p
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "transaction_id",
            "subscription_id",
            "es_query",
            "match",
            "attachments"
        ]
    );
    assert_eq!(p["subscription_id"], live);
    assert_eq!(
        p["es_query"],
        json!({"query": {"match": {"files.project_json.title.text": "kidney"}}})
    );
    assert_eq!(p["match"], json!({"bundle_uuid": U1, "bundle_version": V1}));
    assert_eq!(p["attachments"], json!({"t": "Kidney cells"}));

    // A second version, then an unversioned tombstone: the tombstone query matches once per
    // version; the live query no longer matches the tombstone document.
    env.bundle(U1, V2, "Kidney cells").await;
    rx.wait(2).await;
    env.put(
        &format!("bundles/{U1}.dead"),
        json!({"email": "admin@example.org", "reason": "bad", "admin_deleted": true})
            .to_string()
            .into_bytes(),
    )
    .await;
    let got = rx.wait(4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received().len(), 4);
    let mut versions: Vec<String> = got
        .iter()
        .filter(|r| r.path == "/hook/dead")
        .map(|r| {
            let p = r.json();
            assert_eq!(p["subscription_id"], dead);
            p["match"]["bundle_version"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, [V1, V2]);

    // Redelivering the same event (as the queue may) notifies nobody again.
    use dss_core::ports::Topic;
    let topic = dss_embedded::EmbeddedTopic::new(
        &env.d.db,
        dss_core::names::BUCKET_EVENTS_TOPIC,
        env.d.clock.clone(),
    );
    let again = json!({"bucket": env.store().bucket(), "key": format!("bundles/{U1}.dead"),
        "size": 1, "etag": "x", "event_name": "ObjectCreated:Put", "time": "2026-01-01T00:00:00Z"});
    topic.publish(&again.to_string()).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.received().len(),
        4,
        "redelivered events are not notified twice"
    );
}

#[tokio::test]
async fn jmespath_filters_see_create_tombstone_and_delete_documents() {
    let env = start(ALLOW).await;
    let rx = Receiver::start().await;
    let all = env
        .subscribe(SubscriptionKind::Jmespath, json!({"callback_url": rx.url}))
        .await;
    let tombs = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("{}/tombs", rx.url),
                   "jmespath_query": "event_type == 'TOMBSTONE' && admin_deleted"}),
        )
        .await;
    let zero = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("{}/zero", rx.url), "jmespath_query": "`0`"}),
        )
        .await;
    // One at a time: deliveries of concurrent events may arrive in any order.
    env.bundle(U1, V1, "a").await;
    rx.wait(1).await;
    env.bundle(U1, V2, "b").await;
    rx.wait(2).await;
    // V1 gets its own tombstone; then the whole bundle: V1 is not notified again.
    env.put(
        &format!("bundles/{U1}.{V1}.dead"),
        json!({"reason": "x", "admin_deleted": true})
            .to_string()
            .into_bytes(),
    )
    .await;
    rx.wait(4).await;
    env.put(
        &format!("bundles/{U1}.dead"),
        json!({"reason": "y", "admin_deleted": true})
            .to_string()
            .into_bytes(),
    )
    .await;
    rx.wait(6).await;
    env.store()
        .delete(&format!("bundles/{U1}.{V2}"))
        .await
        .expect("delete");
    rx.wait(7).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.received();
    assert_eq!(
        got.len(),
        7,
        "{:?}",
        got.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let events = |path: &str| -> Vec<(String, String)> {
        got.iter()
            .filter(|r| r.path == path)
            .map(|r| {
                let p = r.json();
                (
                    p["event_type"].as_str().unwrap_or_default().to_string(),
                    p["match"]["bundle_version"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        events("/hook"),
        [
            s("CREATE", V1),
            s("CREATE", V2),
            s("TOMBSTONE", V1),
            s("TOMBSTONE", V2),
            s("DELETE", V2)
        ]
    );
    assert_eq!(
        events("/hook/tombs"),
        [s("TOMBSTONE", V1), s("TOMBSTONE", V2)]
    );
    assert!(events("/hook/zero").is_empty(), "0 is falsy, as in Python");
    assert!(env.attempts(&zero).await.is_empty());
    for sub in [&all, &tombs] {
        assert!(
            env.attempts(sub)
                .await
                .iter()
                .all(|a| a.outcome == DeliveryState::Delivered)
        );
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_retries_on_the_schedule_and_one_success() {
    let env = start(&format!(
        "{ALLOW}\nretry_delays_secs = [60, 600, 3600]\nretry_jitter = 0.1\nbreaker_failures = 100"
    ))
    .await;
    let port = free_port();
    let sub = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("http://127.0.0.1:{port}/hook")}),
        )
        .await;
    env.bundle(U1, V1, "a").await;
    let first = env.wait_attempts(&sub, 1).await;
    assert_eq!(first[0].status, None);
    assert!(
        first[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("connection")),
        "{first:?}"
    );
    assert_eq!(first[0].outcome, DeliveryState::Pending);

    // Each retry comes within ±10% of its planned wait, not before.
    let mut rx = None;
    for (n, planned) in [(2usize, 60u64), (3, 600), (4, 3600)] {
        env.clock.advance(Duration::from_secs(planned * 85 / 100));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            env.attempts(&sub).await.len(),
            n - 1,
            "attempt {n} came early"
        );
        if n == 4 {
            rx = Some(Receiver::start_on(port).await);
        }
        env.clock.advance(Duration::from_secs(planned * 30 / 100));
        let log = env.wait_attempts(&sub, n).await;
        let gap = log[n - 1].at_ms - log[n - 2].at_ms;
        let p = (planned * 1000) as i64;
        assert!(
            gap >= p * 85 / 100 && gap <= p * 115 / 100,
            "attempt {n} after {gap} ms"
        );
    }
    let rx = rx.expect("receiver");
    let log = env.attempts(&sub).await;
    assert_eq!(
        log.last().map(|a| (a.status, a.outcome)),
        Some((Some(200), DeliveryState::Delivered))
    );
    let outcomes = env.d.metrics.outcomes("dss_notify_deliveries", "", &[]);
    assert_eq!(
        (outcomes.get("delivered"), outcomes.get("retrying")),
        (1, log.len() as u64 - 1),
        "the attempts are counted by outcome"
    );
    assert!(
        log.iter().all(|a| a.delivery == log[0].delivery),
        "one delivery throughout"
    );
    // Nothing more comes, however much time passes.
    env.clock.advance(Duration::from_secs(7 * 24 * 3600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.received();
    assert_eq!(got.len(), 1, "exactly one successful delivery");
    assert_eq!(got[0].json()["transaction_id"], log[0].delivery);
}

#[tokio::test]
async fn a_poison_subscription_is_dead_lettered_without_holding_up_others_and_can_be_resent() {
    let env = start(&format!(
        "{ALLOW}\nretry_delays_secs = [60]\nretry_for_secs = 150\nretry_jitter = 0.0"
    ))
    .await;
    let good = Receiver::start().await;
    let port = free_port();
    let poison = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("http://127.0.0.1:{port}/nothing-here")}),
        )
        .await;
    let fine = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": good.url}),
        )
        .await;
    env.bundle(U1, V1, "a").await;
    good.wait(1).await;
    env.wait_attempts(&poison, 1).await;
    env.clock.advance(Duration::from_secs(61));
    env.wait_attempts(&poison, 2).await;
    env.clock.advance(Duration::from_secs(61));
    let log = env.wait_attempts(&poison, 3).await;
    assert_eq!(log[2].outcome, DeliveryState::Dead, "{log:?}");
    for _ in 0..6000 {
        if env.dead_letters().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        env.dead_letters().await,
        1,
        "the dead delivery is dead-lettered"
    );
    let dead = env
        .d
        .deliveries
        .list(&poison, Some(DeliveryState::Dead), 10)
        .await
        .expect("list");
    assert_eq!(dead.len(), 1);

    // Other subscriptions are unaffected; new events still reach them.
    env.bundle(U1, V2, "b").await;
    good.wait(2).await;
    assert_eq!(env.attempts(&fine).await.len(), 2);

    // The endpoint comes back; an operator resends the dead delivery.
    let back = Receiver::start_on(port).await;
    assert!(
        dss_notify::resend(&env.d, &dead[0].new.id)
            .await
            .expect("resend")
    );
    assert!(
        !dss_notify::resend(&env.d, &dead[0].new.id)
            .await
            .expect("resend"),
        "not dead any more"
    );
    let got = back.wait(1).await;
    assert_eq!(got[0].json()["transaction_id"], dead[0].new.id);
    let d = env
        .d
        .deliveries
        .get(&dead[0].new.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(d.state, DeliveryState::Delivered);
}

#[tokio::test]
async fn internal_callbacks_are_refused_at_delivery_unless_allowed() {
    // No allow-list: a subscription stored with a loopback callback (e.g. allowed when it was
    // created) is refused when delivering.
    let env = start("retry_delays_secs = [60]").await;
    let rx = Receiver::start().await;
    let sub = env
        .subscribe(SubscriptionKind::Jmespath, json!({"callback_url": rx.url}))
        .await;
    let by_name = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": rx.url.replace("127.0.0.1", "localhost")}),
        )
        .await;
    env.bundle(U1, V1, "a").await;
    let log = env.wait_attempts(&sub, 1).await;
    assert!(
        log[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("internal address")),
        "{log:?}"
    );
    let log = env.wait_attempts(&by_name, 1).await;
    assert!(
        log[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("internal addresses only")),
        "{log:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.received().is_empty(),
        "nothing reached the internal address"
    );
}

#[tokio::test]
async fn deleting_a_subscription_cancels_its_pending_deliveries() {
    let env = start(&format!("{ALLOW}\nretry_delays_secs = [60]")).await;
    let port = free_port();
    let sub = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("http://127.0.0.1:{port}/hook")}),
        )
        .await;
    env.bundle(U1, V1, "a").await;
    env.wait_attempts(&sub, 1).await;
    assert!(
        env.d
            .subscriptions
            .delete("aws", SubscriptionKind::Jmespath, &sub)
            .await
            .expect("delete")
    );
    let rx = Receiver::start_on(port).await;
    env.clock.advance(Duration::from_secs(70));
    for _ in 0..6000 {
        let c = env
            .d
            .deliveries
            .list(&sub, Some(DeliveryState::Cancelled), 10)
            .await
            .expect("list");
        if c.len() == 1 {
            assert!(rx.received().is_empty());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the delivery was not cancelled");
}

#[tokio::test]
async fn two_copies_of_a_due_attempt_send_it_once() {
    let env = start(ALLOW).await;
    let rx = Receiver::start().await;
    rx.answer_after(Duration::from_secs(2));
    let sub = env
        .subscribe(SubscriptionKind::Jmespath, json!({"callback_url": rx.url}))
        .await;
    env.bundle(U1, V1, "a").await;
    rx.wait(1).await;
    // The queue delivers at least once: a second copy of the due message arrives while the
    // first attempt is still waiting for the receiver.
    let pending = env
        .d
        .deliveries
        .list(&sub, Some(DeliveryState::Pending), 10)
        .await
        .expect("list");
    let due = json!({"delivery": pending[0].new.id, "attempts": 0, "due_ms": env.clock.now_ms()});
    env.d
        .queue(dss_core::names::DELIVERY_QUEUE)
        .await
        .expect("queue")
        .send(&due.to_string(), Duration::ZERO)
        .await
        .expect("send");
    let log = env.wait_attempts(&sub, 1).await;
    assert_eq!(log[0].outcome, DeliveryState::Delivered);
    // The copy looks again once the claim would have expired, and finds it delivered.
    env.clock.advance(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.received().len(), 1, "one POST for one attempt");
    assert_eq!(env.attempts(&sub).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_fans_out_to_hundreds_of_subscriptions_once_each() {
    let env = start(ALLOW).await;
    let rx = Receiver::start().await;
    let mut subs = Vec::new();
    for i in 0..300 {
        let uuid = uuid::Uuid::new_v4().to_string();
        let query = if i % 3 == 0 {
            "files.project_json[0].title == 'Kidney'"
        } else {
            "files.project_json[0].title == 'Liver'"
        };
        env.subscribe_as(
            &uuid,
            SubscriptionKind::Jmespath,
            json!({"callback_url": format!("{}/{uuid}", rx.url), "jmespath_query": query}),
        )
        .await;
        if i % 3 == 0 {
            subs.push(uuid);
        }
    }
    env.bundle(U1, V1, "Kidney").await;
    let got = rx.wait(100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 100, "only the matching third");
    let mut paths: Vec<String> = got
        .iter()
        .map(|r| r.path.trim_start_matches("/hook/").to_string())
        .collect();
    paths.sort();
    subs.sort();
    assert_eq!(paths, subs, "each matching subscription once");
}

#[tokio::test]
async fn redirects_are_not_followed_and_slow_receivers_time_out() {
    let env = start(&format!(
        "{ALLOW}\ntimeout_ms = 300\nretry_delays_secs = [60]"
    ))
    .await;
    let moved = Receiver::start().await;
    moved.answer(302);
    let slow = Receiver::start().await;
    slow.answer_after(Duration::from_secs(3));
    let a = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": moved.url}),
        )
        .await;
    let b = env
        .subscribe(
            SubscriptionKind::Jmespath,
            json!({"callback_url": slow.url}),
        )
        .await;
    env.bundle(U1, V1, "a").await;
    let log = env.wait_attempts(&a, 1).await;
    assert_eq!(
        (log[0].status, log[0].error.as_deref()),
        (Some(302), Some("HTTP 302"))
    );
    assert_eq!(
        log[0].outcome,
        DeliveryState::Pending,
        "a 3xx is a failure, retried later"
    );
    let log = env.wait_attempts(&b, 1).await;
    assert_eq!(log[0].status, None);
    assert!(
        log[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("timed out")),
        "{log:?}"
    );
    assert!(log[0].latency_ms < 2_000, "gave up at the timeout: {log:?}");
    assert_eq!(moved.received().len(), 1, "the Location was not followed");
}
