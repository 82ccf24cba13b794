//! A deployment of many hosts: processes with data directories of their own that share only
//! the buckets and queues (moto), the search cluster (osmem-server) and the metadata database
//! (PostgreSQL). What is written through one API host is read through another; an outage of
//! the database loses nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::aws::{aws_env, infra_local};
use crate::harness::Dss;
use crate::postgres::{PgServer, new_database_on};

const V: &str = "2026-12-05T101112.131415Z";

/// The search server the test script started.
fn test_search_url() -> String {
    std::env::var("DSS_TEST_ES_URL")
        .expect("DSS_TEST_ES_URL names the Elasticsearch/OpenSearch server to test against")
}

/// What a deployment of many hosts adds to its configuration: the metadata database at
/// `metadata`, the search cluster at `search` (under an index prefix of its own), the key
/// directory every host mounts, and webhooks allowed to `callbacks`.
pub(crate) fn shared_env(
    metadata: String,
    search: String,
    keys: &std::path::Path,
    callbacks: &str,
) -> Vec<(&'static str, String)> {
    let prefix = format!(
        "dss-fleet-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    vec![
        ("DSS_METADATA__URL", metadata),
        ("DSS_SEARCH__URL", search),
        ("DSS_SEARCH__INDEX_PREFIX", prefix),
        ("DSS_KEYS__DIR", keys.display().to_string()),
        ("DSS_NOTIFY__CALLBACK_ALLOW", callbacks.to_string()),
    ]
}

/// The configuration of a deployment of many hosts on moto, osmem-server and PostgreSQL (the
/// servers the test script started), its keys in `keys`.
async fn fleet_env(keys: &std::path::Path) -> Vec<(&'static str, String)> {
    let (mut env, _) = aws_env();
    let metadata = crate::postgres::new_database().await;
    env.extend(shared_env(metadata, test_search_url(), keys, "127.0.0.1"));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto, osmem-server and PostgreSQL; run by infra/local/test.sh"]
async fn what_is_written_through_one_host_is_read_through_another() {
    let keys = tempfile::tempdir().expect("keys");
    let env = fleet_env(keys.path()).await;
    let (one, two) = (
        tempfile::tempdir().expect("host 1"),
        tempfile::tempdir().expect("host 2"),
    );
    infra_local(&env, &one.path().join("data"));
    let api1 = Dss::up_in_with(one, &env).await;
    let api2 = Dss::up_in_with(two, &env).await;

    // A subscription made through host 1 is listed, and served, by host 2.
    let (hook, received) = crate::webhooks::receiver().await;
    let r = api1
        .http
        .put(format!("{}/v1/subscriptions?replica=aws", api1.base))
        .bearer_auth(&api1.token)
        .json(&json!({"callback_url": hook, "jmespath_query": "event_type=='CREATE'"}))
        .send()
        .await
        .expect("subscribe");
    let status = r.status();
    let sub: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "{sub}");
    let sub = sub["uuid"].as_str().expect("uuid").to_string();
    let listed = api2
        .until(
            "/v1/subscriptions?replica=aws&subscription_type=jmespath",
            |v| v["subscriptions"].as_array().is_some_and(|s| !s.is_empty()),
        )
        .await;
    assert_eq!(listed["subscriptions"][0]["uuid"], sub.as_str());
    let r = api2
        .http
        .get(format!(
            "{}/v1/subscriptions/{sub}?replica=aws&subscription_type=jmespath",
            api2.base
        ))
        .bearer_auth(&api2.token)
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        200,
        "a token minted by host 1's key works on host 2"
    );

    // A bundle written through host 1: read, searched and replayed through host 2, and its
    // webhook delivered once by whichever notify process took the event.
    let file = api1
        .upload(V, br#"{"organ": "spleen"}"#.to_vec(), "application/json")
        .await;
    let bundle = api1.bundle(V, &[(file.clone(), "organ.json".into())]).await;
    let got = api2
        .until(&format!("/v1/bundles/{bundle}?replica=aws"), |v| {
            v["bundle"]["uuid"] == bundle.as_str()
        })
        .await;
    assert_eq!(got["bundle"]["files"][0]["uuid"], file.as_str());
    api2.wait_searchable(
        &json!({"query": {"match": {"files.organ_json.organ": "spleen"}}}),
        1,
    )
    .await;
    let events = api2
        .until("/v1/events?replica=aws", |v| {
            v["event_streams"].as_array().is_some_and(|s| !s.is_empty())
        })
        .await;
    let stream = events["event_streams"][0]["stream_url"]
        .as_str()
        .expect("stream_url");
    let body = api2
        .http
        .get(stream)
        .send()
        .await
        .expect("stream")
        .text()
        .await
        .expect("text");
    assert!(body.contains(&bundle), "the journal's stream: {body}");
    let event = api2
        .until(
            &format!("/v1/events/{bundle}?replica=aws&version={V}"),
            |v| v["event_type"] == "CREATE",
        )
        .await;
    assert_eq!(event["bundle_info"]["uuid"], bundle.as_str(), "{event}");
    for _ in 0..600 {
        if !received.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a second delivery, were there one, arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got: Vec<String> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|w| w.bundle.clone())
        .collect();
    assert_eq!(got, [bundle.as_str()], "one webhook for the one bundle");
    let attempts = api2
        .until(
            &format!("/v1/subscriptions/{sub}/deliveries?replica=aws&subscription_type=jmespath"),
            |v| v.to_string().contains("delivered"),
        )
        .await;
    let log = attempts["attempts"].as_array().expect("attempts");
    assert_eq!(log.len(), 1, "one attempt, seen from host 2: {attempts}");
    assert_eq!(log[0]["status"], 200);
    // An operator's machine with an empty data directory sees it too.
    let operator = tempfile::tempdir().expect("operator");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["deliveries", &sub, "--json", "--data-dir"])
        .arg(operator.path().join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("dss deliveries");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 200, "{lines:?}");

    // A collection made through host 1 is listed by host 2.
    let r = api1
        .http
        .put(format!(
            "{}/v1/collections?replica=aws&uuid={}&version={V}",
            api1.base,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&api1.token)
        .json(&json!({"name": "fleet", "description": "d", "details": {},
                      "contents": [{"type": "bundle", "uuid": bundle, "version": V}]}))
        .send()
        .await
        .expect("collection");
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let mine = api2
        .until("/v1/collections?replica=aws", |v| {
            v["collections"].as_array().is_some_and(|c| !c.is_empty())
        })
        .await;
    assert_eq!(mine["collections"].as_array().map(Vec::len), Some(1));
}

