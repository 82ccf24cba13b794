//! The client commands `dss upload`, `dss download` and `dss search`: a user's view of any
//! deployment (ours or one compatible with the original API) over HTTP.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use dss_client::download::{DownloadOptions, Ranges, download_bundle};
use dss_client::search::{SearchRequest, search};
use dss_client::staging::StagingArea;
use dss_client::upload::{UploadOptions, upload_dir};
use dss_client::{ClientError, DssClient, Progress};
use dss_config::LogConfig;
use dss_core::ports::Staging;

use crate::progress::Transfer;

/// Which deployment to talk to, and as whom.
#[derive(Args)]
pub struct Endpoint {
    /// The deployment's base URL (with or without `/v1`).
    #[arg(long, env = "DSS_URL", default_value = "http://127.0.0.1:5000")]
    url: String,
    /// Bearer token sent with every request (on the embedded default, mint one with `dss token`).
    #[arg(long, env = "DSS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Endpoint {
    fn client(&self) -> anyhow::Result<DssClient> {
        Ok(DssClient::new(&self.url, self.token.clone())?)
    }
}

/// Arguments of `dss upload`.
#[derive(Args)]
pub struct UploadArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The directory to upload: every regular file under it (hidden entries skipped) becomes a
    /// file of one new bundle, named by its path below the directory.
    #[arg(long)]
    src_dir: PathBuf,
    /// The replica to upload to.
    #[arg(long, default_value = "aws")]
    replica: String,
    /// Files sent at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Where an interrupted upload's state is kept, so running it again sends only what is
    /// missing (default `$XDG_STATE_HOME/dss`, else `~/.local/state/dss`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Keep no state (an interrupted upload starts over).
    #[arg(long, conflicts_with = "state_dir")]
    no_resume: bool,
    /// The `creator_uid` recorded with the files and the bundle.
    #[arg(long, default_value_t = 0)]
    creator_uid: i64,
    /// Send the files through this staging bucket (`s3://bucket[/prefix]` or
    /// `gs://bucket[/prefix]`), tagged with their checksums as the official CLI tags them, and
    /// register them from there: how deployments without direct upload (the original) take
    /// files. S3 is reached with the AWS SDK's usual settings (`AWS_REGION`, credentials,
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for another server, then path-style);
    /// GCS with Application Default Credentials, or anonymously at `STORAGE_EMULATOR_HOST`.
    #[arg(long)]
    staging: Option<String>,
    /// Longest wait, in seconds, for a deployment copying a large staged file in the background.
    #[arg(long, default_value_t = 1200)]
    copy_timeout_secs: u64,
}

/// Arguments of `dss download`.
#[derive(Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The bundle to download.
    #[arg(long)]
    bundle_uuid: String,
    /// Its version (default: the latest).
    #[arg(long)]
    version: Option<String>,
    /// The replica to read.
    #[arg(long, default_value = "aws")]
    replica: String,
    /// Files go to `{download-dir}/{uuid}.{version}/{name}`.
    #[arg(long, default_value = ".")]
    download_dir: PathBuf,
    /// Files fetched at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Files larger than two ranges of this many MiB are fetched in ranges.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    range_mib: u64,
    /// Ranges of one file fetched at once (1: each file in one request).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    streams_per_file: u64,
    /// Flush each file to the disk before it takes its name, so that it outlives a crash of the
    /// machine (without it, running the command again fetches whatever a crash lost).
    #[arg(long)]
    fsync: bool,
}

/// Arguments of `dss search`.
#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The Elasticsearch query: JSON, `@file` to read it from a file, or `-` for standard input.
    #[arg(long, default_value = "{}")]
    es_query: String,
    /// The replica to search.
    #[arg(long, default_value = "aws")]
    replica: String,
    /// `summary` (bundle FQIDs and URLs) or `raw` (with each bundle's metadata).
    #[arg(long, default_value = "summary")]
    output_format: String,
    /// Stop after this many results.
    #[arg(long)]
    limit: Option<usize>,
    /// Results asked per page.
    #[arg(long)]
    per_page: Option<usize>,
}

/// Logging for a client command: warnings only on a terminal (the progress line is there).
fn init_logging() {
    crate::progress::init_logging(&LogConfig::default());
}

/// What a user can do about an authentication or permission failure.
fn hint(e: &ClientError) -> Option<&'static str> {
    match e {
        ClientError::Api { status: 401, .. } => Some(
            "pass a bearer token with --token or DSS_TOKEN (on the embedded default: `dss token`)",
        ),
        ClientError::Api { status: 403, .. } => {
            Some("the token's identity may not do this on this deployment")
        }
        ClientError::Partial { failures, .. } => failures.first().and_then(|(_, e)| hint(e)),
        _ => None,
    }
}

