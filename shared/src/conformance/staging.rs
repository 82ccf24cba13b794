//! The `Staging` conformance suite: objects staged with declared checksums read back as
//! declaring them, and staging refuses bytes that do not match.

use crate::checksum::{Checksums, checksums_of, declared_checksums};
use crate::conformance::blob::{chunked, random_bytes};
use crate::ports::{BlobError, Staging};

/// Runs every check against `staging`, in its existing bucket `bucket`, with keys under `prefix`.
pub async fn run(staging: &dyn Staging, bucket: &str, prefix: &str) {
    staged_objects_declare_their_checksums(staging, bucket, prefix).await;
    bytes_that_differ_are_refused(staging, bucket, prefix).await;
}

async fn staged_objects_declare_their_checksums(staging: &dyn Staging, bucket: &str, p: &str) {
    for (name, size) in [("small.json", 1_000usize), ("large.bin", 70 << 20)] {
        let bytes = random_bytes(size, size as u64);
        let sums = checksums_of(&bytes);
        let key = format!("{p}uuid/{name}");
        staging
            .stage(
                bucket,
                &key,
                chunked(&bytes),
                size as u64,
                "text/plain",
                &sums,
            )
            .await
            .unwrap_or_else(|e| panic!("stage {key}: {e}"));
        let d = staging
            .declared(bucket, &key)
            .await
            .expect("declared")
            .unwrap_or_else(|| panic!("{key} is staged"));
        assert_eq!(d.size, size as u64, "{key}: size");
        assert_eq!(d.content_type, "text/plain", "{key}: content type");
        assert_eq!(
            declared_checksums(&d.values),
            Ok(sums.clone()),
            "{key} declares its checksums"
        );
        for tag in [
            "hca-dss-sha256",
            "hca-dss-sha1",
            "hca-dss-s3_etag",
            "hca-dss-crc32c",
        ] {
            assert!(
                d.values.contains_key(tag),
                "{key} declares {tag}, as hca does"
            );
        }
        if let Some(etag) = &d.etag
            && etag.len() >= 32
            && size <= 64 << 20
        {
            assert_eq!(
                etag, &sums.s3_etag,
                "{key}: the store's ETag is the s3_etag"
            );
        }
        let store = staging.bucket(bucket).expect("bucket");
        assert!(
            store.get_bytes(&key).await.expect("read") == bytes,
            "{key}: the staged bytes"
        );
    }
}

async fn bytes_that_differ_are_refused(staging: &dyn Staging, bucket: &str, p: &str) {
    let bytes = random_bytes(4_096, 9);
    let other = checksums_of(&random_bytes(4_096, 10));
    let sums = Checksums {
        crc32c: other.crc32c,
        ..checksums_of(&bytes)
    };
    let key = format!("{p}uuid/changed.bin");
    let err = staging
        .stage(bucket, &key, chunked(&bytes), 4_096, "text/plain", &sums)
        .await
        .expect_err("bytes unlike their declared checksums are refused");
    assert!(
        matches!(err, BlobError::ChecksumMismatch(_)),
        "a checksum mismatch: {err}"
    );
    assert!(
        staging
            .declared(bucket, &key)
            .await
            .expect("declared")
            .is_none(),
        "nothing is left staged"
    );
    let err = staging
        .stage(
            bucket,
            &key,
            chunked(&bytes),
            4_000,
            "text/plain",
            &checksums_of(&bytes),
        )
        .await
        .expect_err("a body of another size is refused");
    assert!(
        matches!(err, BlobError::SizeMismatch { .. }),
        "a size mismatch: {err}"
    );
}
