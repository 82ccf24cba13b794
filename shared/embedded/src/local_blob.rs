//! A bucket on local disk.
//!
//! Object bytes live in files under the bucket directory (see [`dss_core::keypath`]); the object index
//! (size, ETag, checksums, creation time) lives in the embedded database, which keeps listing a page
//! cheap and ordered, and makes the index row the commit point: a put streams into a temp file,
//! fsyncs it, verifies size and checksums, then — in one transaction — renames it into place,
//! records the row and publishes the bucket event. A crash at any point leaves either the old object
//! or the new one, never a torn file, and an event exactly when an object was committed.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use dss_core::checksum::Checksums;
use dss_core::clock::{SharedClock, unix_ms};
use dss_core::ports::blob::{
    BatchCopy, BlobError, BlobStore, ByteRange, ByteStream, CopyProgress, GetObject, ListPage,
    ObjectMeta, PutMode, PutOptions, Verify,
};
use dss_core::ports::queue::{BucketEvent, BucketEventName};
use dss_core::signing::UrlSigner;
use dss_core::upload::Hashing;

use super::beneath::{self, Refused};
use super::db::{Db, DbError};
use super::queue::publish_in_tx;
use dss_config::Durability;
use dss_core::keypath;

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const READ_CHUNK: usize = 256 * 1024;
/// Body chunks are gathered into buffers of this size before writing and hashing.
pub(super) const WRITE_BUFFER: usize = 1024 * 1024;
/// Whole-object reads up to this size run on the calling thread (a page-cache copy).
const INLINE_READ_MAX: u64 = 64 * 1024;
/// Disk writeback is started after every this many bytes, so the final fsync waits for little.
const WRITEBACK_EVERY: u64 = 32 * 1024 * 1024;

/// Asks the kernel to start writing `len` bytes at `offset` to disk without waiting.
fn start_writeback(f: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is valid for the life of `f`; sync_file_range only reads its arguments.
    #[expect(unsafe_code, reason = "a libc call the standard library does not wrap")]
    let rc = unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "sync_file_range failed; the final fsync does all the work");
    }
}

/// Temp files untouched for this long belong to puts of processes that died (live puts write
/// theirs continuously); they are removed when a bucket is opened.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Removes temp files of puts that a crashed process left behind in `tmp`.
fn remove_abandoned(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let mut removed = 0u64;
    for e in entries.filter_map(Result::ok) {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= ABANDONED_AFTER);
        let part = e.file_name().to_string_lossy().ends_with(".part");
        if old && part && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %tmp.display(), files = removed, "removed temp files of interrupted puts");
    }
}

/// A new temp file's path in the directory `tmp`.
fn temp_path(tmp: &Path) -> PathBuf {
    tmp.join(format!("{}.part", uuid::Uuid::new_v4()))
}

/// Where a put's bytes are written before the put is placed.
#[derive(Debug, Clone)]
pub(super) enum Spooled {
    /// A temp file, renamed over the object's path when placed.
    Temp(PathBuf),
    /// The object's own path, created there because nothing was (the file is inode `ino`): an
    /// object is visible only once its row is committed, so no reader sees the file before,
    /// and placing it needs no rename.
    InPlace { path: PathBuf, ino: u64 },
}

impl Spooled {
    /// Opens a new file for a copy to `dest`: at `dest` itself when nothing is there, else a
    /// new temp file in `tmp`.
    pub(super) fn create(dest: &Path, tmp: &Path) -> Result<(std::fs::File, Self), BlobError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dest);
        match opened {
            Ok(f) => {
                let ino = f.metadata().map_err(|e| io_err("stat copy", e))?.ino();
                let path = dest.to_path_buf();
                Ok((f, Self::InPlace { path, ino }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let tmp = temp_path(tmp);
                let f = std::fs::File::create(&tmp).map_err(|e| io_err("create temp file", e))?;
                Ok((f, Self::Temp(tmp)))
            }
            Err(e) => Err(io_err("create copy", e)),
        }
    }

    /// Whether the file written in place is still the one at its path.
    fn still_there(path: &Path, ino: u64) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == ino)
    }
}

