//! The shared metadata database (PostgreSQL) against the embedded one, measured in the same
//! run, five interleaved rounds each: subscription creation, recording journal events, webhook
//! deliveries with one and with two notify daemons, and bundle PUT → webhook through `dss up`.
//!
//! The PostgreSQL server is the one `bench/run.sh` starts (`DSS_BENCH_PG_URL`), with its
//! default durability (`fsync`, `synchronous_commit`); the embedded database runs with its
//! default (`embedded.durability = "process"`: no fsync per commit). Search lives in
//! osmem-server (`DSS_BENCH_ES_URL`) for both, as a shared metadata database requires.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dss_config::Config;
use dss_core::clock::system;
use dss_core::ports::{EventKind, NewEvent, PutOptions, Subscription, SubscriptionKind};
use dss_runtime::deployment::Deployment;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::search::upload_metadata;
use crate::stats::{ROUNDS, mmm};
use crate::{Row, start_with};

/// A new database on the bench's PostgreSQL server; its URL.
async fn new_database() -> Result<String> {
    let admin = std::env::var("DSS_BENCH_PG_URL")
        .context("DSS_BENCH_PG_URL (bench/run.sh starts PostgreSQL)")?;
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let name = format!("dss_bench_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (base, _) = admin
        .rsplit_once('/')
        .context("DSS_BENCH_PG_URL has a database")?;
    Ok(format!("{base}/{name}"))
}

/// The two backends.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Embedded,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A deployment on a new data directory under `work`, its metadata on `backend`; `url` is
/// the PostgreSQL database to use (one per deployment unless shared on purpose).
async fn deployment(work: &Path, backend: Backend, url: Option<&str>) -> Result<Deployment> {
    let data = work.join(format!("metadata-{}", uuid::Uuid::new_v4().simple()));
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{}\"\n[notify]\ncallback_allow = [\"127.0.0.1\"]\n",
        data.display()
    ))?;
    open(cfg, backend, url).await
}

async fn open(cfg: Config, backend: Backend, url: Option<&str>) -> Result<Deployment> {
    let mut d = Deployment::open(cfg, system())?;
    if backend == Backend::Postgres {
        let mut m = dss_config::MetadataConfig {
            url: Some(match url {
                Some(u) => u.to_string(),
                None => new_database().await?,
            }),
            ..Default::default()
        };
        m.pool_size = 32;
        let db = dss_postgres::PgMetadata::connect(&m).await?;
        d.subscriptions = Arc::new(db.subscriptions());
        d.deliveries = Arc::new(db.deliveries());
        d.journal = Arc::new(db.journal(system()));
        d.leases = Arc::new(db.leases());
    }
    Ok(d)
}

fn subscription(i: usize, callback: &str) -> Subscription {
    let uuid = uuid::Uuid::new_v4().to_string();
    Subscription {
        uuid: uuid.clone(),
        replica: "aws".into(),
        owner: format!("owner{}@example.org", i % 50),
        kind: SubscriptionKind::Jmespath,
        document: json!({"uuid": uuid, "callback_url": callback, "hmac_secret_key": "s3cret",
            "jmespath_query": format!("files.project_json[0].project_core.project_short_name == 'Project{i}'")}),
    }
}

