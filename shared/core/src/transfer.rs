//! Copying objects between buckets (of one store or of different ones), verified against the
//! source's known checksums.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::checksum::Checksums;
use crate::ports::blob::{
    BatchCopy, BlobError, BlobStore, ByteRange, ByteStream, CopyProgress, ObjectMeta, PutOptions,
    Verify,
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
    let opts = copy_options(&src);
    transfer(src.store, src.key, src.size, dst, dst_key, opts, progress).await
}

/// The put of a verified copy of `src`: its size, checksums (CRC-32C compared) and media type.
fn copy_options(src: &CopySource<'_>) -> PutOptions {
    PutOptions {
        content_type: Some(src.content_type.to_string()),
        size: Some(src.size),
        expected: Some(src.checksums.clone()),
        verify: Verify::Copy,
        ..Default::default()
    }
}

/// Copies each `(source, destination key)` of `items` into `dst` as [`copy_object`] copies
/// one: together where `dst` can ([`BlobStore::copy_batch`]; sources of one store), else one
/// after another. One result per item, in order.
pub async fn copy_objects(
    items: &[(CopySource<'_>, String)],
    dst: &dyn BlobStore,
    progress: Arc<AtomicU64>,
) -> Vec<Result<ObjectMeta, BlobError>> {
    let one_store = items
        .windows(2)
        .all(|w| std::ptr::addr_eq(w[0].0.store, w[1].0.store));
    if let (Some((first, _)), true) = (items.first(), one_store) {
        let batch = items
            .iter()
            .map(|(s, key)| BatchCopy {
                src_key: s.key.to_string(),
                key: key.clone(),
                opts: copy_options(s),
            })
            .collect();
        if let Some(done) = dst.copy_batch(first.store, batch, progress.clone()).await {
            return done;
        }
    }
    let mut done = Vec::with_capacity(items.len());
    for (s, key) in items {
        done.push(copy_object(*s, dst, key, progress.clone()).await);
    }
    done
}

/// Copies `src_key` of `src` (of `size` bytes) to `dst_key` of `dst` as a put with `opts`:
/// directly when the destination can (`BlobStore::copy_from`), else streamed (objects from
/// 64 MiB on read in 16 MiB ranges, four at once, ahead of the writer). `progress` gains
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

/// Objects at least this large are read in ranges, several at once, ahead of the writer (a
/// cloud source then serves them in parallel).
pub const RANGED_MIN: u64 = 64 * 1024 * 1024;
/// Bytes per range read.
pub const RANGE: u64 = 16 * 1024 * 1024;
/// Ranges read at once (their bytes wait in memory for the writer: 64 MiB at most).
const RANGES_AHEAD: usize = 4;

async fn stream(
    src: &dyn BlobStore,
    src_key: &str,
    size: u64,
    dst: &dyn BlobStore,
    dst_key: &str,
    opts: PutOptions,
    counted: Arc<CopyProgress>,
) -> Result<ObjectMeta, BlobError> {
    let count = move |chunk: &Result<Bytes, std::io::Error>| {
        if let Ok(c) = chunk {
            counted.add(c.len() as u64);
        }
    };
    if size < RANGED_MIN {
        let obj = src.get(src_key, None).await?;
        if obj.meta.size != size {
            return Err(BlobError::SizeMismatch {
                expected: size,
                got: obj.meta.size,
            });
        }
        let body: ByteStream = Box::pin(obj.body.inspect(count));
        return dst.put(dst_key, body, opts).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let body: ByteStream =
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).inspect(count));
    let (read, written) = tokio::join!(
        read_ranges(src, src_key, size, tx),
        dst.put(dst_key, body, opts)
    );
    // A failed read explains a failed write better than the write's own error.
    read?;
    written
}

/// Reads `key` of `src` (of `size` bytes) in ranges, [`RANGES_AHEAD`] at a time, and sends its
/// bytes in order into `tx` (until the receiver goes away). The object must not change meanwhile.
async fn read_ranges(
    src: &dyn BlobStore,
    key: &str,
    size: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), BlobError> {
    let ranges = (0..size).step_by(RANGE as usize).map(|start| ByteRange {
        start,
        end: Some((start + RANGE).min(size) - 1),
    });
    let mut parts = futures::stream::iter(ranges)
        .map(|r| async move {
            let obj = src.get(key, Some(r)).await?;
            if obj.meta.size != size {
                return Err(BlobError::SizeMismatch {
                    expected: size,
                    got: obj.meta.size,
                });
            }
            let chunks: Vec<Bytes> = obj.body.try_collect().await.map_err(BlobError::Body)?;
            Ok::<_, BlobError>((obj.meta.etag, chunks))
        })
        .buffered(RANGES_AHEAD);
    let mut etag: Option<String> = None;
    while let Some(part) = parts.next().await {
        let (tag, chunks) = match part {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return Err(e);
            }
        };
        if etag.get_or_insert_with(|| tag.clone()) != &tag {
            let e = BlobError::Backend(format!("{key} changed while it was copied"));
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            return Err(e);
        }
        for c in chunks {
            if tx.send(Ok(c)).await.is_err() {
                // The writer stopped; its error says why.
                return Ok(());
            }
        }
    }
    Ok(())
}
