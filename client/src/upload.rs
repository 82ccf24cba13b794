//! Uploading a directory as a new bundle. Each file is streamed to
//! `PUT /v1/files/{uuid}/content` with its four checksums declared, so the deployment refuses
//! bytes that arrive different (or, for deployments without that extension, written to a
//! staging bucket and registered from there, see [`crate::staging`]); then
//! `PUT /v1/bundles/{uuid}` registers the bundle. A state file
//! records every file the deployment has confirmed: running the same upload again after an
//! interruption sends only the files still missing, into the same bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dss_core::checksum::Checksums;
use dss_core::model::{DssVersion, ObjectUuid};
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::DssClient;
use crate::error::ClientError;
use crate::files::{self, Found};
use crate::progress::Progress;
use crate::resume::{FileState, Journal, State};
use crate::staging::{self, Registration, StagedFile, StagingArea};

/// How to upload.
pub struct UploadOptions {
    /// The replica to upload to.
    pub replica: String,
    /// Files sent at once.
    pub concurrency: usize,
    /// Where resume state is kept (one file per directory, replica and deployment); `None`
    /// keeps none.
    pub state_dir: Option<PathBuf>,
    /// The `creator_uid` recorded with the files and the bundle.
    pub creator_uid: i64,
    /// Send files through this staging bucket instead of streaming them to the deployment.
    pub staging: Option<StagingArea>,
    /// Longest wait for a deployment copying a staged file in the background.
    pub copy_timeout: Duration,
}

/// What an upload produced.
#[derive(Debug, Serialize)]
pub struct UploadReport {
    /// The new bundle.
    pub bundle_uuid: String,
    /// Its version.
    pub version: String,
    /// Its files, by name.
    pub files: Vec<UploadedFile>,
    /// Bytes sent in this run (files confirmed by an earlier run are not sent again).
    pub bytes_sent: u64,
}

/// One uploaded file.
#[derive(Debug, Clone, Serialize)]
pub struct UploadedFile {
    /// Its name in the bundle.
    pub name: String,
    /// The file's uuid.
    pub uuid: String,
    /// The file's version.
    pub version: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: String,
    /// True when an earlier, interrupted run had already uploaded it.
    pub resumed: bool,
}

/// A version for files and bundles made now.
fn now_version() -> DssVersion {
    DssVersion::from_datetime(time::OffsetDateTime::now_utc())
}

/// Brings the saved state (if any) up to date with what `found` holds: files changed since
/// get a new version and are sent again; files gone are dropped.
fn plan(saved: Option<State>, found: &[Found]) -> State {
    let mut state = saved.unwrap_or_else(|| State {
        bundle_uuid: ObjectUuid::new_v4().to_string(),
        version: now_version().to_string(),
        files: BTreeMap::new(),
    });
    let version = now_version().to_string();
    let mut files = BTreeMap::new();
    for f in found {
        let entry = match state.files.remove(&f.name) {
            Some(s) if s.size == f.size && s.modified_ns == f.modified_ns => {
                FileState { earlier: true, ..s }
            }
            previous => FileState {
                earlier: previous.is_some(),
                uuid: previous.map_or_else(|| ObjectUuid::new_v4().to_string(), |p| p.uuid),
                version: version.clone(),
                size: f.size,
                modified_ns: f.modified_ns,
                sha256: None,
                done: false,
            },
        };
        files.insert(f.name.clone(), entry);
    }
    state.files = files;
    state
}

/// Uploads every regular file under `src` (recursively; hidden entries skipped) as one new
/// bundle, resuming an interrupted upload of the same directory.
pub async fn upload_dir(
    client: &DssClient,
    src: &Path,
    opts: &UploadOptions,
    progress: &Arc<dyn Progress>,
) -> Result<UploadReport, ClientError> {
    let src = src.canonicalize().map_err(|e| ClientError::io(src, e))?;
    let found = {
        let src = src.clone();
        tokio::task::spawn_blocking(move || files::walk(&src))
            .await
            .map_err(|e| ClientError::Invalid(format!("listing thread: {e}")))??
    };
    if found.is_empty() {
        return Err(ClientError::Invalid(format!(
            "{} holds no files to upload",
            src.display()
        )));
    }
    let journal = opts
        .state_dir
        .as_ref()
        .map(|d| Journal::at(d, client.base().as_str(), &opts.replica, &src));
    let state = plan(journal.as_ref().and_then(Journal::load), &found);
    if let Some(j) = &journal {
        // The plan records what earlier runs confirmed; the log starts empty.
        j.start(&state)?;
    }
    progress.planned(found.len() as u64, found.iter().map(|f| f.size).sum());
    let sent = AtomicU64::new(0);
    let results: Vec<Result<UploadedFile, (String, ClientError)>> =
        futures::stream::iter(found.iter())
            .map(|f| {
                let (state, sent, journal) = (&state, &sent, journal.as_ref());
                async move {
                    upload_one(client, f, opts, state, journal, sent, progress)
                        .await
                        .map_err(|e| (f.name.clone(), e))
                }
            })
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut uploaded = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(u) => uploaded.push(u),
            Err(f) => failures.push(f),
        }
    }
    if !failures.is_empty() {
        return Err(ClientError::Partial {
            total: found.len(),
            failures,
        });
    }
    let State {
        bundle_uuid,
        version,
        ..
    } = state;
    let body = json!({
        "creator_uid": opts.creator_uid,
        "files": uploaded.iter().map(|f| json!({
            "indexed": f.name.ends_with(".json"),
            "name": f.name,
            "uuid": f.uuid,
            "version": f.version,
        })).collect::<Vec<_>>(),
    });
    let url = client.url(
        &format!("v1/bundles/{bundle_uuid}"),
        &[("version", &version), ("replica", &opts.replica)],
    )?;
    let (_, _, answer) = client.json(Method::PUT, &url, Some(&body)).await?;
    let version = answer
        .get("version")
        .and_then(Value::as_str)
        .map_or(version, str::to_string);
    if let Some(j) = &journal {
        j.finish();
    }
    Ok(UploadReport {
        bundle_uuid,
        version,
        files: uploaded,
        bytes_sent: sent.into_inner(),
    })
}

