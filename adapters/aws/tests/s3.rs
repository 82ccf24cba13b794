//! The `BlobStore` conformance suite (and S3 specifics) against a real S3 server: moto, which
//! `infra/local/test.sh` starts and names in `DSS_TEST_AWS_URL`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{options, unique};
use dss_aws::S3BlobStore;
use dss_core::checksum::checksums_of;
use dss_core::ports::{BlobStore, PutOptions};

/// A new, empty bucket named after `name`.
async fn bucket(name: &str) -> S3BlobStore {
    let store = S3BlobStore::connect(&unique(name), &options()).await;
    store.ensure_bucket().await.expect("create bucket");
    store
        .ensure_bucket()
        .await
        .expect("creating it again is a no-op");
    store
}

use dss_conformance::blob::{chunked, random_bytes as data};

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn s3_blob_store_conforms() {
    let store = bucket("dss-conformance").await;
    dss_conformance::blob::run(Arc::new(store), "suite/", None).await;
}

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn large_puts_are_multipart_uploads_whose_etag_is_the_s3_etag_checksum() {
    let store = bucket("dss-multipart").await;
    let body = data(70 << 20, 1);
    let sums = checksums_of(&body);
    assert!(
        sums.s3_etag.ends_with("-2"),
        "two DSS parts: {}",
        sums.s3_etag
    );

    // Size and checksums known: recorded from the start.
    let known = PutOptions {
        size: Some(body.len() as u64),
        expected: Some(sums.clone()),
        ..Default::default()
    };
    let m = store
        .put("big/known", chunked(&body), known)
        .await
        .expect("put");
    assert_eq!(
        m.etag, sums.s3_etag,
        "the multipart ETag is the DSS s3_etag"
    );
    let head = store
        .head("big/known")
        .await
        .expect("head")
        .expect("stored");
    assert_eq!(head.checksums.as_ref(), Some(&sums));
    assert_eq!(head.size, body.len() as u64);

    // Nothing known in advance: the checksums are computed and recorded afterwards.
    let m = store
        .put("big/unknown", chunked(&body), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(m.checksums.as_ref(), Some(&sums));
    let head = store
        .head("big/unknown")
        .await
        .expect("head")
        .expect("stored");
    assert_eq!(
        head.checksums.as_ref(),
        Some(&sums),
        "recorded after the upload"
    );
    assert!(store.get_bytes("big/unknown").await.expect("get") == body);

    // A wrong checksum aborts the upload: nothing is stored.
    let mut wrong = sums.clone();
    wrong.sha256 = "0".repeat(64);
    let r = store
        .put(
            "big/wrong",
            chunked(&body),
            PutOptions {
                expected: Some(wrong),
                ..Default::default()
            },
        )
        .await;
    assert!(r.is_err(), "{r:?}");
    assert!(store.head("big/wrong").await.expect("head").is_none());

    // Server-side copies keep the bytes and the checksums.
    let c = store.copy("big/known", "big/copy").await.expect("copy");
    assert_eq!(c.size, body.len() as u64);
    assert_eq!(c.checksums.as_ref(), Some(&sums));
    assert!(store.get_bytes("big/copy").await.expect("get") == body);
}

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn puts_and_parts_carry_a_crc32c_for_s3_to_check() {
    use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
    use base64::Engine;
    let store = bucket("dss-crc32c").await;
    let client = options().s3().await;
    let stored_crc = |key: &'static str| {
        let (client, bucket) = (client.clone(), store.bucket().to_string());
        async move {
            let head = client
                .head_object()
                .bucket(bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .expect("head");
            head.checksum_crc32_c().map(str::to_string)
        }
    };

    let small = data(1000, 7);
    store
        .put("crc/small", chunked(&small), PutOptions::default())
        .await
        .expect("put");
    let crc =
        base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(&small).to_be_bytes());
    assert_eq!(
        stored_crc("crc/small").await,
        Some(crc),
        "a single put sends its CRC-32C"
    );

    // Checksums known in advance: the object is not copied onto itself afterwards.
    let big = data(70 << 20, 8);
    let known = PutOptions {
        expected: Some(checksums_of(&big)),
        ..Default::default()
    };
    store
        .put("crc/big", chunked(&big), known)
        .await
        .expect("put");
    let got = client
        .get_object()
        .bucket(store.bucket())
        .key("crc/big")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    let composite = got.checksum_crc32_c().unwrap_or_default().to_string();
    assert_eq!(got.checksum_type(), Some(&ChecksumType::Composite));
    assert!(
        composite.ends_with("-2"),
        "each of the two parts sent its CRC-32C: {composite:?}"
    );
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert!(bytes == big);
}

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn presigned_urls_serve_the_bytes_to_anyone() {
    let store = bucket("dss-presigned").await;
    let body = data(1000, 2);
    store
        .put_bytes("p/o", body.clone(), PutOptions::default())
        .await
        .expect("put");
    let url = store
        .download_url(
            "p/o",
            Duration::from_secs(60),
            Some("attachment; filename=\"o.bin\""),
        )
        .await
        .expect("url");
    let r = reqwest::get(&url).await.expect("get");
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(r.bytes().await.expect("bytes"), body);
    assert_eq!(
        store.direct_url("p/o").expect("direct"),
        format!("s3://{}/p/o", store.bucket())
    );
}

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn copies_between_buckets_of_one_service_are_made_by_the_server_and_checked_by_etag() {
    use dss_core::transfer::{CopySource, copy_object};
    let (a, b) = (bucket("dss-copy-src").await, bucket("dss-copy-dst").await);
    dss_conformance::blob::copies_in_batches_between(&a, &b, "batch/").await;
    for (key, size) in [("small", 3000usize), ("big", 70 << 20)] {
        let body = data(size, size as u64);
        let sums = checksums_of(&body);
        a.put(key, chunked(&body), PutOptions::default())
            .await
            .expect("put");
        let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let src = CopySource {
            store: &a,
            key,
            checksums: &sums,
            size: size as u64,
            content_type: "application/octet-stream",
        };
        let m = copy_object(src, &b, &format!("copied/{key}"), progress.clone())
            .await
            .expect("copy");
        assert_eq!(
            m.etag, sums.s3_etag,
            "{key}: the server's ETag is the s3_etag"
        );
        assert_eq!(
            progress.load(std::sync::atomic::Ordering::Relaxed),
            size as u64
        );
        let head = b
            .head(&format!("copied/{key}"))
            .await
            .expect("head")
            .expect("copied");
        assert_eq!(head.checksums.as_ref(), Some(&sums));
        assert!(b.get_bytes(&format!("copied/{key}")).await.expect("get") == body);
    }
    // A copy whose bytes are not the ones expected is refused and removed.
    let mut wrong = checksums_of(b"something else");
    wrong.s3_etag = checksums_of(&data(3000, 1)).s3_etag;
    let src = CopySource {
        store: &a,
        key: "small",
        checksums: &wrong,
        size: 3000,
        content_type: "application/octet-stream",
    };
    let r = copy_object(src, &b, "copied/wrong", Arc::default()).await;
    assert!(
        matches!(&r, Err(dss_core::ports::BlobError::ChecksumMismatch(v)) if v == &vec!["s3_etag"]),
        "{r:?}"
    );
    assert!(b.head("copied/wrong").await.expect("head").is_none());
}

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn staging_objects_declare_their_checksums_in_tags_or_metadata() {
    use dss_core::checksum::{DeclaredError, declared_checksums};
    let store = bucket("dss-staging").await;
    let client = options().s3().await;
    let body = data(1000, 5);
    let sums = checksums_of(&body);
    // As the hca CLI stages a file: the bytes, then tags (upper-case values are accepted).
    client
        .put_object()
        .bucket(store.bucket())
        .key("staged/a.json")
        .content_type("application/json")
        .metadata("hca-dss-sha1", "0".repeat(40))
        .body(body.clone().into())
        .send()
        .await
        .expect("put");
    let tag = |k: &str, v: &str| {
        aws_sdk_s3::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("tag")
    };
    client
        .put_object_tagging()
        .bucket(store.bucket())
        .key("staged/a.json")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(tag("hca-dss-sha256", &sums.sha256.to_uppercase()))
                .tag_set(tag("hca-dss-sha1", &sums.sha1))
                .tag_set(tag("hca-dss-s3_etag", &sums.s3_etag))
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("tag");
    let d = store
        .declared("staged/a.json")
        .await
        .expect("declared")
        .expect("exists");
    assert_eq!(
        (d.size, d.content_type.as_str()),
        (1000, "application/json")
    );
    assert_eq!(
        declared_checksums(&d.values),
        Err(DeclaredError::Missing("crc32c")),
        "tags win over metadata; crc32c is not declared yet"
    );
    client
        .copy_object()
        .bucket(store.bucket())
        .key("staged/a.json")
        .copy_source(format!("{}/staged/a.json", store.bucket()))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("dss-crc32c", &sums.crc32c)
        .tagging_directive(aws_sdk_s3::types::TaggingDirective::Copy)
        .send()
        .await
        .expect("add metadata");
    let d = store
        .declared("staged/a.json")
        .await
        .expect("declared")
        .expect("exists");
    assert_eq!(declared_checksums(&d.values), Ok(sums));
    assert!(
        store
            .declared("staged/none")
            .await
            .expect("declared")
            .is_none()
    );
}

#[tokio::test]
#[ignore = "needs an S3 server: run infra/local/test.sh"]
async fn s3_staging_conforms() {
    let store = bucket("dss-stage-suite").await;
    let staging = dss_aws::S3Staging::connect(&options()).await;
    dss_conformance::staging::run(&staging, store.bucket(), "suite/").await;
}
