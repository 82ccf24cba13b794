//! The HTTP limits that keep one client from taking the service from others: slow heads and
//! bodies time out, connections and requests in flight are capped, open routes take small
//! bodies and are rate-limited per client.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Reads until the peer closes or answers; `None` when it closed without a byte.
async fn answer(conn: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => panic!("the server neither answered nor closed"),
    }
}

#[tokio::test]
async fn slow_heads_idle_connections_and_stalled_bodies_time_out() {
    let s = start_with(
        "",
        "header_read_timeout_secs = 1\nbody_read_timeout_secs = 1",
        Duration::ZERO,
    )
    .await;
    // A head trickled in and never finished.
    let mut slow = TcpStream::connect(addr(&s)).await.unwrap();
    slow.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let got = answer(&mut slow).await;
    assert!(
        got.is_none() || got.as_deref().is_some_and(|a| a.contains("408")),
        "{got:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // A kept-alive connection left idle.
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(answer(&mut idle).await.unwrap().starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    assert_eq!(answer(&mut idle).await, None, "closed after the idle time");
    assert!(t.elapsed() < Duration::from_secs(5));
    // A JSON body that stops half-way, on an open route.
    let mut stalled = TcpStream::connect(addr(&s)).await.unwrap();
    stalled
        .write_all(
            b"POST /v1/search?replica=aws HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"es_query\":",
        )
        .await
        .unwrap();
    let got = answer(&mut stalled).await.expect("an answer");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("request_timeout"), "{got}");
    // An upload that stalls.
    let mut upload = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "PUT /v1/files/{}/content?version={V1}&replica=aws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n",
        uuid(),
        s.user
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&[7u8; 1000]).await.unwrap();
    let got = answer(&mut upload).await.expect("an answer");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    // Everyone else is served.
    let (st, _, _) = s.call(Method::GET, "/version", None, None).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn connections_and_requests_in_flight_are_capped() {
    let s = start_with(
        "",
        "max_connections = 4\nmax_in_flight = 2\nbody_read_timeout_secs = 30",
        Duration::ZERO,
    )
    .await;
    // Two requests held in their handlers by bodies that have not arrived.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        c.write_all(b"POST /v1/search?replica=aws HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            .await
            .unwrap();
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(addr(&s)).await.unwrap();
    third
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = answer(&mut third).await.expect("an answer");
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{got}"
    );
    // Health checks are never shed.
    let mut health = TcpStream::connect(addr(&s)).await.unwrap();
    health
        .write_all(b"GET /internal/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        answer(&mut health)
            .await
            .expect("an answer")
            .starts_with("HTTP/1.1 200")
    );
    // Four connections are open: the fifth is closed at once.
    let mut fifth = TcpStream::connect(addr(&s)).await.unwrap();
    let _ = fifth
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(answer(&mut fifth).await, None);
    drop(held);
    drop(third);
    drop(health);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, _, _) = s.call(Method::GET, "/version", None, None).await;
    assert_eq!(st, StatusCode::OK, "served again once the others are gone");
}

#[tokio::test]
async fn open_routes_take_small_bodies_and_each_client_has_its_rate() {
    let s = start_with(
        "",
        "max_small_json_values = 1000\nsearch_rate = 0.5\nsearch_burst = 3\nclient_ip_header = \"x-forwarded-for\"",
        Duration::ZERO,
    )
    .await;
    let search = |client: &'static str, body: serde_json::Value| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(s.url("/v1/search?replica=aws"))
                .header("x-forwarded-for", format!("203.0.113.9, {client}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let st = r.status();
            (
                st,
                retry,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let big = json!({"es_query": {"query": {"match": {"a": "x".repeat(300_000)}}}});
    let (st, _, v) = search("198.51.100.1", big).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let values: Vec<u32> = (0..5000).collect();
    let (st, _, v) = search(
        "198.51.100.1",
        json!({"es_query": {"query": {"terms": {"a": values}}}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["title"]
            .as_str()
            .unwrap()
            .contains("more than 1000 JSON values"),
        "{v}"
    );
    let (st, _, v) = search("198.51.100.1", json!({"es_query": {}})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The burst of that client is spent (three searches so far): the next waits.
    let (st, retry, v) = search("198.51.100.1", json!({"es_query": {}})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests"))
    );
    assert_eq!(retry.as_deref(), Some("2"));
    // Another client (by the address its proxy saw, not the one it wrote first) is served.
    let (st, _, v) = search("198.51.100.2", json!({"es_query": {}})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_answer_given_before_the_body_is_read_reaches_the_client() {
    let s = start().await;
    // A declared size over the limit is refused at once; the client is still sending.
    for _ in 0..5 {
        let body = vec![1u8; 4_000_000];
        let r = s
            .http
            .put(s.url(&format!(
                "/v1/files/{}/content?version={V1}&replica=aws",
                uuid()
            )))
            .bearer_auth(&s.user)
            .body(body)
            .send()
            .await
            .expect("the answer, not a reset connection");
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
