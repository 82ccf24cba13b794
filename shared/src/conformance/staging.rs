//! The `Staging` conformance suite: staged objects declare the checksums of their bytes, and a
//! body of another size leaves nothing staged.

use crate::checksum::{checksums_of, declared_checksums};
use crate::conformance::blob::{chunked, random_bytes};
use crate::ports::{BlobError, Staging};

/// Runs every check against `staging`, in its existing bucket `bucket`, with keys under `prefix`.
pub async fn run(staging: &dyn Staging, bucket: &str, prefix: &str) {
    staged_objects_declare_their_checksums(staging, bucket, prefix).await;
    bodies_of_another_size_are_refused(staging, bucket, prefix).await;
}

async fn staged_objects_declare_their_checksums(staging: &dyn Staging, bucket: &str, p: &str) {
    for (name, size) in [("small.json", 1_000usize), ("large.bin", 70 << 20)] {
        let bytes = random_bytes(size, size as u64);
        let sums = checksums_of(&bytes);
        let key = format!("{p}uuid/{name}");
        let staged = staging
            .stage(bucket, &key, chunked(&bytes), size as u64, "text/plain")
            .await
            .unwrap_or_else(|e| panic!("stage {key}: {e}"));
        assert_eq!(staged, sums, "{key}: the checksums of the bytes");
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

async fn bodies_of_another_size_are_refused(staging: &dyn Staging, bucket: &str, p: &str) {
    let bytes = random_bytes(4_096, 9);
    let key = format!("{p}uuid/short.bin");
    let err = staging
        .stage(bucket, &key, chunked(&bytes), 5_000, "text/plain")
        .await
        .expect_err("a body of another size is refused");
    assert!(
        matches!(err, BlobError::SizeMismatch { .. }),
        "a size mismatch: {err}"
    );
    assert!(
        staging
            .declared(bucket, &key)
            .await
            .expect("declared")
            .is_none(),
        "nothing is left staged"
    );
}
