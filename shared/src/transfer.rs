//! Copying objects between buckets (of one store or of different ones), verified against the
//! source's known checksums.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use futures::StreamExt;

use crate::checksum::Checksums;
use crate::ports::blob::{
    BlobError, BlobStore, ByteStream, CopyProgress, ObjectMeta, PutOptions, Verify,
};

/// Whether `meta` is an object with exactly this content: its size and, where the store
/// records them, all four checksums (else its S3-style ETag) match.
pub fn holds(meta: &ObjectMeta, expected: &Checksums, size: u64) -> bool {
    meta.size == size
        && match &meta.checksums {
            Some(c) => c == expected,
            None => meta.etag.trim_matches('"') == expected.s3_etag,
        }
}

/// What to copy.
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    /// The store holding the object.
    pub store: &'a dyn BlobStore,
    /// Its key.
    pub key: &'a str,
    /// Its checksums, as verified when it was stored.
    pub checksums: &'a Checksums,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub content_type: &'a str,
}

/// Copies `src` to `dst_key` of `dst` (replacing what is there) and verifies the bytes written
/// by size and CRC-32C against the source's checksums, which the destination then records.
/// `progress` gains the bytes as they are written; if the copy fails they are taken back.
pub async fn copy_object(
    src: CopySource<'_>,
    dst: &dyn BlobStore,
    dst_key: &str,
    progress: Arc<AtomicU64>,
) -> Result<ObjectMeta, BlobError> {
    let opts = PutOptions {
        content_type: Some(src.content_type.to_string()),
        size: Some(src.size),
        expected: Some(src.checksums.clone()),
        verify: Verify::Copy,
        ..Default::default()
    };
    transfer(src.store, src.key, src.size, dst, dst_key, opts, progress).await
}

/// Copies `src_key` of `src` (of `size` bytes) to `dst_key` of `dst` as a put with `opts`:
/// directly when the destination can (`BlobStore::copy_from`), else streamed. `progress` gains
/// the bytes as they are written; if the copy fails they are taken back.
pub async fn transfer(
    src: &dyn BlobStore,
    src_key: &str,
    size: u64,
    dst: &dyn BlobStore,
    dst_key: &str,
    opts: PutOptions,
    progress: Arc<AtomicU64>,
) -> Result<ObjectMeta, BlobError> {
    let counted = Arc::new(CopyProgress::new(progress));
    let copied = match dst
        .copy_from(src, src_key, dst_key, opts.clone(), counted.clone())
        .await
    {
        Ok(Some(m)) => Ok(m),
        Ok(None) => stream(src, src_key, size, dst, dst_key, opts, counted.clone()).await,
        Err(e) => Err(e),
    };
    if copied.is_err() {
        counted.undo();
    }
    copied
}

async fn stream(
    src: &dyn BlobStore,
    src_key: &str,
    size: u64,
    dst: &dyn BlobStore,
    dst_key: &str,
    opts: PutOptions,
    counted: Arc<CopyProgress>,
) -> Result<ObjectMeta, BlobError> {
    let obj = src.get(src_key, None).await?;
    if obj.meta.size != size {
        return Err(BlobError::SizeMismatch {
            expected: size,
            got: obj.meta.size,
        });
    }
    let body: ByteStream = Box::pin(obj.body.inspect(move |chunk| {
        if let Ok(c) = chunk {
            counted.add(c.len() as u64);
        }
    }));
    dst.put(dst_key, body, opts).await
}