/// Subscriptions created per second: 1,000, 16 at a time.
async fn creation_rate(d: &Deployment) -> Result<f64> {
    let n = 1_000;
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let d = d.clone();
            async move {
                d.subscriptions
                    .create(&subscription(i, "http://127.0.0.1:9/hook"), 100)
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Journal events recorded per second (1,000, one per call, 16 at a time) and the time to
/// list them all.
async fn journal_rate(d: &Deployment) -> Result<(f64, Duration)> {
    let n = 1_000;
    let body = json!({"event_type": "CREATE", "bundle_info": {"uuid": "x", "version": "y"}, "files": [1, 2, 3]}).to_string();
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (d, body) = (d.clone(), body.clone());
            async move {
                d.journal
                    .record(
                        "aws",
                        vec![NewEvent {
                            event_id: format!("{}.2019-05-01T000000.000000Z", uuid::Uuid::new_v4()),
                            kind: EventKind::Create,
                            body: format!("{body}{i}"),
                        }],
                    )
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let listed = d.journal.list("aws", None, None, 10_000).await?;
    if listed.len() != n {
        bail!("listed {} of {n} journal events", listed.len());
    }
    Ok((rate, t.elapsed()))
}

/// Deliveries per second: `bundles` events × `subs` subscriptions of one receiver, by
/// `daemons` notify daemons sharing the queues (one data directory) and the metadata.
async fn delivery_rate(work: &Path, backend: Backend, daemons: usize) -> Result<f64> {
    let (subs, bundles) = (200, 10);
    let rx = crate::notify::receiver().await?;
    let (url, count) = (rx.url.clone(), rx.count.clone());
    let data = work.join(format!("notify-{}", uuid::Uuid::new_v4().simple()));
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{}\"\n[notify]\ncallback_allow = [\"127.0.0.1\"]\n",
        data.display()
    ))?;
    let db = match backend {
        Backend::Postgres => Some(new_database().await?),
        Backend::Embedded => None,
    };
    let mut deps = Vec::new();
    for _ in 0..daemons {
        deps.push(open(cfg.clone(), backend, db.as_deref()).await?);
    }
    for i in 0..subs {
        let mut s = subscription(i, &url);
        s.document
            .as_object_mut()
            .map(|o| o.remove("jmespath_query"));
        deps[0].subscriptions.create(&s, usize::MAX).await?;
    }
    let stop = CancellationToken::new();
    let running: Vec<_> = deps
        .iter()
        .map(|d| {
            let (d, stop) = (d.clone(), stop.clone());
            tokio::spawn(async move { dss_notify::run(&d, stop).await })
        })
        .collect();
    let store = deps[0].replicas["aws"].store.clone();
    let version = "2019-05-01T000000.000000Z";
    let want = subs * bundles;
    let t = Instant::now();
    for _ in 0..bundles {
        let manifest =
            json!({"format": "0.0.1", "version": version, "files": [], "creator_uid": 1});
        store
            .put_bytes(
                &format!("bundles/{}.{version}", uuid::Uuid::new_v4()),
                Bytes::from(manifest.to_string()),
                PutOptions::default(),
            )
            .await?;
    }
    while count.load(Ordering::Relaxed) < want {
        if t.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {want} deliveries in 300 s",
                count.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = want as f64 / t.elapsed().as_secs_f64();
    stop.cancel();
    for r in running {
        let _ = r.await;
    }
    Ok(rate)
}

/// p99 of bundle PUT → webhook received through `server` (`n` bundles one after another).
async fn put_to_webhook_p99(
    http: &reqwest::Client,
    server: &crate::Server,
    files: &[Value],
    n: usize,
) -> Result<Duration> {
    let mut lat = crate::notify::put_latencies(http, server, files, n).await?;
    lat.sort();
    Ok(crate::stats::percentile(&lat, 0.99))
}

/// Runs every row.
pub async fn run(dss: &Path, work: &Path, http: &reqwest::Client) -> Result<Vec<Row>> {
    let es = std::env::var("DSS_BENCH_ES_URL")
        .context("DSS_BENCH_ES_URL (bench/run.sh starts osmem-server)")?;
    let backends = [Backend::Embedded, Backend::Postgres];
    let mut rows = Vec::new();

    // Subscription creation and the journal: a fresh deployment per round and backend.
    let (mut created, mut recorded, mut listed) =
        ([vec![], vec![]], [vec![], vec![]], [vec![], vec![]]);
    for round in 0..ROUNDS {
        for (i, b) in backends.iter().enumerate() {
            eprintln!(
                "metadata: round {round}, {}: subscriptions and journal",
                b.name()
            );
            let d = deployment(work, *b, None).await?;
            created[i].push(creation_rate(&d).await?);
            let (rate, list) = journal_rate(&d).await?;
            recorded[i].push(rate);
            listed[i].push(list.as_secs_f64() * 1000.0);
        }
    }
    rows.push(Row {
        name: "subscriptions created (1,000, 16 at a time, per-owner limit checked; min / median / max of 5 rounds)".into(),
        result: format!("PostgreSQL: {}", mmm(created[1].clone(), 0, "/s")),
        goal: "≥ 500/s".into(),
        baseline: format!("same run, embedded: {}", mmm(created[0].clone(), 0, "/s")),
    });
    rows.push(Row {
        name: "journal: 1,000 events recorded (one per call, 16 at a time), then listed (min / median / max of 5 rounds)".into(),
        result: format!(
            "PostgreSQL: {} recorded, listed in {}",
            mmm(recorded[1].clone(), 0, "/s"),
            mmm(listed[1].clone(), 1, " ms")
        ),
        goal: "≥ 500 events/s".into(),
        baseline: format!(
            "same run, embedded: {} recorded, listed in {}",
            mmm(recorded[0].clone(), 0, "/s"),
            mmm(listed[0].clone(), 1, " ms")
        ),
    });

    // Webhook deliveries, one and two notify daemons.
    let mut rates = vec![vec![]; 4];
    for round in 0..ROUNDS {
        for (i, (b, daemons)) in [
            (Backend::Embedded, 1),
            (Backend::Postgres, 1),
            (Backend::Embedded, 2),
            (Backend::Postgres, 2),
        ]
        .into_iter()
        .enumerate()
        {
            eprintln!(
                "metadata: round {round}, {}: deliveries with {daemons} notify",
                b.name()
            );
            rates[i].push(delivery_rate(work, b, daemons).await?);
        }
    }
    for (daemons, (e, p)) in [(1, (0, 1)), (2, (2, 3))] {
        rows.push(Row {
            name: format!("webhook deliveries, 10 bundle events × 200 subscriptions → one local receiver, {daemons} notify daemon(s) (min / median / max of 5 rounds)"),
            result: format!("PostgreSQL: {}", mmm(rates[p].clone(), 0, "/s")),
            goal: "≥ 1,000 deliveries/s".into(),
            baseline: format!("same run, embedded: {}", mmm(rates[e].clone(), 0, "/s")),
        });
    }

    // Bundle PUT → webhook through `dss up`, both servers up, rounds alternating.
    let keys = work.join("keys");
    let url = new_database().await?;
    let prefix = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let common = [
        ("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1".to_string()),
        ("DSS_SEARCH__URL", es),
        ("DSS_SEARCH__INDEX_PREFIX", prefix),
        ("DSS_KEYS__DIR", keys.display().to_string()),
    ];
    let env = |pg: bool| -> Vec<(&str, String)> {
        let mut e: Vec<(&str, String)> = common.to_vec();
        if pg {
            e.push(("DSS_METADATA__URL", url.clone()));
        }
        e
    };
    let start = |pg: bool, port: u16, dir: PathBuf| {
        let e = env(pg);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_with(dss, &dir, port, &e)
    };
    let embedded = start(false, 5931, work.join("put-webhook-embedded"))?;
    let postgres = start(true, 5932, work.join("put-webhook-postgres"))?;
    let files = upload_metadata(http, &embedded).await?;
    let files_pg = upload_metadata(http, &postgres).await?;
    let (mut p99e, mut p99p) = (vec![], vec![]);
    for round in 0..ROUNDS {
        eprintln!("metadata: round {round}: PUT → webhook");
        p99e.push(
            put_to_webhook_p99(http, &embedded, &files, 100)
                .await?
                .as_secs_f64()
                * 1000.0,
        );
        p99p.push(
            put_to_webhook_p99(http, &postgres, &files_pg, 100)
                .await?
                .as_secs_f64()
                * 1000.0,
        );
    }
    rows.push(Row {
        name: "bundle PUT → signed webhook received, `dss up` (p99 of 100 in a row; min / median / max of 5 rounds)".into(),
        result: format!("PostgreSQL: {}", mmm(p99p, 2, " ms")),
        goal: "p99 < 100 ms".into(),
        baseline: format!("same run, embedded: {}", mmm(p99e, 2, " ms")),
    });
    Ok(rows)
}
