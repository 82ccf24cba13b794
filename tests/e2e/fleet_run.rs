//! The fleet: every component on a host of its own — its own network namespace and its own
//! empty data directory — sharing nothing but moto (S3, SQS, SNS), PostgreSQL, osmem-server and
//! the SMTP sink, which listen on the machine's side of the hosts' links: two `dss api`,
//! `dss index`, two `dss notify`, `dss sync` and `dss checkout`. Written through API 1, read
//! through API 2; a notify host is killed with SIGKILL mid-run and every event's webhook still
//! arrives; a checkout whose daemon is killed and restarted finishes, with its e-mail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::aws::{aws_env_at, infra_local};
use crate::harness::{until_json as until, wait_searchable_at};
use crate::netns::{Hosts, Services};

const V: &str = "2026-12-05T121314.151617Z";
const BUNDLES: usize = 40;

/// One component on host `i`: a process in the host's namespace with its own data directory
/// and log; killed on drop.
struct Host<'a> {
    hosts: &'a Hosts,
    i: usize,
    args: Vec<String>,
    data: PathBuf,
    log: PathBuf,
    env: Vec<(&'static str, String)>,
    child: Child,
}

impl<'a> Host<'a> {
    fn start(
        hosts: &'a Hosts,
        i: usize,
        args: &[&str],
        root: &Path,
        name: &str,
        env: &[(&'static str, String)],
    ) -> Host<'a> {
        let data = root.join(name);
        let log = root.join(format!("{name}.log"));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = Self::spawn(hosts, i, &args, &data, &log, env);
        Host {
            hosts,
            i,
            args,
            data,
            log,
            env: env.to_vec(),
            child,
        }
    }

    fn spawn(
        hosts: &Hosts,
        i: usize,
        args: &[String],
        data: &Path,
        log: &Path,
        env: &[(&str, String)],
    ) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        hosts
            .command(i, Path::new(env!("CARGO_BIN_EXE_dss")))
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn dss")
    }

    /// SIGKILL: the host dies with whatever it held.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(
            self.hosts, self.i, &self.args, &self.data, &self.log, &self.env,
        );
    }
}

