//! `GET /v1/files/{uuid}` of a 10 KB file: time to the first byte, following the redirect, as a
//! client sees it (the original needed a checkout copy first, 10 s and more).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::stats::p50_p99;
use crate::{Row, start};

/// Runs the download benchmark on its own `dss up`.
pub async fn run(dss: &Path, work: &Path) -> Result<Vec<Row>> {
    let server = start(dss, &work.join("downloads"), 5913)?;
    // The redirect is followed by hand, so that the two legs are timed together.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let file = uuid::Uuid::new_v4().to_string();
    let version = "2019-05-01T000000.000000Z";
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    server
        .upload(
            &http,
            &file,
            version,
            "application/octet-stream",
            data.clone(),
        )
        .await?;
    let mut lat: Vec<Duration> = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        let r = http
            .get(format!("{}/v1/files/{file}?replica=aws", server.base))
            .send()
            .await?;
        if r.status() != 302 {
            bail!("GET /files answered {}", r.status());
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("no Location")?
            .to_string();
        let mut body = http.get(location).send().await?;
        let first = body.chunk().await?.context("no bytes")?;
        if i >= 20 {
            // The first requests warm the connections up.
            lat.push(t.elapsed());
        }
        if first.first() != data.first() {
            bail!("wrong bytes");
        }
        while body.chunk().await?.is_some() {}
    }
    Ok(vec![Row {
        name: "GET /v1/files/{uuid} of a 10 KB file → 302 → first byte (embedded, keep-alive)"
            .into(),
        result: p50_p99(&mut lat),
        goal: "< 20 ms".into(),
        baseline: "original: 301 + Retry-After 10 s while a checkout copy was made (quoted)".into(),
    }])
}
