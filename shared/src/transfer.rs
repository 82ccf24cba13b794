//! Copying objects between buckets (of one store or of different ones), verified against the
//! source's known checksums.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;

use crate::checksum::Checksums;
use crate::ports::blob::{BlobError, BlobStore, ByteStream, ObjectMeta, PutOptions, Verify};

/// Whether `meta` is an object with exactly this content: its size and, where the store
/// records them, all four checksums (else its S3-style ETag) match.
pub fn holds(meta: &ObjectMeta, expected: &Checksums, size: u64) -> bool {
    meta.size == size
        && match &meta.checksums {
            Some(c) => c == expected,
            None => meta.etag.trim_matches('"') == expected.s3_etag,
        }
}

/// Objects up to this size are copied whole, in memory.
const WHOLE_COPY_MAX: u64 = 1024 * 1024;

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
    if let Some(m) = dst
        .copy_from(src.store, src.key, dst_key, opts.clone(), progress.clone())
        .await?
    {
        return Ok(m);
    }
    if src.size <= WHOLE_COPY_MAX {
        // Small objects in one piece: stores read and write them without streaming machinery.
        let data = src.store.get_bytes(src.key).await?;
        let put = dst.put_bytes(dst_key, data, opts).await;
        if put.is_ok() {
            progress.fetch_add(src.size, Ordering::Relaxed);
        }
        return put;
    }
    let obj = src.store.get(src.key, None).await?;
    if obj.meta.size != src.size {
        return Err(BlobError::SizeMismatch {
            expected: src.size,
            got: obj.meta.size,
        });
    }
    let mine = Arc::new(AtomicU64::new(0));
    let (p, m) = (progress.clone(), mine.clone());
    let body: ByteStream = Box::pin(obj.body.inspect(move |chunk| {
        if let Ok(c) = chunk {
            p.fetch_add(c.len() as u64, Ordering::Relaxed);
            m.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
    }));
    let put = dst.put(dst_key, body, opts).await;
    if put.is_err() {
        progress.fetch_sub(mine.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    put
}
