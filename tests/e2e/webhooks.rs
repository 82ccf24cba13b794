//! A webhook receiver for the tests: it answers 200 and records each request's bundle,
//! transaction id, arrival and `traceparent`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

/// One webhook request as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    /// The matched bundle's UUID.
    pub bundle: String,
    /// The delivery's transaction id.
    pub transaction: String,
    /// When it arrived.
    pub at: Instant,
    /// Its `traceparent` header, if any.
    pub traceparent: Option<String>,
}

/// What a receiver got, in order.
pub(crate) type Received = Arc<Mutex<Vec<Webhook>>>;

/// A receiver on 127.0.0.1; its URL and what it gets.
pub(crate) async fn receiver() -> (String, Received) {
    receiver_at("127.0.0.1").await
}

/// A receiver on `address` (e.g. one that network namespaces reach); its URL and what it gets.
pub(crate) async fn receiver_at(address: &str) -> (String, Received) {
    let got = Received::default();
    let seen = got.clone();
    let listener = tokio::net::TcpListener::bind(format!("{address}:0"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                let field = |p: &str| {
                    v.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                seen.lock().expect("lock").push(Webhook {
                    bundle: field("/match/bundle_uuid"),
                    transaction: field("/transaction_id"),
                    at: Instant::now(),
                    traceparent: headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                });
                axum::http::StatusCode::OK
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}
