//! Benchmark harness. Starts the release `dss` binary on a temp data directory, seeds data through
//! the library, drives the HTTP API, and prints one markdown table row per benchmark with the goal
//! and the baseline measured (or, for the original system, quoted) in the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dss_config::Config;
use dss_config::Durability;
use dss_core::checksum::{Checksums, MultiHasher, S3EtagHasher, checksums_of};
use dss_core::clock::system;
use dss_core::model::{
    BundleFileEntry, BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid,
};
use dss_core::ports::{BlobStore, OutgoingMessage, PutOptions, Queue};
use dss_embedded::{Db, EmbeddedQueue, QueueConfig};
use dss_runtime::deployment::Deployment;
use futures::StreamExt;

mod checkout;
mod clients;
mod clouds;
mod downloads;
mod es_client;
mod hostile;
mod metadata;
mod notify;
mod osmem;
mod search;
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

async fn upload_1gib(
    http: &reqwest::Client,
    s: &Server,
    path: &Path,
    sums: &Checksums,
    size: u64,
) -> Result<Duration> {
    let uuid = uuid::Uuid::new_v4();
    let file = tokio::fs::File::open(path).await?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        1024 * 1024,
    ));
    let t = Instant::now();
    let r = http
        .put(format!(
            "{}/v1/files/{uuid}/content?version={V}&replica=aws",
            s.base
        ))
        .bearer_auth(&s.token)
        .header("content-length", size)
        .header("x-dss-sha256", &sums.sha256)
        .header("x-dss-sha1", &sums.sha1)
        .header("x-dss-s3-etag", &sums.s3_etag)
        .header("x-dss-crc32c", &sums.crc32c)
        .body(body)
        .send()
        .await?;
    let d = t.elapsed();
    if r.status() != 201 {
        bail!("upload answered {}: {}", r.status(), r.text().await?);
    }
    Ok(d)
}

