//! Copying a bundle's files into the destination, several at once, skipping files already
//! there and verified (so a job taken over after a crash does not copy them again), with the
//! job's progress written into its status while it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dss_core::checksum::Checksums;
use dss_core::clock::unix_ms;
use dss_core::model::{BundleFileEntry, ObjectKey};
use dss_runtime::checkout::{CheckoutStatus, Progress, write_status};
use std::collections::HashMap;

use dss_core::ports::{BlobError, BlobStore, ObjectMeta};
use dss_core::transfer::{CopySource, copy_objects, holds};
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

/// Why copying stopped.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Cannot succeed (the user is told why).
    Fail(String),
    /// May succeed later (storage down, a blob not replicated yet).
    Retry(String),
}

/// One object to copy from the main bucket's blob to `dest_key`.
pub(crate) struct Item {
    /// Where it goes in the destination.
    pub dest_key: String,
    /// What the user calls it (in causes).
    pub name: String,
    /// Its checksums (naming the blob).
    pub checksums: Checksums,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub content_type: String,
}

impl Item {
    /// A bundle member going to `{prefix}/{name}`.
    pub fn member(prefix: &str, f: &BundleFileEntry) -> Self {
        Self {
            dest_key: format!("{prefix}/{}", f.name),
            name: f.name.clone(),
            checksums: f.checksums(),
            size: f.size,
            content_type: f.content_type.clone(),
        }
    }
}

/// Where the files go.
pub(crate) struct Target {
    /// The destination bucket.
    pub store: Arc<dyn BlobStore>,
    /// Copies made before this time (ms) are made again even when they hold the right bytes
    /// (refreshing checkout copies); `None` keeps every verified copy.
    pub renew_before_ms: Option<i64>,
    /// A prefix holding every destination key: what is there already is found by listing it
    /// once instead of one lookup per file.
    pub prefix: Option<String>,
}

/// What the destination holds already, by key (`None`: look each key up).
type Present = Option<HashMap<String, ObjectMeta>>;

async fn present(target: &Target) -> Result<Present, CopyError> {
    let Some(prefix) = &target.prefix else {
        return Ok(None);
    };
    let found = target
        .store
        .list_all(prefix)
        .await
        .map_err(|e| CopyError::Retry(format!("listing the destination: {e}")))?;
    Ok(Some(
        found.into_iter().map(|o| (o.key.clone(), o)).collect(),
    ))
}

/// Writes a job's progress into its status.
pub(crate) struct Reporter {
    /// The replica's checkout bucket.
    pub status_store: Arc<dyn BlobStore>,
    /// The job.
    pub job_id: String,
    /// How often.
    pub every: Duration,
}

struct Counters {
    files: AtomicU64,
    bytes: Arc<AtomicU64>,
    files_total: u64,
    bytes_total: u64,
}

impl Counters {
    fn snapshot(&self) -> Progress {
        Progress {
            files_done: self.files.load(Ordering::Relaxed),
            files_total: self.files_total,
            bytes_done: self.bytes.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
        }
    }
}

fn classify(name: &str, e: BlobError) -> CopyError {
    match e {
        BlobError::InvalidKey { reason, .. } => CopyError::Fail(format!(
            "file {name:?} cannot be written: {reason} (FAILED)"
        )),
        BlobError::ChecksumMismatch(_) | BlobError::SizeMismatch { .. } => CopyError::Fail(
            format!("the stored data of file {name:?} does not match its checksums: {e} (FAILED)"),
        ),
        BlobError::NotFound(key) => CopyError::Retry(format!(
            "the data of file {name:?} ({key}) is not there yet"
        )),
        other => CopyError::Retry(format!("copying file {name:?}: {other}")),
    }
}

/// Files up to this size are copied in batches (see [`copy_objects`]): between local buckets
/// that saves a task, a thread hop and most of a commit per file.
const BATCH_MAX_SIZE: u64 = 1024 * 1024;
/// Most files per batch.
const BATCH_FILES: usize = 32;

/// `files` as the batches of one task each, for `concurrency` tasks at a time: each large file
/// alone, the small ones (in manifest order, so a batch's files share a directory) up to
/// [`BATCH_FILES`] to a batch, but in at least `concurrency` batches where there are as many
/// files (a destination that cannot copy a batch at once copies its files one after another).
fn batches(files: Vec<Item>, concurrency: usize) -> Vec<Vec<Item>> {
    let (small, large): (Vec<Item>, Vec<Item>) =
        files.into_iter().partition(|f| f.size <= BATCH_MAX_SIZE);
    let per_batch = small
        .len()
        .div_ceil(concurrency.max(1))
        .clamp(1, BATCH_FILES);
    let mut work: Vec<Vec<Item>> = large.into_iter().map(|f| vec![f]).collect();
    let mut small = small.into_iter().peekable();
    while small.peek().is_some() {
        work.push(small.by_ref().take(per_batch).collect());
    }
    work
}