/// The error as the user sees it: every failed file of a partial transfer, and a hint.
fn explain(e: ClientError) -> anyhow::Error {
    let hint = hint(&e);
    let err = match e {
        ClientError::Partial { total, failures } => {
            let lines: Vec<String> = failures
                .iter()
                .map(|(n, e)| format!("  {n}: {e}"))
                .collect();
            anyhow::anyhow!(
                "{} of {total} files failed (run the same command again to resume):\n{}",
                failures.len(),
                lines.join("\n")
            )
        }
        e => e.into(),
    };
    match hint {
        Some(h) => err.context(h),
        None => err,
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The first non-empty one of the environment variables `names`.
fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// The buckets of the cloud that `url` (`s3://…` or `gs://…`) is in, reached as the
/// environment says.
async fn staging_for(url: &str) -> anyhow::Result<Arc<dyn Staging>> {
    let (scheme, _, _) = dss_client::staging::parse_url(url)?;
    if scheme == "gs" {
        let endpoint = env_first(&["STORAGE_EMULATOR_HOST"]).map(|h| match h.contains("://") {
            true => h,
            false => format!("http://{h}"),
        });
        let options = dss_gcp::GcpOptions {
            anonymous: endpoint.is_some(),
            endpoint,
            ..Default::default()
        };
        let store = dss_gcp::GcsBlobStore::connect("staging", &options)
            .context("the Google Cloud Storage client")?;
        return Ok(Arc::new(dss_gcp::GcsBuckets::like(&store)));
    }
    let endpoint = env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]);
    let options = dss_aws::AwsOptions {
        path_style: endpoint.is_some(),
        endpoint,
        ..Default::default()
    };
    Ok(Arc::new(dss_aws::S3Staging::connect(&options).await))
}

/// The default directory of resume state.
fn default_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("dss"))
}

impl UploadArgs {
    /// Uploads the directory and prints the new bundle as JSON.
    pub async fn run(self) -> anyhow::Result<()> {
        init_logging();
        let client = self.endpoint.client()?;
        let opts = UploadOptions {
            replica: self.replica,
            concurrency: self.concurrency,
            state_dir: if self.no_resume {
                None
            } else {
                self.state_dir.or_else(default_state_dir)
            },
            creator_uid: self.creator_uid,
            staging: match &self.staging {
                Some(url) => Some(StagingArea::new(url, staging_for(url).await?)?),
                None => None,
            },
            copy_timeout: std::time::Duration::from_secs(self.copy_timeout_secs),
        };
        let bar = Arc::new(Transfer::new("upload"));
        let progress: Arc<dyn Progress> = bar.clone();
        let report = upload_dir(&client, &self.src_dir, &opts, &progress).await;
        bar.finish();
        print_json(&report.map_err(explain)?)
    }
}

impl DownloadArgs {
    /// Downloads the bundle and prints where its files are as JSON.
    pub async fn run(self) -> anyhow::Result<()> {
        init_logging();
        let client = self.endpoint.client()?;
        let opts = DownloadOptions {
            replica: self.replica,
            version: self.version,
            concurrency: self.concurrency,
            ranges: Ranges {
                size: self.range_mib << 20,
                streams: self.streams_per_file as usize,
            },
            fsync: self.fsync,
        };
        let bar = Arc::new(Transfer::new("download"));
        let progress: Arc<dyn Progress> = bar.clone();
        let report = download_bundle(
            &client,
            &self.bundle_uuid,
            &self.download_dir,
            &opts,
            &progress,
        )
        .await;
        bar.finish();
        print_json(&report.map_err(explain)?)
    }
}

impl SearchArgs {
    /// Prints every result as a JSON line; the total goes to the log.
    pub async fn run(self) -> anyhow::Result<()> {
        init_logging();
        let client = self.endpoint.client()?;
        let text = match self.es_query.as_str() {
            "-" => std::io::read_to_string(std::io::stdin()).context("reading the query")?,
            q => match q.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading the query from {path}"))?,
                None => q.to_string(),
            },
        };
        let es_query: serde_json::Value =
            serde_json::from_str(&text).context("--es-query is not JSON")?;
        let req = SearchRequest {
            replica: &self.replica,
            es_query: &es_query,
            output_format: &self.output_format,
            limit: self.limit,
            per_page: self.per_page,
        };
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut written = Ok(());
        let summary = search(&client, &req, |r| {
            if written.is_ok() {
                written = serde_json::to_writer(&mut out, &r)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(out));
            }
        })
        .await
        .map_err(explain)?;
        written?;
        out.flush()?;
        tracing::info!(total_hits = ?summary.total_hits, returned = summary.returned, "search done");
        Ok(())
    }
}
