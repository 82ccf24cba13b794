//! Large files fetched as byte ranges over several connections at once (one connection to a
//! cloud store is often slower than the disk and the hashes): each range is written at its
//! offset into the file's `.part`, the finished ranges are listed in `.part.ranges` so that an
//! interrupted run fetches only the others, and the bytes are hashed in order while later
//! ranges still arrive. The ledger is not flushed to the disk with the bytes: after a crash of
//! the machine it may list a range whose bytes were lost, which the file's hashes then show,
//! and the file is fetched again from the start.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use url::Url;

use crate::api::{DssClient, shown};
use crate::entry::Entry;
use crate::error::ClientError;
use crate::files;
use crate::open::open_bytes;
use crate::progress::Progress;
use crate::verify::Verifier;

/// How large files are split: files larger than two ranges are fetched in ranges (others in
/// one request).
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    /// Bytes per range.
    pub size: u64,
    /// Ranges of one file fetched at once (1: none).
    pub streams: usize,
}

impl Default for Ranges {
    fn default() -> Self {
        Self {
            size: 16 << 20,
            streams: 4,
        }
    }
}

impl Ranges {
    /// Whether a file of `size` bytes is fetched in ranges.
    pub(crate) fn apply_to(&self, size: u64) -> bool {
        self.streams > 1 && self.size > 0 && size > 2 * self.size
    }
}

/// The ledger of finished ranges beside a part file.
pub(crate) fn ledger(part: &Path) -> PathBuf {
    let mut os = part.as_os_str().to_os_string();
    os.push(".ranges");
    PathBuf::from(os)
}

/// Forgets the ranges fetched into `part` (when its bytes are verified or thrown away).
pub(crate) async fn forget(part: &Path) -> Result<(), ClientError> {
    let ledger = ledger(part);
    match tokio::fs::remove_file(&ledger).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ClientError::io(&ledger, e)),
        _ => Ok(()),
    }
}

/// The first line of a ledger: what the indices that follow mean.
fn header(r: &Ranges, size: u64) -> String {
    format!("dss ranges of {} bytes, file of {size} bytes\n", r.size)
}

/// Which ranges of `part` hold their bytes already: those its ledger lists, or, for a part
/// file written front to back by a single-request download (no ledger), those inside it.
fn finished(part: &Path, r: &Ranges, size: u64, count: usize) -> Vec<bool> {
    let mut done = vec![false; count];
    match std::fs::read_to_string(ledger(part)) {
        Ok(text) => {
            let mut lines = text.lines();
            if lines.next().map(|l| format!("{l}\n")) == Some(header(r, size)) {
                for i in lines.filter_map(|l| l.trim().parse::<usize>().ok()) {
                    if let Some(d) = done.get_mut(i) {
                        *d = true;
                    }
                }
            }
        }
        Err(_) => {
            let prefix = std::fs::metadata(part).map_or(0, |m| m.len()).min(size);
            for (i, d) in done.iter_mut().enumerate() {
                *d = (i as u64 + 1) * r.size <= prefix;
            }
        }
    }
    done
}

/// Progress of the ranges: which are done, and the ledger they are appended to.
struct State {
    done: Vec<bool>,
    ledger: std::fs::File,
}

impl State {
    /// Marks range `i` done; the end of the bytes now all there from the start on.
    fn finish(&mut self, i: usize, r: &Ranges, size: u64) -> std::io::Result<u64> {
        self.done[i] = true;
        writeln!(self.ledger, "{i}")?;
        let first_missing = self.done.iter().position(|d| !d).unwrap_or(self.done.len());
        Ok((first_missing as u64 * r.size).min(size))
    }
}

