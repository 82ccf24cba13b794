//! Replication between two local-disk replicas against `rclone copy` of the same files, in the
//! same run: 5,000 × 4 KiB and 4 × 256 MiB blobs, each copied and verified by all four
//! checksums (rclone checks its MD5); and the lag from write to verified copy under a steady
//! stream of writes.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dss_config::Config;
use dss_core::checksum::checksums_of;
use dss_core::model::ObjectKey;
use dss_core::names::SYNC_QUEUE;
use dss_core::ports::{BlobStore, PutOptions};
use dss_runtime::deployment::Deployment;
use dss_sync::SyncMetrics;
use dss_sync::metrics::read;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::Row;
use crate::stats::{LatencyRounds, ROUNDS, median, mmm};
use dss_conformance::blob::random_bytes;

/// A deployment of replicas `aws` and `gcp` under `dir` (no scheduled reconciler).
async fn deployment(dir: &Path) -> Result<Deployment> {
    let root = dir.display();
    let concurrency = concurrency();
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{root}\"\n[sync]\nreconcile_every_secs = 0\nconcurrency = {concurrency}\n\
         [replicas.aws]\nurl = \"file://{root}/buckets/aws\"\n\
         [replicas.gcp]\nurl = \"file://{root}/buckets/gcp\"\n"
    ))?;
    let d = Deployment::open(cfg, dss_core::clock::system())?;
    d.declare_queues().await?;
    Ok(d)
}

