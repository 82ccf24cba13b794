//! Operator commands of `dss` on a running deployment's data directory.

use serde_json::Value;

use crate::harness::Dss;

#[tokio::test]
async fn operators_see_queue_gauges() {
    let dss = Dss::up().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["queues", "--json", "--data-dir"])
        .arg(dss.dir.path().join("data"))
        .output()
        .expect("run dss queues");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let names: Vec<&str> = lines.iter().filter_map(|l| l["queue"].as_str()).collect();
    assert_eq!(
        names,
        [
            "index",
            "index-dlq",
            "notify",
            "notify-dlq",
            "notify-deliveries",
            "notify-deliveries-dlq",
            "checkout",
            "checkout-dlq",
            "checkout-mail",
            "checkout-mail-dlq",
            "sync",
            "sync-dlq",
            "ingest",
            "ingest-dlq"
        ]
    );
    for l in &lines {
        assert!(
            l["visible"].is_u64() && l["in_flight"].is_u64() && l["delayed"].is_u64(),
            "{l}"
        );
    }
}

#[test]
fn a_relative_data_directory_works_for_every_command() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["queues", "--json", "--data-dir", "dss-data"][..],
        &["token", "--admin", "--data-dir", "dss-data"],
        &["reconcile", "--json", "--data-dir", "dss-data"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
            .args(args)
            .current_dir(cwd.path())
            .output()
            .expect("run dss");
        assert!(
            out.status.success(),
            "dss {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(cwd.path().join("dss-data/dss.db").exists());
}

#[test]
fn configuration_files_layer_in_order() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("base.toml"),
        "data_dir = \"base-data\"\n[api]\nread_only = true",
    )
    .unwrap();
    std::fs::write(cwd.path().join("local.toml"), "data_dir = \"local-data\"").unwrap();
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dss"));
        cmd.args(args)
            .current_dir(cwd.path())
            .env_remove("DSS_CONFIG");
        if let Some(list) = env {
            cmd.env("DSS_CONFIG", list);
        }
        let out = cmd.output().expect("run dss");
        assert!(
            out.status.success(),
            "dss {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Repeated --config: the later file's data_dir wins.
    run(
        &[
            "queues",
            "--json",
            "--config",
            "base.toml",
            "--config",
            "local.toml",
        ],
        None,
    );
    assert!(cwd.path().join("local-data/dss.db").exists());
    assert!(!cwd.path().join("base-data").exists());
    // DSS_CONFIG holds the same list.
    std::fs::remove_dir_all(cwd.path().join("local-data")).unwrap();
    run(&["queues", "--json"], Some("base.toml:local.toml"));
    assert!(cwd.path().join("local-data/dss.db").exists());
    assert!(!cwd.path().join("base-data").exists());
    // In the other order, the base file's.
    run(&["queues", "--json"], Some("local.toml:base.toml"));
    assert!(cwd.path().join("base-data/dss.db").exists());
}