/// Fetches what `part` lacks of `e`'s bytes in ranges; returns the hash of all of them, or
/// `None` when the server does not serve ranges (then nothing was changed).
pub(crate) async fn fetch(
    client: &DssClient,
    url: &Url,
    e: &Entry,
    part: &Path,
    r: &Ranges,
    received: &AtomicU64,
    progress: &std::sync::Arc<dyn Progress>,
) -> Result<Option<Verifier>, ClientError> {
    let size = e.size;
    let count = size.div_ceil(r.size) as usize;
    let done = finished(part, r, size, count);
    let ledger_path = ledger(part);
    // The ledger first (listing what is kept), then the part file at its full size.
    let mut text = header(r, size);
    for (i, _) in done.iter().enumerate().filter(|(_, d)| **d) {
        text.push_str(&format!("{i}\n"));
    }
    std::fs::write(&ledger_path, text).map_err(|err| ClientError::io(&ledger_path, err))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(part)
        .map_err(|err| ClientError::io(part, err))?;
    file.set_len(size)
        .map_err(|err| ClientError::io(part, err))?;
    let ledger_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&ledger_path)
        .map_err(|err| ClientError::io(&ledger_path, err))?;
    let missing: Vec<usize> = (0..count).filter(|i| !done[*i]).collect();
    let kept = size - missing.iter().map(|i| span(*i, r, size).1).sum::<u64>();
    progress.transferred(kept);
    let first_missing = missing.first().map_or(size, |i| *i as u64 * r.size);
    let state = Mutex::new(State {
        done,
        ledger: ledger_file,
    });
    let (mark, watermark) = tokio::sync::watch::channel(first_missing);
    let hashing = tokio::spawn(hash_in_order(part.to_path_buf(), size, watermark));
    let fetched = async {
        let mut ranges = futures::stream::iter(missing)
            .map(|i| async move {
                client
                    .retry(&format!("download {} range {i}", e.name), || {
                        fetch_range(client, url, part, span(i, r, size), received, progress)
                    })
                    .await
                    .map(|served| (i, served))
            })
            .buffer_unordered(r.streams);
        while let Some(next) = ranges.next().await {
            let (i, served) = next?;
            if !served {
                return Ok(false);
            }
            let end = state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(i, r, size)
                .map_err(|err| ClientError::io(&ledger_path, err))?;
            mark.send_replace(end);
        }
        Ok::<_, ClientError>(true)
    }
    .await;
    drop(mark);
    let hashed = hashing
        .await
        .map_err(|err| ClientError::Invalid(format!("hashing task: {err}")))?;
    match fetched? {
        true => Ok(Some(hashed?)),
        false => {
            // Nothing useful was written: back to the state before.
            forget(part).await?;
            tokio::fs::remove_file(part)
                .await
                .map_err(|err| ClientError::io(part, err))?;
            progress.rewound(kept);
            Ok(None)
        }
    }
}

/// Range `i`'s offset and length.
fn span(i: usize, r: &Ranges, size: u64) -> (u64, u64) {
    let start = i as u64 * r.size;
    (start, r.size.min(size - start))
}

/// Hashes `path` front to back as far as `watermark` says its bytes are there, until all
/// `size` bytes are hashed (or the watermark's sender is gone).
async fn hash_in_order(
    path: PathBuf,
    size: u64,
    mut watermark: tokio::sync::watch::Receiver<u64>,
) -> Result<Verifier, ClientError> {
    let mut hasher = Verifier::new();
    let mut hashed = 0u64;
    loop {
        let upto = *watermark.borrow_and_update();
        if upto > hashed {
            let p = path.clone();
            hasher = tokio::task::spawn_blocking(move || {
                files::hash_into(&p, &mut hasher, hashed, Some(upto - hashed)).map(|()| hasher)
            })
            .await
            .map_err(|err| ClientError::Invalid(format!("hashing thread: {err}")))??;
            hashed = upto;
        }
        if hashed >= size || watermark.changed().await.is_err() {
            return Ok(hasher);
        }
    }
}

/// Writes the bytes of `(start, len)` into `part` at `start`; false when the server sent the
/// whole file instead (it serves no ranges).
async fn fetch_range(
    client: &DssClient,
    url: &Url,
    part: &Path,
    (start, len): (u64, u64),
    received: &AtomicU64,
    progress: &std::sync::Arc<dyn Progress>,
) -> Result<bool, ClientError> {
    let mut res = open_bytes(client, url, Some((start, Some(start + len - 1)))).await?;
    if res.status() != StatusCode::PARTIAL_CONTENT {
        return Ok(false);
    }
    let mut counted = 0u64;
    let result = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(part)
            .await
            .map_err(|err| ClientError::io(part, err))?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|err| ClientError::io(part, err))?;
        let mut file = tokio::io::BufWriter::with_capacity(crate::files::WRITE_BUFFER, file);
        while let Some(chunk) = res.chunk().await.map_err(|source| ClientError::Http {
            what: format!("GET {}", shown(url)),
            source,
        })? {
            if counted + chunk.len() as u64 > len {
                return Err(ClientError::Invalid(format!(
                    "{} sent more than the {len} bytes asked for",
                    shown(url)
                )));
            }
            file.write_all(&chunk)
                .await
                .map_err(|err| ClientError::io(part, err))?;
            received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            progress.transferred(chunk.len() as u64);
            counted += chunk.len() as u64;
        }
        if counted < len {
            return Err(ClientError::Truncated {
                what: format!("GET {} (bytes {start}-{})", shown(url), start + len - 1),
                got: counted,
                want: len,
            });
        }
        file.flush()
            .await
            .map_err(|err| ClientError::io(part, err))?;
        Ok(true)
    }
    .await;
    if result.is_err() {
        progress.rewound(counted);
    }
    result
}
