//! `GET /v1/files/{uuid}` of a 10 KB file: time to the first byte, following the redirect, as a
//! client sees it (the original needed a checkout copy first, 10 s and more), with the same
//! server's `GET /version` (the stack's floor for one request) in the same rounds.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::stats::{LatencyRounds, ROUNDS};
use crate::{Row, Server, start};

/// Requests per round; the first few warm the connections up and are not counted.
const REQUESTS: usize = 300;
const WARM_UP: usize = 20;

/// One round of downloads: the time of each from the request to the first byte of the body.
async fn downloads(
    http: &reqwest::Client,
    server: &Server,
    file: &str,
    data: &[u8],
) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
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
        if i >= WARM_UP {
            lat.push(t.elapsed());
        }
        if first.first() != data.first() {
            bail!("wrong bytes");
        }
        while body.chunk().await?.is_some() {}
    }
    Ok(lat)
}

/// One round of `GET /version` on the same server and connections.
async fn versions(http: &reqwest::Client, server: &Server) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let t = Instant::now();
        let r = http.get(format!("{}/version", server.base)).send().await?;
        if r.status() != 200 {
            bail!("GET /version answered {}", r.status());
        }
        r.bytes().await?;
        if i >= WARM_UP {
            lat.push(t.elapsed());
        }
    }
    Ok(lat)
}

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
    let (mut ours, mut floor) = (LatencyRounds::default(), LatencyRounds::default());
    for _ in 0..ROUNDS {
        ours.push(&mut downloads(&http, &server, &file, &data).await?);
        floor.push(&mut versions(&http, &server).await?);
    }
    Ok(vec![Row {
        name: format!(
            "GET /v1/files/{{uuid}} of a 10 KB file → 302 → first byte (embedded, keep-alive; {} requests per round, min / median / max of {ROUNDS} rounds)",
            REQUESTS - WARM_UP
        ),
        result: ours.summary(),
        goal: "< 20 ms".into(),
        baseline: format!(
            "same rounds, interleaved: GET /version on the same server {}; original: 301 + Retry-After 10 s while a checkout copy was made (quoted)",
            floor.summary()
        ),
    }])
}
