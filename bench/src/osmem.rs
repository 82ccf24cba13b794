//! osmem-server (PyPI), an in-memory OpenSearch-API server, as the reference for the search
//! benchmarks: the same documents under the original DSS mapping (the Elasticsearch adapter's),
//! the same queries and sort.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::stats::percentile;

const ADDR: &str = "127.0.0.1:9250";
const INDEX: &str = "dss-bench-aws-docs";

/// A running osmem-server, stopped on drop.
pub struct Osmem {
    child: Child,
    base: String,
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Result<PathBuf> {
    let venv = Path::new(".tools/osmem-venv/lib");
    for py in
        std::fs::read_dir(venv).context("osmem-server is not installed (.tools/osmem-venv)")?
    {
        let bin = py?
            .path()
            .join("site-packages/osmem_server/bin/osmem-server");
        if bin.exists() {
            return Ok(bin);
        }
    }
    bail!("osmem-server binary not found under {}", venv.display())
}

impl Osmem {
    /// Starts the server and creates the index with the original's mapping.
    pub async fn start(http: &reqwest::Client) -> Result<Self> {
        let child = Command::new(binary()?)
            .args(["-addr", ADDR, "-no-stdin-watch", "-no-ja"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting osmem-server")?;
        let me = Self {
            child,
            base: format!("http://{ADDR}"),
        };
        let t = Instant::now();
        while http.get(&me.base).send().await.is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("osmem-server did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = http
            .put(format!("{}/{INDEX}", me.base))
            .json(&dss_elasticsearch::index_definition())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating the index: {} {}", r.status(), r.text().await?);
        }
        Ok(me)
    }

    /// Bulk-loads documents, then refreshes.
    pub async fn load(
        &self,
        http: &reqwest::Client,
        docs: impl Iterator<Item = (String, Value)>,
    ) -> Result<()> {
        let mut body = String::new();
        let mut n = 0;
        let mut docs = docs.peekable();
        while let Some((id, doc)) = docs.next() {
            body.push_str(&json!({"index": {"_index": INDEX, "_id": id}}).to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
            n += 1;
            if n == 500 || docs.peek().is_none() {
                let r = http
                    .post(format!("{}/_bulk", self.base))
                    .header("content-type", "application/x-ndjson")
                    .body(std::mem::take(&mut body))
                    .send()
                    .await?;
                let v: Value = r.json().await?;
                if v["errors"] == true {
                    bail!(
                        "bulk errors: {}",
                        v.to_string().chars().take(500).collect::<String>()
                    );
                }
                n = 0;
            }
        }
        http.post(format!("{}/{INDEX}/_refresh", self.base))
            .send()
            .await?;
        Ok(())
    }

    /// Hits and p50/p99 of `runs` searches with the DSS sort and page size.
    pub async fn latency(
        &self,
        http: &reqwest::Client,
        query: &Value,
        runs: usize,
    ) -> Result<(u64, Duration, Duration)> {
        let mut body = query.clone();
        body["size"] = json!(100);
        body["_source"] = json!(false);
        body["track_total_hits"] = json!(true);
        body["sort"] = json!([{"uuid": {"order": "desc"}}, {"manifest.version": {"missing": "_last", "order": "desc"}}]);
        let url = format!("{}/{INDEX}/_search", self.base);
        let first: Value = http.post(&url).json(&body).send().await?.json().await?;
        let hits = first["hits"]["total"]["value"]
            .as_u64()
            .or_else(|| first["hits"]["total"].as_u64())
            .with_context(|| format!("search answer: {first}"))?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            http.post(&url).json(&body).send().await?.bytes().await?;
            times.push(t.elapsed());
        }
        times.sort();
        Ok((hits, percentile(&times, 0.5), percentile(&times, 0.99)))
    }
}
