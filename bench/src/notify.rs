//! Webhook benchmarks: bundle PUT → webhook received through `dss up`; delivery throughput of
//! the notify daemon to one local receiver (with plain HTTP POSTs to the same receiver as the
//! ceiling); and the cost of matching one event against 10,000 subscriptions (with indexing the
//! document once per subscription as the naive baseline).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dss_config::Config;
use dss_core::clock::system;
use dss_core::ports::{EventKind, PutOptions, Subscription, SubscriptionKind};
use dss_notify::documents::Target;
use dss_notify::matching::{FilterLimits, SubscriptionSet};
use dss_runtime::deployment::Deployment;
use dss_search::{Budget, SingleDoc, parse_body};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::docgen::document;
use crate::search::upload_metadata;
use crate::stats::{LatencyRounds, ROUNDS, mmm};
use crate::{Row, start_with};

const ORGANS: &[&str] = &[
    "kidney", "liver", "lung", "heart", "brain", "pancreas", "skin",
];

/// A receiver on 127.0.0.1 that counts requests and reports each body's bundle uuid.
pub(crate) struct Receiver {
    /// Its URL.
    pub(crate) url: String,
    /// Requests so far.
    pub(crate) count: Arc<AtomicUsize>,
    arrivals: tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
}

/// Starts a [`Receiver`].
pub(crate) async fn receiver() -> Result<Receiver> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let counted = count.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let (counted, tx) = (counted.clone(), tx.clone());
        async move {
            let now = Instant::now();
            counted.fetch_add(1, Ordering::Relaxed);
            if let Ok(v) = serde_json::from_slice::<Value>(&body)
                && let Some(b) = v["match"]["bundle_uuid"].as_str()
            {
                let _ = tx.send((b.to_string(), now));
            }
            axum::http::StatusCode::OK
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Receiver {
        url: format!("http://{addr}/hook"),
        count,
        arrivals,
    })
}

/// One round of bundle PUT → webhook received, one at a time, through the API of a fresh
/// `dss up`.
async fn put_to_webhook(
    dss: &Path,
    work: &Path,
    http: &reqwest::Client,
    round: usize,
) -> Result<Vec<Duration>> {
    let data = work.join(format!("notify-latency-{round}"));
    let server = start_with(
        dss,
        &data,
        5912,
        &[("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1")],
    )?;
    let files = upload_metadata(http, &server).await?;
    let lat = put_latencies(http, &server, &files, 200).await?;
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok(lat)
}

/// Subscribes a new receiver through `server` (a JMESPath match on the first project), then
/// PUTs `n` bundles of `files` one after another: the time from each PUT to its webhook.
pub(crate) async fn put_latencies(
    http: &reqwest::Client,
    server: &crate::Server,
    files: &[Value],
    n: usize,
) -> Result<Vec<Duration>> {
    let mut rx = receiver().await?;
    let r = http
        .put(format!("{}/v1/subscriptions?replica=aws", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"callback_url": rx.url, "hmac_secret_key": "s3cret",
            "jmespath_query": "files.project_json[0].project_core.project_short_name == 'Project0'"}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("subscription PUT answered {}", r.status());
    }
    let version = "2019-05-01T000000.000000Z";
    let mut lat = Vec::new();
    for i in 0..n {
        let b = uuid::Uuid::new_v4().to_string();
        let t = Instant::now();
        let r = http
            .put(format!(
                "{}/v1/bundles/{b}?version={version}&replica=aws",
                server.base
            ))
            .bearer_auth(&server.token)
            .json(&json!({"creator_uid": 1, "files": files}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("bundle PUT {i} answered {}", r.status());
        }
        loop {
            let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.arrivals.recv())
                .await
                .context("webhook never arrived")?
                .context("receiver stopped")?;
            if got == b {
                lat.push(at - t);
                break;
            }
        }
    }
    Ok(lat)
}

