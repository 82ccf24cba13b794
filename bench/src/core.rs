//! The core rows: direct upload, PUT of large bundles, enumeration and GET of a bundle, the
//! embedded queue. Each group has its flag (`--upload-only`, `--put-bundle-only`,
//! `--enumeration-only`, `--queue-only`; `--core-only` runs them all) and runs 5 rounds, with its
//! baseline measured in the same rounds.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dss_config::Durability;
use dss_core::checksum::{Checksums, checksums_of};
use dss_core::clock::system;
use dss_core::model::{
    BundleFileEntry, BundleManifest, DssVersion, FileMetadata, ObjectKey, ObjectUuid,
};
use dss_core::ports::{BlobStore, OutgoingMessage, PutOptions, Queue};
use dss_embedded::{Db, EmbeddedQueue, QueueConfig};
use dss_runtime::deployment::Deployment;
use futures::StreamExt;

use crate::stats::{ROUNDS, mmm};
use crate::{Row, Server, V, config, gbps, hashing_ceiling, start};

/// The flags that select core rows.
pub const CORE_FLAGS: &[&str] = &[
    "--core-only",
    "--upload-only",
    "--put-bundle-only",
    "--enumeration-only",
    "--queue-only",
];

/// Runs the core rows the flags select (all of them without a flag).
pub async fn run(
    dss: &Path,
    work: &Path,
    quick: bool,
    http: &reqwest::Client,
    args: &[String],
) -> Result<Vec<Row>> {
    let flag = |f: &str| args.iter().any(|a| a == f);
    let all = flag("--core-only") || !CORE_FLAGS.iter().any(|f| flag(f));
    let mut rows = Vec::new();
    if all || flag("--upload-only") {
        rows.extend(upload(dss, work, quick, http).await?);
    }
    if all || flag("--put-bundle-only") {
        rows.extend(put_bundles(dss, work, quick, http).await?);
    }
    if all || flag("--enumeration-only") {
        rows.extend(enumeration(dss, work, quick, http).await?);
    }
    if all || flag("--queue-only") {
        rows.extend(queue(work, quick).await?);
    }
    Ok(rows)
}

/// Direct upload of a large file with all four checksums verified, each round into a new
/// deployment (a second upload of the same bytes would be answered from the existing blob),
/// against writing the same file to disk with fdatasync in the same round.
async fn upload(dss: &Path, work: &Path, quick: bool, http: &reqwest::Client) -> Result<Vec<Row>> {
    let upload_mib: u64 = if quick { 256 } else { 1024 };
    let size = upload_mib * 1024 * 1024;
    eprintln!("generating {upload_mib} MiB test file");
    let buf = dss_conformance::blob::random_bytes(size as usize, 0);
    let (one_core, threaded) = hashing_ceiling(&buf);
    let sums = checksums_of(&buf);
    let src = work.join("upload.bin");
    let (mut ours, mut rss, mut disk) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        eprintln!("upload round {}/{ROUNDS}", r + 1);
        disk.push({
            use std::io::Write;
            let t = Instant::now();
            let mut f = std::fs::File::create(&src)?;
            f.write_all(&buf)?;
            f.sync_data()?;
            gbps(size, t.elapsed())
        });
        let data = work.join(format!("upload-data-{r}"));
        let server = start(dss, &data, 5901)?;
        ours.push(gbps(
            size,
            upload_1gib(http, &server, &src, &sums, size).await?,
        ));
        rss.push(server.peak_rss_mib());
        drop(server);
        std::fs::remove_dir_all(&data)?;
    }
    std::fs::remove_file(&src)?;
    Ok(vec![Row {
        name: format!(
            "direct upload, {upload_mib} MiB, 4 checksums verified (min / median / max of {ROUNDS} rounds)"
        ),
        result: format!(
            "{}, server peak RSS {}",
            mmm(ours, 2, " GB/s"),
            mmm(rss, 0, " MiB")
        ),
        goal: "≥ 0.55 GB/s, RSS < 64 MiB".into(),
        baseline: format!(
            "same rounds: disk write+fdatasync {}; hashing in memory {one_core:.2} GB/s one core, {threaded:.2} GB/s with MD5 on its own thread",
            mmm(disk, 2, " GB/s")
        ),
    }])
}