/// Whether the destination holds `f` already (and it need not be renewed).
async fn kept(f: &Item, target: &Target, listed: &Present) -> Result<bool, CopyError> {
    let present = match listed {
        Some(map) => map.get(&f.dest_key).cloned(),
        None => target
            .store
            .head(&f.dest_key)
            .await
            .map_err(|e| classify(&f.name, e))?,
    };
    Ok(present.is_some_and(|m| {
        holds(&m, &f.checksums, f.size)
            && target
                .renew_before_ms
                .is_none_or(|t| unix_ms(m.created) >= t)
    }))
}

async fn copy_work(
    src: Arc<dyn BlobStore>,
    files: Vec<Item>,
    target: Arc<Target>,
    listed: Arc<Present>,
    counters: Arc<Counters>,
) -> Result<(), CopyError> {
    let mut todo = Vec::with_capacity(files.len());
    for f in files {
        if kept(&f, &target, &listed).await? {
            counters.bytes.fetch_add(f.size, Ordering::Relaxed);
            counters.files.fetch_add(1, Ordering::Relaxed);
        } else {
            todo.push((ObjectKey::blob(&f.checksums), f));
        }
    }
    let sources: Vec<(CopySource<'_>, String)> = todo
        .iter()
        .map(|(blob, f)| {
            let source = CopySource {
                store: &*src,
                key: blob,
                checksums: &f.checksums,
                size: f.size,
                content_type: &f.content_type,
            };
            (source, f.dest_key.clone())
        })
        .collect();
    let copied = copy_objects(&sources, &*target.store, counters.bytes.clone()).await;
    for ((_, f), r) in todo.iter().zip(copied) {
        r.map_err(|e| classify(&f.name, e))?;
        counters.files.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Copies `files` from `src` (the replica's main bucket) into `target`, `concurrency` at a time
/// (each a task of its own, so they spread over the cores).
pub(crate) async fn copy_files(
    src: &Arc<dyn BlobStore>,
    files: Vec<Item>,
    target: Target,
    concurrency: usize,
    reporter: &Reporter,
) -> Result<Progress, CopyError> {
    let counters = Arc::new(Counters {
        files: AtomicU64::new(0),
        bytes: Arc::new(AtomicU64::new(0)),
        files_total: files.len() as u64,
        bytes_total: files.iter().map(|f| f.size).sum(),
    });
    let listed = Arc::new(present(&target).await?);
    let target = Arc::new(target);
    let stop = CancellationToken::new();
    let reporting = tokio::spawn(report(
        reporter.status_store.clone(),
        reporter.job_id.clone(),
        reporter.every,
        counters.clone(),
        stop.clone(),
    ));
    let copied = futures::stream::iter(batches(files, concurrency))
        .map(|batch| {
            let job = copy_work(
                src.clone(),
                batch,
                target.clone(),
                listed.clone(),
                counters.clone(),
            );
            async move {
                tokio::spawn(job)
                    .await
                    .unwrap_or_else(|e| Err(CopyError::Retry(format!("copy task failed: {e}"))))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|()| async { Ok(()) })
        .await;
    // The reporter must be done before the caller writes the final status.
    stop.cancel();
    if let Err(e) = reporting.await {
        tracing::warn!(job = %reporter.job_id, error = %e, "progress reporter failed");
    }
    copied.map(|()| counters.snapshot())
}

async fn report(
    store: Arc<dyn BlobStore>,
    job_id: String,
    every: Duration,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut last = None;
    loop {
        let now = counters.snapshot();
        if last != Some(now) {
            if let Err(e) = write_status(&*store, &job_id, &CheckoutStatus::running(now)).await {
                tracing::warn!(job = %job_id, error = %e, "could not record checkout progress");
            }
            last = Some(now);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<Item> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Item {
                dest_key: format!("bundles/b/f{i}"),
                name: format!("f{i}"),
                checksums: dss_core::checksum::checksums_of(&[]),
                size,
                content_type: "text/plain".into(),
            })
            .collect()
    }

    fn shape(work: &[Vec<Item>]) -> Vec<usize> {
        work.iter().map(Vec::len).collect()
    }

    #[test]
    fn small_files_go_in_batches_enough_for_the_concurrency_large_ones_alone() {
        let many = batches(files(&[10; 1000]), 8);
        assert_eq!(many.len(), 32, "batches of 32");
        assert!(shape(&many).iter().all(|&n| (1..=BATCH_FILES).contains(&n)));
        assert_eq!(shape(&many).iter().sum::<usize>(), 1000, "every file once");
        let few = batches(files(&[10; 20]), 8);
        assert_eq!(
            shape(&few),
            vec![3, 3, 3, 3, 3, 3, 2],
            "at least as many tasks as run at once"
        );
        let mixed = batches(files(&[BATCH_MAX_SIZE + 1, 5, BATCH_MAX_SIZE, 7]), 8);
        assert_eq!(shape(&mixed), vec![1, 1, 1, 1], "the large file alone");
        assert_eq!(mixed[0][0].size, BATCH_MAX_SIZE + 1, "the large file alone");
        assert!(batches(Vec::new(), 8).is_empty());
    }
}
