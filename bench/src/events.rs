//! Indexing through bucket events: bundles written straight into the bucket (as a replication or
//! a bulk load would), timed until search finds them all. Part of the search rows (over the
//! million-document index) and a row of its own (`--events-only`, over an empty index).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dss_core::clock::system;
use dss_runtime::deployment::Deployment;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::search::{hits, upload_metadata};
use crate::stats::{ROUNDS, mmm};
use crate::{Row, Server, start_with};
use dss_config::Config;

/// The creator of the bundles written straight into the bucket, so that polls count them with a
/// term query (a match-all poll would rank the whole index every 20 ms, taking a core from the
/// daemon).
pub const CREATOR: u64 = 2;

/// Bundles per round.
pub const COUNT: usize = 2000;

/// Writes `count` bundles of `files` (the bundle PUT list, uploaded to `server`) into replica
/// `aws` of `deployment` (the server's configuration), and polls until search finds `expected` bundles of
/// [`CREATOR`]; returns bundles per second.
pub async fn round(
    http: &reqwest::Client,
    server: &Server,
    deployment: Config,
    files: &[Value],
    count: usize,
    expected: u64,
) -> Result<f64> {
    let version = "2019-05-01T000000.000000Z";
    let d = Deployment::open(deployment, system())?;
    let store = d.replicas["aws"].store.clone();
    let manifest = json!({"format": "0.0.1", "version": version, "files": files_manifest(http, server, files).await?, "creator_uid": CREATOR});
    let text = manifest.to_string();
    let t = Instant::now();
    futures::stream::iter(0..count)
        .map(|_| {
            let store = store.clone();
            let text = text.clone();
            async move {
                let key = format!("bundles/{}.{version}", uuid::Uuid::new_v4());
                store
                    .put_bytes(&key, text.into(), dss_core::ports::PutOptions::default())
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let written = json!({"query": {"term": {"manifest.creator_uid": CREATOR}}});
    loop {
        let now = hits(http, &server.base, &written).await?;
        if now >= expected {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("indexing stalled at {now} of {expected}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

/// The manifest entries of the uploaded files (as the API wrote them).
async fn files_manifest(http: &reqwest::Client, s: &Server, files: &[Value]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for f in files {
        let u = f["uuid"].as_str().context("uuid")?;
        let r = http
            .head(format!("{}/v1/files/{u}?replica=aws", s.base))
            .send()
            .await?;
        let h = |k: &str| {
            r.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        out.push(json!({"name": f["name"], "uuid": u, "version": f["version"],
            "content-type": h("x-dss-content-type"), "size": h("x-dss-size").parse::<u64>().unwrap_or(0), "indexed": true,
            "crc32c": h("x-dss-crc32c"), "s3-etag": h("x-dss-s3-etag"), "sha1": h("x-dss-sha1"), "sha256": h("x-dss-sha256")}));
    }
    Ok(out)
}

/// The row of its own: rounds of [`COUNT`] bundles into two fresh deployments, interleaved: the
/// default (two replicas: every bundle is also copied by the sync daemon and indexed again in the
/// second replica) and one with a single replica (the index daemon's own work).
pub async fn run(dss: &Path, work: &Path, http: &reqwest::Client) -> Result<Vec<Row>> {
    let one = work.join("one-replica");
    let one_url = format!("file://{}", one.join("buckets/aws").display());
    let setups = [
        (work.join("two-replicas"), Vec::new(), String::new()),
        (
            one,
            vec![("DSS_REPLICAS__AWS__URL", one_url.as_str())],
            format!("[replicas.aws]\nurl = \"{one_url}\"\n"),
        ),
    ];
    let mut rates = [Vec::new(), Vec::new()];
    let mut files = [None, None];
    let mut port = 5931;
    for r in 0..ROUNDS {
        for (i, (data, env, replicas)) in setups.iter().enumerate() {
            eprintln!("events round {}/{ROUNDS}, {}", r + 1, data.display());
            let server = start_with(dss, data, port, env)?;
            port += 1;
            if files[i].is_none() {
                files[i] = Some(upload_metadata(http, &server).await?);
            }
            let listed = files[i].as_deref().unwrap_or_default();
            let deployment =
                Config::from_toml(&format!("data_dir = \"{}\"\n{replicas}", data.display()))?;
            let expected = (COUNT * (r + 1)) as u64;
            rates[i].push(round(http, &server, deployment, listed, COUNT, expected).await?);
        }
    }
    let [two, one] = rates;
    Ok(vec![Row {
        name: format!(
            "indexing through bucket events into a fresh deployment (its defaults: two replicas), {COUNT} bundles × 7 metadata files per round, until searchable (polled every 20 ms; min / median / max of {ROUNDS} rounds)"
        ),
        result: mmm(two, 0, " bundles/s"),
        goal: "≥ 3,000 bundles/s".into(),
        baseline: format!(
            "one replica (no sync, each bundle indexed once), same rounds: {}",
            mmm(one, 0, " bundles/s")
        ),
    }])
}