/// PUT of bundles of 10,000 and of many files (seeded once), a new bundle each round.
async fn put_bundles(
    dss: &Path,
    work: &Path,
    quick: bool,
    http: &reqwest::Client,
) -> Result<Vec<Row>> {
    let many_files = if quick { 20_000 } else { 100_000 };
    let data = work.join("put-bundle-data");
    eprintln!("seeding {many_files} file versions");
    let files = {
        let dep = Deployment::open(config(&data)?, system())?;
        seed_files(&dep.replicas["aws"].store, many_files).await?
    };
    let server = start(dss, &data, 5902)?;
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        eprintln!("PUT bundle round {}/{ROUNDS}", r + 1);
        small.push(
            put_bundle(http, &server, &files[..10_000])
                .await?
                .as_secs_f64(),
        );
        large.push(put_bundle(http, &server, &files).await?.as_secs_f64());
    }
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok(vec![
        Row {
            name: format!("PUT bundle, 10,000 files (min / median / max of {ROUNDS} rounds)"),
            result: mmm(small, 2, " s"),
            goal: "< 1 s".into(),
            baseline: "original: failed above ~2,757 files (quoted)".into(),
        },
        Row {
            name: format!("PUT bundle, {many_files} files (min / median / max of {ROUNDS} rounds)"),
            result: mmm(large, 2, " s"),
            goal: "< 10 s (100,000 files)".into(),
            baseline: "original: failed above ~2,757 files (quoted)".into(),
        },
    ])
}

/// Enumeration of every bundle and GET of one bundle's manifest (wrk), against wrk on
/// `GET /version` in the same rounds.
async fn enumeration(
    dss: &Path,
    work: &Path,
    quick: bool,
    http: &reqwest::Client,
) -> Result<Vec<Row>> {
    let many_bundles = if quick { 20_000 } else { 100_000 };
    let data = work.join("enumeration-data");
    eprintln!("seeding {many_bundles} bundles");
    let one = {
        let dep = Deployment::open(config(&data)?, system())?;
        let files = seed_files(&dep.replicas["aws"].store, 1).await?;
        seed_bundles(&dep.replicas["aws"].store, &files[0], many_bundles).await?
    };
    let server = start(dss, &data, 5903)?;
    let (mut listed, mut rps, mut p99, mut version) = (0, Vec::new(), Vec::new(), Vec::new());
    let mut rates = Vec::new();
    for r in 0..ROUNDS {
        eprintln!("enumeration round {}/{ROUNDS}", r + 1);
        let (n, d) = enumerate_all(http, &server).await?;
        listed = n;
        rates.push(n as f64 / d.as_secs_f64());
        let (req, tail) = wrk(&format!("{}/v1/bundles/{one}?replica=aws", server.base), 5)?;
        rps.push(req);
        p99.push(tail);
        version.push(wrk(&format!("{}/version", server.base), 5)?.0);
    }
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok(vec![
        Row {
            name: format!(
                "GET /bundles/all over {listed} bundles (per_page 500; min / median / max of {ROUNDS} rounds)"
            ),
            result: mmm(rates, 0, " bundles/s"),
            goal: "≥ 50,000 bundles/s".into(),
            baseline: "original: ≈ 700 bundles/s (quoted)".into(),
        },
        Row {
            name: format!(
                "GET /bundles/{{uuid}} (wrk -t2 -c64 for 5 s, same 2 cores; min / median / max of {ROUNDS} rounds)"
            ),
            result: format!("{}, p99 {}", mmm(rps, 0, " req/s"), mmm(p99, 2, " ms")),
            goal: "≥ 20,000 req/s".into(),
            baseline: format!(
                "wrk on GET /version, same rounds: {}",
                mmm(version, 0, " req/s")
            ),
        },
    ])
}

/// The embedded queue, against SQLite's own commit rate on the same disk, interleaved.
async fn queue(work: &Path, quick: bool) -> Result<Vec<Row>> {
    let (mut queue, mut commits) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        eprintln!("queue round {}/{ROUNDS}", round + 1);
        queue.push(queue_rate(work, if quick { 20_000 } else { 50_000 }, round).await?);
        commits.push(sqlite_commit_rate(work, 20_000, round)?);
    }
    Ok(vec![Row {
        name: format!(
            "embedded queue: send + receive + ack, batches of 100 (min / median / max of {ROUNDS} rounds)"
        ),
        result: mmm(queue, 0, " msgs/s"),
        goal: "≥ 20,000 msgs/s".into(),
        baseline: format!(
            "same rounds, interleaved: SQLite WAL commits of one small row, synchronous=NORMAL (the queue's durability): {}",
            mmm(commits, 0, " commits/s")
        ),
    }])
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

/// Requests per second and the p99 latency in ms of `secs` seconds of wrk on `url`.
fn wrk(url: &str, secs: u64) -> Result<(f64, f64)> {
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
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(latency_ms)
        .context("wrk p99")?;
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

/// A wrk latency (`850.00us`, `1.20ms`, `2.01s`) in ms.
fn latency_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let x: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => x / 1000.0,
        "ms" => x,
        "s" => x * 1000.0,
        _ => return None,
    })
}
