//! A deployment on AWS protocols end to end, against moto: replicas `aws` and `gcp` are S3
//! buckets whose events reach the daemons through S3 notifications → SNS → SQS, created by
//! `dss infra local`. What is uploaded to `aws` is indexed, replicated to `gcp` with identical
//! checksums and bytes, and checked out into the S3 checkout bucket.

use std::process::Command;
use std::time::Duration;

use dss_shared::ports::BlobStore;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::harness::Dss;

const V: &str = "2026-12-02T060504.030201Z";

/// The moto server the test script started.
fn moto() -> String {
    std::env::var("DSS_TEST_AWS_URL")
        .expect("DSS_TEST_AWS_URL names an AWS-protocol server (infra/local/test.sh starts moto)")
}

/// The configuration of a deployment on moto: unique bucket, queue and topic names.
fn aws_env() -> (Vec<(&'static str, String)>, String) {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let bucket = |r: &str| format!("dss-e2e-{tag}-{r}");
    let env = vec![
        ("DSS_QUEUES__BACKEND", "aws".to_string()),
        ("DSS_QUEUES__PREFIX", format!("e2e-{tag}-")),
        ("DSS_REPLICAS__AWS__URL", format!("s3://{}", bucket("aws"))),
        ("DSS_REPLICAS__GCP__URL", format!("s3://{}", bucket("gcp"))),
        ("DSS_AWS__ENDPOINT", moto()),
        ("DSS_AWS__REGION", "us-east-1".to_string()),
        ("DSS_AWS__PATH_STYLE", "true".to_string()),
        ("DSS_AWS__ACCESS_KEY_ID", "testing".to_string()),
        ("DSS_AWS__SECRET_ACCESS_KEY", "testing".to_string()),
        // Failed tries come back quickly (SQS counts in whole seconds).
        ("DSS_SYNC__VISIBILITY_SECS", "2".to_string()),
    ];
    (env, bucket("aws"))
}

/// Runs `dss infra local` with `env` on the data directory `data`.
fn infra_local(env: &[(&str, String)], data: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["infra", "local", "--data-dir"])
        .arg(data)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("dss infra local");
    assert!(
        out.status.success(),
        "dss infra local: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `GET {path}` answers `status` (up to 60 s); returns the answer.
async fn answers(dss: &Dss, path: &str, status: u16) -> reqwest::Response {
    for _ in 0..600 {
        let r = dss
            .http
            .get(format!("{}{path}", dss.base))
            .bearer_auth(&dss.token)
            .send()
            .await
            .expect("get");
        if r.status() == status {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered {status}");
}

/// The bytes of a file of `replica`, through its presigned S3 URL.
async fn download(dss: &Dss, file: &str, replica: &str) -> Vec<u8> {
    let r = answers(dss, &format!("/v1/files/{file}?replica={replica}"), 302).await;
    let to = r.headers()["location"].to_str().expect("location");
    assert!(to.starts_with(&moto()), "a presigned moto URL: {to}");
    let r = dss.http.get(to).send().await.expect("download");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("bytes").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an AWS-protocol server (moto); run by infra/local/test.sh"]
async fn a_deployment_on_s3_and_sqs_indexes_replicates_and_checks_out() {
    let (env, aws_bucket) = aws_env();
    let dir = tempfile::tempdir().expect("tempdir");
    infra_local(&env, &dir.path().join("data"));
    // Idempotent: a second run changes nothing and succeeds.
    infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;

    let meta = dss
        .upload(V, b"{\"organ\": \"kidney\"}".to_vec(), "application/json")
        .await;
    // Larger than one DSS part: a multipart upload, whose two S3 events are both handled.
    let big: Vec<u8> = (0..70_000_000u32).map(|i| (i % 249) as u8).collect();
    let reads = dss.upload(V, big.clone(), "application/octet-stream").await;
    let bundle = dss
        .bundle(
            V,
            &[
                (meta.clone(), "organ.json".into()),
                (reads.clone(), "reads.bin".into()),
            ],
        )
        .await;

    // Indexed from the S3 bucket event.
    let query = json!({"query": {"match": {"files.organ_json.organ": "kidney"}}});
    dss.wait_searchable(&query, 1).await;

    // Replicated to gcp, verified, identical.
    let path = format!("/v1/bundles/{bundle}?replica=gcp&version={V}");
    let got: Value = answers(&dss, &path, 200).await.json().await.expect("json");
    assert_eq!(got["bundle"]["files"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        download(&dss, &meta, "gcp").await,
        b"{\"organ\": \"kidney\"}"
    );
    assert!(
        download(&dss, &reads, "gcp").await == big,
        "identical bytes"
    );
    let head = |replica: &'static str| {
        dss.http
            .head(format!("{}/v1/files/{reads}?replica={replica}", dss.base))
            .send()
    };
    let (a, g) = (
        head("aws").await.expect("head"),
        head("gcp").await.expect("head"),
    );
    for h in [
        "x-dss-sha256",
        "x-dss-sha1",
        "x-dss-s3-etag",
        "x-dss-crc32c",
    ] {
        assert_eq!(a.headers()[h], g.headers()[h], "{h}");
    }

    // Checked out into the replica's S3 checkout bucket.
    let r = dss
        .http
        .post(format!(
            "{}/v1/bundles/{bundle}/checkout?replica=aws",
            dss.base
        ))
        .json(&json!({}))
        .send()
        .await
        .expect("post checkout");
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.expect("json");
    let job = job["checkout_job_id"].as_str().expect("job id").to_string();
    let mut status = Value::Null;
    for _ in 0..600 {
        status = answers(
            &dss,
            &format!("/v1/bundles/checkout/{job}?replica=aws"),
            200,
        )
        .await
        .json()
        .await
        .expect("json");
        if status["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "SUCCEEDED", "{status}");
    let checkout = format!("{aws_bucket}-checkout");
    let prefix = format!("s3://{checkout}/bundles/{bundle}.{V}");
    assert!(
        status["location"]
            .as_str()
            .is_some_and(|l| l.starts_with(&prefix)),
        "{status}"
    );
    let opts = dss_aws::AwsOptions {
        endpoint: Some(moto()),
        region: Some("us-east-1".into()),
        path_style: true,
        credentials: Some(("testing".into(), "testing".into())),
    };
    let checkout = dss_aws::S3BlobStore::connect(&checkout, &opts).await;
    for (name, bytes) in [
        ("organ.json", &b"{\"organ\": \"kidney\"}"[..]),
        ("reads.bin", &big),
    ] {
        let key = format!("bundles/{bundle}.{V}/{name}");
        let got = checkout.get(&key, None).await.expect("checkout copy");
        let body: Vec<u8> = got
            .body
            .map(|c| c.expect("chunk"))
            .collect::<Vec<_>>()
            .await
            .concat();
        assert!(body == bytes, "{key} has the bytes");
    }
}
