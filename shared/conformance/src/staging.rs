//! The `Staging` conformance suite: staged objects and local files declare the checksums of
//! their bytes, and a body or file of another size leaves nothing staged.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::blob::{chunked, random_bytes};
use dss_core::checksum::{Checksums, checksums_of, declared_checksums};
use dss_core::ports::{BlobError, Declared, LocalFile, Staging};

/// Runs every check against `staging`, in its existing bucket `bucket`, with keys under `prefix`.
pub async fn run(staging: &dyn Staging, bucket: &str, prefix: &str) {
    staged_objects_declare_their_checksums(staging, bucket, prefix).await;
    bodies_of_another_size_are_refused(staging, bucket, prefix).await;
    staged_files_declare_their_checksums(staging, bucket, prefix).await;
    files_of_another_size_are_refused(staging, bucket, prefix).await;
    files_changed_while_staged_never_declare_other_bytes(staging, bucket, prefix).await;
}

/// A file of `bytes` in the system's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "dss-staging-suite-{}-{}-{name}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&path, bytes).expect("write a temporary file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stages `file` as `key`, telling `size` as its size: the result and the bytes it told of.
async fn stage_file(
    staging: &dyn Staging,
    bucket: &str,
    key: &str,
    file: &TempFile,
    size: u64,
) -> (Result<Checksums, BlobError>, u64) {
    let told = Arc::new(AtomicU64::new(0));
    let counted = told.clone();
    let local = LocalFile {
        path: &file.0,
        size,
        content_type: "text/plain",
        sent: Arc::new(move |n| {
            counted.fetch_add(n, Ordering::Relaxed);
        }),
    };
    let staged = staging.stage_file(bucket, key, local).await;
    (staged, told.load(Ordering::Relaxed))
}

async fn staged_files_declare_their_checksums(staging: &dyn Staging, bucket: &str, p: &str) {
    // Below and above one DSS part (64 MiB): streamed, or sent in parts from the file.
    for (name, size) in [("small.txt", 1_000usize), ("big.bin", 70 << 20)] {
        let bytes = random_bytes(size, size as u64 + 1);
        let sums = checksums_of(&bytes);
        let file = TempFile::new(name, &bytes);
        let key = format!("{p}file/{name}");
        let (staged, told) = stage_file(staging, bucket, &key, &file, size as u64).await;
        let staged = staged.unwrap_or_else(|e| panic!("stage {key}: {e}"));
        assert_eq!(staged, sums, "{key}: the checksums of the file");
        assert_eq!(told, size as u64, "{key}: every byte is told of once");
        assert_staged(staging, bucket, &key, &bytes, &sums).await;
    }
}

async fn files_of_another_size_are_refused(staging: &dyn Staging, bucket: &str, p: &str) {
    for (name, size, listed) in [
        ("grown.txt", 4_096, 4_000),
        ("shrunk.bin", 66 << 20, 70 << 20),
    ] {
        let file = TempFile::new(name, &random_bytes(size, 11));
        let key = format!("{p}file/{name}");
        let (staged, _) = stage_file(staging, bucket, &key, &file, listed).await;
        assert!(
            matches!(staged, Err(BlobError::SizeMismatch { .. })),
            "{key}: a file of another size than listed is refused: {staged:?}"
        );
        assert!(
            staging
                .declared(bucket, &key)
                .await
                .expect("declared")
                .is_none(),
            "{key}: nothing is left staged"
        );
    }
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
        let d = assert_staged(staging, bucket, &key, &bytes, &sums).await;
        if let Some(etag) = &d.etag
            && etag.len() >= 32
            && size <= 64 << 20
        {
            assert_eq!(
                etag, &sums.s3_etag,
                "{key}: the store's ETag is the s3_etag"
            );
        }
    }
}

/// Checks that `key` holds `bytes` (of `text/plain`) and declares `sums` as hca does: what it
/// declares.
async fn assert_staged(
    staging: &dyn Staging,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    sums: &Checksums,
) -> Declared {
    let d = staging
        .declared(bucket, key)
        .await
        .expect("declared")
        .unwrap_or_else(|| panic!("{key} is staged"));
    assert_eq!(d.size, bytes.len() as u64, "{key}: size");
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
    let store = staging.bucket(bucket).expect("bucket");
    assert!(
        store.get_bytes(key).await.expect("read") == bytes,
        "{key}: the staged bytes"
    );
    d
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

async fn files_changed_while_staged_never_declare_other_bytes(
    staging: &dyn Staging,
    bucket: &str,
    p: &str,
) {
    use std::io::{Seek, SeekFrom, Write};
    let size = 70usize << 20;
    let file = TempFile::new("changing.bin", &random_bytes(size, 12));
    let key = format!("{p}file/changing.bin");
    // Once the first bytes are sent, the file's first byte and its modification time change.
    let (path, changed) = (file.0.clone(), Arc::new(AtomicU64::new(0)));
    let once = changed.clone();
    let local = LocalFile {
        path: &file.0,
        size: size as u64,
        content_type: "text/plain",
        sent: Arc::new(move |_| {
            if once.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open to change");
                f.seek(SeekFrom::Start(0)).expect("seek");
                f.write_all(b"\xff\x00").expect("change");
                let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
                f.set_modified(later).expect("touch");
            }
        }),
    };
    let staged = staging.stage_file(bucket, &key, local).await;
    assert!(changed.load(Ordering::SeqCst) > 0, "bytes were sent");
    let declared = staging.declared(bucket, &key).await.expect("declared");
    match staged {
        // Sent as it was read: what is declared is what is stored.
        Ok(sums) => {
            let d = declared.unwrap_or_else(|| panic!("{key} is staged"));
            assert_eq!(declared_checksums(&d.values), Ok(sums.clone()));
            let store = staging.bucket(bucket).expect("bucket");
            let stored = store.get_bytes(&key).await.expect("read");
            assert_eq!(
                checksums_of(&stored),
                sums,
                "{key}: the declaration fits the bytes"
            );
        }
        Err(e) => assert!(declared.is_none(), "{key}: refused ({e}), nothing staged"),
    }
}