/// Waits until `received` holds `n` webhooks (up to `secs` seconds); their bundles.
async fn webhooks(received: &crate::webhooks::Received, n: usize, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got: Vec<String> = received
            .lock()
            .expect("lock")
            .iter()
            .map(|w| w.bundle.clone())
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs osmem-server and PostgreSQL; run by infra/local/test.sh"]
async fn an_outage_of_the_metadata_database_loses_nothing() {
    let mut pg = PgServer::start();
    let keys = tempfile::tempdir().expect("keys");
    let mut env = shared_env(
        new_database_on(&pg.url()).await,
        test_search_url(),
        keys.path(),
        "127.0.0.1",
    );
    env.push(("DSS_METADATA__CONNECT_TIMEOUT_MS", "1000".to_string()));
    let dss = Dss::up_with(&env).await;
    let (hook, received) = crate::webhooks::receiver().await;
    let subscribe = || {
        dss.http
            .put(format!("{}/v1/subscriptions?replica=aws", dss.base))
            .bearer_auth(&dss.token)
            .json(&json!({"callback_url": hook}))
            .send()
    };
    assert_eq!(subscribe().await.expect("subscribe").status(), 201);

    // The database goes away: writes that need it answer 503, and say why.
    pg.stop();
    let r = subscribe().await.expect("subscribe");
    assert_eq!(r.status(), 503);
    let why: Value = r.json().await.expect("json");
    assert_eq!(why["code"], "service_unavailable", "{why}");
    assert!(
        why["title"]
            .as_str()
            .is_some_and(|t| t.contains("subscription store")),
        "{why}"
    );
    let r = dss
        .http
        .get(format!("{}/v1/events?replica=aws", dss.base))
        .send()
        .await
        .expect("events");
    assert_eq!(r.status(), 503);

    // A bundle written meanwhile (its bytes need no database) is indexed, journaled and
    // notified once the database is back; nothing is dead-lettered for the outage.
    let file = dss
        .upload(V, br#"{"organ": "liver"}"#.to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(V, &[(file, "organ.json".into())]).await;
    let deferred = async || -> f64 {
        dss.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("dss_worker_deferred_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while deferred().await == 0.0 {
        assert!(Instant::now() < deadline, "the daemons met the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(received.lock().expect("lock").is_empty());
    pg.resume();
    assert_eq!(
        webhooks(&received, 1, 120).await,
        [bundle.as_str()],
        "the webhook arrives after the outage"
    );
    let event = dss
        .until(
            &format!("/v1/events/{bundle}?replica=aws&version={V}"),
            |v| v["event_type"] == "CREATE",
        )
        .await;
    assert_eq!(event["bundle_info"]["uuid"], bundle.as_str());
    let queues = crate::ops::dss_json_with(&dss, &env, &["queues"]);
    for q in &queues {
        if q["queue"].as_str().is_some_and(|n| n.ends_with("-dlq")) {
            assert_eq!(q["visible"], 0, "nothing dead-lettered: {q}");
        }
    }

    // A process starting while the database is down says which key to look at.
    pg.stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["api", "--data-dir"])
        .arg(dss.dir.path().join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("dss api");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metadata.url: cannot reach the metadata database"),
        "{err}"
    );
}

/// A process killed (SIGKILL) when dropped.
struct Host(std::process::Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dss checkout` alone on its own data directory, with `env`, its metrics on a port of its own.
fn checkout_host(env: &[(&str, String)], dir: &std::path::Path) -> (Host, String) {
    let (child, port) = crate::ops::alone_with("checkout", dir, env);
    (Host(child), format!("http://127.0.0.1:{port}/metrics"))
}

/// The checkout sweeps a process has run, from its metrics (0 until it answers).
async fn sweeps(metrics: &str) -> u64 {
    let text = match reqwest::get(metrics).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .find(|l| l.starts_with("dss_periodic_passes_total{outcome=\"checkout-sweep:ok\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs osmem-server and PostgreSQL; run by infra/local/test.sh"]
async fn periodic_work_runs_once_per_deployment_and_moves_when_its_host_dies() {
    let keys = tempfile::tempdir().expect("keys");
    let mut env = shared_env(
        crate::postgres::new_database().await,
        test_search_url(),
        keys.path(),
        "127.0.0.1",
    );
    env.extend([
        ("DSS_METADATA__LEASE_SECS", "3".to_string()),
        ("DSS_CHECKOUT__SWEEP_EVERY_SECS", "1".to_string()),
    ]);
    let (one, two) = (
        tempfile::tempdir().expect("host 1"),
        tempfile::tempdir().expect("host 2"),
    );
    let (first, metrics1) = checkout_host(&env, one.path());
    let (second, metrics2) = checkout_host(&env, two.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while sweeps(&metrics1).await + sweeps(&metrics2).await < 8 {
        assert!(Instant::now() < deadline, "the sweep never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s1, s2) = (sweeps(&metrics1).await, sweeps(&metrics2).await);
    assert!(
        s1 == 0 || s2 == 0,
        "one host sweeps at a time: {s1} and {s2}"
    );
    let (holder, other, other_metrics, before) = match s1 > 0 {
        true => (first, second, metrics2, s2),
        false => (second, first, metrics1, s1),
    };

    // The sweeping host dies: the other takes the sweep over within the lease and a third.
    drop(holder);
    let died = Instant::now();
    while sweeps(&other_metrics).await == before {
        assert!(
            died.elapsed() < Duration::from_secs(30),
            "nobody took the sweep over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = died.elapsed();
    assert!(
        took < Duration::from_secs(3 + 1 + 2),
        "taken over in {took:?}"
    );
    eprintln!("the sweep moved to the other host {took:?} after its holder died");
    drop(other);
}