/// Writes `count` blobs of `size` bytes into `store`, 8 at a time.
async fn seed(store: &Arc<dyn BlobStore>, count: usize, size: usize) -> Result<()> {
    futures::stream::iter(0..count)
        .map(|i| {
            let store = store.clone();
            async move {
                let data = random_bytes(size, i as u64);
                let key = ObjectKey::blob(&checksums_of(&data));
                store.put_bytes(&key, data, PutOptions::default()).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Starts the sync daemon on a backlog of `count` events and times it until every copy is
/// made and verified and the queue is empty.
async fn drain(d: &Deployment, count: u64) -> Result<Duration> {
    let metrics = Arc::new(SyncMetrics::default());
    let stop = CancellationToken::new();
    let queue = d.queue(SYNC_QUEUE).await?;
    let t = Instant::now();
    let daemon = {
        let (d, m, s) = (d.clone(), metrics.clone(), stop.clone());
        tokio::spawn(async move { dss_sync::run_with(&d, m, s).await })
    };
    while read(&metrics.copied) < count || queue.stats().await?.depth() > 0 {
        if t.elapsed() > Duration::from_secs(600) {
            bail!(
                "sync did not finish: {} of {count} copied",
                read(&metrics.copied)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = t.elapsed();
    stop.cancel();
    daemon.await?.map_err(|e| anyhow::anyhow!(e))?;
    if read(&metrics.copied) != count {
        bail!("{} copies made for {count} objects", read(&metrics.copied));
    }
    Ok(took)
}

/// The parallelism of our sync daemon in the bench (`sync.concurrency`), which rclone gets too.
fn concurrency() -> String {
    std::env::var("DSS_BENCH_SYNC_CONCURRENCY").unwrap_or_else(|_| "32".into())
}

/// `rclone copy` of the directory `src` into a new directory, as a user would run it for the
/// same work: as many transfers and checkers as our sync has copies in flight, objects compared
/// by checksum, and each copy's MD5 verified after the transfer (rclone's default).
fn rclone(src: &Path, work: &Path, run: usize) -> Result<Duration> {
    let dst = work.join(format!("rclone-dst-{run}"));
    let n = concurrency();
    let t = Instant::now();
    let ok = Command::new("rclone")
        .args(["copy", "--exclude", ".tmp/**", "--checksum"])
        .args(["--transfers", &n, "--checkers", &n])
        .arg(src)
        .arg(&dst)
        .status()
        .context("running rclone (Debian package `rclone`)")?;
    let took = t.elapsed();
    if !ok.success() {
        bail!("rclone failed");
    }
    std::fs::remove_dir_all(&dst)?;
    Ok(took)
}

/// Lag from the write into `aws` to the verified copy in `gcp`, for `count` objects written
/// one after another while the daemon runs in a fresh deployment.
async fn lag(work: &Path, count: usize, round: usize) -> Result<Vec<Duration>> {
    let dir = work.join(format!("sync-lag-{round}"));
    let d = deployment(&dir).await?;
    let metrics = Arc::new(SyncMetrics::default());
    let stop = CancellationToken::new();
    let daemon = {
        let (d, m, s) = (d.clone(), metrics.clone(), stop.clone());
        tokio::spawn(async move { dss_sync::run_with(&d, m, s).await })
    };
    let (src, dst) = (
        d.replicas["aws"].store.clone(),
        d.replicas["gcp"].store.clone(),
    );
    let mut keys = Vec::with_capacity(count);
    for i in 0..count {
        let data = random_bytes(4096, 1_000_000 + i as u64);
        let key = ObjectKey::blob(&checksums_of(&data));
        src.put_bytes(&key, data, PutOptions::default()).await?;
        keys.push(key);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let t = Instant::now();
    while read(&metrics.copied) < count as u64 {
        if t.elapsed() > Duration::from_secs(120) {
            bail!("lag run did not finish");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    daemon.await?.map_err(|e| anyhow::anyhow!(e))?;
    let mut lags = Vec::with_capacity(count);
    for k in &keys {
        let (a, b) = (src.head(k).await?, dst.head(k).await?);
        let (Some(a), Some(b)) = (a, b) else {
            bail!("{k} missing after the lag run");
        };
        lags.push(Duration::try_from(b.created - a.created).unwrap_or(Duration::ZERO));
    }
    drop(d);
    std::fs::remove_dir_all(&dir)?;
    Ok(lags)
}

/// The sync rows.
pub async fn run(work: &Path, quick: bool) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let big = if quick { 64 } else { 256 } * 1024 * 1024;
    let cases = std::env::var("DSS_BENCH_SYNC_CASES").unwrap_or_else(|_| "small,large,lag".into());
    for (count, size, label) in [
        (5000usize, 4096usize, "5,000 × 4 KiB"),
        (4, big, if quick { "4 × 64 MiB" } else { "4 × 256 MiB" }),
    ] {
        if !cases.contains(if count > 4 { "small" } else { "large" }) {
            continue;
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for run in 0..ROUNDS {
            eprintln!("sync bench: {label}, round {}", run + 1);
            let dir = work.join(format!("sync-{count}-{run}"));
            let d = deployment(&dir).await?;
            seed(&d.replicas["aws"].store, count, size).await?;
            ours.push(drain(&d, count as u64).await?.as_secs_f64());
            theirs.push(rclone(&dir.join("buckets/aws"), work, run)?.as_secs_f64());
            drop(d);
            std::fs::remove_dir_all(&dir)?;
        }
        let (o, r) = (median(&ours), median(&theirs));
        let total = (count * size) as f64;
        // Objects per second say something only of many objects.
        let rate = if count > 100 {
            format!("{:.0} objects/s, ", count as f64 / o)
        } else {
            String::new()
        };
        // What hashing alone allows here: all four checksums of every byte, one object per core.
        let (one_core, _) = crate::hashing_ceiling(&random_bytes(size.max(64 << 20), 7));
        let floor = total / 1e9 / (one_core * 2.0);
        rows.push(Row {
            name: format!(
                "sync {label}, local replica → local replica, 4 checksums verified, {} in flight (min / median / max of {ROUNDS} rounds)",
                concurrency()
            ),
            result: format!(
                "{} (median {rate}{:.0} MB/s; {:.2}× rclone's throughput)",
                mmm(ours, 3, " s"),
                total / o / 1e6,
                r / o
            ),
            goal: "≥ 2× rclone's throughput".into(),
            baseline: format!(
                "same run, interleaved: rclone copy --checksum --transfers {n} --checkers {n} (MD5 verified after each copy) {}; the fsync difference stays: ours flushes every copy to disk (main buckets are always fsynced), rclone does not flush its copies; hashing the bytes alone takes ≥ {floor:.3} s on both cores ({one_core:.2} GB/s per core)",
                mmm(theirs, 3, " s"),
                n = concurrency()
            ),
        });
    }
    if !cases.contains("lag") {
        return Ok(rows);
    }
    let n = if quick { 200 } else { 1000 };
    let mut lags = LatencyRounds::default();
    for round in 0..ROUNDS {
        eprintln!("sync bench: lag, round {}", round + 1);
        lags.push(&mut lag(work, n, round).await?);
    }
    rows.push(Row {
        name: format!(
            "sync lag, write → verified copy, {n} × 4 KiB written one by one (each round a fresh deployment; min / median / max of {ROUNDS} rounds)"
        ),
        result: lags.summary(),
        goal: "report (no goal set)".into(),
        baseline: "—".into(),
    });
    Ok(rows)
}