/// `dss ops config` with `args`, in `cwd`, with the test's `DSS_*` variables: stdout, or the
/// failure.
fn ops_config(cwd: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args([
            "ops",
            "config",
            "--config",
            "base.toml",
            "--config",
            "local.toml",
        ])
        .args(args)
        .current_dir(cwd)
        .env_remove("DSS_CONFIG")
        .env("DSS_AWS__SECRET_ACCESS_KEY", "from-the-environment")
        .env("DSS_AWS__ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("DSS_SEARCH__URL", "https://search.example:9200")
        .env("DSS_SEARCH__USERNAME", "elastic")
        .env("DSS_SEARCH__PASSWORD", "pw-in-the-environment")
        .output()
        .expect("run dss ops config");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn operators_see_the_effective_configuration_without_secrets() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("base.toml"),
        "[api]\nread_only = true\n[mail]\nsmtp_username = \"dss\"\nsmtp_password = \"in-a-file\"",
    )
    .unwrap();
    std::fs::write(cwd.path().join("local.toml"), "data_dir = \"local-data\"").unwrap();
    let text = ops_config(cwd.path(), &["--json"]).expect("dss ops config --json");
    for secret in ["in-a-file", "from-the-environment", "pw-in-the-environment"] {
        assert!(!text.contains(secret), "{secret} is shown: {text}");
    }
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let (v, sources) = (&doc["config"], &doc["sources"]);
    assert_eq!(v["api"]["read_only"], true, "from the base file");
    assert_eq!(sources["api.read_only"], "file base.toml");
    assert_eq!(
        v["data_dir"],
        cwd.path().join("local-data").display().to_string(),
        "from the later file, made absolute"
    );
    assert_eq!(sources["data_dir"], "file local.toml");
    assert_eq!(v["mail"]["smtp_password"], "(redacted)");
    assert_eq!(v["aws"]["secret_access_key"], "(redacted)");
    assert_eq!(v["aws"]["access_key_id"], "AKIAEXAMPLE");
    assert_eq!(
        sources["aws.access_key_id"],
        "environment DSS_AWS__ACCESS_KEY_ID"
    );
    assert_eq!(v["search"]["url"], "https://search.example:9200");
    assert_eq!(v["search"]["username"], "elastic");
    assert_eq!(v["search"]["password"], "(redacted)");
    assert_eq!(v["api"]["listen"], "127.0.0.1:5000", "defaults filled in");
    assert_eq!(sources["api.listen"], "default");

    // The text form: one line per value, with its source.
    let text = ops_config(cwd.path(), &[]).expect("dss ops config");
    assert!(
        text.contains("api.read_only = true  # file base.toml"),
        "{text}"
    );
    assert!(
        text.contains("search.password = \"(redacted)\"  # environment DSS_SEARCH__PASSWORD"),
        "{text}"
    );
    assert!(!text.contains("pw-in-the-environment"));

    // --check validates without printing the configuration; a bad value names its key.
    assert_eq!(
        ops_config(cwd.path(), &["--check"]).expect("valid"),
        "the configuration is valid\n"
    );
    std::fs::write(cwd.path().join("local.toml"), "[sync]\nconcurrency = 0").unwrap();
    let err = ops_config(cwd.path(), &["--check"]).expect_err("invalid");
    assert!(err.contains("sync.concurrency"), "{err}");
}

