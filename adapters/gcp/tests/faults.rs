//! Failures injected between the GCS adapter and fake-gcs-server (`DSS_TEST_GCS_URL`, started by
//! `infra/local/test.sh`) by a proxy: overload answers and dropped connections are retried, and
//! a resumable upload whose chunk failed goes on from the bytes the server persisted.
//!
//! fake-gcs-server finalises an upload on any empty `PUT` to its session, where GCS answers a
//! status query (`Content-Range: bytes */…`) with `308` and the persisted `Range`; the proxy
//! answers those queries itself, from the server's last confirmation, as GCS would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dss_conformance::blob::{chunked, random_bytes};
use dss_conformance::proxy::{Answer, Fault, Options, Proxy, Seen};
use dss_core::checksum::checksums_of;
use dss_core::ports::{BlobError, BlobStore, PutOptions};
use dss_gcp::{GcpOptions, GcsBlobStore, RequestPolicy};

fn upstream() -> String {
    std::env::var("DSS_TEST_GCS_URL").expect(
        "DSS_TEST_GCS_URL names a GCS JSON API server (infra/local/test.sh starts fake-gcs-server)",
    )
}

/// A store reaching the server through `proxy`, with quick backoffs and `attempts`.
async fn store(proxy: &Proxy, name: &str, attempts: u32) -> GcsBlobStore {
    let options = GcpOptions {
        endpoint: Some(proxy.url("http")),
        project: Some("dss-test".into()),
        anonymous: true,
        requests: RequestPolicy {
            max_attempts: attempts,
            retry_base: Duration::from_millis(10),
            ..RequestPolicy::default()
        },
        ..GcpOptions::default()
    };
    let bucket = format!("{name}-{:016x}", rand::random::<u64>());
    let store = GcsBlobStore::connect(&bucket, &options).expect("client");
    store.ensure_bucket().await.expect("bucket");
    store
}

fn upload_id(seen: &Seen) -> Option<String> {
    let query = seen.target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("upload_id="))
        .map(str::to_string)
}

fn is_status_query(seen: &Seen) -> bool {
    seen.method == "PUT"
        && seen.body.is_empty()
        && seen
            .header("content-range")
            .is_some_and(|r| r.starts_with("bytes */"))
}

fn is_chunk(seen: &Seen) -> bool {
    seen.method == "PUT" && upload_id(seen).is_some() && !seen.body.is_empty()
}

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn a_resumable_upload_goes_on_from_the_bytes_the_server_persisted() {
    // The server's last confirmed range per upload session.
    let confirmed: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let chunks = Arc::new(AtomicUsize::new(0));
    let (seen_by_gate, seen_by_observer, counted) =
        (confirmed.clone(), confirmed.clone(), chunks.clone());
    let options = Options {
        gate: Some(Arc::new(move |seen: &Seen| {
            if !is_status_query(seen) {
                return Ok(());
            }
            let id = upload_id(seen).unwrap_or_default();
            let mut a = Answer::json(308, "");
            if let Some(range) = seen_by_gate.lock().unwrap().get(&id) {
                a.headers.push(("range", range.clone()));
            }
            Err(a)
        })),
        observe: Some(Arc::new(move |seen: &Seen, status, headers| {
            if status == 308
                && let (Some(id), Some(range)) = (upload_id(seen), headers.get("range"))
            {
                let range = range.to_str().unwrap_or_default().to_string();
                seen_by_observer.lock().unwrap().insert(id, range);
            }
        })),
        // The second chunk reaches the server but its answer is lost; the third is dropped
        // before it reaches the server.
        faults: Some(Arc::new(move |seen: &Seen| {
            if !is_chunk(seen) {
                return None;
            }
            match counted.fetch_add(1, Ordering::SeqCst) {
                1 => Some(Fault::AfterForward(503)),
                2 => Some(Fault::Drop),
                _ => None,
            }
        })),
        tls: None,
    };
    let proxy = Proxy::start(&upstream(), options).await;
    let store = store(&proxy, "dss-resume", 5).await;
    // 64 + 64 + 2 MiB: three chunks.
    let body = random_bytes(130 << 20, 7);
    let sums = checksums_of(&body);
    // The session's start is refused once too.
    proxy.fail_next([Fault::Status(503)]);
    let meta = store
        .put("big/resumed", chunked(&body), PutOptions::default())
        .await
        .expect("the upload completes");
    assert_eq!(meta.checksums.as_ref(), Some(&sums));
    let got = store.get_bytes("big/resumed").await.expect("get");
    assert!(got == body, "the bytes read back");

    let seen = proxy.seen();
    let forwarded: usize = seen
        .iter()
        .filter(|s| is_chunk(s) && s.forwarded)
        .map(|s| s.body.len())
        .sum();
    assert_eq!(
        forwarded,
        body.len(),
        "every byte reached the server once: the persisted chunk was not sent again"
    );
    assert_eq!(seen.iter().filter(|s| is_status_query(s)).count(), 2);
    assert_eq!(seen.iter().filter(|s| is_chunk(s)).count(), 4);
}

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn overload_answers_and_dropped_connections_are_retried() {
    let proxy = Proxy::open(&upstream()).await;
    let store = store(&proxy, "dss-retries", 5).await;
    let body = Bytes::from_static(b"{\"organ\": \"lung\"}");
    proxy.fail_next([Fault::Status(503), Fault::Drop, Fault::Status(429)]);
    store
        .put_bytes("small/one", body.clone(), PutOptions::default())
        .await
        .expect("put after retries");
    proxy.fail_next([Fault::Status(500), Fault::Status(408)]);
    let head = store.head("small/one").await.expect("head").expect("there");
    assert_eq!(head.size, body.len() as u64);
    proxy.fail_next([Fault::Drop, Fault::Status(502)]);
    assert_eq!(store.get_bytes("small/one").await.expect("get"), body);
    proxy.fail_next([Fault::Status(504)]);
    assert!(store.delete("small/one").await.expect("delete"));

    // Out of attempts: the failure is reported, naming the answer.
    let once = store_with(&proxy, &store, 2).await;
    proxy.fail_next([Fault::Status(503), Fault::Status(503)]);
    match once.head("small/one").await {
        Err(BlobError::Backend(why)) => assert!(why.contains("503"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    // Answers that a retry cannot change are not retried.
    proxy.fail_next([Fault::Status(403)]);
    assert!(once.head("small/one").await.is_err());
    assert!(once.head("small/one").await.expect("head").is_none());
}

/// The bucket of `store` through `proxy` with `attempts`.
async fn store_with(proxy: &Proxy, store: &GcsBlobStore, attempts: u32) -> GcsBlobStore {
    let other = self::store(proxy, "dss-once", attempts).await;
    other.sibling(store.bucket())
}