/// Sends one file unless an earlier run did; records it as done.
async fn upload_one(
    client: &DssClient,
    f: &Found,
    opts: &UploadOptions,
    state: &State,
    journal: Option<&Journal>,
    sent: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<UploadedFile, ClientError> {
    let entry = state
        .files
        .get(&f.name)
        .ok_or_else(|| ClientError::Invalid(format!("{}: not planned", f.name)))?;
    let done = |sha256: String, resumed: bool| UploadedFile {
        name: f.name.clone(),
        uuid: entry.uuid.clone(),
        version: entry.version.clone(),
        size: f.size,
        sha256,
        resumed,
    };
    if entry.done
        && let Some(sha) = &entry.sha256
    {
        progress.transferred(f.size);
        progress.file_done(&f.name);
        return Ok(done(sha.clone(), true));
    }
    let content_type = mime_guess::from_path(&f.path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let sums = if let Some(area) = &opts.staging {
        let file = StagedFile {
            found: f,
            earlier: entry.earlier,
            uuid: &entry.uuid,
            version: &entry.version,
            content_type,
        };
        let reg = Registration {
            replica: &opts.replica,
            creator_uid: opts.creator_uid,
            timeout: opts.copy_timeout,
        };
        staging::upload(client, area, &file, &reg, sent, progress).await?
    } else {
        // Declared before the bytes are sent, so the deployment refuses bytes that differ.
        let sums = files::checksums(f.path.clone(), f.size).await?;
        send_direct(client, f, entry, &sums, content_type, opts, sent, progress).await?;
        sums
    };
    progress.file_done(&f.name);
    if let Some(j) = journal {
        j.confirm(&f.name, &sums.sha256)?;
    }
    Ok(done(sums.sha256, false))
}

/// Streams `f` to `PUT /v1/files/{uuid}/content`, retrying transient failures.
#[allow(clippy::too_many_arguments)]
async fn send_direct(
    client: &DssClient,
    f: &Found,
    entry: &FileState,
    sums: &Checksums,
    content_type: &str,
    opts: &UploadOptions,
    sent: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<(), ClientError> {
    let url = client.url(
        &format!("v1/files/{}/content", entry.uuid),
        &[("version", &entry.version), ("replica", &opts.replica)],
    )?;
    client
        .retry(&format!("upload {}", f.name), || {
            send_file(
                client,
                &url,
                f,
                sums,
                content_type,
                opts.creator_uid,
                sent,
                progress,
            )
        })
        .await
}

/// One attempt at streaming `f` to `url`, reporting bytes as they go (taken back on failure).
#[allow(clippy::too_many_arguments)]
async fn send_file(
    client: &DssClient,
    url: &url::Url,
    f: &Found,
    sums: &Checksums,
    content_type: &str,
    creator_uid: i64,
    sent: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<(), ClientError> {
    let file = tokio::fs::File::open(&f.path)
        .await
        .map_err(|e| ClientError::io(&f.path, e))?;
    let streamed = Arc::new(AtomicU64::new(0));
    let (counted, shown) = (streamed.clone(), progress.clone());
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            shown.transferred(chunk.len() as u64);
        });
    let rb = client
        .request(Method::PUT, url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(reqwest::header::CONTENT_LENGTH, f.size)
        .header("x-dss-sha256", &sums.sha256)
        .header("x-dss-sha1", &sums.sha1)
        .header("x-dss-s3-etag", &sums.s3_etag)
        .header("x-dss-crc32c", &sums.crc32c)
        .header("x-dss-creator-uid", creator_uid)
        .body(reqwest::Body::wrap_stream(stream));
    let result = client.send(rb).await;
    let streamed = streamed.load(Ordering::Relaxed);
    match result {
        Ok(_) => {
            sent.fetch_add(streamed, Ordering::Relaxed);
            // The deployment may answer before the whole body when it already holds the bytes.
            progress.transferred(f.size.saturating_sub(streamed));
            Ok(())
        }
        Err(e) => {
            progress.rewound(streamed);
            Err(e)
        }
    }
}
