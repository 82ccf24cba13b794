//! `/v1/subscriptions` through the HTTP API: both kinds, ownership, validation, SSRF refusals,
//! the per-owner limit.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn server() -> Server {
    start_with(
        "[notify]\ncallback_allow = [\"127.0.0.1/32\"]\nmax_subscriptions_per_owner = 4\n",
        "",
        Duration::ZERO,
    )
    .await
}

async fn put(s: &Server, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let (st, _, v) = s
        .call(
            Method::PUT,
            "/v1/subscriptions?replica=aws",
            token,
            Some(body),
        )
        .await;
    (st, v)
}

#[tokio::test]
async fn subscriptions_are_created_read_and_deleted_by_their_owner() {
    let s = server().await;
    let (st, v2) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": "http://127.0.0.1:9/hook", "jmespath_query": "event_type=='CREATE'",
               "hmac_secret_key": "s3cret", "hmac_key_id": "k1", "method": "PUT",
               "encoding": "multipart/form-data", "form_fields": {"a": "b"}, "payload_form_field": "p",
               "attachments": {"donor": {"type": "jmespath", "expression": "files.donor_json[0]"}}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v2}");
    let id = v2["uuid"].as_str().unwrap().to_string();
    assert_eq!(v2["owner"], "user@example.org");
    assert_eq!(v2["replica"], "aws");
    assert_eq!(v2["hmac_key_id"], "k1");
    assert!(
        v2.get("hmac_secret_key").is_none(),
        "the secret is never returned"
    );

    let (st, v1) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": "https://8.8.8.8/hook", "es_query": {"query": {"term": {"admin_deleted": true}}}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v1}");
    let es_id = v1["uuid"].as_str().unwrap().to_string();
    assert_eq!(v1.as_object().map(|m| m.len()), Some(1), "{v1}");

    // Lists and reads, per kind; only the owner sees them.
    let (st, _, list) = s
        .call(
            Method::GET,
            "/v1/subscriptions?replica=aws",
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["subscriptions"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["subscriptions"][0]["uuid"], id.as_str());
    assert!(list["subscriptions"][0].get("hmac_secret_key").is_none());
    let (_, _, list) = s
        .call(
            Method::GET,
            "/v1/subscriptions?replica=aws&subscription_type=elasticsearch",
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(
        list["subscriptions"][0]["es_query"]["query"]["term"]["admin_deleted"],
        true
    );
    let (_, _, list) = s
        .call(
            Method::GET,
            "/v1/subscriptions?replica=gcp",
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(list, json!({"subscriptions": []}));
    let one = format!("/v1/subscriptions/{id}?replica=aws");
    let (st, _, got) = s.call(Method::GET, &one, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["callback_url"], "http://127.0.0.1:9/hook");
    assert!(got.get("hmac_secret_key").is_none());
    let (st, _, v) = s.call(Method::GET, &one, Some(&s.admin), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let es_one = format!("/v1/subscriptions/{es_id}?replica=aws&subscription_type=elasticsearch");
    let (st, _, _) = s.call(Method::GET, &es_one, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = s.call(Method::GET, &es_one, Some(&s.admin), None).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "someone else's Elasticsearch subscription"
    );
    let (st, _, _) = s
        .call(Method::GET, "/v1/subscriptions?replica=aws", None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, _) = s
        .call(
            Method::GET,
            "/v1/subscriptions?replica=aws",
            Some(&s.outsider),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Delete: once.
    let (st, _, v) = s.call(Method::DELETE, &one, Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "not the owner: {v}");
    let (st, _, v) = s.call(Method::DELETE, &one, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["timeDeleted"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    let (st, _, _) = s.call(Method::DELETE, &one, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = s.call(Method::GET, &one, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_subscriptions_are_refused_with_the_original_codes() {
    let s = server().await;
    let ok = "http://127.0.0.1:9/hook";
    for (body, code) in [
        (
            json!({"callback_url": ok, "colour": "red"}),
            "illegal_arguments",
        ),
        (json!({"jmespath_query": "a"}), "illegal_arguments"),
        (
            json!({"callback_url": "ftp://127.0.0.1/x"}),
            "illegal_arguments",
        ),
        (
            json!({"callback_url": ok, "method": "GET"}),
            "illegal_arguments",
        ),
        (
            json!({"callback_url": ok, "encoding": "text/plain"}),
            "illegal_arguments",
        ),
        (
            json!({"callback_url": ok, "form_fields": {"a": 1}}),
            "illegal_arguments",
        ),
        (
            json!({"callback_url": ok, "jmespath_query": "a[?"}),
            "invalid_jmespath",
        ),
        (
            json!({"callback_url": ok, "es_query": {"query": {"mtch": {"a": "b"}}}}),
            "elasticsearch_bad_request",
        ),
        (
            json!({"callback_url": ok, "attachments": {"_x": {"type": "jmespath", "expression": "a"}}}),
            "invalid_attachment_name",
        ),
        (
            json!({"callback_url": ok, "attachments": {"x": {"type": "jmespath", "expression": ""}}}),
            "invalid_attachment_expression",
        ),
        (
            json!({"callback_url": ok, "attachments": {"x": {"type": "jmespath", "expression": "a[?"}}}),
            "invalid_attachment_expression",
        ),
        (
            json!({"callback_url": ok, "attachments": {"x": {"type": "xpath", "expression": "a"}}}),
            "illegal_arguments",
        ),
        // Internal targets are refused unless allowed by configuration.
        (
            json!({"callback_url": "http://10.0.0.1/hook"}),
            "invalid_callback_url",
        ),
        (
            json!({"callback_url": "http://169.254.169.254/latest/meta-data/"}),
            "invalid_callback_url",
        ),
        (
            json!({"callback_url": "http://127.0.0.2/hook"}),
            "invalid_callback_url",
        ),
        (
            json!({"callback_url": "http://[::1]:9/hook"}),
            "invalid_callback_url",
        ),
    ] {
        let (st, v) = put(&s, Some(&s.user), body.clone()).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {v}"
        );
    }
    let (st, _) = put(&s, None, json!({"callback_url": ok})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = put(&s, Some(&s.outsider), json!({"callback_url": ok})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // An empty es_query makes a JMESPath subscription; more than the limit per owner is refused.
    let (st, v) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": ok, "es_query": {}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(
        v["callback_url"], ok,
        "a JMESPath subscription answers with its document"
    );
    for _ in 0..4 {
        let (st, _) = put(&s, Some(&s.user), json!({"callback_url": ok})).await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let (st, v) = put(&s, Some(&s.user), json!({"callback_url": ok})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_ACCEPTABLE, Some("not_acceptable"))
    );
    let (st, _) = put(&s, Some(&s.admin), json!({"callback_url": ok})).await;
    assert_eq!(st, StatusCode::CREATED, "the limit is per owner");
}

/// The notify daemon on the server's data directory, delivering to 127.0.0.1; stops when
/// the guard drops.
async fn notify_daemon(s: &Server) -> tokio_util::sync::DropGuard {
    let notify = second_process(s, "[notify]\ncallback_allow = [\"127.0.0.1\"]\n");
    // The daemon's queue must exist before the bundle's event is published (as `dss infra
    // local` makes it before a deployment runs), not whenever the spawned daemon gets to it.
    notify.declare_queues().await.expect("queues");
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move { dss_notify::run(&notify, token).await });
    stop.drop_guard()
}

/// A receiver on 127.0.0.1 answering every request with `status`; counts requests.
async fn receiver(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), hits)
}

#[tokio::test]
async fn the_delivery_log_shows_each_attempt_to_the_owner_only() {
    let s = server().await;
    let _notify = notify_daemon(&s).await;
    let (ok_url, ok_hits) = receiver(204).await;
    let (bad_url, _) = receiver(500).await;
    let mut ids = Vec::new();
    for url in [&ok_url, &bad_url] {
        let (st, v) = put(&s, Some(&s.user), json!({"callback_url": url})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        ids.push(v["uuid"].as_str().unwrap().to_string());
    }
    let (st, v) = s.put_bundle(&uuid(), V1, json!([])).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let log =
        |id: &str, query: &str| format!("/v1/subscriptions/{id}/deliveries?replica=aws{query}");
    let mut attempts = Value::Null;
    for _ in 0..3000 {
        let (st, _, v) = s
            .call(Method::GET, &log(&ids[1], ""), Some(&s.user), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if v["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            attempts = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = &attempts["attempts"][0];
    assert_eq!(a["attempt"], 1, "{attempts}");
    assert_eq!(a["status"], 500);
    assert_eq!(a["error"], "HTTP 500");
    assert_eq!(a["state"], "pending", "a retry is scheduled");
    assert!(a["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(a["latency_ms"].is_u64());
    let (_, _, pending) = s
        .call(
            Method::GET,
            &log(&ids[1], "&state=pending"),
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(pending["deliveries"][0]["delivery"], a["delivery"]);
    assert_eq!(pending["deliveries"][0]["event_type"], "CREATE");
    assert_eq!(pending["deliveries"][0]["last_status"], 500);

    for _ in 0..3000 {
        if ok_hits.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, v) = s
        .call(Method::GET, &log(&ids[0], ""), Some(&s.user), None)
        .await;
    assert_eq!(v["attempts"][0]["status"], 204);
    assert_eq!(v["attempts"][0]["state"], "delivered");

    // Someone else's subscription, and bad parameters.
    let (st, _, _) = s
        .call(Method::GET, &log(&ids[0], ""), Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, v) = s
        .call(
            Method::GET,
            &log(&ids[0], "&state=lost"),
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_arguments"))
    );
    let (st, _, _) = s
        .call(Method::GET, &log(&ids[0], "&limit=0"), Some(&s.user), None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn filters_over_the_limits_are_refused_when_stored_with_the_reason() {
    let s = server().await;
    let hook = "http://127.0.0.1:9/hook";
    // A JMESPath value that doubles with every pipe.
    let doubling = vec!["[@, @]"; 40].join(" | ");
    let (st, v) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": hook, "jmespath_query": doubling}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_jmespath"))
    );
    assert!(
        v["title"].as_str().unwrap().contains("limit of 1000"),
        "{v}"
    );
    let (st, v) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": hook, "attachments": {"a": {"type": "jmespath", "expression": doubling}}}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_attachment_expression")
        )
    );
    let (st, v) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": hook, "jmespath_query": format!("{}a", "!".repeat(5000))}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_jmespath")),
        "{v}"
    );
    // An Elasticsearch query nested deeper than Elasticsearch allows, and one with too many
    // clauses.
    let mut deep = json!({"match_all": {}});
    for _ in 0..30 {
        deep = json!({"bool": {"must": [deep]}});
    }
    let values: Vec<u32> = (0..5000).collect();
    for q in [deep, json!({"terms": {"a": values}})] {
        let (st, v) = put(
            &s,
            Some(&s.user),
            json!({"callback_url": hook, "es_query": {"query": q}}),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("elasticsearch_bad_request")),
            "{v}"
        );
    }
    // Nothing was stored.
    let (_, _, list) = s
        .call(
            Method::GET,
            "/v1/subscriptions?replica=aws",
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(list, json!({"subscriptions": []}));
}

#[tokio::test]
async fn a_filter_that_fails_on_events_is_shown_to_its_owner_and_stops_no_one_else() {
    let s = server().await;
    let _notify = notify_daemon(&s).await;
    let (ok_url, ok_hits) = receiver(204).await;
    let (bad_url, bad_hits) = receiver(204).await;
    // A type error on every event (`abs` of an object).
    let (st, v) = put(
        &s,
        Some(&s.user),
        json!({"callback_url": bad_url, "jmespath_query": "abs(files) > `1`"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let failing = v["uuid"].as_str().unwrap().to_string();
    let (st, _) = put(&s, Some(&s.user), json!({"callback_url": ok_url})).await;
    assert_eq!(st, StatusCode::CREATED);
    for _ in 0..3 {
        let (st, v) = s.put_bundle(&uuid(), V1, json!([])).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    for _ in 0..3000 {
        if ok_hits.load(std::sync::atomic::Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ok_hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    let one = format!("/v1/subscriptions/{failing}?replica=aws");
    let mut status = Value::Null;
    for _ in 0..500 {
        let (st, _, v) = s.call(Method::GET, &one, Some(&s.user), None).await;
        assert_eq!(st, StatusCode::OK);
        status = v["status"].clone();
        if status["evaluation_failures"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["filter"], "ok", "{status}");
    assert_eq!(status["evaluation_failures"], 3, "{status}");
    assert!(
        status["last_failure"].as_str().unwrap().contains("abs"),
        "{status}"
    );
    assert_eq!(bad_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}
