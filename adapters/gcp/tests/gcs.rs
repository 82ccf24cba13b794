//! The `BlobStore` conformance suite (and GCS specifics) against a real GCS JSON API server:
//! fake-gcs-server, which `infra/local/test.sh` starts and names in `DSS_TEST_GCS_URL`.

use std::sync::Arc;

use bytes::Bytes;
use dss_core::checksum::checksums_of;
use dss_core::ports::{BlobError, BlobStore, PutMode, PutOptions};
use dss_gcp::{GcpOptions, GcsBlobStore};

fn options() -> GcpOptions {
    GcpOptions {
        endpoint: Some(std::env::var("DSS_TEST_GCS_URL").expect(
            "DSS_TEST_GCS_URL names a GCS JSON API server (infra/local/test.sh starts fake-gcs-server)",
        )),
        pubsub_endpoint: None,
        project: Some("dss-test".into()),
        anonymous: true,
        ..GcpOptions::default()
    }
}

/// A new, empty bucket named after `name` (unique per run: the server outlives test runs).
async fn bucket(name: &str) -> GcsBlobStore {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let store = GcsBlobStore::connect(&format!("{name}-{nanos}"), &options()).expect("client");
    store.ensure_bucket().await.expect("create bucket");
    store
        .ensure_bucket()
        .await
        .expect("creating it again is a no-op");
    store
}

use dss_conformance::blob::{chunked, random_bytes as data};

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn gcs_blob_store_conforms() {
    let store = bucket("dss-conformance").await;
    dss_conformance::blob::run(Arc::new(store), "suite/", None).await;
}

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn large_puts_are_resumable_uploads_verified_before_they_finish() {
    let store = bucket("dss-resumable").await;
    let body = data(70 << 20, 1);
    let sums = checksums_of(&body);
    // Checksums unknown in advance: recorded once the upload ends.
    let meta = store
        .put("big/unknown", chunked(&body), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(meta.checksums.as_ref(), Some(&sums));
    assert_eq!(meta.size, body.len() as u64);
    let head = store
        .head("big/unknown")
        .await
        .expect("head")
        .expect("there");
    assert_eq!(head.checksums.as_ref(), Some(&sums));
    assert_eq!(head.etag, sums.s3_etag);
    let got = store.get_bytes("big/unknown").await.expect("get");
    assert!(got == body, "the bytes read back");

    // Expected checksums: recorded from the start; a body that does not match never appears.
    let opts = PutOptions {
        expected: Some(sums.clone()),
        size: Some(body.len() as u64),
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put("big/known", chunked(&body), opts.clone())
        .await
        .expect("put");
    assert_eq!(
        store
            .head("big/known")
            .await
            .expect("head")
            .and_then(|m| m.checksums),
        Some(sums.clone())
    );
    let mut wrong = body.to_vec();
    wrong[(65 << 20) + 3] ^= 1;
    let e = store
        .put("big/wrong", chunked(&Bytes::from(wrong)), opts.clone())
        .await
        .expect_err("a mismatch");
    assert!(matches!(e, BlobError::ChecksumMismatch(_)), "{e}");
    assert!(store.head("big/wrong").await.expect("head").is_none());
    let e = store
        .put("big/known", chunked(&body), opts)
        .await
        .expect_err("create-only");
    assert!(matches!(e, BlobError::AlreadyExists(_)), "{e}");
}

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn download_urls_of_an_emulator_serve_the_bytes() {
    let store = bucket("dss-urls").await;
    store
        .put_bytes(
            "a/b c.txt",
            Bytes::from_static(b"hello"),
            PutOptions::default(),
        )
        .await
        .expect("put");
    let url = store
        .download_url("a/b c.txt", std::time::Duration::from_secs(60), None)
        .await
        .expect("url");
    let got = reqwest::get(&url)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got.as_ref(), b"hello");
    assert_eq!(
        store.direct_url("a/b c.txt").unwrap(),
        format!("gs://{}/a/b c.txt", store.bucket())
    );
}

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn staging_objects_declare_their_checksums_and_md5() {
    use dss_core::checksum::declared_checksums;
    use dss_core::ports::Staging;
    use dss_gcp::GcsBuckets;
    let store = bucket("dss-staging").await;
    let body = Bytes::from_static(b"{\"organ\": \"lung\"}");
    let sums = checksums_of(&body);
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    store
        .put_bytes("up/organ.json", body.clone(), opts)
        .await
        .expect("put");
    let staging = GcsBuckets::like(&store);
    let d = staging
        .declared(store.bucket(), "up/organ.json")
        .await
        .expect("declared")
        .expect("there");
    assert_eq!(d.size, body.len() as u64);
    assert_eq!(d.content_type, "application/json");
    assert_eq!(
        d.etag.as_deref(),
        Some(sums.s3_etag.as_str()),
        "the MD5 of one part"
    );
    assert_eq!(declared_checksums(&d.values), Ok(sums));
    assert!(
        staging
            .declared(store.bucket(), "up/none")
            .await
            .expect("declared")
            .is_none()
    );
    let copied = staging
        .bucket(store.bucket())
        .expect("bucket")
        .get_bytes("up/organ.json")
        .await
        .expect("get");
    assert_eq!(copied, body);
}

#[tokio::test]
#[ignore = "needs a GCS server: run infra/local/test.sh"]
async fn gcs_staging_conforms() {
    let store = bucket("dss-stage-suite").await;
    let staging = dss_gcp::GcsBuckets::like(&store);
    dss_conformance::staging::run(&staging, store.bucket(), "suite/").await;
}
