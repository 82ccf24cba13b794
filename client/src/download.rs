//! Downloading a bundle: its manifest page by page, then every file in parallel through
//! `GET /v1/files/{uuid}` (following the 302 to the bytes, waiting out a 301's `Retry-After`
//! while the deployment prepares a copy) into `{dir}/{uuid}.{version}/{name}`, the layout of
//! the official CLI. Bytes go to a `.part` file that a later attempt or run resumes with a
//! `Range` request; each file's size, SHA-256, SHA-1 and CRC-32C are checked before the file
//! takes its name.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dss_core::model::documents::valid_file_name;
use dss_core::model::{DssVersion, ObjectUuid};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::api::{DssClient, shown};
use crate::entry::Entry;
use crate::error::ClientError;
use crate::files;
use crate::open::open_bytes;
use crate::progress::Progress;
use crate::ranged;
pub use crate::ranged::Ranges;
use crate::verify::Verifier;

/// The name of the manifest file in a downloaded bundle's directory.
const MANIFEST: &str = "bundle.json";

/// How to download.
pub struct DownloadOptions {
    /// The replica to read.
    pub replica: String,
    /// The bundle version (default: the latest).
    pub version: Option<String>,
    /// Files fetched at once.
    pub concurrency: usize,
    /// How large files are fetched in ranges over several connections.
    pub ranges: Ranges,
    /// Flush each file to the disk before it takes its name, and each directory that gained a
    /// name before the download reports, so the files outlive a crash of the machine. Off, a
    /// file is as durable as any copied file: a crash soon after can lose its last bytes, and
    /// running the download again finds and fetches what is missing or wrong (every file
    /// present is checked against its size and hashes).
    pub fsync: bool,
}

/// What a download wrote.
#[derive(Debug, Serialize)]
pub struct DownloadReport {
    /// The bundle.
    pub bundle_uuid: String,
    /// Its version.
    pub version: String,
    /// The directory holding its files.
    pub dir: PathBuf,
    /// The bundle's manifest, written as `bundle.json` in `dir` (absent when the bundle has a
    /// file of that name).
    pub manifest: Option<PathBuf>,
    /// Its files.
    pub files: Vec<DownloadedFile>,
    /// Bytes received in this run.
    pub bytes_received: u64,
}

/// One downloaded file.
#[derive(Debug, Serialize)]
pub struct DownloadedFile {
    /// Its name in the bundle.
    pub name: String,
    /// The file's uuid.
    pub uuid: String,
    /// The file's version.
    pub version: String,
    /// Its size.
    pub size: u64,
    /// Where it was written.
    pub path: PathBuf,
    /// True when a verified copy was already there (nothing fetched).
    pub already_present: bool,
}

/// Where `name` goes below `dir`: refused unless every part of it is a plain name.
fn target(dir: &Path, name: &str) -> Result<PathBuf, ClientError> {
    let plain = Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !valid_file_name(name) || !plain {
        return Err(ClientError::Invalid(format!(
            "the manifest names a file '{name}', which cannot be written safely"
        )));
    }
    Ok(dir.join(name))
}

