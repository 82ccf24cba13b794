//! Copies into a local bucket from another local bucket (checkout, sync): the source file read
//! through one buffer, hashed, and the copy written at the object's own path when nothing is
//! there (else a temp file renamed over it), then recorded in a group commit; a batch of small
//! files copied one after another in one blocking task and placed in one commit group.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use dss_core::ports::blob::{
    BatchCopy, BlobError, BlobStore, CopyProgress, ObjectMeta, PutOptions,
};
use dss_core::upload::Hashing;

use super::local_blob::{LocalBlobStore, Placement, Spooled, WRITE_BUFFER, io_err};

/// Local copies up to this size run on the calling thread when no fsync follows.
const INLINE_COPY_MAX: u64 = 64 * 1024;

/// Copies the file at `from` into the new file `dst` through `buf`, feeding `hashing` as it
/// goes; returns it with the length written. `progress` counts the bytes.
fn copy_file(
    from: &Path,
    mut dst: std::fs::File,
    buf: &mut [u8],
    fsync: bool,
    key: &str,
    mut hashing: Hashing,
    progress: &CopyProgress,
) -> Result<(Hashing, u64), BlobError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound(key.to_string()),
            _ => io_err("open source", e),
        })?;
    let mut len = 0u64;
    loop {
        let n = src.read(buf).map_err(|e| io_err("read source", e))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])
            .map_err(|e| io_err("write copy", e))?;
        hashing.update_slice(&buf[..n]);
        len += n as u64;
        progress.add(n as u64);
    }
    if fsync {
        dst.sync_data().map_err(|e| io_err("fsync copy", e))?;
    }
    Ok((hashing, len))
}

/// The buffer a local copy of an object of `size` bytes reads through: all of it and one byte
/// more (to see the end in the same read) up to [`WRITE_BUFFER`].
fn copy_buffer(size: Option<u64>) -> usize {
    size.map_or(WRITE_BUFFER, |n| {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(WRITE_BUFFER)
    })
}

/// A local copy's `result`, where bytes that do not match may be a copy into the source cut
/// off by a crash, at its path but never recorded: then the source has no such object (yet).
async fn source_missing(
    src: &dyn BlobStore,
    src_key: &str,
    result: Result<ObjectMeta, BlobError>,
) -> Result<ObjectMeta, BlobError> {
    match result {
        Err(BlobError::ChecksumMismatch(_) | BlobError::SizeMismatch { .. })
            if src.head(src_key).await?.is_none() =>
        {
            Err(BlobError::NotFound(src_key.to_string()))
        }
        r => r,
    }
}

impl LocalBlobStore {
    /// Opens the file a local copy to `key` writes (see [`Spooled::create`]), its directory
    /// made ready.
    fn open_copy(&self, key: &str) -> Result<(std::fs::File, Spooled), BlobError> {
        let dest = self.data_path(key)?;
        let parent = dest
            .parent()
            .ok_or(BlobError::Backend("no parent".into()))?;
        self.ready_dir(parent, &dest)?;
        Spooled::create(&dest, &self.tmp)
    }

    /// The object a local copy of `len` bytes hashed by `hashing` stores, once its size and
    /// checksums are what `opts` expects.
    fn verified_copy(
        &self,
        key: &str,
        hashing: Hashing,
        len: u64,
        opts: &PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        match opts.size {
            Some(expected) if expected != len => {
                Err(BlobError::SizeMismatch { expected, got: len })
            }
            _ => self.verified(key, hashing.finish(), len, opts.clone()),
        }
    }

    /// [`BlobStore::copy_from`] of a local bucket: from another local bucket's file, hashed
    /// (all four checksums, or only the CRC-32C for `Verify::Copy`) and written in one
    /// blocking task (on the calling thread for small objects of buckets that skip fsync) — no
    /// stream; `Ok(None)` for other sources.
    pub(super) async fn copy_local(
        &self,
        src: &dyn BlobStore,
        src_key: &str,
        key: &str,
        opts: PutOptions,
        progress: Arc<CopyProgress>,
    ) -> Result<Option<ObjectMeta>, BlobError> {
        let Some(path) = src.local_file(src_key) else {
            return Ok(None);
        };
        let copy_of = self.prepare_put(key, &opts).await?;
        let hashing = Hashing::new(opts.size, copy_of);
        let (file, spooled) = self.open_copy(key)?;
        let (fsync, missing) = (self.fsync, src_key.to_string());
        let mut buf = vec![0u8; copy_buffer(opts.size)];
        let copy = move || copy_file(&path, file, &mut buf, fsync, &missing, hashing, &progress);
        let copied = if !self.fsync && opts.size.is_some_and(|n| n <= INLINE_COPY_MAX) {
            // Small and not fsynced: cheaper here than a hop to the blocking pool.
            copy()
        } else {
            tokio::task::spawn_blocking(copy)
                .await
                .map_err(|e| BlobError::Backend(e.to_string()))
                .and_then(|r| r)
        };
        let result = match copied.and_then(|(h, len)| self.verified_copy(key, h, len, &opts)) {
            Ok(meta) => self.commit(key, spooled, meta, opts.mode).await,
            Err(e) => {
                self.discard(key, spooled).await;
                Err(e)
            }
        };
        source_missing(src, src_key, result).await.map(Some)
    }