/// Writes `n` file metadata documents (one shared blob) straight into the aws bucket.
async fn seed_files(
    store: &Arc<dyn BlobStore>,
    n: usize,
) -> Result<Vec<(ObjectUuid, FileMetadata)>> {
    let sums = checksums_of(b"x");
    store
        .put_bytes(
            &ObjectKey::blob(&sums),
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await?;
    let version = DssVersion::parse(V)?;
    let docs: Vec<(ObjectUuid, FileMetadata)> = (0..n)
        .map(|_| {
            (
                ObjectUuid::new_v4(),
                FileMetadata::new(1, version.clone(), "application/json".into(), 1, &sums),
            )
        })
        .collect();
    futures::stream::iter(docs.iter())
        .map(|(u, m)| {
            let store = store.clone();
            async move {
                store
                    .put_bytes(
                        &ObjectKey::file(u, &m.version),
                        m.to_json_text().into(),
                        PutOptions::default(),
                    )
                    .await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(docs)
}

async fn put_bundle(
    http: &reqwest::Client,
    s: &Server,
    files: &[(ObjectUuid, FileMetadata)],
) -> Result<Duration> {
    let list: Vec<serde_json::Value> = files
        .iter()
        .enumerate()
        .map(|(i, (u, _))| serde_json::json!({"uuid": u.as_str(), "version": V, "name": format!("f{i:06}.json"), "indexed": true}))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({"creator_uid": 1, "files": list}))?;
    let t = Instant::now();
    let r = http
        .put(format!(
            "{}/v1/bundles/{}?version={V}&replica=aws",
            s.base,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    r.bytes().await?;
    let d = t.elapsed();
    if status != 201 {
        bail!("bundle PUT answered {status}");
    }
    Ok(d)
}

/// Writes `n` one-file bundle manifests straight into the aws bucket.
async fn seed_bundles(
    store: &Arc<dyn BlobStore>,
    file: &(ObjectUuid, FileMetadata),
    n: usize,
) -> Result<ObjectUuid> {
    let version = DssVersion::parse(V)?;
    let manifest = BundleManifest {
        format: "0.0.1".into(),
        version: version.clone(),
        files: vec![BundleFileEntry::from_metadata(
            "a.json".into(),
            file.0.clone(),
            true,
            &file.1,
        )],
        creator_uid: 1,
    };
    let text = Bytes::from(manifest.to_json_text());
    let uuids: Vec<ObjectUuid> = (0..n).map(|_| ObjectUuid::new_v4()).collect();
    futures::stream::iter(uuids.iter())
        .map(|u| {
            let (store, text, key) = (store.clone(), text.clone(), ObjectKey::bundle(u, &version));
            async move { store.put_bytes(&key, text, PutOptions::default()).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(uuids[0].clone())
}

async fn enumerate_all(http: &reqwest::Client, s: &Server) -> Result<(usize, Duration)> {
    let t = Instant::now();
    let mut url = format!("{}/v1/bundles/all?replica=aws&per_page=500", s.base);
    let mut n = 0;
    loop {
        let v: serde_json::Value = http.get(&url).send().await?.json().await?;
        n += v["bundles"].as_array().map_or(0, Vec::len);
        match v["link"].as_str() {
            Some(l) => url = l.to_string(),
            None => return Ok((n, t.elapsed())),
        }
    }
}

fn wrk(url: &str, secs: u64) -> Result<(f64, String)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("wrk output")?;
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    Ok((rps, p99))
}

/// Commits per second of single-row inserts into a new SQLite database in `dir`, with the
/// embedded database's settings (WAL, `synchronous=NORMAL`).
fn sqlite_commit_rate(dir: &Path, n: usize, round: usize) -> Result<f64> {
    let path = dir.join(format!("bench-commits-{round}.db"));
    let c = rusqlite::Connection::open(&path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        [],
    )?;
    let mut insert = c.prepare("INSERT INTO t (body) VALUES (?1)")?;
    let t = Instant::now();
    for i in 0..n {
        insert.execute([format!("{{\"n\":{i},\"key\":\"bundles/x\"}}")])?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(insert);
    drop(c);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate)
}

async fn queue_rate(dir: &Path, n: usize, round: usize) -> Result<f64> {
    let db = Db::open(
        &dir.join(format!("bench-queue-{round}.db")),
        Durability::Process,
    )?;
    let q = EmbeddedQueue::declare(&db, "bench", QueueConfig::default(), system()).await?;
    let batch: Vec<OutgoingMessage> = (0..100)
        .map(|i| OutgoingMessage::new(format!("{{\"n\":{i},\"key\":\"bundles/x\"}}")))
        .collect();
    let t = Instant::now();
    let sender = {
        let q = q.clone();
        tokio::spawn(async move {
            for _ in 0..n / 100 {
                q.send_batch(&batch).await?;
            }
            anyhow::Ok(())
        })
    };
    let mut done = 0;
    while done < n {
        let got = q
            .receive(100, Duration::from_secs(30), Duration::from_secs(1))
            .await?;
        done += got.len();
        q.ack_batch(&got.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>())
            .await?;
    }
    sender.await??;
    Ok(n as f64 / t.elapsed().as_secs_f64())
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
    let (upload_mib, many_files, many_bundles) = if quick {
        (256u64, 20_000, 20_000)
    } else {
        (1024u64, 100_000, 100_000)
    };
    // Under the system temp directory unless DSS_BENCH_DIR names another (never the working
    // tree: a bench's data directory holds keys).
    let work = match std::env::var("DSS_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir)?,
        Err(_) => tempfile::tempdir()?,
    };
    let data = work.path().join("data");
    let mut rows = Vec::new();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    let search_docs = if quick { 20_000 } else { 100_000 };
    if args.iter().any(|a| a == "--search-only") {
        print_table(search::run(&dss, work.path(), search_docs, &http).await?);
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

    // 1. Direct upload of a large file with all four checksums verified.
    let size = upload_mib * 1024 * 1024;
    eprintln!("generating {upload_mib} MiB test file");
    let mut buf = vec![0u8; size as usize];
    let mut x = 0x9e3779b97f4a7c15u64;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let buf = Bytes::from(buf);
    let (one_core, threaded) = hashing_ceiling(&buf);
    let sums = checksums_of(&buf);
    let src = work.path().join("upload.bin");
    let disk = {
        use std::io::Write;
        let t = Instant::now();
        let mut f = std::fs::File::create(&src)?;
        f.write_all(&buf)?;
        f.sync_data()?;
        gbps(size, t.elapsed())
    };
    drop(buf);
    let server = start(&dss, &data, 5901)?;
    // One run: a second upload of the same bytes would be answered from the existing blob.
    let best = upload_1gib(&http, &server, &src, &sums, size).await?;
    let rss = server.peak_rss_mib();
    drop(server);
    rows.push(Row {
        name: format!("direct upload, {upload_mib} MiB, 4 checksums verified"),
        result: format!("{:.2} GB/s, server peak RSS {:.0} MiB", gbps(size, best), rss),
        goal: "≥ 0.55 GB/s, RSS < 64 MiB".into(),
        baseline: format!(
            "same run: disk write+fdatasync {disk:.2} GB/s; hashing in memory {one_core:.2} GB/s one core, {threaded:.2} GB/s with MD5 on its own thread"
        ),
    });
    std::fs::remove_file(&src)?;

    // 2. PUT of large bundles.
    eprintln!("seeding {many_files} file versions");
    let files = {
        let dep = Deployment::open(config(&data)?, system())?;
        seed_files(&dep.replicas["aws"].store, many_files).await?
    };
    let server = start(&dss, &data, 5902)?;
    let d10k = put_bundle(&http, &server, &files[..10_000]).await?;
    let dmany = put_bundle(&http, &server, &files).await?;
    rows.push(Row {
        name: "PUT bundle, 10,000 files".into(),
        result: format!("{:.2} s", d10k.as_secs_f64()),
        goal: "< 1 s".into(),
        baseline: "original: failed above ~2,757 files (quoted)".into(),
    });
    rows.push(Row {
        name: format!("PUT bundle, {many_files} files"),
        result: format!("{:.2} s", dmany.as_secs_f64()),
        goal: "< 10 s (100,000 files)".into(),
        baseline: "original: failed above ~2,757 files (quoted)".into(),
    });
    drop(server);

    // 3. Enumeration and 4. GET bundle.
    eprintln!("seeding {many_bundles} bundles");
    let one = {
        let dep = Deployment::open(config(&data)?, system())?;
        seed_bundles(&dep.replicas["aws"].store, &files[0], many_bundles).await?
    };
    let server = start(&dss, &data, 5903)?;
    let (n, d) = enumerate_all(&http, &server).await?;
    rows.push(Row {
        name: format!("GET /bundles/all over {n} bundles (per_page 500)"),
        result: format!("{:.0} bundles/s", n as f64 / d.as_secs_f64()),
        goal: "≥ 50,000 bundles/s".into(),
        baseline: "original: ≈ 700 bundles/s (quoted)".into(),
    });
    let (rps, p99) = wrk(
        &format!("{}/v1/bundles/{one}?replica=aws", server.base),
        if quick { 5 } else { 10 },
    )?;
    rows.push(Row {
        name: "GET /bundles/{uuid} (wrk -t2 -c64, same 2 cores)".into(),
        result: format!(
            "{rps:.0} req/s, p99 {}",
            p99.trim_start_matches("99%").trim()
        ),
        goal: "≥ 20,000 req/s".into(),
        baseline: format!(
            "wrk on GET /version: {:.0} req/s",
            wrk(&format!("{}/version", server.base), 5)?.0
        ),
    });
    drop(server);

    // 5. Embedded queue, against SQLite's own commit rate on the same disk, interleaved.
    let (mut queue, mut commits) = (Vec::new(), Vec::new());
    for round in 0..5 {
        eprintln!("queue round {}", round + 1);
        queue.push(queue_rate(work.path(), if quick { 20_000 } else { 50_000 }, round).await?);
        commits.push(sqlite_commit_rate(work.path(), 20_000, round)?);
    }
    rows.push(Row {
        name: "embedded queue: send + receive + ack, batches of 100 (min / median / max of 5 rounds)".into(),
        result: metadata::mmm(queue, 0, " msgs/s"),
        goal: "≥ 20,000 msgs/s".into(),
        baseline: format!(
            "same run, interleaved: SQLite WAL commits of one small row, synchronous=NORMAL (the queue's durability): {}",
            metadata::mmm(commits, 0, " commits/s")
        ),
    });
    if args.iter().any(|a| a == "--core-only") {
        print_table(rows);
        return Ok(());
    }

    // 6. Search, indexing and the events journal.
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