impl From<DbError> for BlobError {
    fn from(e: DbError) -> Self {
        if e.is_disk_full() {
            BlobError::StorageFull(e.to_string())
        } else {
            BlobError::Backend(e.to_string())
        }
    }
}

pub(super) fn io_err(context: &str, e: std::io::Error) -> BlobError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        BlobError::StorageFull(format!("{context}: {e}"))
    } else {
        BlobError::Backend(format!("{context}: {e}"))
    }
}

/// A local-disk bucket that emits bucket events onto an embedded topic.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    bucket: String,
    root: PathBuf,
    /// The bucket's directory, open: reads are confined to it (`beneath.rs`).
    root_dir: Arc<OwnedFd>,
    pub(super) tmp: PathBuf,
    pub(super) db: Db,
    events_topic: Option<String>,
    signer: Option<UrlSigner>,
    clock: SharedClock,
    pub(super) fsync: bool,
    dirs_ready: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

/// Directories remembered as created and confined (then forgotten all at once).
const READY_DIRS_MAX: usize = 4096;

type Row = (
    String,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn row_to_meta(r: Row) -> ObjectMeta {
    let (key, size, etag, content_type, created_ms, sha256, sha1, s3_etag, crc32c, origin, creator) =
        r;
    let checksums = match (sha256, sha1, s3_etag, crc32c) {
        (Some(sha256), Some(sha1), Some(s3_etag), Some(crc32c)) => Some(Checksums {
            sha256,
            sha1,
            s3_etag,
            crc32c,
        }),
        _ => None,
    };
    ObjectMeta {
        key,
        size: u64::try_from(size).unwrap_or(0),
        etag,
        content_type,
        created: OffsetDateTime::from_unix_timestamp_nanos(i128::from(created_ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        checksums,
        origin,
        correlation_id: None,
        traceparent: None,
        creator,
    }
}

const ROW_COLUMNS: &str =
    "key, size, etag, content_type, created_ms, sha256, sha1, s3_etag, crc32c, origin, creator";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

/// Up to `limit` index rows of `bucket` with keys from `lower` (inclusive or not) below `upper`.
fn list_rows(
    c: &rusqlite::Connection,
    bucket: &str,
    lower: &str,
    inclusive: bool,
    upper: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = c.prepare_cached(&list_sql(inclusive))?;
    stmt.query_map(params![bucket, lower, upper, limit as i64], read_row)?
        .collect()
}

/// The listing query: one lower bound, so SQLite starts the index range there.
fn list_sql(inclusive: bool) -> String {
    let op = if inclusive { ">=" } else { ">" };
    format!(
        "SELECT {ROW_COLUMNS} FROM objects WHERE bucket = ?1 AND key {op} ?2 AND key < ?3 ORDER BY key LIMIT ?4"
    )
}

impl LocalBlobStore {
    /// Opens the bucket `bucket` stored under `root`; created objects and deletions are published to
    /// `events_topic` when given; download URLs are signed by `signer` when given.
    pub fn open(
        db: &Db,
        bucket: &str,
        root: &Path,
        events_topic: Option<&str>,
        signer: Option<UrlSigner>,
        clock: SharedClock,
    ) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root).map_err(|e| io_err("create bucket dir", e))?;
        let root = root
            .canonicalize()
            .map_err(|e| io_err("resolve bucket dir", e))?;
        let root_dir = std::fs::File::open(&root)
            .map_err(|e| io_err("open bucket dir", e))?
            .into();
        let tmp = root.join(".tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| io_err("create temp dir", e))?;
        remove_abandoned(&tmp);
        Ok(Self {
            bucket: bucket.to_string(),
            root,
            root_dir: Arc::new(root_dir),
            tmp,
            db: db.clone(),
            events_topic: events_topic.map(str::to_string),
            signer,
            clock,
            fsync: true,
            dirs_ready: Arc::default(),
        })
    }

    /// Whether object data is fsynced before it becomes visible (the default). Buckets whose
    /// objects can be made again (checkout copies) may skip it unless power-loss durability is
    /// configured.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The directory holding this bucket's files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens an object's file for reading, confined to the bucket: no symbolic link followed
    /// and no way out of its directory (in one `openat2` call where the kernel has it; else
    /// the file's directory is resolved first and a final symlink refused).
    /// `rel` is the file's path inside the bucket's directory, `root` (open as `root_dir`).
    fn open_confined(
        root_dir: &OwnedFd,
        root: &Path,
        rel: &Path,
        key: &str,
    ) -> Result<std::fs::File, BlobError> {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound(key.to_string()),
            _ => io_err("open object", e),
        };
        if let Some(open) = beneath::open_read(root_dir, rel) {
            return open.map_err(|refused| match refused {
                Refused::Escapes => BlobError::InvalidKey {
                    key: key.to_string(),
                    reason: "path escapes the bucket",
                },
                Refused::Io(e) => opened(e),
            });
        }
        let path = root.join(rel);
        Self::confined(root, &path)?;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(opened)
    }

    /// Reads a whole object file (confined to the bucket; `rel` as for `open_confined`).
    fn read_whole(
        root_dir: &OwnedFd,
        root: &Path,
        rel: &Path,
        key: &str,
        size: u64,
    ) -> Result<Bytes, BlobError> {
        use std::io::Read;
        let mut file = Self::open_confined(root_dir, root, rel, key)?;
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut buf)
            .map_err(|e| io_err("read object", e))?;
        Ok(Bytes::from(buf))
    }

    /// The bucket event for `key` as (topic, JSON body), when this bucket publishes events.
    fn event(
        &self,
        key: &str,
        size: u64,
        etag: &str,
        event_name: BucketEventName,
        time: OffsetDateTime,
    ) -> Option<(String, String)> {
        let topic = self.events_topic.clone()?;
        let event = BucketEvent {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            size,
            etag: etag.to_string(),
            event_name,
            time,
            correlation_id: dss_core::correlation::current(),
            traceparent: dss_core::correlation::traceparent(),
        };
        Some((topic, serde_json::to_string(&event).unwrap_or_default()))
    }

    pub(super) fn data_path(&self, key: &str) -> Result<PathBuf, BlobError> {
        Ok(self.root.join(Self::rel_path(key)?))
    }

    /// The path of `key`'s data file inside the bucket's directory.
    fn rel_path(key: &str) -> Result<PathBuf, BlobError> {
        keypath::to_path(key).map_err(|reason| BlobError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    }

    /// Ensures the parent directory of `path` resolves inside the bucket (no symlink escape).
    fn confined(root: &Path, path: &Path) -> Result<(), BlobError> {
        let parent = path
            .parent()
            .ok_or(BlobError::Backend("path without parent".into()))?;
        let real = parent
            .canonicalize()
            .map_err(|e| io_err("resolve object dir", e))?;
        if real.starts_with(root) {
            Ok(())
        } else {
            Err(BlobError::InvalidKey {
                key: path.display().to_string(),
                reason: "path escapes the bucket",
            })
        }
    }

    async fn meta(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        let (bucket, key) = (self.bucket.clone(), key.to_string());
        let row = self.db.read_inline(move |c| {
            let sql = format!("SELECT {ROW_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2");
            Ok(c.prepare_cached(&sql)?
                .query_row(params![bucket, key], read_row)
                .optional()?)
        })?;
        Ok(row.map(row_to_meta))
    }

    /// Streams a body into a new temp file, hashing as it goes; returns (path, checksums, size).
    /// With `copy_of`, only the CRC-32C is computed and the checksums returned are `copy_of`'s
    /// when it matches (else a mismatch).
    async fn spool(
        &self,
        mut body: ByteStream,
        size: Option<u64>,
        copy_of: Option<Checksums>,
    ) -> Result<(PathBuf, Checksums, u64), BlobError> {
        let tmp = temp_path(&self.tmp);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let path = tmp.clone();
        let fsync = self.fsync;
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(Checksums, u64)> {
            let mut f = std::fs::File::create(&path)?;
            let mut h = Hashing::new(size, copy_of);
            let mut flushed = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                f.write_all(&chunk)?;
                h.update(chunk);
                if fsync && h.hashed() - flushed >= WRITEBACK_EVERY {
                    start_writeback(&f, flushed, h.hashed() - flushed);
                    flushed = h.hashed();
                }
            }
            if fsync {
                f.sync_data()?;
            }
            let len = h.hashed();
            Ok((h.finish(), len))
        });
        let mut failure = None;
        let mut got = 0u64;
        let mut pending = bytes::BytesMut::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) => {
                    got += chunk.len() as u64;
                    if let Some(expected) = size.filter(|e| got > *e) {
                        failure = Some(BlobError::SizeMismatch { expected, got });
                        break;
                    }
                    let full = if pending.is_empty() && chunk.len() >= WRITE_BUFFER {
                        chunk
                    } else {
                        pending.extend_from_slice(&chunk);
                        if pending.len() < WRITE_BUFFER {
                            continue;
                        }
                        pending.split().freeze()
                    };
                    if tx.send(full).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(BlobError::Body(e));
                    break;
                }
            }
        }
        if failure.is_none() && !pending.is_empty() {
            let _ = tx.send(pending.freeze()).await;
        }
        drop(tx);
        let written = writer.await.map_err(|e| BlobError::Backend(e.to_string()));
        let result = match (failure, written) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(e),
            (None, Ok(Err(e))) => Err(io_err("write temp file", e)),
            (None, Ok(Ok((sums, len)))) => match size {
                Some(expected) if expected != len => {
                    Err(BlobError::SizeMismatch { expected, got: len })
                }
                _ => Ok((tmp.clone(), sums, len)),
            },
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Checks a put before its body is read; returns the known checksums of a copy put.
    pub(super) async fn prepare_put(
        &self,
        key: &str,
        opts: &PutOptions,
    ) -> Result<Option<Checksums>, BlobError> {
        self.data_path(key)?;
        if opts.mode == PutMode::Create && self.meta(key).await?.is_some() {
            return Err(BlobError::AlreadyExists(key.to_string()));
        }
        match opts.verify {
            Verify::Full => Ok(None),
            Verify::Copy => opts.expected.clone().map(Some).ok_or(BlobError::Backend(
                "a copy put needs the expected checksums".into(),
            )),
        }
    }

    /// Verifies a spooled body against the expected checksums and commits it.
    async fn finish_put(
        &self,
        key: &str,
        spooled: Spooled,
        sums: Checksums,
        size: u64,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        match self.verified(key, sums, size, opts.clone()) {
            Ok(meta) => self.commit(key, spooled, meta, opts.mode).await,
            Err(e) => {
                self.discard(key, spooled).await;
                Err(e)
            }
        }
    }

    /// The object a put of `size` bytes with checksums `sums` stores, once they are what
    /// `opts` expects.
    pub(super) fn verified(
        &self,
        key: &str,
        sums: Checksums,
        size: u64,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        if let Some(expected) = &opts.expected {
            let bad = expected.mismatches(&sums);
            if !bad.is_empty() {
                return Err(BlobError::ChecksumMismatch(bad));
            }
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            etag: sums.s3_etag.clone(),
            content_type: opts
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
            created: self.clock.now(),
            checksums: Some(sums),
            origin: opts.origin,
            correlation_id: None,
            traceparent: None,
            creator: opts.creator,
        })
    }

    /// Puts a spooled file in place (a temp file by rename) and records it, in one transaction
    /// with its event; concurrent commits of the bucket share a transaction (group commit).
    pub(super) async fn commit(
        &self,
        key: &str,
        spooled: Spooled,
        meta: ObjectMeta,
        mode: PutMode,
    ) -> Result<ObjectMeta, BlobError> {
        let placed = self.place(key, spooled.clone(), meta.clone(), mode).await;
        match placed {
            Ok(woken) => {
                for q in woken {
                    self.db.waker(&q).notify_waiters();
                }
                Ok(meta)
            }
            Err(e) => {
                self.discard(key, spooled).await;
                Err(e)
            }
        }
    }

    /// Removes the file of a put that will not be placed. A file written in place is removed
    /// only while it is still at its path and no object is recorded there, checked in a write
    /// transaction (placements and deletes run in one), so a concurrent put's object is never
    /// touched.
    pub(super) async fn discard(&self, key: &str, spooled: Spooled) {
        let (path, ino) = match spooled {
            Spooled::Temp(tmp) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return;
            }
            Spooled::InPlace { path, ino } => (path, ino),
        };
        let (bucket, k) = (self.bucket.clone(), key.to_string());
        let removed = self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let recorded = tx
                    .prepare_cached("SELECT 1 FROM objects WHERE bucket = ?1 AND key = ?2")?
                    .exists(params![bucket, k])?;
                if !recorded && Spooled::still_there(&path, ino) {
                    let _ = std::fs::remove_file(&path);
                }
                tx.commit()?;
                Ok(())
            })
            .await;
        if let Err(e) = removed {
            tracing::warn!(key, error = %e, "could not remove the file of a failed copy");
        }
    }

    async fn place(
        &self,
        key: &str,
        spooled: Spooled,
        meta: ObjectMeta,
        mode: PutMode,
    ) -> Result<Vec<String>, BlobError> {
        let work = self.placement(key, spooled, meta, mode)?;
        let parent = work.parent.clone();
        let placed = self
            .db
            .grouped(move |tx| Placement::apply(tx, work))
            .await?;
        if placed.is_err() {
            self.forget_dir(&parent);
        }
        placed
    }

    /// A failed placement's directory may have gone: it is checked again next time.
    pub(super) fn forget_dir(&self, parent: &Path) {
        self.dirs_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(parent);
    }

    /// What placing `spooled` as `key` writes, with the event it publishes.
    pub(super) fn placement(
        &self,
        key: &str,
        spooled: Spooled,
        meta: ObjectMeta,
        mode: PutMode,
    ) -> Result<Placement, BlobError> {
        let dest = self.data_path(key)?;
        let parent = dest
            .parent()
            .ok_or(BlobError::Backend("no parent".into()))?
            .to_path_buf();
        self.ready_dir(&parent, &dest)?;
        let event = self.event(
            key,
            meta.size,
            &meta.etag,
            BucketEventName::Created,
            meta.created,
        );
        Ok(Placement {
            bucket: self.bucket.clone(),
            spooled,
            dest,
            parent,
            meta,
            mode,
            event,
            power: self.db.durability() == Durability::Power,
        })
    }

    /// Creates the directory of an object and checks it resolves inside the bucket, once per
    /// directory and process (a bundle's files share one).
    pub(super) fn ready_dir(&self, parent: &Path, dest: &Path) -> Result<(), BlobError> {
        let known = |d: &Path| {
            self.dirs_ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(d)
        };
        if known(parent) {
            return Ok(());
        }
        std::fs::create_dir_all(parent).map_err(|e| io_err("create object dir", e))?;
        Self::confined(&self.root, dest)?;
        let mut dirs = self.dirs_ready.lock().unwrap_or_else(|p| p.into_inner());
        if dirs.len() >= READY_DIRS_MAX {
            dirs.clear();
        }
        dirs.insert(parent.to_path_buf());
        Ok(())
    }
}

