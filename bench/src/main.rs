//! Benchmark harness. Starts the release `dss` binary on a temp data directory, seeds data through
//! the library, drives the HTTP API, and prints one markdown table row per benchmark with the goal
//! and the baseline measured (or, for the original system, quoted) in the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dss_config::Config;
use dss_core::checksum::{MultiHasher, S3EtagHasher};

mod checkout;
mod clients;
mod clouds;
mod core;
mod docgen;
mod downloads;
mod es_client;
mod events;
mod hostile;
mod metadata;
mod notify;
mod osmem;
mod search;
mod stats;
mod sync;

const V: &str = "2026-01-01T000000.000000Z";

/// One line of the results table.
pub struct Row {
    /// What was measured.
    pub name: String,
    /// The measurement.
    pub result: String,
    /// The target.
    pub goal: String,
    /// The same-run (or quoted) comparison.
    pub baseline: String,
}

/// A running `dss up`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// An administrator's bearer token.
    pub token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Server {
    fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// Current resident memory.
    pub fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    fn status_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Server {
    /// Uploads `body` as file `uuid` at `version` to replica `aws`.
    pub async fn upload(
        &self,
        http: &reqwest::Client,
        uuid: &str,
        version: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<()> {
        let r = http
            .put(format!(
                "{}/v1/files/{uuid}/content?version={version}&replica=aws",
                self.base
            ))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        if r.status() != 201 {
            bail!("upload answered {}", r.status());
        }
        Ok(())
    }
}

/// Starts `dss up` on `data`, listening on `port`.
pub fn start(dss: &Path, data: &Path, port: u16) -> Result<Server> {
    start_with(dss, data, port, &[])
}

/// Starts `dss up` with extra `DSS_*` environment.
pub fn start_with(dss: &Path, data: &Path, port: u16, env: &[(&str, &str)]) -> Result<Server> {
    use std::io::{BufRead, BufReader};
    // `dss up` prints no token: mint one with the key it will use.
    let minted = Command::new(dss)
        .args(["token", "--admin", "--data-dir"])
        .arg(data)
        .envs(env.iter().copied())
        .output()
        .context("dss token")?;
    if !minted.status.success() {
        bail!(
            "dss token failed: {}",
            String::from_utf8_lossy(&minted.stderr)
        );
    }
    let token = String::from_utf8(minted.stdout)
        .context("token text")?
        .trim()
        .to_string();
    let mut child = Command::new(dss)
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .envs(env.iter().copied())
        .env("DSS_LOG__LEVEL", "warn")
        .env("DSS_API__MAX_JSON_BODY", (256 * 1024 * 1024).to_string())
        // The per-client search limit is for hostile clients; the bench measures the engine.
        .env("DSS_API__SEARCH_RATE", "1000000")
        .env("DSS_API__SEARCH_BURST", "1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning dss")?;
    // Wait for the banner, then keep reading: a closed pipe would fail dss's later writes.
    let out = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(out).lines().map_while(Result::ok);
    if !lines.any(|l| l.starts_with("DSS is running at")) {
        bail!("dss up did not start");
    }
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        token,
    })
}

/// The embedded configuration of a deployment in `data`.
pub fn config(data: &Path) -> Result<Config> {
    Ok(Config::from_toml(&format!(
        "data_dir = \"{}\"",
        data.display()
    ))?)
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// Baseline: the one-pass hashing ceiling of this machine, in memory.
pub(crate) fn hashing_ceiling(data: &Bytes) -> (f64, f64) {
    use md5::Digest;
    let t = Instant::now();
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    let mut etag = S3EtagHasher::new(64 * 1024 * 1024);
    let mut crc = 0u32;
    for c in data.chunks(64 * 1024) {
        sha256.update(c);
        sha1.update(c);
        etag.update(c);
        crc = crc32c::crc32c_append(crc, c);
    }
    std::hint::black_box((sha256.finalize(), sha1.finalize(), etag.finish(), crc));
    let one = gbps(data.len() as u64, t.elapsed());
    let t = Instant::now();
    let mut h = MultiHasher::new(Some(data.len() as u64));
    for i in (0..data.len()).step_by(1024 * 1024) {
        h.update(data.slice(i..(i + 1024 * 1024).min(data.len())));
    }
    std::hint::black_box(h.finish());
    (one, gbps(data.len() as u64, t.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dss = PathBuf::from(
        args.iter()
            .position(|a| a == "--dss")
            .and_then(|i| args.get(i + 1))
            .context("--dss PATH")?,
    );
    let quick = args.iter().any(|a| a == "--quick");
    // Under the system temp directory unless DSS_BENCH_DIR names another (never the working
    // tree: a bench's data directory holds keys).
    let work = match std::env::var("DSS_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir)?,
        Err(_) => tempfile::tempdir()?,
    };
    let mut rows = Vec::new();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    // DSS_BENCH_SEARCH_DOCS sets the search rows' document count (e.g. 1000000).
    let search_docs = match std::env::var("DSS_BENCH_SEARCH_DOCS") {
        Ok(n) => n.parse().context("DSS_BENCH_SEARCH_DOCS")?,
        Err(_) if quick => 20_000,
        Err(_) => 100_000,
    };
    if args.iter().any(|a| a == "--search-only") {
        print_table(search::run(&dss, work.path(), search_docs, &http).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--events-only") {
        print_table(events::run(&dss, work.path(), &http).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--checkout-only") {
        print_table(checkout::run(&dss, work.path(), quick).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--downloads-only") {
        print_table(downloads::run(&dss, work.path()).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--clouds-only") {
        print_table(clouds::run(quick).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--sync-only") {
        print_table(sync::run(work.path(), quick).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--clients-only") {
        print_table(clients::run(&dss, work.path(), quick).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--hostile-only") {
        print_table(hostile::run(&dss, work.path()).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--metadata-only") {
        print_table(metadata::run(&dss, work.path(), &http).await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--search-client-only") {
        print_table(es_client::run().await?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--notify-only") {
        print_table(notify::run(&dss, work.path(), quick, &http).await?);
        return Ok(());
    }

    rows.extend(core::run(&dss, work.path(), quick, &http, &args).await?);
    if core::CORE_FLAGS.iter().any(|f| args.iter().any(|a| a == f)) {
        print_table(rows);
        return Ok(());
    }

    rows.extend(search::run(&dss, work.path(), search_docs, &http).await?);
    rows.extend(notify::run(&dss, work.path(), quick, &http).await?);
    rows.extend(downloads::run(&dss, work.path()).await?);
    rows.extend(checkout::run(&dss, work.path(), quick).await?);
    rows.extend(sync::run(work.path(), quick).await?);
    rows.extend(clouds::run(quick).await?);
    rows.extend(clients::run(&dss, work.path(), quick).await?);
    print_table(rows);
    Ok(())
}

fn print_table(rows: Vec<Row>) {
    println!("| benchmark | result | goal | baseline |\n|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.name, r.result, r.goal, r.baseline
        );
    }
}
