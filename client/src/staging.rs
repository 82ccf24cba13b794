//! Uploading through a staging bucket, the only way the original deployment takes files: each
//! file is written to `s3://` or `gs://` staging, hashed as it goes, its four checksums then
//! declared as the official CLI declares them, and registered with `PUT /v1/files/{uuid}`
//! naming it as the `source_url`. A deployment that copies a large source in the background
//! answers 202; the file is ready once `HEAD /v1/files/{uuid}` finds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dss_core::checksum::{Checksums, declared_checksums};
use dss_core::ports::{BlobError, LocalFile, Staging};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::DssClient;
use crate::error::ClientError;
use crate::files::{self, Found};
use crate::progress::Progress;

/// Where files are staged: a bucket (and key prefix) of one cloud, and the client that writes it.
pub struct StagingArea {
    staging: Arc<dyn Staging>,
    scheme: String,
    bucket: String,
    prefix: String,
}

/// The parts of a staging URL `s3://bucket[/prefix]` or `gs://bucket[/prefix]`: scheme,
/// bucket and key prefix (empty, or ending in `/`).
pub fn parse_url(url: &str) -> Result<(String, String, String), ClientError> {
    let bad = |why: &str| ClientError::Invalid(format!("staging '{url}': {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not s3://bucket[/prefix] or gs://bucket[/prefix]"))?;
    if !matches!(scheme, "s3" | "gs") {
        return Err(bad("only s3:// and gs:// buckets can stage files"));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !dss_core::ports::valid_bucket_name(bucket) {
        return Err(bad("not a bucket name"));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = match prefix.is_empty() {
        true => String::new(),
        false => format!("{prefix}/"),
    };
    Ok((scheme.to_string(), bucket.to_string(), prefix))
}

impl StagingArea {
    /// Staging at `url` (`s3://bucket[/prefix]` or `gs://bucket[/prefix]`), written through
    /// `staging` (the buckets of that cloud).
    pub fn new(url: &str, staging: Arc<dyn Staging>) -> Result<Self, ClientError> {
        let (scheme, bucket, prefix) = parse_url(url)?;
        Ok(Self {
            staging,
            scheme,
            bucket,
            prefix,
        })
    }

    /// The replica the original writes a source of this cloud to (`s3` → `aws`, `gs` → `gcp`).
    fn native_replica(&self) -> &'static str {
        match self.scheme.as_str() {
            "gs" => "gcp",
            _ => "aws",
        }
    }

    /// The key of file `uuid` named `name`: `{prefix}{uuid}/{name}`, as the official CLI
    /// stages (it uses the base name; the whole name keeps two files of one base name apart).
    fn key(&self, uuid: &str, name: &str) -> String {
        format!("{}{uuid}/{name}", self.prefix)
    }

    /// The checksums `key` declares when it holds `size` bytes and declares all four (an
    /// earlier run may have staged it).
    async fn declares(&self, key: &str, size: u64) -> Result<Option<Checksums>, ClientError> {
        let declared = self
            .staging
            .declared(&self.bucket, key)
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(declared
            .filter(|d| d.size == size)
            .and_then(|d| declared_checksums(&d.values).ok()))
    }

    fn error(&self, key: &str, source: BlobError) -> ClientError {
        ClientError::Staging {
            url: format!("{}://{}/{key}", self.scheme, self.bucket),
            source,
        }
    }

    /// Stages `file`, hashing it as it goes, unless an earlier run staged the same bytes
    /// there (only a uuid an earlier run planned can have been); reports bytes as they go. Its
    /// `source_url` and checksums.
    async fn stage(
        &self,
        file: &StagedFile<'_>,
        sent: &AtomicU64,
        progress: &Arc<dyn Progress>,
    ) -> Result<(String, Checksums), ClientError> {
        let (f, content_type) = (file.found, file.content_type);
        let key = self.key(file.uuid, &f.name);
        let url = format!("{}://{}/{key}", self.scheme, self.bucket);
        let there = match file.earlier {
            true => self.declares(&key, f.size).await?,
            false => None,
        };
        if let Some(there) = there {
            let sums = files::checksums(f.path.clone(), f.size).await?;
            if sums == there {
                progress.transferred(f.size);
                return Ok((url, sums));
            }
        }
        let streamed = Arc::new(AtomicU64::new(0));
        let (counted, shown) = (streamed.clone(), progress.clone());
        let file = LocalFile {
            path: &f.path,
            size: f.size,
            content_type,
            sent: Arc::new(move |n| {
                counted.fetch_add(n, Ordering::Relaxed);
                shown.transferred(n);
            }),
        };
        let result = self.staging.stage_file(&self.bucket, &key, file).await;
        let streamed = streamed.load(Ordering::Relaxed);
        match result {
            Ok(sums) => {
                sent.fetch_add(streamed, Ordering::Relaxed);
                Ok((url, sums))
            }
            Err(e) => {
                progress.rewound(streamed);
                Err(self.error(&key, e))
            }
        }
    }
}

/// One file to upload through staging.
pub(crate) struct StagedFile<'a> {
    /// The local file.
    pub found: &'a Found,
    /// Whether an earlier run planned its uuid, so may have staged it already.
    pub earlier: bool,
    /// Its uuid.
    pub uuid: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its media type.
    pub content_type: &'a str,
}