/// Downloads bundle `bundle_uuid` into `{dir}/{uuid}.{version}/`, resuming what an earlier
/// run left and skipping files already there and verified.
pub async fn download_bundle(
    client: &DssClient,
    bundle_uuid: &str,
    dir: &Path,
    opts: &DownloadOptions,
    progress: &Arc<dyn Progress>,
) -> Result<DownloadReport, ClientError> {
    let uuid = ObjectUuid::parse(bundle_uuid)
        .map_err(|e| ClientError::Invalid(format!("bundle uuid '{bundle_uuid}': {e}")))?;
    let mut query = vec![("replica", opts.replica.as_str())];
    if let Some(v) = &opts.version {
        query.push(("version", v));
    }
    let url = client.url(&format!("v1/bundles/{uuid}"), &query)?;
    let mut bundle = None;
    let mut listed = Vec::new();
    client
        .each_page(Method::GET, url, None, |page, files| {
            if bundle.is_none() {
                bundle = page.get("bundle").cloned();
            }
            listed.extend(files);
            true
        })
        .await?;
    let mut bundle = bundle
        .filter(Value::is_object)
        .ok_or_else(|| ClientError::Invalid("the bundle answer has no bundle".into()))?;
    let version = bundle
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Invalid("the bundle answer has no bundle.version".into()))?
        .to_string();
    // The directory's name comes from the answer: a version, or a hostile server (or anyone on
    // a plain-HTTP path) could write outside `dir`.
    let parsed = DssVersion::parse(&version).map_err(|e| {
        ClientError::Invalid(format!(
            "the bundle answer's version '{}' is not a DSS version: {e}",
            version.escape_debug()
        ))
    })?;
    if opts
        .version
        .as_deref()
        .is_some_and(|v| v != parsed.as_str())
    {
        return Err(ClientError::Invalid(format!(
            "asked for version {}, the answer is version {version}",
            opts.version.as_deref().unwrap_or_default()
        )));
    }
    let bundle_dir = dir.join(format!("{uuid}.{}", parsed.as_str()));
    let entries = listed
        .iter()
        .map(Entry::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    for e in &entries {
        target(&bundle_dir, &e.name)?;
    }
    progress.planned(entries.len() as u64, entries.iter().map(|e| e.size).sum());
    let received = AtomicU64::new(0);
    let results: Vec<_> = futures::stream::iter(entries.iter())
        .map(|e| {
            let (bundle_dir, received) = (&bundle_dir, &received);
            async move {
                fetch_file(client, e, bundle_dir, opts, received, progress)
                    .await
                    .map_err(|err| (e.name.clone(), err))
            }
        })
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut files = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(f) => files.push(f),
            Err(f) => failures.push(f),
        }
    }
    if !failures.is_empty() {
        return Err(ClientError::Partial {
            total: entries.len(),
            failures,
        });
    }
    if opts.fsync {
        // The new names: each directory that gained one, once.
        let dirs: std::collections::BTreeSet<&Path> = files
            .iter()
            .filter(|f| !f.already_present)
            .filter_map(|f| f.path.parent())
            .collect();
        for dir in dirs {
            sync(dir).await?;
        }
    }
    // The manifest as a file beside the bundle's files, as the official CLI writes it (unless
    // the bundle has a file of that name).
    let manifest = (!entries.iter().any(|e| e.name == MANIFEST)).then(|| bundle_dir.join(MANIFEST));
    if let Some(path) = &manifest {
        bundle["files"] = Value::Array(listed);
        files::write_json(path, &serde_json::json!({ "bundle": bundle }))?;
    }
    Ok(DownloadReport {
        bundle_uuid: uuid.to_string(),
        version,
        dir: bundle_dir,
        manifest,
        files,
        bytes_received: received.into_inner(),
    })
}

/// Which of `e`'s checks the bytes hashed into `hasher` fail.
fn mismatches(e: &Entry, hasher: Verifier) -> Vec<&'static str> {
    let got = hasher.finish();
    let mut bad = Vec::new();
    if got.len != e.size {
        bad.push("size");
    }
    if got.sha256 != e.sha256 {
        bad.push("sha256");
    }
    if got.crc32c != e.crc32c {
        bad.push("crc32c");
    }
    bad
}

/// Hashes the first `len` bytes of `path` on a blocking thread.
async fn hash_prefix(path: PathBuf, len: Option<u64>) -> Result<Verifier, ClientError> {
    tokio::task::spawn_blocking(move || {
        let mut h = Verifier::new();
        files::hash_into(&path, &mut h, 0, len)?;
        Ok(h)
    })
    .await
    .map_err(|err| ClientError::Invalid(format!("hashing thread: {err}")))?
}

