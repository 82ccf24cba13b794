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
            "sync-dlq"
        ]
    );
    for l in &lines {
        assert!(
            l["visible"].is_u64() && l["in_flight"].is_u64() && l["delayed"].is_u64(),
            "{l}"
        );
    }
}