/// One round of deliveries per second, `bundles` events fanned out to `subs` subscriptions of
/// one receiver in a fresh deployment, and of the ceiling: plain POSTs to the same receiver.
async fn throughput(work: &Path, subs: usize, bundles: usize, round: usize) -> Result<(f64, f64)> {
    let rx = receiver().await?;
    let data = work.join(format!("notify-throughput-{round}"));
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{}\"\n[notify]\ncallback_allow = [\"127.0.0.1\"]\n",
        data.display()
    ))?;
    let d = Deployment::open(cfg, system())?;
    for i in 0..subs {
        let uuid = uuid::Uuid::new_v4().to_string();
        let s = Subscription {
            uuid: uuid.clone(),
            replica: "aws".into(),
            owner: format!("owner{}@example.org", i % 50),
            kind: SubscriptionKind::Jmespath,
            document: json!({"uuid": uuid, "callback_url": rx.url, "hmac_secret_key": "s3cret"}),
        };
        d.subscriptions.create(&s, usize::MAX).await?;
    }
    let stop = CancellationToken::new();
    let (dep, token) = (d.clone(), stop.clone());
    let daemon = tokio::spawn(async move { dss_notify::run(&dep, token).await });
    let store = d.replicas["aws"].store.clone();
    let version = "2019-05-01T000000.000000Z";
    let want = subs * bundles;
    let t = Instant::now();
    for _ in 0..bundles {
        let b = uuid::Uuid::new_v4();
        let manifest =
            json!({"format": "0.0.1", "version": version, "files": [], "creator_uid": 1});
        store
            .put_bytes(
                &format!("bundles/{b}.{version}"),
                Bytes::from(manifest.to_string()),
                PutOptions::default(),
            )
            .await?;
    }
    while rx.count.load(Ordering::Relaxed) < want {
        if t.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {want} deliveries in 300 s",
                rx.count.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = want as f64 / t.elapsed().as_secs_f64();
    stop.cancel();
    let _ = daemon.await;

    // The ceiling: plain POSTs of a payload-sized body to the same receiver, 16 at a time
    // (the default per-endpoint limit), no outbox.
    let http = reqwest::Client::new();
    let body = json!({"bundle_url": "https://dss.example.org/v1/bundles/x?version=y", "dss_api": "https://dss.example.org",
        "subscription_id": "s", "event_timestamp": version, "event_type": "CREATE",
        "match": {"bundle_uuid": "b", "bundle_version": version}, "transaction_id": "t"})
    .to_string();
    let n = want.min(20_000);
    let t = Instant::now();
    futures::StreamExt::collect::<Vec<_>>(futures::StreamExt::buffer_unordered(
        futures::stream::iter((0..n).map(|_| {
            let (http, url, body) = (http.clone(), rx.url.clone(), body.clone());
            async move { http.post(url).body(body).send().await.map(|r| r.status()) }
        })),
        16,
    ))
    .await;
    let ceiling = n as f64 / t.elapsed().as_secs_f64();
    drop(d);
    std::fs::remove_dir_all(&data)?;
    Ok((rate, ceiling))
}

/// A query per subscriber: every one distinct (a subscriber's own project, organ, donor or
/// cell-count threshold), so that no two subscriptions share a filter.
fn es_query(i: usize) -> Value {
    let organ = ORGANS[i % ORGANS.len()];
    let cells = json!({"range": {"files.cell_suspension_json.estimated_cell_count": {"gte": 1000 + i * 20}}});
    match i % 4 {
        0 => json!({"query": {"bool": {"must": [
            {"match": {"files.project_json.project_core.project_short_name": format!("Project{}", i % 50)}},
            cells]}}}),
        1 => json!({"query": {"bool": {"must": [
            {"term": {"files.donor_organism_json.genus_species.text": if i % 8 == 1 { "Homo sapiens" } else { "Mus musculus" }}},
            {"match": {"files.specimen_from_organism_json.organ.text.text": organ}}, cells]}}}),
        2 => {
            json!({"query": {"terms": {"files.donor_organism_json.biomaterial_core.biomaterial_id": [format!("donor_{i}"), format!("donor_{}", i + 1)]}}})
        }
        _ => json!({"query": {"bool": {
            "must": [{"match": {"files.library_preparation_protocol_json.library_construction_method.text.text": "10x"}}, cells],
            "must_not": [{"exists": {"field": "admin_deleted"}}]}}}),
    }
}

/// A JMESPath filter per subscriber, every one distinct.
fn jmespath_query(i: usize) -> String {
    let organ = ORGANS[i % ORGANS.len()];
    let cells = format!(
        "files.cell_suspension_json[0].estimated_cell_count > `{}`",
        1000 + i * 20
    );
    match i % 4 {
        0 => format!(
            "files.project_json[0].project_core.project_short_name == 'Project{}' && {cells}",
            i % 50
        ),
        1 => format!(
            "event_type == 'CREATE' && contains(files.specimen_from_organism_json[].organ.text, '{organ}') && {cells}"
        ),
        2 => format!("files.donor_organism_json[0].biomaterial_core.biomaterial_id == 'donor_{i}'"),
        _ => format!(
            "length(files.donor_organism_json[?genus_species[0].text == 'Mus musculus']) > `0` && {cells}"
        ),
    }
}

/// The subscriptions of the matching benchmark: half queries, half JMESPath; every tenth has an
/// attachment.
fn subscriptions(n: usize) -> Vec<Subscription> {
    (0..n)
        .map(|i| {
            let uuid = format!("00000000-0000-4000-8000-{i:012}");
            let (kind, mut doc) = if i % 2 == 0 {
                (
                    SubscriptionKind::Elasticsearch,
                    json!({"es_query": es_query(i / 2)}),
                )
            } else {
                (
                    SubscriptionKind::Jmespath,
                    json!({"jmespath_query": jmespath_query(i / 2)}),
                )
            };
            doc["callback_url"] = "https://example.org/hook".into();
            if i % 10 == 0 {
                doc["attachments"] = json!({"title": {"type": "jmespath",
                    "expression": "files.project_json[0].project_core.project_title"}});
            }
            Subscription {
                uuid,
                replica: "aws".into(),
                owner: "o@example.org".into(),
                kind,
                document: doc,
            }
        })
        .collect()
}