#[tokio::test]
async fn operators_reconcile_the_replicas() {
    let dss = Dss::up().await;
    let file = dss
        .upload(
            "2026-07-08T090807.060504Z",
            b"{}".to_vec(),
            "application/json",
        )
        .await;
    // Wait until sync has copied the file to gcp.
    for _ in 0..3000 {
        let r = dss
            .http
            .head(format!("{}/v1/files/{file}?replica=gcp", dss.base))
            .send()
            .await
            .expect("head");
        if r.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reconcile = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
            .arg("reconcile")
            .arg("--json")
            .args(args)
            .arg("--data-dir")
            .arg(dss.dir.path().join("data"))
            .output()
            .expect("run dss reconcile")
    };
    let out = reconcile(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let prefixes: Vec<&str> = lines.iter().filter_map(|l| l["prefix"].as_str()).collect();
    assert_eq!(prefixes, ["blobs/", "files/", "bundles/", "collections/"]);
    assert_eq!(lines[0]["scanned"], 1, "{}", lines[0]);
    assert_eq!(lines[1]["scanned"], 1, "{}", lines[1]);
    for l in &lines {
        assert_eq!(
            (l["missing"].as_u64(), l["enqueued"].as_u64()),
            (Some(0), Some(0)),
            "{l}"
        );
    }
    let bad = reconcile(&["--prefix", "cache/"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--prefix cache/"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Runs `dss ARGS --json --data-dir D`; its JSON output lines.
fn dss_json(dss: &Dss, args: &[&str]) -> Vec<Value> {
    dss_json_with(dss, &[], args)
}

/// As [`dss_json`], with the deployment's configuration in `env` (a cloud deployment's).
pub(crate) fn dss_json_with(dss: &Dss, env: &[(&str, String)], args: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(dss.dir.path().join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run dss");
    assert!(
        out.status.success(),
        "dss {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_verify_the_replicas_and_repair_on_request() {
    use dss_core::checksum::checksums_of;
    use dss_core::model::ObjectKey;
    use dss_core::ports::PutOptions;
    let dss = Dss::up().await;
    let d = dss.deployment();
    // A blob in gcp marked as a copy from aws: sync leaves it alone, so aws lacks it.
    let body = bytes::Bytes::from_static(b"only in gcp");
    let key = ObjectKey::blob(&checksums_of(&body));
    let opts = PutOptions {
        origin: Some("aws".into()),
        ..Default::default()
    };
    d.replicas["gcp"]
        .store
        .put_bytes(&key, body, opts)
        .await
        .expect("put");
    let report = dss_json(&dss, &["ops", "verify", "replicas", "--prefix", "blobs/"]);
    assert_eq!(report.len(), 1);
    assert_eq!(
        (
            report[0]["missing"].as_u64(),
            report[0]["enqueued"].as_u64()
        ),
        (Some(1), Some(0)),
        "{}",
        report[0]
    );
    assert_eq!(
        report[0]["findings"],
        serde_json::json!([{"key": key, "replica": "aws", "kind": "missing"}])
    );
    assert!(
        d.replicas["aws"]
            .store
            .head(&key)
            .await
            .expect("head")
            .is_none(),
        "a report changes nothing"
    );
    let repaired = dss_json(
        &dss,
        &[
            "ops", "verify", "replicas", "--prefix", "blobs/", "--repair",
        ],
    );
    assert_eq!(repaired[0]["enqueued"], 1, "{}", repaired[0]);
    for _ in 0..3000 {
        if d.replicas["aws"]
            .store
            .head(&key)
            .await
            .expect("head")
            .is_some()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the repair never arrived in aws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_show_redrive_and_purge_dead_letters() {
    let dss = Dss::up().await;
    let d = dss.deployment();
    d.queue("index")
        .await
        .expect("queue")
        .send("not a bucket event", std::time::Duration::ZERO)
        .await
        .expect("send");
    fn letters(dss: &Dss) -> Option<u64> {
        dss_json(dss, &["ops", "dlq", "list"])
            .into_iter()
            .find(|l| l["queue"] == "index")
            .and_then(|l| l["letters"].as_u64())
    }
    async fn wait_for(dss: &Dss, n: u64) {
        for _ in 0..1500 {
            if letters(dss) == Some(n) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        }
        panic!("index-dlq never held {n} letters");
    }
    // The index daemon dead-letters the poison message.
    wait_for(&dss, 1).await;
    let shown = dss_json(&dss, &["ops", "dlq", "show", "index"]);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["body"], "not a bucket event");
    assert!(
        shown[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        shown[0]
    );
    assert_eq!(letters(&dss), Some(1), "showing leaves the letter in place");
    let r = dss_json(&dss, &["ops", "dlq", "redrive", "index"]);
    assert_eq!(r[0]["redriven"], 1);
    // Handled again, and dead-lettered again: it is still poison.
    wait_for(&dss, 1).await;
    let p = dss_json(&dss, &["ops", "dlq", "purge", "index"]);
    assert_eq!(p[0]["purged"], 1);
    assert_eq!(letters(&dss), Some(0));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["ops", "dlq", "show", "nonsense", "--data-dir"])
        .arg(dss.dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a daemon queue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_verify_the_integrity_of_a_replica() {
    use dss_core::checksum::checksums_of;
    use dss_core::model::ObjectKey;
    const V: &str = "2026-07-08T090807.060504Z";
    let dss = Dss::up().await;
    let file = dss
        .upload(V, b"{\"a\": 1}".to_vec(), "application/json")
        .await;
    dss.bundle(V, &[(file, "a.json".into())]).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
            .args(["ops", "verify", "integrity"])
            .args(args)
            .arg("--data-dir")
            .arg(dss.dir.path().join("data"))
            .output()
            .expect("run dss")
    };
    let out = run(&["--replica", "aws"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "aws: 1 files and 1 bundles checked, 0 problems\n",
        "text for people without --json"
    );
    let out = run(&["--replica", "aws", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(
        (
            v["replica"].as_str(),
            v["files"].as_u64(),
            v["bundles"].as_u64(),
            v["problems"].as_u64()
        ),
        (Some("aws"), Some(1), Some(1), Some(0)),
        "{v}"
    );

    // The file's blob disappears from aws: the file is reported, and the command fails.
    let blob = ObjectKey::blob(&checksums_of(b"{\"a\": 1}"));
    let d = dss.deployment();
    assert!(d.replicas["aws"].store.delete(&blob).await.expect("delete"));
    let out = run(&["--replica", "aws", "--json"]);
    assert!(!out.status.success(), "inconsistencies fail the command");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["problems"], 1, "{v}");
    assert_eq!(v["findings"][0]["problem"], "blob_missing", "{v}");
    assert_eq!(v["findings"][0]["detail"], blob.as_str(), "{v}");
    let bad = run(&["--replica", "nowhere"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no replica named nowhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_checkout_statuses() {
    const V: &str = "2026-07-08T090807.060504Z";
    let dss = Dss::up().await;
    let file = dss.upload(V, b"x".to_vec(), "text/plain").await;
    let bundle = dss.bundle(V, &[(file, "x.txt".into())]).await;
    let r: Value = dss
        .http
        .post(format!(
            "{}/v1/bundles/{bundle}/checkout?replica=aws",
            dss.base
        ))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let job = r["checkout_job_id"].as_str().expect("job").to_string();
    for _ in 0..500 {
        let s = dss_json(&dss, &["ops", "checkout", "status", &job]);
        if s[0]["status"] == "SUCCEEDED" {
            assert_eq!(s[0]["replica"], "aws");
            assert!(
                s[0]["location"]
                    .as_str()
                    .is_some_and(|l| l.contains(&bundle)),
                "{}",
                s[0]
            );
            let missing = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
                .args([
                    "ops",
                    "checkout",
                    "status",
                    "00000000-0000-4000-8000-000000000000",
                    "--data-dir",
                ])
                .arg(dss.dir.path().join("data"))
                .output()
                .expect("run");
            assert!(!missing.status.success());
            let text = dss.metrics().await;
            assert!(
                text.contains(r#"dss_checkout_jobs_total{outcome="succeeded"} 1"#),
                "{text}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the checkout never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_the_prometheus_format() {
    const V: &str = "2026-07-08T090807.060504Z";
    let dss = Dss::up().await;
    let file = dss.upload(V, b"m".to_vec(), "text/plain").await;
    let r = dss
        .http
        .head(format!("{}/v1/files/{file}?replica=aws", dss.base))
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 200);
    let r = dss
        .http
        .get(format!("{}/metrics", dss.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.expect("text");
    assert!(
        text.contains(
            r#"dss_http_requests_total{method="HEAD",route="/v1/files/{uuid}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"dss_http_request_duration_seconds_bucket{le="#),
        "{text}"
    );
    for worker in [
        "index",
        "notify-match",
        "notify-deliver",
        "checkout",
        "checkout-mail",
        "sync",
        "ingest",
    ] {
        assert!(
            text.contains(&format!("dss_worker_received_total{{worker=\"{worker}\"}}")),
            "{worker}: {text}"
        );
        assert!(
            text.contains(&format!("dss_queue_depth{{worker=\"{worker}\"}}")),
            "{worker}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_alone_serves_its_metrics_where_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port) = alone("sync", dir.path());
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    for _ in 0..1500 {
        if let Ok(r) = reqwest::get(&url).await {
            text = r.text().await.expect("text");
            if text.contains("worker=\"sync\"") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains(r#"dss_worker_received_total{worker="sync"} 0"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_dependency_that_fails() {
    // A search cluster that is not there.
    let dss = Dss::up_with(&[("DSS_SEARCH__URL", "http://127.0.0.1:1".to_string())]).await;
    let r = dss
        .http
        .get(format!("{}/internal/health", dss.base))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["Healthy"], false);
    assert_eq!(v["checks"]["search"], "failing", "{v}");
    assert_eq!(v["checks"]["queues"], "ok", "{v}");
    assert_eq!(v["checks"]["replica:aws"], "ok", "{v}");
    assert!(
        v["errors"]["search"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
}

/// `dss <daemon>` alone on a data directory in `dir`, serving `metrics.listen` on the port returned.
fn alone(daemon: &str, dir: &std::path::Path) -> (std::process::Child, u16) {
    alone_with(daemon, dir, &[])
}

/// As [`alone`], with the configuration in `env`.
pub(crate) fn alone_with(
    daemon: &str,
    dir: &std::path::Path,
    env: &[(&str, String)],
) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args([daemon, "--data-dir"])
        .arg(dir.join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DSS_METRICS__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn dss {daemon}: {e}"));
    (child, port)
}

/// Liveness calls no dependency; readiness names the one that fails.
#[tokio::test]
async fn liveness_and_readiness_are_separate() {
    let dss = Dss::up_with(&[("DSS_SEARCH__URL", "http://127.0.0.1:1".to_string())]).await;
    let r = dss
        .http
        .get(format!("{}/healthz", dss.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["status"], "alive");
    let r = dss
        .http
        .get(format!("{}/readyz", dss.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"]["search"], "failing", "{v}");
    assert_eq!(v["checks"]["replica:aws"], "ok", "{v}");
}

/// A daemon alone answers `/healthz` and `/readyz` beside its metrics.
#[tokio::test]
async fn a_daemon_alone_answers_health_probes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port) = alone("index", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let mut alive = None;
    for _ in 0..1500 {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            alive = Some(r.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    let status = ready.status();
    let v: Value = ready.json().await.expect("json");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(alive.map(|s| s.as_u16()), Some(200));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["checks"]["queues"], "ok", "{v}");
}

/// A subscription made after a bundle never sees it, unless its events are replayed; a replay
/// repeats no delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_events_reach_a_late_subscription_once() {
    let dss = Dss::up_with(&[("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1".to_string())]).await;
    let d = dss.deployment();
    let before = "2000-01-01T00:00:00Z";
    let v = "2026-07-08T090807.060504Z";
    let meta = dss
        .upload(v, br#"{"organ": "kidney"}"#.to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(v, &[(meta, "sample.json".into())]).await;
    // The notify daemon has handled the bundle's event before the subscription exists.
    let notify = d.queue("notify").await.expect("notify queue");
    // Up to 3 minutes: under a full parallel test run a retried event may wait out backoffs.
    for _ in 0..9000 {
        if notify.stats().await.expect("stats").depth() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stats = notify.stats().await.expect("stats");
    assert_eq!(stats.depth(), 0, "{stats:?}");
    let r = dss
        .http
        .put(format!("{}/v1/subscriptions?replica=aws", dss.base))
        .bearer_auth(&dss.token)
        .json(&serde_json::json!({"callback_url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.expect("json");
    let sub = sub["uuid"].as_str().expect("uuid").to_string();
    let pending = || async {
        let v: Value = dss
            .http
            .get(format!(
                "{}/v1/subscriptions/{sub}/deliveries?replica=aws&state=pending",
                dss.base
            ))
            .bearer_auth(&dss.token)
            .send()
            .await
            .expect("deliveries")
            .json()
            .await
            .expect("json");
        v["deliveries"].as_array().cloned().unwrap_or_default()
    };
    assert!(pending().await.is_empty());

    let replay = |args: &[&str]| {
        let mut all = vec!["ops", "events", "replay", "--to", "notify"];
        all.extend_from_slice(args);
        dss_json(&dss, &all)
    };
    let dry = replay(&["--dry-run"]);
    assert_eq!(
        (dry[0]["prefix"].as_str(), dry[0]["replayed"].as_u64()),
        (Some("bundles/"), Some(1)),
        "{dry:?}"
    );
    let future = replay(&["--since", "2100-01-01T00:00:00Z"]);
    assert_eq!(future[0]["replayed"], 0, "{future:?}");
    assert!(pending().await.is_empty(), "nothing was sent");

    for round in 0..2 {
        let sent = replay(&["--since", before]);
        assert_eq!(sent[0]["replayed"], 1, "{sent:?}");
        for _ in 0..3000 {
            if notify.stats().await.expect("stats").depth() == 0 && !pending().await.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let deliveries = pending().await;
        assert_eq!(deliveries.len(), 1, "round {round}: {deliveries:?}");
        assert_eq!(deliveries[0]["event_type"], "CREATE");
        assert!(
            deliveries[0].to_string().contains(&bundle),
            "{deliveries:?}"
        );
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["ops", "events", "replay", "--to", "checkout", "--data-dir"])
        .arg(dss.dir.path().join("data"))
        .output()
        .expect("run dss");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use index, notify, sync or all"));
}