/// Fetches one file unless a verified copy is there.
async fn fetch_file(
    client: &DssClient,
    e: &Entry,
    bundle_dir: &Path,
    opts: &DownloadOptions,
    received: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<DownloadedFile, ClientError> {
    let dest = target(bundle_dir, &e.name)?;
    let done = |already_present| DownloadedFile {
        name: e.name.clone(),
        uuid: e.uuid.clone(),
        version: e.version.clone(),
        size: e.size,
        path: dest.clone(),
        already_present,
    };
    if tokio::fs::metadata(&dest)
        .await
        .is_ok_and(|m| m.len() == e.size)
        && mismatches(e, hash_prefix(dest.clone(), None).await?).is_empty()
    {
        progress.transferred(e.size);
        progress.file_done(&e.name);
        return Ok(done(true));
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|err| ClientError::io(parent, err))?;
    }
    let part = {
        let mut os = dest.clone().into_os_string();
        os.push(".part");
        PathBuf::from(os)
    };
    let mut query = vec![("replica", opts.replica.as_str())];
    if !e.version.is_empty() {
        query.push(("version", e.version.as_str()));
    }
    let url = client.url(&format!("v1/files/{}", e.uuid), &query)?;
    let mut fresh_tried = false;
    let mut in_ranges = opts.ranges.apply_to(e.size);
    if !in_ranges
        && tokio::fs::try_exists(ranged::ledger(&part))
            .await
            .unwrap_or(false)
    {
        // A part file of ranges (with holes) cannot be continued front to back.
        let _ = tokio::fs::remove_file(&part).await;
        ranged::forget(&part).await?;
    }
    loop {
        let resumed_from = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
        let ranged = match in_ranges {
            true => ranged::fetch(client, &url, e, &part, &opts.ranges, received, progress).await?,
            false => None,
        };
        let hasher = match ranged {
            Some(h) => h,
            None => {
                // Not in ranges, or the server serves none.
                in_ranges = false;
                client
                    .retry(&format!("download {}", e.name), || {
                        attempt(client, &url, e, &part, received, progress)
                    })
                    .await?
            }
        };
        let bad = mismatches(e, hasher);
        if bad.is_empty() {
            break;
        }
        tokio::fs::remove_file(&part)
            .await
            .map_err(|err| ClientError::io(&part, err))?;
        ranged::forget(&part).await?;
        progress.rewound(e.size);
        // Bytes kept from an earlier attempt may be what differs: try once from the start.
        if resumed_from == 0 || fresh_tried {
            return Err(ClientError::Checksum {
                name: e.name.clone(),
                which: bad.join(", "),
            });
        }
        fresh_tried = true;
    }
    if opts.fsync {
        sync(&part).await?;
    }
    tokio::fs::rename(&part, &dest)
        .await
        .map_err(|err| ClientError::io(&dest, err))?;
    ranged::forget(&part).await?;
    progress.file_done(&e.name);
    Ok(done(false))
}

/// Flushes the file or directory at `path` to the disk.
async fn sync(path: &Path) -> Result<(), ClientError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&p)?.sync_all())
        .await
        .map_err(|err| ClientError::Invalid(format!("fsync thread: {err}")))?
        .map_err(|err| ClientError::io(path, err))
}

/// One attempt: appends the bytes still missing to `part` and returns the hash of all of it.
async fn attempt(
    client: &DssClient,
    url: &Url,
    e: &Entry,
    part: &Path,
    received: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<Verifier, ClientError> {
    let mut offset = tokio::fs::metadata(part).await.map_or(0, |m| m.len());
    if offset > e.size {
        offset = 0;
    }
    let mut hasher = if offset == 0 {
        Verifier::new()
    } else {
        hash_prefix(part.to_path_buf(), Some(offset)).await?
    };
    progress.transferred(offset);
    let mut counted = offset;
    let result = async {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .await
            .map_err(|err| ClientError::io(part, err))?;
        // Large writes: each write of a tokio file is a trip to a blocking thread.
        let mut file = tokio::io::BufWriter::with_capacity(files::WRITE_BUFFER, file);
        if offset < e.size {
            let mut res = open_bytes(client, url, (offset > 0).then_some((offset, None))).await?;
            if res.status() != StatusCode::PARTIAL_CONTENT && offset > 0 {
                // The server sent the whole file: start the part over.
                file.get_ref()
                    .set_len(0)
                    .await
                    .map_err(|err| ClientError::io(part, err))?;
                hasher = Verifier::new();
                progress.rewound(counted);
                counted = 0;
            }
            while let Some(chunk) = res.chunk().await.map_err(|source| ClientError::Http {
                what: format!("GET {}", shown(url)),
                source,
            })? {
                file.write_all(&chunk)
                    .await
                    .map_err(|err| ClientError::io(part, err))?;
                received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                progress.transferred(chunk.len() as u64);
                counted += chunk.len() as u64;
                hasher.update(&chunk);
            }
        }
        file.flush()
            .await
            .map_err(|err| ClientError::io(part, err))?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(hasher),
        Err(err) => {
            progress.rewound(counted);
            Err(err)
        }
    }
}
