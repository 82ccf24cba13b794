//! Traces over OTLP/HTTP: `dss up` exports its spans to a minimal OTLP receiver of the test's own
//! (protobuf `ExportTraceServiceRequest`s on `/v1/traces`). A request carrying a W3C
//! `traceparent` continues the caller's trace through the API, the bucket event, the messages of
//! the index, sync, notify and checkout daemons, and the webhook, whose request carries the
//! trace on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::json;

use crate::harness::{Dss, put_sample_bundle};

/// One exported span: service, name, trace id, parent span id (hex), its `worker` attribute.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace: String,
    parent: String,
    worker: String,
}

type Spans = Arc<Mutex<Vec<Exported>>>;

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A receiver of OTLP/HTTP protobuf trace exports; its base URL and what it got.
async fn otlp_receiver() -> (String, Spans) {
    let spans = Spans::default();
    let got = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .map(|a| text(&a.value))
                        .unwrap_or_default();
                    for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let worker = span
                            .attributes
                            .iter()
                            .find(|a| a.key == "worker")
                            .map(|a| text(&a.value))
                            .unwrap_or_default();
                        got.lock().unwrap().push(Exported {
                            service: service.clone(),
                            name: span.name,
                            trace: hex(&span.trace_id),
                            parent: hex(&span.parent_span_id),
                            worker,
                        });
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

/// A client whose every request carries the caller's `traceparent`.
fn traced_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{TRACE}-{CALLER}-01").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// The exporting configuration: batches leave every 200 ms instead of every 5 s.
fn exporting(otlp: String) -> [(&'static str, String); 2] {
    [
        ("DSS_TELEMETRY__OTLP_ENDPOINT", otlp),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_the_api_the_daemons_and_the_webhook() {
    let (otlp, spans) = otlp_receiver().await;
    let mut env = exporting(otlp).to_vec();
    env.push(("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1".into()));
    let dss = Dss::up_with(&env).await;
    let (hook, hooked) = crate::webhooks::receiver().await;
    let r = dss
        .http
        .put(format!("{}/v1/subscriptions?replica=aws", dss.base))
        .bearer_auth(&dss.token)
        .json(&json!({"callback_url": hook, "jmespath_query": "event_type=='CREATE'"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);

    let (trace, caller) = (TRACE, CALLER);
    let version = "2026-12-05T010203.000000Z";
    let bundle = put_sample_bundle(
        &traced_client(),
        &dss.base,
        &dss.token,
        version,
        "{\"a\": 1}".into(),
    )
    .await;
    // A checkout asked for in the same trace: its job (and its e-mail) join it.
    let r = traced_client()
        .post(format!(
            "{}/v1/bundles/{bundle}/checkout?replica=aws",
            dss.base
        ))
        .bearer_auth(&dss.token)
        .json(&json!({"email": "someone@example.org"}))
        .send()
        .await
        .expect("checkout");
    assert_eq!(r.status(), 200);

    let daemons = [
        "index",
        "notify-match",
        "notify-deliver",
        "sync",
        "checkout",
    ];
    until_trace(&spans, 30, |of_trace| {
        let api = of_trace
            .iter()
            .any(|s| s.name == "request" && s.parent == caller && s.service == "dss-up");
        let worker = |w: &str| {
            of_trace
                .iter()
                .any(|s| s.name == "message" && s.worker == w)
        };
        let webhook = hooked
            .lock()
            .unwrap()
            .iter()
            .filter_map(|w| w.traceparent.as_deref())
            .any(|tp| tp.starts_with(&format!("00-{trace}-")) && !tp.contains(caller));
        (api && daemons.iter().all(|d| worker(d)) && webhook)
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "api {api}, daemons {:?}, webhook {webhook} ({:?})",
                    daemons.map(|d| (d, worker(d))),
                    hooked.lock().unwrap()
                )
            })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an AWS-protocol server (moto); run by infra/local/test.sh"]
async fn the_trace_crosses_s3_notifications_through_the_objects_metadata() {
    let (otlp, spans) = otlp_receiver().await;
    let (mut env, _) = crate::aws::aws_env();
    env.extend(exporting(otlp));
    let dir = tempfile::tempdir().expect("tempdir");
    crate::aws::infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;
    let version = "2026-12-05T020304.000000Z";
    put_sample_bundle(
        &traced_client(),
        &dss.base,
        &dss.token,
        version,
        "{\"b\": 2}".into(),
    )
    .await;
    // S3's notification carries no traceparent; the index daemon finds the writer's on the
    // manifest object and handles the event in a span of the caller's trace.
    until_trace(&spans, 60, |of_trace| {
        let api = of_trace
            .iter()
            .any(|s| s.name == "request" && s.parent == CALLER);
        let indexed = of_trace.iter().any(|s| s.name == "bucket_event");
        (api && indexed)
            .then_some(())
            .ok_or_else(|| format!("api {api}, index {indexed}"))
    })
    .await;
}

/// Waits up to `secs` until the spans of the caller's trace satisfy `ready` (else its reason
/// and the spans are the failure).
async fn until_trace(spans: &Spans, secs: u64, ready: impl Fn(&[&Exported]) -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = spans.lock().unwrap().clone();
        let of_trace: Vec<&Exported> = got.iter().filter(|s| s.trace == TRACE).collect();
        match ready(&of_trace) {
            Ok(()) => return,
            Err(why) => assert!(
                Instant::now() < deadline,
                "the trace never joined up: {why}; its spans: {of_trace:#?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
