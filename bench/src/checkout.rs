//! Bundle checkout on local disk against a plain `cp -r` of the same files, in the same run:
//! 1,000 × 64 KiB and 4 × 256 MiB, from `POST /v1/bundles/{uuid}/checkout` until the job's
//! status says `SUCCEEDED` (every file copied and verified by size and CRC-32C).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::stats::{ROUNDS, median, mmm, secs};
use crate::{Row, Server, start_with};
use dss_conformance::blob::random_bytes;

const V: &str = "2026-06-01T000000.000000Z";

/// Uploads the files (also written under `plain` for `cp -r`) and makes a bundle of them.
async fn seed(
    s: &Server,
    http: &reqwest::Client,
    plain: &Path,
    count: usize,
    size: usize,
    seed0: u64,
) -> Result<String> {
    std::fs::create_dir_all(plain)?;
    let files: Vec<(String, String)> = futures::stream::iter(0..count)
        .map(|i| {
            let data = random_bytes(size, seed0 + i as u64).to_vec();
            let name = format!("file-{i:05}.bin");
            let uuid = uuid::Uuid::new_v4().to_string();
            async move {
                std::fs::write(plain.join(&name), &data)?;
                s.upload(http, &uuid, V, "application/octet-stream", data)
                    .await?;
                Ok::<_, anyhow::Error>((uuid, name))
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let bundle = uuid::Uuid::new_v4().to_string();
    let entries: Vec<Value> = files
        .iter()
        .map(|(u, n)| json!({"uuid": u, "version": V, "name": n, "indexed": false}))
        .collect();
    let r = http
        .put(format!(
            "{}/v1/bundles/{bundle}?version={V}&replica=aws",
            s.base
        ))
        .bearer_auth(&s.token)
        .json(&json!({"creator_uid": 1, "files": entries}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("bundle PUT answered {}", r.status());
    }
    Ok(bundle)
}

/// The bucket of round `run`'s checkout.
fn destination(run: usize) -> String {
    format!("bench-dest-{run}")
}

/// One checkout into a new bucket: the time from the POST to `SUCCEEDED`, and the bucket.
async fn checkout(
    s: &Server,
    http: &reqwest::Client,
    buckets: &Path,
    bundle: &str,
    run: usize,
) -> Result<(Duration, PathBuf)> {
    let dest = destination(run);
    std::fs::create_dir_all(buckets.join(&dest))?;
    let t = Instant::now();
    let v: Value = http
        .post(format!(
            "{}/v1/bundles/{bundle}/checkout?replica=aws",
            s.base
        ))
        .bearer_auth(&s.token)
        .json(&json!({"destination": dest}))
        .send()
        .await?
        .json()
        .await?;
    let job = v["checkout_job_id"]
        .as_str()
        .with_context(|| format!("no job id: {v}"))?
        .to_string();
    loop {
        let st: Value = http
            .get(format!("{}/v1/bundles/checkout/{job}?replica=aws", s.base))
            .send()
            .await?
            .json()
            .await?;
        match st["status"].as_str() {
            Some("SUCCEEDED") => break,
            Some("RUNNING") => tokio::time::sleep(Duration::from_millis(2)).await,
            _ => bail!("checkout ended as {st}"),
        }
    }
    Ok((t.elapsed(), buckets.join(&dest)))
}

/// `cp -r` of the plain files (and `cp -r` followed by `sync`): the time, and the copy.
fn cp(plain: &Path, work: &Path, run: usize, sync: bool) -> Result<(Duration, PathBuf)> {
    let dst = work.join(format!("cp-dst-{run}"));
    let t = Instant::now();
    let ok = Command::new("cp").arg("-r").arg(plain).arg(&dst).status()?;
    if sync {
        Command::new("sync").arg("-f").arg(&dst).status()?;
    }
    let took = t.elapsed();
    if !ok.success() {
        bail!("cp failed");
    }
    Ok((took, dst))
}

fn remove(dirs: &mut Vec<PathBuf>) -> Result<()> {
    for d in dirs.drain(..) {
        std::fs::remove_dir_all(d)?;
    }
    Ok(())
}

/// Runs the checkout rows on their own `dss up` (`durability` as `embedded.durability`).
pub async fn run(dss: &Path, work: &Path, quick: bool) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let big = if quick { 64 } else { 256 } * 1024 * 1024;
    let concurrency =
        std::env::var("DSS_BENCH_CHECKOUT_CONCURRENCY").unwrap_or_else(|_| "8".into());
    for (durability, sync) in [("process", false), ("power", true)] {
        let data = work.join(format!("checkout-{durability}"));
        // Buckets other than the replica's checkout bucket must be allowed, and the caller known.
        let allowed = (0..ROUNDS).map(destination).collect::<Vec<_>>().join(",");
        let s = start_with(
            dss,
            &data,
            5914,
            &[
                ("DSS_EMBEDDED__DURABILITY", durability),
                ("DSS_CHECKOUT__CONCURRENCY", concurrency.as_str()),
                ("DSS_CHECKOUT__ALLOWED_DESTINATIONS", allowed.as_str()),
            ],
        )?;
        let http = reqwest::Client::new();
        let buckets = data.join("buckets");
        for (count, size, label) in [
            (1000usize, 64 * 1024usize, "1,000 × 64 KiB"),
            (4, big, if quick { "4 × 64 MiB" } else { "4 × 256 MiB" }),
        ] {
            let small_files = count == 1000;
            if durability == "power" && small_files {
                continue;
            }
            let plain = work.join(format!("plain-{durability}-{count}"));
            eprintln!("checkout bench: seeding {label} ({durability})");
            let bundle = seed(&s, &http, &plain, count, size, count as u64).await?;
            let (mut ours, mut theirs, mut copies) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..ROUNDS {
                let (took, copy) = checkout(&s, &http, &buckets, &bundle, run).await?;
                ours.push(took);
                copies.push(copy);
                let (took, copy) = cp(&plain, work, run, sync)?;
                theirs.push(took);
                copies.push(copy);
                // The large copies go at once (they would fill the page cache). The small
                // ones stay until the row is done: on a file system without a journal, ext4
                // passes over inodes deleted in the last minutes when it allocates new ones,
                // which would slow every later round, ours and cp's alike.
                if !small_files {
                    remove(&mut copies)?;
                }
            }
            remove(&mut copies)?;
            let (ours, theirs) = (secs(&ours), secs(&theirs));
            let what = if sync {
                "with fsync (`embedded.durability = power`)"
            } else {
                "(`embedded.durability = process`)"
            };
            let cp = if sync { "cp -r + sync" } else { "cp -r" };
            rows.push(Row {
                name: format!(
                    "bundle checkout {label} on local disk, verified, {what} (min / median / max of {ROUNDS} rounds)"
                ),
                result: format!(
                    "{} ({:.2}× {cp}, medians)",
                    mmm(ours.clone(), 3, " s"),
                    median(&ours) / median(&theirs),
                ),
                goal: "within 1.5× of cp -r".into(),
                baseline: format!(
                    "same rounds, interleaved: {cp} {}",
                    mmm(theirs, 3, " s")
                ),
            });
            std::fs::remove_dir_all(&plain)?;
        }
    }
    Ok(rows)
}