impl Drop for Host<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// An API host's base URL, once it answers.
async fn api_up(http: &reqwest::Client, address: &str, port: u16, host: &Host<'_>) -> String {
    let base = format!("http://{address}:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "API did not start: {}",
            std::fs::read_to_string(&host.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    base
}

/// The messages in the SMTP sink's Maildir addressed to `to`.
fn mails_to(maildir: &str, to: &str) -> usize {
    std::fs::read_dir(Path::new(maildir).join("new"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter(|m| m.contains(to))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (network namespaces) and the test tools; run by infra/local/test.sh"]
async fn the_fleet_serves_through_any_host_while_hosts_die() {
    let hosts = Hosts::create(7);
    let services = Services::start(&hosts.services_address());
    let root = tempfile::tempdir().expect("tempdir");
    let keys = root.path().join("keys");
    let (mut env, _) = aws_env_at(services.moto.clone());
    let metadata = crate::postgres::new_database_on(&services.postgres).await;
    let address = hosts.services_address();
    env.extend(crate::fleet::shared_env(
        metadata,
        services.search.clone(),
        &keys,
        &address,
    ));
    env.extend([
        ("DSS_MAIL__SMTP_HOST", hosts.services_address()),
        ("DSS_MAIL__SMTP_PORT", services.smtp_port.clone()),
        ("DSS_MAIL__SMTP_SECURITY", "none".to_string()),
        ("DSS_MAIL__SENDER", "dss-fleet@example.org".to_string()),
        // What a killed process held comes back after its visibility timeout: seconds here.
        ("DSS_NOTIFY__VISIBILITY_SECS", "3".to_string()),
        ("DSS_INDEX__VISIBILITY_SECS", "5".to_string()),
        ("DSS_CHECKOUT__VISIBILITY_SECS", "3".to_string()),
        ("DSS_SYNC__RECONCILE_EVERY_SECS", "0".to_string()),
    ]);
    let maildir = services.maildir.clone();
    infra_local(&env, &root.path().join("infra"));

    let (p1, p2) = (free_port(), free_port());
    let (a1, a2) = (hosts.address(1), hosts.address(2));
    let api1 = Host::start(
        &hosts,
        1,
        &["api", "--listen", &format!("{a1}:{p1}")],
        root.path(),
        "api1",
        &env,
    );
    let api2 = Host::start(
        &hosts,
        2,
        &["api", "--listen", &format!("{a2}:{p2}")],
        root.path(),
        "api2",
        &env,
    );
    let _index = Host::start(&hosts, 3, &["index"], root.path(), "index", &env);
    let mut notify1 = Host::start(&hosts, 4, &["notify"], root.path(), "notify1", &env);
    let _notify2 = Host::start(&hosts, 5, &["notify"], root.path(), "notify2", &env);
    let _sync = Host::start(&hosts, 6, &["sync"], root.path(), "sync", &env);
    let mut checkout = Host::start(&hosts, 7, &["checkout"], root.path(), "checkout", &env);
    let http = reqwest::Client::new();
    let (base1, base2) = (
        api_up(&http, &a1, p1, &api1).await,
        api_up(&http, &a2, p2, &api2).await,
    );
    let minted = Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["token", "--admin", "--data-dir"])
        .arg(root.path().join("operator"))
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .output()
        .expect("dss token");
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8_lossy(&minted.stdout).trim().to_string();

    // Subscribed through API 2.
    let (hook, received) = crate::webhooks::receiver_at(&hosts.services_address()).await;
    let r = http
        .put(format!("{base2}/v1/subscriptions?replica=aws"))
        .bearer_auth(&token)
        .json(&json!({"callback_url": hook, "jmespath_query": "event_type=='CREATE'"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.expect("json");
    let sub = sub["uuid"].as_str().expect("uuid").to_string();

    // Bundles written through API 1; a notify host dies a third of the way in.
    let mut bundles = Vec::new();
    let mut writes = futures::stream::iter(0..BUNDLES)
        .map(|i| {
            let (http, base1, token) = (&http, &base1, &token);
            let body = format!("{{\"sample\": {{\"n\": {i}, \"fleet\": true}}}}");
            crate::harness::put_sample_bundle(http, base1, token, V, body)
        })
        .buffer_unordered(4);
    while let Some(b) = writes.next().await {
        bundles.push(b);
        if bundles.len() == BUNDLES / 3 {
            notify1.kill();
        }
    }
    drop(writes);

    // Every bundle's webhook arrives; a second time only for attempts in flight at the kill.
    let deadline = Instant::now() + Duration::from_secs(180);
    let wanted: BTreeSet<&str> = bundles.iter().map(String::as_str).collect();
    loop {
        let got = received.lock().expect("lock").clone();
        let seen: BTreeSet<&str> = got.iter().map(|w| w.bundle.as_str()).collect();
        if wanted.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {BUNDLES} webhooks arrived",
            wanted.intersection(&seen).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let second deliveries, were there any more, arrive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = received.lock().expect("lock").clone();
    let mut per_tx: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for w in &got {
        let e = per_tx
            .entry(w.transaction.as_str())
            .or_insert((w.bundle.as_str(), 0));
        assert_eq!(e.0, w.bundle, "one transaction id per bundle");
        e.1 += 1;
    }
    assert_eq!(per_tx.len(), BUNDLES, "one delivery per bundle");
    let twice = got.len() - per_tx.len();
    eprintln!("fleet: {BUNDLES} webhooks, {twice} sent a second time after the notify kill");
    assert!(
        twice <= 16,
        "a second time only for attempts in flight at the kill (at most notify.endpoint_concurrency): {twice}"
    );

    // Read through API 2: files, bundles, search, events, subscriptions.
    let b0 = &bundles[0];
    let got = until(
        &http,
        &token,
        &format!("{base2}/v1/bundles/{b0}?replica=aws"),
        60,
        |v| v["bundle"]["uuid"] == b0.as_str(),
    )
    .await;
    let file = got["bundle"]["files"][0]["uuid"]
        .as_str()
        .expect("file")
        .to_string();
    let r = http
        .head(format!("{base2}/v1/files/{file}?replica=aws"))
        .send()
        .await
        .expect("head");
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    wait_searchable_at(
        &http,
        &base2,
        &json!({"query": {"term": {"files.sample_json.sample.fleet": true}}}),
        BUNDLES as u64,
    )
    .await;
    until(
        &http,
        &token,
        &format!("{base2}/v1/events/{b0}?replica=aws&version={V}"),
        60,
        |v| v["event_type"] == "CREATE",
    )
    .await;
    let subs = until(
        &http,
        &token,
        &format!("{base2}/v1/subscriptions?replica=aws&subscription_type=jmespath"),
        10,
        |v| v["subscriptions"].as_array().is_some_and(|s| !s.is_empty()),
    )
    .await;
    assert_eq!(subs["subscriptions"][0]["uuid"], sub.as_str());

    // A collection made through API 1, listed through API 2.
    let r = http
        .put(format!(
            "{base1}/v1/collections?replica=aws&uuid={}&version={V}",
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&token)
        .json(&json!({"name": "fleet", "description": "d", "details": {},
                      "contents": [{"type": "bundle", "uuid": b0, "version": V}]}))
        .send()
        .await
        .expect("collection");
    assert_eq!(r.status(), 201);
    until(
        &http,
        &token,
        &format!("{base2}/v1/collections?replica=aws"),
        10,
        |v| v["collections"].as_array().is_some_and(|c| c.len() == 1),
    )
    .await;

    // A checkout started through API 1 survives its daemon's death, and mails its owner.
    let to = format!("fleet-{}@example.org", uuid::Uuid::new_v4().simple());
    checkout.kill();
    let r = http
        .post(format!("{base1}/v1/bundles/{b0}/checkout?replica=aws"))
        .bearer_auth(&token)
        .json(&json!({"email": to}))
        .send()
        .await
        .expect("checkout");
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.expect("json");
    let job = job["checkout_job_id"].as_str().expect("job").to_string();
    checkout.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    checkout.restart();
    let done = until(
        &http,
        &token,
        &format!("{base2}/v1/bundles/checkout/{job}?replica=aws"),
        120,
        |v| v["status"] != "RUNNING" && !v["status"].is_null(),
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while mails_to(&maildir, &to) == 0 {
        assert!(Instant::now() < deadline, "no e-mail to {to}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(mails_to(&maildir, &to), 1, "one e-mail");
}