/// How long to wait for files a deployment copies in the background, and for which replica.
pub(crate) struct Registration<'a> {
    /// The replica the bundle goes to.
    pub replica: &'a str,
    /// The `creator_uid` recorded.
    pub creator_uid: i64,
    /// Longest wait for a background copy.
    pub timeout: Duration,
}

/// Stages `file` and registers it with the deployment, waiting for a background copy: its
/// checksums.
pub(crate) async fn upload(
    client: &DssClient,
    area: &StagingArea,
    file: &StagedFile<'_>,
    reg: &Registration<'_>,
    sent: &AtomicU64,
    progress: &Arc<dyn Progress>,
) -> Result<Checksums, ClientError> {
    let name = &file.found.name;
    let (source_url, sums) = client
        .retry(&format!("stage {name}"), || {
            area.stage(file, sent, progress)
        })
        .await?;
    // The original has no `replica` here: it follows the source's cloud. Ours takes one.
    let mut query = vec![("version", file.version)];
    if reg.replica != area.native_replica() {
        query.push(("replica", reg.replica));
    }
    let url = client.url(&format!("v1/files/{}", file.uuid), &query)?;
    let body = json!({"creator_uid": reg.creator_uid, "source_url": source_url});
    let (status, _, _) = client.json(Method::PUT, &url, Some(&body)).await?;
    if status == StatusCode::ACCEPTED {
        wait_for(client, file, reg).await?;
    }
    Ok(sums)
}

/// Polls `HEAD /v1/files/{uuid}` until the file exists (backing off ×1.6 from 0.2 s up to 2 s
/// between looks: a HEAD is cheap, and a long gap would only add to the upload's time), or
/// `reg.timeout` passes.
async fn wait_for(
    client: &DssClient,
    file: &StagedFile<'_>,
    reg: &Registration<'_>,
) -> Result<(), ClientError> {
    let url = client.url(
        &format!("v1/files/{}", file.uuid),
        &[("replica", reg.replica), ("version", file.version)],
    )?;
    let start = Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        let head = client
            .retry(&format!("HEAD {}", file.found.name), || {
                client.send(client.request(Method::HEAD, url.clone()))
            })
            .await;
        match head {
            Ok(_) => return Ok(()),
            Err(ClientError::Api { status: 404, .. }) if start.elapsed() < reg.timeout => {
                tokio::time::sleep(wait).await;
                wait = wait.mul_f64(1.6).min(Duration::from_secs(2));
            }
            Err(ClientError::Api { status: 404, .. }) => {
                return Err(ClientError::Invalid(format!(
                    "{}: the deployment had not finished copying it from staging after {} s",
                    file.found.name,
                    reg.timeout.as_secs()
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_urls_name_a_bucket_of_one_cloud_and_an_optional_prefix() {
        let parts = |u: &str| parse_url(u).map_err(|e| e.to_string());
        assert_eq!(
            parts("s3://stage-bucket"),
            Ok(("s3".into(), "stage-bucket".into(), String::new()))
        );
        assert_eq!(
            parts("gs://stage-bucket/runs/42/"),
            Ok(("gs".into(), "stage-bucket".into(), "runs/42/".into()))
        );
        assert!(parts("file:///tmp/x").is_err());
        assert!(parts("s3://-bad/x").is_err());
        assert!(parts("stage-bucket").is_err());
    }
}