fn target(i: usize, version: &str) -> Target {
    let (id, doc) = document(i, version);
    let uuid = id.split('.').next().unwrap_or_default().to_string();
    Target {
        event_type: EventKind::Create,
        metadata_doc: Some(json!({"event_type": "CREATE",
            "bundle_info": {"uuid": uuid, "version": version},
            "manifest": doc["manifest"], "files": doc["files"]})),
        search_doc: Some(doc),
        bundle_uuid: uuid,
        bundle_version: Some(version.into()),
        event_key: format!("CREATE {id}"),
    }
}

/// Matching one event against `n` subscriptions, with the naive way as the baseline.
struct Matching {
    set: SubscriptionSet,
    targets: Vec<Target>,
    queries: Vec<dss_search::Query>,
    subscriptions: usize,
}

impl Matching {
    fn new(n: usize) -> Self {
        let version = "2019-05-01T000000.000000Z";
        let subs = subscriptions(n);
        let set = SubscriptionSet::new(1, subs.clone(), &FilterLimits::default());
        let queries = subs
            .iter()
            .filter(|s| s.kind == SubscriptionKind::Elasticsearch)
            .filter_map(|s| parse_body(&s.document["es_query"]).ok())
            .collect();
        let targets = (0..200).map(|i| target(i, version)).collect();
        Self {
            set,
            targets,
            queries,
            subscriptions: n,
        }
    }

    /// One round: each event's matching time, the average matches per event, and the naive
    /// cost (the document indexed anew for every query subscription, measured on 500 and
    /// scaled to the set's queries) in milliseconds.
    fn round(&self) -> (Vec<Duration>, f64, f64) {
        let now = time::OffsetDateTime::now_utc();
        for t in &self.targets[..20] {
            std::hint::black_box(self.set.matches(t, now));
        }
        let mut lat = Vec::new();
        let mut matched = 0;
        for t in &self.targets {
            let start = Instant::now();
            matched += self.set.matches(t, now).matches.len();
            lat.push(start.elapsed());
        }
        let sample = self.queries.len().min(500);
        let doc = self.targets[0].search_doc.clone().unwrap_or_default();
        let start = Instant::now();
        for q in &self.queries[..sample] {
            let budget = Budget::new(u64::MAX);
            std::hint::black_box(SingleDoc::new("x", &doc, now).matches(q, &budget)).ok();
        }
        let naive = start.elapsed().as_secs_f64() / sample as f64 * self.queries.len() as f64;
        (
            lat,
            matched as f64 / self.targets.len() as f64,
            naive * 1000.0,
        )
    }
}

/// Runs the webhook benchmarks: every row in rounds, interleaved with its baseline.
pub async fn run(dss: &Path, work: &Path, quick: bool, http: &reqwest::Client) -> Result<Vec<Row>> {
    let matching = Matching::new(10_000);
    let (subs, bundles) = if quick { (500, 4) } else { (1000, 20) };
    let (mut matched, mut naive, mut avg) = (LatencyRounds::default(), Vec::new(), 0.0);
    let (mut webhook, mut rates, mut ceilings) = (LatencyRounds::default(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        eprintln!("webhook round {}/{ROUNDS}", round + 1);
        let (mut lat, matches, naive_ms) = matching.round();
        matched.push(&mut lat);
        naive.push(naive_ms);
        avg = matches;
        webhook.push(&mut put_to_webhook(dss, work, http, round).await?);
        let (rate, ceiling) = throughput(work, subs, bundles, round).await?;
        rates.push(rate);
        ceilings.push(ceiling);
    }
    let queries = matching.queries.len();
    Ok(vec![
        Row {
            name: format!(
                "bundle PUT sent → signed webhook received (embedded, `dss up`, 7 metadata files, JMESPath match; 200 one by one per round, each round a fresh deployment; min / median / max of {ROUNDS} rounds)"
            ),
            result: webhook.summary(),
            goal: "p99 < 100 ms".into(),
            baseline: "original: v2 inline after S3 → SNS → SQS → Lambda (seconds); v1 via a 1-minute scheduled worker (quoted)".into(),
        },
        Row {
            name: format!(
                "webhook deliveries, {bundles} bundle events × {subs} subscriptions → one local receiver (signed JSON, outbox + attempt log; each round a fresh deployment; min / median / max of {ROUNDS} rounds)"
            ),
            result: mmm(rates, 0, " deliveries/s"),
            goal: "≥ 5,000 deliveries/s".into(),
            baseline: format!(
                "same rounds, interleaved: plain HTTP POSTs to the same receiver, 16 at a time, no outbox: {}",
                mmm(ceilings, 0, "/s")
            ),
        },
        Row {
            name: format!(
                "matching one bundle event against {} subscriptions ({queries} queries + {} JMESPath; avg {avg:.0} matches; 200 events per round, min / median / max of {ROUNDS} rounds)",
                matching.subscriptions,
                matching.subscriptions - queries,
            ),
            result: matched.summary(),
            goal: "< 5 ms per event".into(),
            baseline: format!(
                "same rounds, interleaved: naive (the document indexed anew per query) {} for the queries alone; original: one percolate search per index write",
                mmm(naive, 1, " ms")
            ),
        },
    ])
}
