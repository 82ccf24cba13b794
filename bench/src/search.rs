//! Search benchmarks: realistic bundle documents (HCA-shaped metadata), engine load and query
//! latency over 100,000 of them through the HTTP API, bundle PUT → searchable latency through
//! the index daemon, indexing throughput, the events journal, and the same queries against
//! osmem-server (an in-memory OpenSearch-API server) for reference.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dss_config::Durability;
use dss_core::clock::system;
use dss_core::ports::{EventJournal, EventKind, NewEvent};
use dss_embedded::{Db, EmbeddedJournal};
use dss_runtime::deployment::Deployment;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::docgen::{document, queries};
use crate::stats::{LatencyRounds, ROUNDS, mmm, ms, percentile};
use crate::{Row, Server, config, start};

async fn post_search(http: &reqwest::Client, base: &str, body: &Value) -> Result<Value> {
    let r = http
        .post(format!("{base}/v1/search?replica=aws&per_page=100"))
        .json(&json!({"es_query": body}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("search answered {}", r.status());
    }
    Ok(r.json().await?)
}

/// p50 and p99 of `runs` searches of `q`, and its hits.
async fn query_latency(
    http: &reqwest::Client,
    base: &str,
    q: &Value,
    runs: usize,
) -> Result<(u64, Duration, Duration)> {
    let found = hits(http, base, q).await?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        post_search(http, base, q).await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((found, percentile(&times, 0.5), percentile(&times, 0.99)))
}

/// Above this many documents, the index is built at first start once instead of every round.
const FULL_BUILDS_UP_TO: usize = 200_000;

/// The total hits of a search.
pub async fn hits(http: &reqwest::Client, base: &str, body: &Value) -> Result<u64> {
    Ok(post_search(http, base, body).await?["total_hits"]
        .as_u64()
        .unwrap_or(0))
}

/// Total hits of everything.
async fn total(http: &reqwest::Client, base: &str) -> Result<u64> {
    hits(http, base, &json!({})).await
}

/// Size of everything under `dir`.
fn du_mib(dir: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

/// Waits until the segments in `dir` have stopped changing: no segment being written (a `.tmp`
/// directory) and the same set for 10 s.
async fn settle(dir: &Path) -> Result<()> {
    let list = || -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        names.sort();
        Ok(names)
    };
    let (mut last, mut since) = (list()?, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = list()?;
        if now != last || now.iter().any(|n| n.ends_with(".tmp")) {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(10) {
            return Ok(());
        }
    }
}

/// Forgets the search segments of a stopped deployment, so that its next start builds them.
async fn drop_segments(data: &Path) -> Result<()> {
    let db = Db::open(&data.join("dss.db"), Durability::Process)?;
    db.write(|c| Ok(c.execute("DELETE FROM search_segments", [])?))
        .await?;
    let dir = data.join("search");
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// Runs the search benchmarks; `n` documents for the query benchmark.
pub async fn run(dss: &Path, work: &Path, n: usize, http: &reqwest::Client) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let data = work.join("search-data");
    let version = "2019-05-01T000000.000000Z";
    // Inside the subset osmem-server loads too.
    let probe = document(2_500.min(n / 2), version).1["manifest"]["files"][3]["uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let qs = queries(&probe);

    // Seed n documents straight into the search index (the engine's write path), in rounds.
    let mut seed = Vec::new();
    {
        let d = Deployment::open(config(&data)?, system())?;
        for r in 0..ROUNDS {
            let range = (n * r / ROUNDS)..(n * (r + 1) / ROUNDS);
            eprintln!("indexing bundle documents {range:?}");
            let count = range.len();
            let t = Instant::now();
            futures::stream::iter(range)
                .map(|i| {
                    let search = d.search.clone();
                    async move {
                        let (id, doc) = document(i, version);
                        search.put("aws", &id, &doc).await
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
            seed.push(count as f64 / t.elapsed().as_secs_f64());
        }
    }
    let avg_doc = serde_json::to_vec(&document(1, version).1)?.len();
    rows.push(Row {
        name: format!(
            "search index writes, {n} documents of ~{:.1} KiB, 8 in flight (min / median / max of {ROUNDS} rounds of {})",
            avg_doc as f64 / 1024.0,
            n / ROUNDS
        ),
        result: mmm(seed, 0, " documents/s"),
        goal: "(indexing throughput, engine only)".into(),
        baseline: "original: one ES write per Lambda invocation".into(),
    });

    // The index built at first start (segments written from the documents), in rounds.
    let builds = if n <= FULL_BUILDS_UP_TO { ROUNDS } else { 1 };
    let (mut build, mut build_rss) = (Vec::new(), Vec::new());
    let mut built = None;
    for r in 0..builds {
        drop(built.take());
        drop_segments(&data).await?;
        let server = start(dss, &data, 5911)?;
        eprintln!("building the search index ({}/{builds})", r + 1);
        let t = Instant::now();
        if total(http, &server.base).await? != n as u64 {
            bail!("expected {n} hits");
        }
        build.push(t.elapsed().as_secs_f64());
        build_rss.push(server.peak_rss_mib());
        built = Some(server);
    }
    // The build leaves segments of 10,000 documents that its server merges for minutes after:
    // one round of the queries meanwhile, then the rounds below once the merges are done.
    let mut merging = Vec::new();
    if let Some(server) = built.take() {
        eprintln!("queries while the segments are merged");
        for (_, q) in &qs {
            let (_, p50, p99) = query_latency(http, &server.base, q, 200).await?;
            merging.push((ms(p50), ms(p99)));
        }
        let t = Instant::now();
        settle(&data.join("search").join("aws")).await?;
        eprintln!(
            "merges done {:.0} s after the query round",
            t.elapsed().as_secs_f64()
        );
    }
    let on_disk = du_mib(&data.join("search"));
    let db_size = du_mib(&data.join("dss.db"));
    rows.push(Row {
        name: format!(
            "search index build at first start ({n} documents, no segments), until the first search answers (min / median / max of {builds} round(s))"
        ),
        result: format!(
            "{}, server peak RSS {}",
            mmm(build, 1, " s"),
            mmm(build_rss, 0, " MiB")
        ),
        goal: "(one-time)".into(),
        baseline: format!(
            "segments on disk: {on_disk:.0} MiB; the documents in the database: {db_size:.0} MiB"
        ),
    });

    // Rounds of: restart (the segments are mapped, the documents after them indexed), queries
    // (with osmem-server's answers to the same queries interleaved), bundle PUT → searchable,
    // and indexing through bucket events.
    let osmem = match crate::osmem::Osmem::start(http).await {
        Ok(os) => {
            // osmem-server bulk-loads ~40 documents/s here: a subset keeps the run short.
            let docs = n.min(5_000);
            eprintln!("loading {docs} documents into osmem-server");
            let t = Instant::now();
            os.load(http, (0..docs).map(|i| document(i, version)))
                .await?;
            rows.push(Row {
                name: format!("osmem-server (reference): bulk-load {docs} documents"),
                result: format!("{:.0} documents/s", docs as f64 / t.elapsed().as_secs_f64()),
                goal: String::new(),
                baseline: String::new(),
            });
            Some((os, docs))
        }
        Err(e) => {
            eprintln!("osmem-server reference skipped: {e:#}");
            None
        }
    };
    let count = crate::events::COUNT;
    let mut open = Vec::new();
    let mut open_rss = Vec::new();
    let mut query_rss = Vec::new();
    let mut ours: Vec<(u64, Vec<f64>, Vec<f64>)> = vec![(0, Vec::new(), Vec::new()); qs.len()];
    let mut theirs: Vec<(u64, Vec<f64>, Vec<f64>)> = vec![(0, Vec::new(), Vec::new()); qs.len()];
    let (mut put, mut events) = (LatencyRounds::default(), Vec::new());
    let (mut indexed, mut through_events) = (n as u64, 0u64);
    for r in 0..ROUNDS {
        eprintln!("search round {}/{ROUNDS}", r + 1);
        let server = start(dss, &data, 5912 + r as u16)?;
        let t = Instant::now();
        if total(http, &server.base).await? != indexed {
            bail!("expected {indexed} hits after the restart");
        }
        open.push(t.elapsed().as_secs_f64());
        open_rss.push(server.rss_mib());
        for (i, (_, q)) in qs.iter().enumerate() {
            let (hits, p50, p99) = query_latency(http, &server.base, q, 200).await?;
            ours[i].0 = hits;
            ours[i].1.push(ms(p50));
            ours[i].2.push(ms(p99));
            if let Some((os, _)) = &osmem {
                let (hits, p50, p99) = os.latency(http, q, 50).await?;
                theirs[i].0 = hits;
                theirs[i].1.push(ms(p50));
                theirs[i].2.push(ms(p99));
            }
        }
        query_rss.push(server.rss_mib());

        // Bundle PUT → searchable, through the API and the index daemon, one at a time.
        let files = upload_metadata(http, &server).await?;
        let mut lat = Vec::new();
        for i in 0..40 {
            let b = uuid::Uuid::new_v4().to_string();
            let body = json!({"creator_uid": 1, "files": files});
            let resp = http
                .put(format!(
                    "{}/v1/bundles/{b}?version={version}&replica=aws",
                    server.base
                ))
                .bearer_auth(&server.token)
                .json(&body)
                .send()
                .await?;
            if resp.status() != 201 {
                bail!("bundle PUT {i} answered {}", resp.status());
            }
            let t = Instant::now();
            let q = json!({"query": {"ids": {"values": [format!("{b}.{version}")]}}});
            loop {
                if hits(http, &server.base, &q).await? == 1 {
                    break;
                }
                if t.elapsed() > Duration::from_secs(30) {
                    bail!("bundle {b} never became searchable");
                }
            }
            lat.push(t.elapsed());
        }
        put.push(&mut lat);
        indexed += 40;

        // Indexing throughput through bucket events: bundles written straight into the bucket.
        indexed += count as u64;
        through_events += count as u64;
        events.push(
            crate::events::round(http, &server, config(&data)?, &files, count, through_events)
                .await?,
        );
    }
    rows.push(Row {
        name: format!(
            "search index open at restart ({n}+ documents in segments), until the first search answers (min / median / max of {ROUNDS} rounds)"
        ),
        result: format!(
            "{}, server RSS {}",
            mmm(open, 2, " s"),
            mmm(open_rss, 0, " MiB")
        ),
        goal: "< 5 s, RSS < 1 GiB".into(),
        baseline: "the build at first start (row above)".into(),
    });
    rows.push(Row {
        name: format!(
            "server RSS after the query rounds below ({n}+ documents; min / median / max of {ROUNDS} rounds)"
        ),
        result: mmm(query_rss, 0, " MiB"),
        goal: "< 1 GiB".into(),
        baseline: String::new(),
    });
    for (i, (name, _)) in qs.iter().enumerate() {
        let reference = match &osmem {
            Some((_, docs)) => format!(
                "osmem-server over {docs}, same rounds: {} hits, p50 {}, p99 {}",
                theirs[i].0,
                mmm(theirs[i].1.clone(), 2, " ms"),
                mmm(theirs[i].2.clone(), 2, " ms")
            ),
            None => String::new(),
        };
        rows.push(Row {
            name: format!(
                "search over {n} bundles: {name}, {} hits, per_page 100 (200 runs per round; min / median / max of {ROUNDS} rounds)",
                ours[i].0
            ),
            result: format!(
                "p50 {}, p99 {}",
                mmm(ours[i].1.clone(), 2, " ms"),
                mmm(ours[i].2.clone(), 2, " ms")
            ),
            goal: "p50 < 10 ms, p99 < 50 ms".into(),
            baseline: reference,
        });
    }
    for (i, (name, _)) in qs.iter().enumerate() {
        let Some((p50, p99)) = merging.get(i) else {
            continue;
        };
        rows.push(Row {
            name: format!(
                "search over {n} bundles while the build's segments are merged: {name} (200 runs, one round)"
            ),
            result: format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
            goal: "p50 < 10 ms, p99 < 50 ms".into(),
            baseline: "the rows above: the same queries once the merges are done".into(),
        });
    }
    rows.push(Row {
        name: format!(
            "bundle PUT answered → found by search (embedded, 7 metadata files, 40 one at a time per round; min / median / max of {ROUNDS} rounds)"
        ),
        result: put.summary(),
        goal: "p99 < 50 ms".into(),
        baseline: "original: seconds to minutes (quoted)".into(),
    });
    rows.push(Row {
        name: format!(
            "indexing through bucket events, {count} bundles × 7 metadata files per round, until searchable (polled every 20 ms; min / median / max of {ROUNDS} rounds)"
        ),
        result: mmm(events, 0, " bundles/s"),
        goal: "≥ 3,000 bundles/s".into(),
        baseline: String::new(),
    });

    // The events journal: 1,000 events recorded concurrently (as the daemon does) and serially.
    let (mut conc, mut serial) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let (c, s) = journal_times(work, r).await?;
        conc.push(ms(c));
        serial.push(ms(s));
    }
    rows.push(Row {
        name: format!("events journal, 1,000 events (min / median / max of {ROUNDS} rounds)"),
        result: format!(
            "{} concurrent, {} one by one",
            mmm(conc, 1, " ms"),
            mmm(serial, 1, " ms")
        ),
        goal: "< 1 s".into(),
        baseline: "original: ≈ 8 min (quoted)".into(),
    });
    Ok(rows)
}

/// Uploads the seven metadata files of one bundle; returns the bundle PUT `files` list.
pub async fn upload_metadata(http: &reqwest::Client, s: &Server) -> Result<Vec<Value>> {
    let (_, doc) = document(0, "2019-05-01T000000.000000Z");
    let version = "2019-05-01T000000.000000Z";
    let mut out = Vec::new();
    for (key, list) in doc["files"].as_object().context("files")? {
        let name = format!("{}_0.json", key.trim_end_matches("_json"));
        let u = uuid::Uuid::new_v4().to_string();
        s.upload(
            http,
            &u,
            version,
            "application/json",
            serde_json::to_vec(&list[0])?,
        )
        .await?;
        out.push(json!({"uuid": u, "version": version, "name": name, "indexed": true}));
    }
    Ok(out)
}

async fn journal_times(work: &Path, round: usize) -> Result<(Duration, Duration)> {
    let db = Db::open(
        &work.join(format!("journal-{round}.db")),
        Durability::Process,
    )?;
    let journal = EmbeddedJournal::new(&db, system());
    let event = |r: &str, i: usize| NewEvent {
        event_id: format!("{r}-{i:08}"),
        kind: EventKind::Create,
        body: json!({"event_type": "CREATE", "i": i, "pad": "x".repeat(2000)}).to_string(),
    };
    let t = Instant::now();
    futures::stream::iter(0..1000)
        .map(|i| {
            let j = journal.clone();
            async move { j.record("aws", vec![event("c", i)]).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let concurrent = t.elapsed();
    let t = Instant::now();
    for i in 0..1000 {
        journal.record("gcp", vec![event("s", i)]).await?;
    }
    Ok((concurrent, t.elapsed()))
}
