//! Chaos: the index, notify and sync daemons run as their own processes on one embedded data
//! directory and are killed with SIGKILL at random (every 0.5–2 s) and restarted while 700
//! bundles (2,100 objects) are ingested into replica `aws` with a webhook subscription active.
//! Afterwards nothing may be missing or doubled: every object in both replicas, every bundle
//! searchable in both, one journal event per bundle and replica, one delivery per bundle recorded
//! as delivered, and every one of them received at least once. Also here: a webhook receiver
//! down and then failing for a stretch, a queue full of poison, a full or read-only disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

const BUNDLES: usize = 700;
const V: &str = "2026-09-10T111213.141516Z";

/// A daemon process that can be killed and started again.
struct Daemon {
    name: &'static str,
    data: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Daemon {
    fn spawn(name: &'static str, data: &Path, log_dir: &Path) -> Daemon {
        let log = log_dir.join(format!("{name}.log"));
        let child = spawn(name, data, &log);
        Daemon {
            name,
            data: data.to_path_buf(),
            log,
            child,
        }
    }

    fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.name, &self.data, &self.log);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(component: &str, data: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    Command::new(env!("CARGO_BIN_EXE_dss"))
        .args([component, "--data-dir"])
        .arg(data)
        .env("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1")
        .env("DSS_SYNC__RECONCILE_EVERY_SECS", "0")
        // What a killed process held comes back after its visibility timeout: seconds here
        // (a minute by default), so the test converges quickly.
        .env("DSS_INDEX__VISIBILITY_SECS", "3")
        .env("DSS_NOTIFY__VISIBILITY_SECS", "3")
        .env("DSS_NOTIFY__TIMEOUT_MS", "1000")
        .env("DSS_NOTIFY__CONNECT_TIMEOUT_MS", "500")
        .env("DSS_SYNC__VISIBILITY_SECS", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn a daemon")
}

/// Webhooks received: transaction id → bundle FQIDs.
type Received = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A webhook receiver on 127.0.0.1 that records every notification and answers 200.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got = serve_receiver(listener, Arc::new(AtomicBool::new(true)));
    (url, got)
}

/// Serves `/hook` on `listener`: records every notification and answers 200 while `up`, 503
/// (recording nothing) otherwise.
fn serve_receiver(listener: tokio::net::TcpListener, up: Arc<AtomicBool>) -> Received {
    let got: Received = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (seen, up) = (seen.clone(), up.clone());
            async move {
                if !up.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let tx = v["transaction_id"].as_str().unwrap_or_default().to_string();
                    let fqid = format!(
                        "{}.{}",
                        v["match"]["bundle_uuid"].as_str().unwrap_or_default(),
                        v["match"]["bundle_version"].as_str().unwrap_or_default()
                    );
                    seen.lock().expect("lock").entry(tx).or_default().push(fqid);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    got
}

/// A small pseudo-random generator (xorshift), seeded from the clock.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Keys under `prefix` in `replica` of the deployment on `data`.
async fn keys(d: &dss_runtime::deployment::Deployment, replica: &str, prefix: &str) -> Vec<String> {
    let store = &d.replicas[replica].store;
    store
        .list_all(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_daemons_lose_nothing_and_repeat_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let mut daemons: Vec<Daemon> = ["index", "notify", "sync"]
        .into_iter()
        .map(|n| Daemon::spawn(n, &data, dir.path()))
        .collect();
    let _api = Daemon {
        name: "api",
        data: data.clone(),
        log: dir.path().join("api.log"),
        child: Command::new(env!("CARGO_BIN_EXE_dss"))
            .args([
                "api",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .env("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("api.log")).expect("log"),
            ))
            .spawn()
            .expect("spawn the API"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/version")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the API did not start: {}",
            std::fs::read_to_string(dir.path().join("api.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_dss"))
            .args(["token", "--data-dir"])
            .arg(&data)
            .output()
            .expect("dss token")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_string();
    // Every daemon queue exists before the first write (the daemons declare them at start).
    let d = crate::harness::open_data(&data);
    d.declare_queues().await.expect("queues");

    let (hook, received) = receiver().await;
    let r = http
        .put(format!("{base}/v1/subscriptions?replica=aws"))
        .bearer_auth(&token)
        .json(&json!({"callback_url": hook}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.expect("json");
    let sub = sub["uuid"].as_str().expect("uuid").to_string();

    // The killer: one random daemon every 0.5–2 s, while the ingest runs.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut rng = Rng(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
                | 1);
            let mut kills = BTreeMap::<&str, u32>::new();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500 + rng.next() % 1500));
                let i = (rng.next() % daemons.len() as u64) as usize;
                daemons[i].kill_and_restart();
                *kills.entry(daemons[i].name).or_default() += 1;
            }
            (kills, daemons)
        })
    };

    let started = Instant::now();
    let bundles: Vec<String> = futures::stream::iter(0..BUNDLES)
        .map(|i| {
            let (http, base, token) = (&http, &base, &token);
            let body = format!("{{\"sample\": {{\"n\": {i}}}}}");
            crate::harness::put_sample_bundle(http, base, token, V, body)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let ingest = started.elapsed();
    // A few more kills while the daemons catch up, then they run undisturbed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (kills, _daemons) = killer.await.expect("killer");
    let want: BTreeSet<String> = bundles.iter().map(|b| format!("{b}.{V}")).collect();

    // Converged: both replicas hold every object, both indexes and journals every bundle, and
    // every bundle's delivery is recorded as delivered.
    let mut tally = String::new();
    let mut converged = false;
    for _ in 0..1200 {
        let mut ok = true;
        let mut counts = Vec::new();
        for replica in ["aws", "gcp"] {
            for prefix in ["blobs/", "files/", "bundles/"] {
                let n = keys(&d, replica, prefix).await.len();
                ok &= n == BUNDLES;
                counts.push(format!("{replica} {prefix} {n}"));
            }
            let hits: Value = http
                .post(format!("{base}/v1/search?replica={replica}&per_page=10"))
                .json(&json!({"es_query": {}}))
                .send()
                .await
                .expect("search")
                .json()
                .await
                .expect("json");
            ok &= hits["total_hits"] == BUNDLES;
            counts.push(format!("{replica} searchable {}", hits["total_hits"]));
            let events = d
                .journal
                .list(replica, None, None, 10 * BUNDLES)
                .await
                .expect("journal");
            ok &= events.len() == BUNDLES;
            counts.push(format!("{replica} journal {}", events.len()));
        }
        let delivered = d
            .deliveries
            .list(
                &sub,
                Some(dss_core::ports::DeliveryState::Delivered),
                10 * BUNDLES,
            )
            .await
            .expect("deliveries");
        ok &= delivered.len() == BUNDLES;
        counts.push(format!("delivered {}", delivered.len()));
        tally = counts.join(", ");
        if ok {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "chaos: {BUNDLES} bundles ({} objects) ingested in {:.1} s; kills {kills:?}; {tally}",
        3 * BUNDLES,
        ingest.as_secs_f64()
    );
    assert!(converged, "did not converge: {tally}");

    // Nothing doubled: one version per bundle and file, one journal event per bundle.
    for replica in ["aws", "gcp"] {
        let listed: BTreeSet<String> = keys(&d, replica, "bundles/")
            .await
            .into_iter()
            .map(|k| k.trim_start_matches("bundles/").to_string())
            .collect();
        assert_eq!(
            listed, want,
            "{replica}: the bundles are exactly those ingested"
        );
        let events: BTreeSet<String> = d
            .journal
            .list(replica, None, None, 10 * BUNDLES)
            .await
            .expect("journal")
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(events, want, "{replica}: one journal event per bundle");
    }
    // One delivery per bundle, each delivered; each received at least once.
    let delivered = d
        .deliveries
        .list(
            &sub,
            Some(dss_core::ports::DeliveryState::Delivered),
            10 * BUNDLES,
        )
        .await
        .expect("deliveries");
    let per_bundle: BTreeSet<String> = delivered
        .iter()
        .map(|x| {
            format!(
                "{}.{}",
                x.new.bundle_uuid,
                x.new.bundle_version.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(per_bundle, want, "one delivery per bundle");
    let got = received.lock().expect("lock").clone();
    let repeats: usize = got.values().map(|v| v.len() - 1).sum();
    for x in &delivered {
        let fqids = got
            .get(&x.new.id)
            .unwrap_or_else(|| panic!("delivery {} never arrived", x.new.id));
        assert!(fqids.iter().all(|f| want.contains(f)), "{fqids:?}");
    }
    eprintln!(
        "chaos: {} deliveries recorded, {} transactions received ({repeats} received again after a kill)",
        delivered.len(),
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_full_of_poison_is_dead_lettered_while_real_work_flows() {
    let dss = crate::harness::Dss::up().await;
    let d = dss.deployment();
    let poison: Vec<dss_core::ports::OutgoingMessage> = (0..300)
        .map(|i| dss_core::ports::OutgoingMessage::new(format!("not an event {i}")))
        .collect();
    d.queue("index")
        .await
        .expect("index queue")
        .send_batch(&poison)
        .await
        .expect("send");
    let meta = dss
        .upload(
            V,
            br#"{"donor": {"id": "past-the-poison"}}"#.to_vec(),
            "application/json",
        )
        .await;
    dss.bundle(V, &[(meta, "donor.json".into())]).await;
    dss.wait_searchable(
        &json!({"query": {"term": {"files.donor_json.donor.id": "past-the-poison"}}}),
        1,
    )
    .await;
    let dlq = d.queue("index-dlq").await.expect("dead-letter queue");
    let mut letters = 0;
    for _ in 0..600 {
        letters = dlq.stats().await.expect("stats").depth();
        if letters == 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(letters, 300, "every poison message is a dead letter");
    // The gauge operators alert on says so too (refreshed every 10 s).
    for _ in 0..600 {
        if dss
            .metrics()
            .await
            .contains(r#"dss_dead_letter_queue_depth{worker="index"} 300"#)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dss_dead_letter_queue_depth never showed the 300 letters");
}

/// Runs `args` inside the user and mount namespaces of process `pid` (where the test's tmpfs is).
fn in_namespace(pid: u32, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-U", "-m", "--"])
        .args(args)
        .output()
        .expect("nsenter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_disk_refuses_writes_clearly_and_corrupts_nothing() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let data = mnt.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    // `dss up` on a 24 MiB tmpfs of its own (a user and mount namespace: no privileges needed).
    // The operator token is minted first (`dss up` prints none), with the key `dss up` then uses.
    let script = format!(
        "mount -t tmpfs -o size=24m tmpfs '{mnt}' && '{dss}' token --admin --data-dir '{data}' && exec '{dss}' up --listen 127.0.0.1:{port} --data-dir '{data}'",
        mnt = mnt.display(),
        dss = env!("CARGO_BIN_EXE_dss"),
        data = data.display()
    );
    let mut child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) runs dss up in its own mount namespace");
    // The token (from `dss token`), then dss up's banner; the pipe is read to its end, as a
    // closed one would fail dss's later writes.
    let stdout = child.stdout.take().expect("stdout");
    let (seen, started) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let token = lines.find(|l| l.starts_with("eyJ"));
        let banner = lines.any(|l| l.starts_with("DSS is running at"));
        let _ = seen.send(token.filter(|_| banner));
        lines.for_each(drop);
    });
    let token = started
        .await
        .expect("reader")
        .expect("dss up started on the tmpfs (unshare needs user namespaces)");
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let upload = |uuid: String, data: Vec<u8>| {
        let (http, base, token) = (&http, &base, &token);
        async move {
            http.put(format!(
                "{base}/v1/files/{uuid}/content?version={V}&replica=aws"
            ))
            .bearer_auth(token)
            .body(data)
            .send()
            .await
            .expect("upload")
        }
    };
    let payload = |i: u8| -> Vec<u8> { (0..3_000_000u32).map(|j| (j as u8) ^ i).collect() };
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..20u8 {
        let uuid = uuid::Uuid::new_v4().to_string();
        let r = upload(uuid.clone(), payload(i)).await;
        match r.status().as_u16() {
            201 => stored.push((uuid, i)),
            507 => {
                assert_eq!(
                    r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                    Some("10")
                );
                let body: Value = r.json().await.expect("error body");
                assert_eq!(body["code"], "insufficient_storage", "{body}");
                assert!(
                    body["title"].as_str().is_some_and(|t| t.contains("full")),
                    "{body}"
                );
                refused = Some(uuid);
                break;
            }
            s => panic!(
                "upload {i} answered {s}: {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }
    let refused = refused.expect("the disk filled up");
    assert!(!stored.is_empty(), "some uploads fit");
    let head = |uuid: &str| {
        let (http, base) = (&http, &base);
        let url = format!("{base}/v1/files/{uuid}?replica=aws");
        async move { http.head(url).send().await.expect("head").status().as_u16() }
    };
    assert_eq!(
        head(&refused).await,
        404,
        "nothing of the refused file is visible"
    );

    // Space returns: the same upload succeeds and nothing stored before is damaged.
    let grown = in_namespace(
        pid,
        &[
            "mount",
            "-o",
            "remount,size=128m",
            &mnt.display().to_string(),
        ],
    );
    assert!(grown.status.success(), "{grown:?}");
    let r = upload(refused.clone(), payload(99)).await;
    assert_eq!(r.status(), 201);

    // The bucket's directory turns read-only (a read-only bind mount over it): writes are
    // refused, saying why; reads go on.
    let bucket = data.join("buckets/aws").display().to_string();
    let ro = in_namespace(
        pid,
        &[
            "sh",
            "-c",
            &format!("mount --bind '{bucket}' '{bucket}' && mount -o remount,bind,ro '{bucket}'"),
        ],
    );
    assert!(ro.status.success(), "{ro:?}");
    let r = upload(uuid::Uuid::new_v4().to_string(), payload(7)).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("error body");
    assert!(
        body["title"]
            .as_str()
            .is_some_and(|t| t.contains("Read-only file system")),
        "{body}"
    );
    assert_eq!(head(&refused).await, 200, "reads go on");
    let rw = in_namespace(pid, &["umount", &bucket]);
    assert!(rw.status.success(), "{rw:?}");
    let r = upload(uuid::Uuid::new_v4().to_string(), payload(8)).await;
    assert_eq!(r.status(), 201, "writable again");

    for (uuid, i) in &stored {
        let r = http
            .get(format!("{base}/v1/files/{uuid}?replica=aws"))
            .send()
            .await
            .expect("get");
        assert!(r.status().is_success(), "{}", r.status());
        assert!(r.bytes().await.expect("bytes").as_ref() == payload(*i).as_slice());
    }
    let check = in_namespace(
        pid,
        &[
            env!("CARGO_BIN_EXE_dss"),
            "ops",
            "verify",
            "integrity",
            "--replica",
            "aws",
            "--data-dir",
            &data.display().to_string(),
        ],
    );
    assert!(
        check.status.success(),
        "integrity after the disk was full: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Bundles written while their subscriber cannot be reached (nothing listens on its port), then
/// while it fails (503) — its circuit opens and probes — are all delivered once it answers
/// again: one delivery per bundle, recorded as delivered, each received, none given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_stretch_gets_every_delivery_once_it_is_back() {
    const N: usize = 40;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let dss = crate::harness::Dss::up_with(&[
        ("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1".into()),
        ("DSS_NOTIFY__RETRY_DELAYS_SECS", "1,2".into()),
        ("DSS_NOTIFY__CONNECT_TIMEOUT_MS", "500".into()),
        ("DSS_NOTIFY__BREAKER_COOLDOWN_SECS", "1".into()),
    ])
    .await;
    let r = dss
        .http
        .put(format!("{}/v1/subscriptions?replica=aws", dss.base))
        .bearer_auth(&dss.token)
        .json(&json!({"callback_url": format!("http://127.0.0.1:{port}/hook")}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.expect("json");
    let sub = sub["uuid"].as_str().expect("uuid").to_string();
    let mut want = BTreeSet::new();
    for i in 0..N {
        let file = dss
            .upload(
                V,
                format!("{{\"n\": {i}}}").into_bytes(),
                "application/json",
            )
            .await;
        want.insert(format!(
            "{}.{V}",
            dss.bundle(V, &[(file, "n.json".into())]).await
        ));
    }
    let d = dss.deployment();
    // Waits until `n` attempts have failed as `failed` says.
    let wait = async |what: &str, n: usize, failed: fn(&dss_core::ports::Attempt) -> bool| {
        let mut seen = 0;
        for _ in 0..600 {
            let attempts = d
                .deliveries
                .attempts(&sub, 100 * N)
                .await
                .expect("attempts");
            seen = attempts.iter().filter(|a| failed(a)).count();
            if seen >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("only {seen} attempts {what}, not {n}");
    };
    // Down: deliveries fail to connect until the endpoint's circuit opens, and its probe fails.
    wait("failed to connect", 6, |a| {
        a.status.is_none() && a.error.is_some()
    })
    .await;
    // Up but failing: probes are answered 503.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the receiver's port");
    let up = Arc::new(AtomicBool::new(false));
    let received = serve_receiver(listener, up.clone());
    wait("answered 503", 2, |a| a.status == Some(503)).await;
    // Back: every delivery arrives.
    up.store(true, Ordering::SeqCst);
    let mut delivered = Vec::new();
    for _ in 0..600 {
        delivered = d
            .deliveries
            .list(
                &sub,
                Some(dss_core::ports::DeliveryState::Delivered),
                10 * N,
            )
            .await
            .expect("deliveries");
        if delivered.len() >= N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let per_bundle: BTreeSet<String> = delivered
        .iter()
        .map(|x| {
            format!(
                "{}.{}",
                x.new.bundle_uuid,
                x.new.bundle_version.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        (delivered.len(), &per_bundle),
        (N, &want),
        "one delivery per bundle, each delivered"
    );
    let got = received.lock().expect("lock").clone();
    for x in &delivered {
        let fqids = got
            .get(&x.new.id)
            .unwrap_or_else(|| panic!("delivery {} never arrived", x.new.id));
        assert!(fqids.iter().all(|f| want.contains(f)), "{fqids:?}");
    }
    for state in [
        dss_core::ports::DeliveryState::Pending,
        dss_core::ports::DeliveryState::Dead,
    ] {
        let left = d
            .deliveries
            .list(&sub, Some(state), 10 * N)
            .await
            .expect("list");
        assert!(left.is_empty(), "{} deliveries left {state:?}", left.len());
    }
}
