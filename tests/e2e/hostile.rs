//! One user's hostile requests and subscriptions against `dss up`: the service keeps serving
//! everyone else. The attacks are those the hostile-input issue reproduced (date math that
//! overflowed, a filter that fails on every event, values that multiply, stray brackets, wide
//! characters in versions, bodies past every limit) plus the checkout and bundle writes that
//! used to be open.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Dss;

const V: &str = "2026-03-01T101010.000000Z";

/// A token of `email` in `group`, minted with the deployment's key.
fn token(dss: &Dss, email: &str, group: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["token", "--email", email, "--group", group, "--data-dir"])
        .arg(dss.dir.path().join("data"))
        .output()
        .expect("dss token");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("text")
        .trim()
        .to_string()
}

async fn call(
    dss: &Dss,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = dss.http.request(method, format!("{}{path}", dss.base));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_user_cannot_stop_the_service_for_others() {
    use reqwest::Method;
    let dss = Dss::up_with(&[("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1".into())]).await;
    let (mallory, alice) = (
        token(&dss, "mallory@example.org", "dbio"),
        token(&dss, "alice@example.org", "dbio"),
    );
    let subscribe = |t: String, kind: &'static str, body: Value| {
        let dss = &dss;
        async move {
            call(
                dss,
                Method::PUT,
                &format!("/v1/subscriptions?replica=aws&subscription_type={kind}"),
                Some(&t),
                Some(body),
            )
            .await
        }
    };
    let (hostile_hook, hostile_got) = crate::webhooks::receiver().await;
    let (good_hook, good_got) = crate::webhooks::receiver().await;

    // Stored filters: the query that used to make every event of the replica fail, and a
    // filter that errs on every event. Both are accepted (they are not malformed)...
    let overflow =
        json!({"query": {"range": {"files.donor_json.donor.collected": {"gte": "now+99999999d"}}}});
    let (st, v) = subscribe(
        mallory.clone(),
        "elasticsearch",
        json!({"callback_url": hostile_hook, "es_query": overflow}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = subscribe(
        mallory.clone(),
        "jmespath",
        json!({"callback_url": hostile_hook, "jmespath_query": "abs(files) > `1`"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let erring = v["uuid"].as_str().expect("uuid").to_string();
    // ...those that describe unbounded work are refused when stored.
    let doubling = vec!["[@, @]"; 40].join(" | ");
    let (st, v) = subscribe(
        mallory.clone(),
        "jmespath",
        json!({"callback_url": hostile_hook, "jmespath_query": doubling}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("invalid_jmespath")),
        "{v}"
    );
    let mut deep = json!({"match_all": {}});
    for _ in 0..50 {
        deep = json!({"bool": {"must": [deep]}});
    }
    let (st, _) = subscribe(
        mallory.clone(),
        "elasticsearch",
        json!({"callback_url": hostile_hook, "es_query": {"query": deep}}),
    )
    .await;
    assert_eq!(st, 400);
    // A well-behaved subscriber: every bundle.
    let (st, v) = subscribe(
        alice.clone(),
        "jmespath",
        json!({"callback_url": good_hook}),
    )
    .await;
    assert_eq!(st, 201, "{v}");

    // Unauthenticated attacks on open routes: clear 4xx or an ordinary answer, never a 5xx.
    let search = |q: Value| {
        let dss = &dss;
        async move {
            call(
                dss,
                Method::POST,
                "/v1/search?replica=aws",
                None,
                Some(json!({"es_query": q})),
            )
            .await
        }
    };
    let (st, v) = search(overflow.clone()).await;
    assert_eq!(st, 200, "date math past the representable years: {v}");
    let (st, _) = search(json!({"query": {"query_string": {"query": "a ] b"}}})).await;
    assert_eq!(st, 400, "a stray bracket (it looped for ever)");
    let (st, _) = search(json!({"query": {"query_string": {"query": format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000))}}})).await;
    assert_eq!(st, 400, "nesting past the parser's depth");
    let wide = "2017-04-16T120\u{3ff}4.240704Z";
    let (st, _) = call(
        &dss,
        Method::GET,
        &format!(
            "/v1/bundles/{}?replica=aws&version={wide}",
            uuid::Uuid::new_v4()
        ),
        None,
        None,
    )
    .await;
    assert!(
        (400..500).contains(&st),
        "a version with a wide character: {st}"
    );
    let huge: Vec<u32> = (0..300_000).collect();
    let (st, _) = search(json!({"query": {"terms": {"a": huge}}})).await;
    assert_eq!(st, 413, "a body past the open routes' limit");
    let (st, v) = call(
        &dss,
        Method::POST,
        &format!("/v1/bundles/{}/checkout?replica=aws", uuid::Uuid::new_v4()),
        None,
        Some(json!({"destination": "other-stage", "email": "victim@example.org"})),
    )
    .await;
    assert_eq!(st, 401, "no open relay: {v}");

    // Alice's three bundles reach her on time, whatever Mallory's filters do.
    let started = Instant::now();
    let mut bundles = Vec::new();
    for i in 0..3 {
        let f = dss
            .upload(
                V,
                format!("{{\"donor\": {{\"n\": {i}}}}}").into_bytes(),
                "application/json",
            )
            .await;
        bundles.push((
            dss.bundle(V, &[(f, "donor.json".into())]).await,
            Instant::now(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while good_got.lock().expect("lock").len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = good_got.lock().expect("lock").clone();
    assert_eq!(
        got.len(),
        3,
        "every webhook of the well-behaved subscription"
    );
    let latencies: Vec<Duration> = bundles
        .iter()
        .map(|(b, put)| {
            got.iter()
                .find(|w| &w.bundle == b)
                .map(|w| w.at.duration_since(*put))
                .expect("delivered")
        })
        .collect();
    eprintln!(
        "well-behaved subscription: 3 of 3 webhooks, latencies {latencies:?} (all within {:?})",
        started.elapsed()
    );
    assert!(
        hostile_got.lock().expect("lock").is_empty(),
        "the hostile filters matched nothing"
    );

    // Mallory sees her filter fail; operators see it in the metrics.
    let mut status = Value::Null;
    for _ in 0..200 {
        let (_, v) = call(
            &dss,
            Method::GET,
            &format!("/v1/subscriptions/{erring}?replica=aws"),
            Some(&mallory),
            None,
        )
        .await;
        status = v["status"].clone();
        if status["evaluation_failures"].as_u64() == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["evaluation_failures"], 3, "{status}");
    assert!(
        dss.metrics()
            .await
            .contains("dss_notify_filter_failures_total{outcome=\"jmespath\"} 3")
    );

    // Bundle writes need the writer group.
    let outsider = token(&dss, "eve@example.org", "nobody");
    let (st, _) = call(
        &dss,
        Method::PUT,
        &format!(
            "/v1/bundles/{}?replica=aws&version={V}",
            uuid::Uuid::new_v4()
        ),
        Some(&outsider),
        Some(json!({"creator_uid": 1, "files": []})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = call(&dss, Method::GET, "/internal/health", None, None).await;
    assert_eq!(st, 200, "still healthy");
}

#[test]
fn dss_up_prints_no_token_into_its_output() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dss up");
    let (out, err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
        if lines.iter().any(|l| l.contains("Operator token")) && rx.try_recv().is_err() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.starts_with("DSS is running at")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("eyJ")),
        "a bearer token in dss up's output: {lines:?}"
    );
}