/// One object to put in place and record, within a group's transaction.
pub(super) struct Placement {
    bucket: String,
    spooled: Spooled,
    dest: PathBuf,
    pub(super) parent: PathBuf,
    meta: ObjectMeta,
    mode: PutMode,
    event: Option<(String, String)>,
    power: bool,
}

/// Outcome of one placement: the queues woken by its event, or why it was refused.
pub(super) type Placed = Result<Vec<String>, BlobError>;

impl Placement {
    pub(super) fn apply(tx: &rusqlite::Transaction<'_>, w: Placement) -> Result<Placed, DbError> {
        let m = &w.meta;
        let exists = tx
            .prepare_cached("SELECT 1 FROM objects WHERE bucket = ?1 AND key = ?2")?
            .exists(params![w.bucket, m.key])?;
        if exists && w.mode == PutMode::Create {
            return Ok(Err(BlobError::AlreadyExists(m.key.clone())));
        }
        match &w.spooled {
            Spooled::Temp(tmp) => {
                if let Err(e) = std::fs::rename(tmp, &w.dest) {
                    return Ok(Err(io_err("rename into place", e)));
                }
            }
            // A put that found this one's unrecorded file there renamed its own over it since.
            Spooled::InPlace { ino, .. } if !Spooled::still_there(&w.dest, *ino) => {
                return Ok(Err(BlobError::Backend(format!(
                    "{}: a concurrent put of this key took its place; try again",
                    m.key
                ))));
            }
            Spooled::InPlace { .. } => {}
        }
        if w.power
            && let Err(e) = std::fs::File::open(&w.parent).and_then(|d| d.sync_all())
        {
            return Ok(Err(io_err("fsync dir", e)));
        }
        let created_ms = unix_ms(m.created);
        let s = m.checksums.as_ref();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO objects (bucket, key, size, etag, content_type, created_ms, sha256, sha1, s3_etag, crc32c, origin, creator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            w.bucket,
            m.key,
            m.size as i64,
            m.etag,
            m.content_type,
            created_ms,
            s.map(|s| &s.sha256),
            s.map(|s| &s.sha1),
            s.map(|s| &s.s3_etag),
            s.map(|s| &s.crc32c),
            m.origin,
            m.creator,
        ])?;
        Ok(Ok(match &w.event {
            Some((topic, body)) => publish_in_tx(tx, topic, body, created_ms)?,
            None => Vec::new(),
        }))
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        let copy_of = self.prepare_put(key, &opts).await?;
        let (tmp, sums, size) = self.spool(body, opts.size, copy_of).await?;
        self.finish_put(key, Spooled::Temp(tmp), sums, size, opts)
            .await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, BlobError> {
        let rel = Self::rel_path(key)?;
        let meta = self
            .meta(key)
            .await?
            .ok_or_else(|| BlobError::NotFound(key.to_string()))?;
        let resolved = match range {
            Some(r) => Some(r.resolve(meta.size).ok_or(BlobError::RangeNotSatisfiable)?),
            None => None,
        };
        let (root_dir, root, k) = (self.root_dir.clone(), self.root.clone(), key.to_string());
        let file =
            tokio::task::spawn_blocking(move || Self::open_confined(&root_dir, &root, &rel, &k))
                .await
                .map_err(|e| BlobError::Backend(e.to_string()))??;
        let mut file = tokio::fs::File::from_std(file);
        let (start, len) = resolved.unwrap_or((0, meta.size));
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| io_err("seek", e))?;
        }
        let body = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
        Ok(GetObject {
            meta,
            range: resolved,
            body: Box::pin(body),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        self.data_path(key)?;
        self.meta(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, BlobError> {
        let bucket = self.bucket.clone();
        // One lower bound, so SQLite starts the index range there: with both `key >= prefix`
        // and `key > start_after` it ranged from the prefix and filtered, rescanning every
        // earlier page.
        let (lower, inclusive) = match start_after {
            Some(s) if s >= prefix => (s.to_string(), false),
            _ => (prefix.to_string(), true),
        };
        // Keys >= prefix and < prefix + U+10FFFF are exactly the keys starting with prefix.
        let upper = format!("{prefix}\u{10FFFF}");
        let limit = limit.max(1);
        // Pages are bounded (callers ask for at most a few thousand keys): run inline.
        let rows = self
            .db
            .read_inline(|c| Ok(list_rows(c, &bucket, &lower, inclusive, &upper, limit + 1)?))?;
        let more = rows.len() > limit;
        let objects: Vec<ObjectMeta> = rows.into_iter().take(limit).map(row_to_meta).collect();
        let next_start_after = if more {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<ObjectMeta, BlobError> {
        let src_path = self.data_path(from)?;
        self.data_path(to)?;
        let src = self
            .meta(from)
            .await?
            .ok_or_else(|| BlobError::NotFound(from.to_string()))?;
        let tmp = temp_path(&self.tmp);
        let (t, fsync) = (tmp.clone(), self.fsync);
        // Objects are replaced by rename, never modified in place, so a hard link is a safe copy.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if std::fs::hard_link(&src_path, &t).is_ok() {
                return Ok(());
            }
            std::fs::copy(&src_path, &t)?;
            if fsync {
                std::fs::File::open(&t)?.sync_data()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Backend(e.to_string()))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound(from.to_string()),
            _ => io_err("copy", e),
        })?;
        let meta = ObjectMeta {
            key: to.to_string(),
            created: self.clock.now(),
            origin: None,
            creator: None,
            ..src
        };
        self.commit(to, Spooled::Temp(tmp), meta, PutMode::Overwrite)
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.data_path(key)?;
        let (bucket, k, now) = (self.bucket.clone(), key.to_string(), self.clock.now());
        let event = self.event(key, 0, "", BucketEventName::Removed, now);
        let outcome = self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.execute(
                    "DELETE FROM objects WHERE bucket = ?1 AND key = ?2",
                    params![bucket, k],
                )?;
                if n == 0 {
                    return Ok(None);
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(DbError::Task(format!("remove object file: {e}"))),
                }
                let woken = match &event {
                    Some((topic, body)) => publish_in_tx(&tx, topic, body, unix_ms(now))?,
                    None => Vec::new(),
                };
                tx.commit()?;
                Ok(Some(woken))
            })
            .await?;
        match outcome {
            Some(woken) => {
                for q in woken {
                    self.db.waker(&q).notify_waiters();
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Small documents (read often) are read on the calling thread; larger ones on the blocking pool.
    async fn get_bytes(&self, key: &str) -> Result<Bytes, BlobError> {
        let rel = Self::rel_path(key)?;
        let (bucket, k) = (self.bucket.clone(), key.to_string());
        let size: Option<i64> = self.db.read_inline(|c| {
            Ok(
                c.prepare_cached("SELECT size FROM objects WHERE bucket = ?1 AND key = ?2")?
                    .query_row(params![bucket, k], |r| r.get(0))
                    .optional()?,
            )
        })?;
        let Some(size) = size else {
            return Err(BlobError::NotFound(key.to_string()));
        };
        let size = u64::try_from(size).unwrap_or(0);
        let (root_dir, root, k) = (self.root_dir.clone(), self.root.clone(), key.to_string());
        let read = move || Self::read_whole(&root_dir, &root, &rel, &k, size);
        if size <= INLINE_READ_MAX {
            read()
        } else {
            tokio::task::spawn_blocking(read)
                .await
                .map_err(|e| BlobError::Backend(e.to_string()))?
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn local_file(&self, key: &str) -> Option<PathBuf> {
        self.data_path(key).ok()
    }

    /// From another local bucket (see `local_copy.rs`).
    async fn copy_from(
        &self,
        src: &dyn BlobStore,
        src_key: &str,
        key: &str,
        opts: PutOptions,
        progress: Arc<CopyProgress>,
    ) -> Result<Option<ObjectMeta>, BlobError> {
        self.copy_local(src, src_key, key, opts, progress).await
    }

    /// From another local bucket (see `local_copy.rs`).
    async fn copy_batch(
        &self,
        src: &dyn BlobStore,
        items: Vec<BatchCopy>,
        progress: Arc<AtomicU64>,
    ) -> Option<Vec<Result<ObjectMeta, BlobError>>> {
        self.copy_local_batch(src, items, progress).await
    }

    fn direct_url(&self, key: &str) -> Result<String, BlobError> {
        Ok(format!("file://{}", self.data_path(key)?.display()))
    }

    async fn download_url(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: Option<&str>,
    ) -> Result<String, BlobError> {
        self.data_path(key)?;
        let signer = self.signer.as_ref().ok_or(BlobError::Backend(
            "this bucket has no URL signer configured".into(),
        ))?;
        let expires = self.clock.now().unix_timestamp()
            + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        Ok(signer.sign(&self.bucket, key, expires, content_disposition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_of_interrupted_puts_are_removed_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let (old, fresh, other) = (
            dir.path().join("a.part"),
            dir.path().join("b.part"),
            dir.path().join("keep.txt"),
        );
        for p in [&old, &fresh, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - ABANDONED_AFTER - Duration::from_secs(5);
        for p in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        remove_abandoned(dir.path());
        assert!(!old.exists(), "an old temp file is removed");
        assert!(fresh.exists(), "a temp file being written is kept");
        assert!(other.exists(), "only temp files are touched");
    }

    #[tokio::test]
    async fn reads_never_follow_a_symlink_out_of_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), Durability::Process).unwrap();
        let store = LocalBlobStore::open(
            &db,
            "b",
            &dir.path().join("b"),
            None,
            None,
            dss_core::clock::system(),
        )
        .unwrap();
        for key in ["d/f", "d/g"] {
            store
                .put_bytes(key, Bytes::from_static(b"inside"), PutOptions::default())
                .await
                .unwrap();
        }
        // The object's directory replaced by a link to another directory with the same names.
        let (f, g) = (
            store.data_path("d/f").unwrap(),
            store.data_path("d/g").unwrap(),
        );
        let parent = f.parent().unwrap();
        for file in [&f, &g] {
            std::fs::write(outside.path().join(file.file_name().unwrap()), b"outside").unwrap();
        }
        std::fs::rename(parent, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), parent).unwrap();
        let got = store.get_bytes("d/f").await;
        assert!(matches!(got, Err(BlobError::InvalidKey { .. })), "{got:?}");
        assert!(matches!(
            store.get("d/f", None).await.map(|_| ()),
            Err(BlobError::InvalidKey { .. })
        ));
        // A final component that is a link is refused too.
        std::fs::remove_file(parent).unwrap();
        std::fs::rename(dir.path().join("moved"), parent).unwrap();
        std::fs::remove_file(&g).unwrap();
        std::os::unix::fs::symlink(outside.path().join(g.file_name().unwrap()), &g).unwrap();
        assert!(store.get_bytes("d/g").await.is_err());
        assert!(store.get("d/g", None).await.is_err());
        assert_eq!(
            store.get_bytes("d/f").await.unwrap(),
            Bytes::from_static(b"inside"),
            "the object itself is read"
        );
    }

    #[test]
    fn a_deep_listing_page_reads_only_that_page() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::db::open_conn(&dir.path().join("t.db"), Durability::Process).unwrap();
        c.execute_batch(
            "CREATE TABLE objects (bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
             content_type TEXT NOT NULL, created_ms INTEGER NOT NULL, sha256 TEXT, sha1 TEXT, s3_etag TEXT, crc32c TEXT,
             origin TEXT, creator TEXT, PRIMARY KEY (bucket, key)) WITHOUT ROWID;",
        )
        .unwrap();
        {
            let mut ins = c
                .prepare(
                    "INSERT INTO objects VALUES ('b', ?1, 1, 'e', 't', 0, NULL, NULL, NULL, NULL, NULL, NULL)",
                )
                .unwrap();
            for i in 0..20_000 {
                ins.execute(params![format!("bundles/{i:06}")]).unwrap();
            }
        }
        let rows = list_rows(&c, "b", "bundles/019000", false, "bundles/\u{10FFFF}", 100).unwrap();
        assert_eq!(rows.first().map(|r| r.0.as_str()), Some("bundles/019001"));
        assert_eq!(rows.len(), 100);
        let steps = c
            .prepare_cached(&list_sql(false))
            .unwrap()
            .get_status(rusqlite::StatementStatus::VmStep);
        for start in ["bundles/000100", "bundles/000200", "bundles/000300"] {
            list_rows(&c, "b", start, false, "bundles/\u{10FFFF}", 10).unwrap();
        }
        let reprepared = c
            .prepare_cached(&list_sql(false))
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(
            reprepared, 0,
            "new bounds must not re-prepare the listing statement"
        );
        assert!(
            steps < 100 * 50,
            "a page of 100 rows took {steps} VM steps: the scan did not start at start_after"
        );
    }
}
