//! What hostile input costs the API: peak memory of `dss up` while 32 unauthenticated clients
//! each send a maximum-size search body at once (1 MiB: a `terms` list of half a million values,
//! far past the value cap), against the same process's memory before (the baseline, same run).
//! Five rounds, each on a fresh process (the peak is the process's high-water mark).

use std::path::Path;

use anyhow::Result;

use crate::stats::mmm;
use crate::{Row, start_with};

/// Clients at once.
const CLIENTS: usize = 32;

/// One body of the maximum size (`api.max_small_json_body`, 1 MiB by default).
fn body() -> Vec<u8> {
    let mut b = br#"{"es_query": {"query": {"terms": {"files.donor.age": ["#.to_vec();
    while b.len() < 1024 * 1024 - 16 {
        b.extend_from_slice(b"0,");
    }
    b.extend_from_slice(b"0]}}}}");
    b
}

pub async fn run(dss: &Path, work: &Path) -> Result<Vec<Row>> {
    let body = bytes::Bytes::from(body());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let (mut before, mut peak, mut answered) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        let data = work.join(format!("hostile-{round}"));
        let port = 5940 + round;
        let server = start_with(dss, &data, port, &[])?;
        // Warm: the API answers and its workers run.
        http.get(format!("{}/version", server.base)).send().await?;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        before.push(server.rss_mib());
        let sends = (0..CLIENTS).map(|_| {
            let (http, url, body) = (
                http.clone(),
                format!("{}/v1/search?replica=aws", server.base),
                body.clone(),
            );
            async move {
                http.post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        let statuses = futures::future::join_all(sends).await;
        answered.push(statuses.iter().filter(|s| (400..500).contains(*s)).count());
        peak.push(server.peak_rss_mib());
        let ok = http.get(format!("{}/version", server.base)).send().await?;
        anyhow::ensure!(ok.status() == 200, "the API stopped answering");
    }
    Ok(vec![Row {
        name: format!(
            "API peak RSS, {CLIENTS} concurrent unauthenticated 1 MiB search bodies (~520k values each; min / median / max of 5 rounds; refused 4xx: {answered:?} of {CLIENTS})"
        ),
        result: mmm(peak, 0, " MiB"),
        goal: "bounded (< 512 MiB)".into(),
        baseline: format!("before the requests: {}", mmm(before, 0, " MiB")),
    }])
}