    /// [`BlobStore::copy_batch`] of a local bucket: `None` unless every source is a local file.
    /// The files are copied one after another in one blocking task through one buffer (as `cp`
    /// would), then placed in one commit group.
    pub(super) async fn copy_local_batch(
        &self,
        src: &dyn BlobStore,
        items: Vec<BatchCopy>,
        progress: Arc<AtomicU64>,
    ) -> Option<Vec<Result<ObjectMeta, BlobError>>> {
        let paths = items
            .iter()
            .map(|i| src.local_file(&i.src_key))
            .collect::<Option<Vec<_>>>()?;
        let cap = items.iter().map(|i| copy_buffer(i.opts.size)).max()?;
        let mut todo = Vec::with_capacity(items.len());
        for (i, path) in items.iter().zip(paths) {
            let copy_of = self.prepare_put(&i.key, &i.opts).await;
            let hashing = copy_of.map(|c| Hashing::new(i.opts.size, c));
            todo.push((i.key.clone(), i.src_key.clone(), path, hashing));
        }
        let this = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; cap];
            todo.into_iter()
                .map(|(key, src_key, path, hashing)| {
                    this.write_copy(&key, &src_key, &path, hashing, &mut buf, &progress)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let results = match written {
            Ok(written) => self.place_batch(&items, written).await,
            Err(e) => {
                let failed = |_| Err(BlobError::Backend(format!("copy task failed: {e}")));
                return Some(items.iter().map(failed).collect());
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (item, r) in items.iter().zip(results) {
            out.push(source_missing(src, &item.src_key, r).await);
        }
        Some(out)
    }

    /// Writes one copy of a batch (blocking): the file at `path` copied to `key` through `buf`.
    fn write_copy(
        &self,
        key: &str,
        src_key: &str,
        path: &Path,
        hashing: Result<Hashing, BlobError>,
        buf: &mut [u8],
        progress: &Arc<AtomicU64>,
    ) -> Written {
        let hashing = hashing.map_err(|e| (None, e))?;
        let (file, spooled) = self.open_copy(key).map_err(|e| (None, e))?;
        let counted = CopyProgress::new(progress.clone());
        match copy_file(path, file, buf, self.fsync, src_key, hashing, &counted) {
            Ok((hashing, len)) => Ok(CopyWritten {
                spooled,
                hashing,
                len,
                counted,
            }),
            Err(e) => {
                counted.undo();
                Err((Some(spooled), e))
            }
        }
    }

    /// Verifies and places the copies of a batch, all in one commit group; removes the files of
    /// those refused. One result per item.
    async fn place_batch(
        &self,
        items: &[BatchCopy],
        written: Vec<Written>,
    ) -> Vec<Result<ObjectMeta, BlobError>> {
        let mut results: Vec<Result<ObjectMeta, BlobError>> = Vec::with_capacity(items.len());
        let (mut works, mut placing) = (Vec::new(), Vec::new());
        for (item, w) in items.iter().zip(written) {
            let c = match w {
                Ok(c) => c,
                Err((spooled, e)) => {
                    if let Some(s) = spooled {
                        self.discard(&item.key, s).await;
                    }
                    results.push(Err(e));
                    continue;
                }
            };
            let placement = self
                .verified_copy(&item.key, c.hashing, c.len, &item.opts)
                .and_then(|meta| {
                    let p =
                        self.placement(&item.key, c.spooled.clone(), meta.clone(), item.opts.mode);
                    p.map(|p| (p, meta))
                });
            match placement {
                Ok((p, meta)) => {
                    placing.push((results.len(), p.parent.clone(), c.spooled, c.counted));
                    // Until the placement says otherwise.
                    results.push(Ok(meta));
                    works.push(p);
                }
                Err(e) => {
                    c.counted.undo();
                    self.discard(&item.key, c.spooled).await;
                    results.push(Err(e));
                }
            }
        }
        // Queued at once, so that they share a group.
        let placed = futures::future::join_all(
            works
                .into_iter()
                .map(|w| self.db.grouped(move |tx| Placement::apply(tx, w))),
        )
        .await;
        let mut woken = std::collections::BTreeSet::<String>::new();
        for ((i, parent, spooled, counted), r) in placing.into_iter().zip(placed) {
            match r.map_err(BlobError::from).and_then(|r| r) {
                Ok(queues) => woken.extend(queues),
                Err(e) => {
                    counted.undo();
                    self.forget_dir(&parent);
                    self.discard(&items[i].key, spooled).await;
                    results[i] = Err(e);
                }
            }
        }
        for q in woken {
            self.db.waker(&q).notify_waiters();
        }
        results
    }
}

/// One copy of a batch, written and hashed.
struct CopyWritten {
    spooled: Spooled,
    hashing: Hashing,
    len: u64,
    counted: CopyProgress,
}

/// A copy written, or why not (with its file, when one was created).
type Written = Result<CopyWritten, (Option<Spooled>, BlobError)>;
