//! `dss_core::transfer` over local buckets seen as remote ones: large objects are read in ranges
//! ahead of the writer and verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use dss_core::checksum::checksums_of;
use dss_core::clock::system;
use dss_core::ports::blob::{
    BlobError, BlobStore, ByteRange, ByteStream, GetObject, ListPage, ObjectMeta, PutOptions,
};
use dss_core::transfer::{RANGE, RANGED_MIN, transfer};

use crate::{Db, LocalBuckets};
use dss_config::Durability;

/// A local bucket seen as a remote one: no local files, no direct copies; counts the ranged
/// reads.
#[derive(Debug)]
struct Remote {
    inner: crate::LocalBlobStore,
    ranged: AtomicU64,
}

#[async_trait]
impl BlobStore for Remote {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        self.inner.put(key, body, opts).await
    }
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, BlobError> {
        if range.is_some() {
            self.ranged.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        self.inner.head(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, BlobError> {
        self.inner.list(prefix, start_after, limit).await
    }
    async fn copy(&self, from: &str, to: &str) -> Result<ObjectMeta, BlobError> {
        self.inner.copy(from, to).await
    }
    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        self.inner.delete(key).await
    }
    fn direct_url(&self, key: &str) -> Result<String, BlobError> {
        self.inner.direct_url(key)
    }
    async fn download_url(
        &self,
        key: &str,
        ttl: std::time::Duration,
        cd: Option<&str>,
    ) -> Result<String, BlobError> {
        self.inner.download_url(key, ttl, cd).await
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_read_in_ranges_ahead_of_the_writer_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).unwrap();
    let buckets = LocalBuckets::new(&db, dir.path().to_path_buf(), None, system(), false);
    let src = Remote {
        inner: buckets.create("src").unwrap(),
        ranged: AtomicU64::new(0),
    };
    let dst = Remote {
        inner: buckets.create("dst").unwrap(),
        ranged: AtomicU64::new(0),
    };
    let len = RANGED_MIN as usize + 5 * RANGE as usize / 2;
    let body: Bytes = (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let sums = checksums_of(&body);
    src.put_bytes("k", body.clone(), PutOptions::default())
        .await
        .unwrap();
    let progress = Arc::new(AtomicU64::new(0));
    let opts = PutOptions {
        size: Some(len as u64),
        expected: Some(sums.clone()),
        ..Default::default()
    };
    let m = transfer(
        &src,
        "k",
        len as u64,
        &dst,
        "copy",
        opts.clone(),
        progress.clone(),
    )
    .await
    .unwrap();
    assert_eq!(m.checksums, Some(sums.clone()));
    assert_eq!(progress.load(Ordering::Relaxed), len as u64);
    assert_eq!(
        src.ranged.load(Ordering::Relaxed),
        len.div_ceil(RANGE as usize) as u64
    );
    assert!(
        dst.inner.get_bytes("copy").await.unwrap() == body,
        "the bytes arrive in order"
    );

    // A source that is not what the copy expects stores nothing and takes its bytes back.
    let mut other = body.to_vec();
    other[len - 1] ^= 1;
    src.put_bytes("k", other.into(), PutOptions::default())
        .await
        .unwrap();
    let e = transfer(&src, "k", len as u64, &dst, "copy2", opts, progress.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, BlobError::ChecksumMismatch(_)), "{e}");
    assert!(dst.head("copy2").await.unwrap().is_none());
    assert_eq!(progress.load(Ordering::Relaxed), len as u64);
}
