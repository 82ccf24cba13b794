//! Webhooks end to end through `dss up`: a subscription made over the API, a bundle uploaded over
//! the API, and the callback verified by an independent implementation of the original's HMAC
//! signatures (requests-http-signature 0.1.0, in Python).
//!
//! Needs the library: `infra/local/test.sh` installs it into `.tools/` and runs this test (it is
//! ignored by a plain `cargo test`). `DSS_TEST_WEBHOOK_PYTHON` may name another interpreter
//! that has it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Dss;

const V: &str = "2026-05-06T070809.101112Z";

/// The Python receiver; killed on drop.
struct PyReceiver {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyReceiver {
    fn start(keys: Value) -> PyReceiver {
        let python = std::env::var("DSS_TEST_WEBHOOK_PYTHON").map_or_else(
            |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/webhook-venv/bin/python"),
            PathBuf::from,
        );
        assert!(
            python.exists(),
            "requests-http-signature is not installed: run infra/local/test.sh (or set DSS_TEST_WEBHOOK_PYTHON)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("received.jsonl");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/webhook_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(keys.to_string())
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port: u16 = line.trim().parse().expect("the receiver prints its port");
        PyReceiver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// Waits for `n` requests; returns them.
    async fn wait(&self, n: usize) -> Vec<Value> {
        for _ in 0..3000 {
            let lines: Vec<Value> = std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the receiver did not get {n} requests");
    }
}

#[tokio::test]
#[ignore = "needs requests-http-signature; run by infra/local/test.sh"]
async fn signed_webhooks_verify_with_the_original_signing_library() {
    let rx = PyReceiver::start(json!({"right-key": "s3cret", "wrong-key": "s3cret"}));
    let dss = Dss::up_with(&[("DSS_NOTIFY__CALLBACK_ALLOW", "127.0.0.1".to_string())]).await;
    let subscribe = |body: Value| {
        let dss = &dss;
        async move {
            let r = dss
                .http
                .put(format!("{}/v1/subscriptions?replica=aws", dss.base))
                .bearer_auth(&dss.token)
                .json(&body)
                .send()
                .await
                .expect("subscribe");
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.expect("json");
            v["uuid"].as_str().expect("uuid").to_string()
        }
    };
    let right = subscribe(json!({"callback_url": format!("{}/right", rx.url),
        "hmac_key_id": "right-key", "hmac_secret_key": "s3cret",
        "jmespath_query": "files.sample_json[0].organ == 'kidney'",
        "attachments": {"organ": {"type": "jmespath", "expression": "files.sample_json[0].organ"}}}))
    .await;
    let wrong = subscribe(json!({"callback_url": format!("{}/wrong", rx.url),
        "hmac_key_id": "wrong-key", "hmac_secret_key": "not-the-secret"}))
    .await;
    let es = subscribe(json!({"callback_url": format!("{}/es", rx.url),
        "hmac_key_id": "right-key", "hmac_secret_key": "s3cret", "encoding": "multipart/form-data",
        "form_fields": {"source": "dss"}, "payload_form_field": "payload",
        "es_query": {"query": {"term": {"files.sample_json.organ": "kidney"}}}}))
    .await;

    let file = dss
        .upload(
            V,
            json!({"organ": "kidney"}).to_string().into_bytes(),
            "application/json",
        )
        .await;
    let bundle = dss.bundle(V, &[(file, "sample_0.json".to_string())]).await;
    let got = rx.wait(3).await;
    let by_path = |p: &str| {
        got.iter()
            .find(|g| g["path"] == p)
            .unwrap_or_else(|| panic!("no request to {p}: {got:?}"))
    };

    let r = by_path("/right");
    assert_eq!(r["verified"], true, "{r}");
    let payload: Value =
        serde_json::from_str(r["body"].as_str().unwrap_or_default()).expect("payload");
    assert_eq!(payload["subscription_id"], right);
    assert_eq!(payload["event_type"], "CREATE");
    assert_eq!(
        payload["match"],
        json!({"bundle_uuid": bundle, "bundle_version": V})
    );
    assert_eq!(payload["attachments"], json!({"organ": "kidney"}));
    assert_eq!(
        payload["bundle_url"],
        format!("{}/v1/bundles/{bundle}?version={V}", dss.base)
    );

    let w = by_path("/wrong");
    assert_eq!(w["verified"], false, "a wrong key does not verify: {w}");
    assert!(
        w["error"]
            .as_str()
            .is_some_and(|e| e.contains("AssertionError")),
        "{w}"
    );

    let m = by_path("/es");
    assert_eq!(m["verified"], true, "multipart bodies are signed too: {m}");
    assert!(
        m["headers"]["content-type"]
            .as_str()
            .is_some_and(|c| c.starts_with("multipart/form-data; boundary="))
    );
    assert_eq!(m["headers"]["x-dss-notify-attempt"], "0");
    let body = m["body"].as_str().unwrap_or_default();
    assert!(body.contains("name=\"source\"\r\n\r\ndss\r\n"), "{body}");
    assert!(
        body.contains(&format!("\"subscription_id\": \"{es}\"")),
        "{body}"
    );

    // The refused delivery is logged with the receiver's answer and retried later. The receiver
    // has the request before the daemon has recorded the answer: wait for the record.
    let log = dss
        .until(
            &format!("/v1/subscriptions/{wrong}/deliveries?replica=aws"),
            |v| !v["attempts"][0]["status"].is_null(),
        )
        .await;
    assert_eq!(log["attempts"][0]["status"], 401, "{log}");
    assert_eq!(log["attempts"][0]["state"], "pending");
}
