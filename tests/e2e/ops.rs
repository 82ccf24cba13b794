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
    for _ in 0..500 {
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
