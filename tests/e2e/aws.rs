//! A deployment on AWS protocols end to end, against moto: replicas `aws` and `gcp` are S3
//! buckets whose events reach the daemons through S3 notifications → SNS → SQS, created by
//! `dss infra local`. What is uploaded to `aws` is indexed, replicated to `gcp` with identical
//! checksums and bytes, and checked out into the S3 checkout bucket. The official `hca` CLI
//! uploads a directory through an S3 staging bucket (small files copied during the request,
//! large ones in the background) and downloads the bundle from the other replica; so does
//! `dss upload --staging`.

use std::process::Command;
use std::time::Duration;

use dss_core::ports::BlobStore;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::clis::Cli;
use crate::harness::Dss;

const V: &str = "2026-12-02T060504.030201Z";

/// The moto server the test script started.
pub(crate) fn moto() -> String {
    std::env::var("DSS_TEST_AWS_URL")
        .expect("DSS_TEST_AWS_URL names an AWS-protocol server (infra/local/test.sh starts moto)")
}

/// The configuration of a deployment on moto: unique bucket, queue and topic names.
pub(crate) fn aws_env() -> (Vec<(&'static str, String)>, String) {
    aws_env_at(moto())
}

/// The configuration of a deployment on the moto server at `moto`.
pub(crate) fn aws_env_at(moto: String) -> (Vec<(&'static str, String)>, String) {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let bucket = |r: &str| format!("dss-e2e-{tag}-{r}");
    let env = vec![
        ("DSS_QUEUES__BACKEND", "aws".to_string()),
        ("DSS_QUEUES__PREFIX", format!("e2e-{tag}-")),
        ("DSS_REPLICAS__AWS__URL", format!("s3://{}", bucket("aws"))),
        ("DSS_REPLICAS__GCP__URL", format!("s3://{}", bucket("gcp"))),
        ("DSS_AWS__ENDPOINT", moto),
        ("DSS_AWS__REGION", "us-east-1".to_string()),
        ("DSS_AWS__PATH_STYLE", "true".to_string()),
        ("DSS_AWS__ACCESS_KEY_ID", "testing".to_string()),
        ("DSS_AWS__SECRET_ACCESS_KEY", "testing".to_string()),
        // Failed tries come back quickly (SQS counts in whole seconds).
        ("DSS_SYNC__VISIBILITY_SECS", "2".to_string()),
    ];
    (env, bucket("aws"))
}

/// Connection settings of the test's own S3 client.
pub(crate) fn moto_options() -> dss_aws::AwsOptions {
    dss_aws::AwsOptions {
        endpoint: Some(moto()),
        region: Some("us-east-1".into()),
        path_style: true,
        credentials: Some(("testing".into(), "testing".into())),
    }
}

/// Runs `dss infra local` with `env` on the data directory `data`.
pub(crate) fn infra_local(env: &[(&str, String)], data: &std::path::Path) {
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
pub(crate) async fn answers(dss: &Dss, path: &str, status: u16) -> reqwest::Response {
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
    let job = crate::checkout::post_checkout(&dss, &bundle, json!({})).await;
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
    let checkout = dss_aws::S3BlobStore::connect(&checkout, &moto_options()).await;
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

    // A request's correlation id crosses S3 notifications: the objects record it, and the
    // daemons the events reach log under it, on both replicas.
    let traced = dss
        .bundle_in(
            "aws",
            Some("aws-trace-3"),
            V,
            &[(meta, "organ.json".into())],
        )
        .await;
    traced_everywhere(
        &dss,
        "aws-trace-3",
        &traced,
        &[
            ("index", "replica", "aws", "indexed bundle"),
            ("sync", "dest", "gcp", "replicated"),
            ("index", "replica", "gcp", "indexed bundle"),
        ],
    )
    .await;
}

/// Waits (up to 60 s) until the log of `dss` has, for each `(worker, field, value, message)`
/// of `wanted`, a line of that worker under correlation id `id` that names `object` and has
/// that field and message.
async fn traced_everywhere(dss: &Dss, id: &str, object: &str, wanted: &[(&str, &str, &str, &str)]) {
    let field = |line: &str, k: &str, v: &str| {
        line.contains(&format!("{k}={v}")) || line.contains(&format!("{k}=\"{v}\""))
    };
    let mut log = String::new();
    for _ in 0..600 {
        log = std::fs::read_to_string(&dss.log).expect("log");
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("correlation_id={id}")) && l.contains(object))
            .collect();
        if wanted.iter().all(|(worker, k, v, what)| {
            lines
                .iter()
                .any(|l| field(l, "worker", worker) && field(l, k, v) && l.contains(what))
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} is not on every daemon's lines for {object}: {wanted:?}\n{log}");
}

/// Stages `organ.json` (naming `organ`) and a 70 MB `reads.bin` (pattern `modulus`) in a new
/// moto staging bucket next to `aws_bucket` and uploads them with `hca dss upload` to replica
/// `aws`: the CLI, its JSON answer and the two files' bytes.
async fn hca_upload(
    dss: &Dss,
    aws_bucket: &str,
    organ: &str,
    modulus: u32,
) -> (Cli, Value, Vec<u8>, Vec<u8>) {
    let staging = format!("{aws_bucket}-staging");
    dss_aws::S3BlobStore::connect(&staging, &moto_options())
        .await
        .ensure_bucket()
        .await
        .expect("staging bucket");
    let src = tempfile::tempdir().expect("src");
    let meta = format!("{{\"organ\": \"{organ}\"}}").into_bytes();
    let big: Vec<u8> = (0..70_000_000u32).map(|i| (i % modulus) as u8).collect();
    std::fs::write(src.path().join("organ.json"), &meta).expect("write");
    std::fs::write(src.path().join("reads.bin"), &big).expect("write");
    let cli = Cli::new(dss, "hca", "DSS_TEST_HCA", "HCA_CONFIG_FILE");
    let aws_env = [
        ("AWS_ENDPOINT_URL", moto()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
    ];
    let src_dir = src.path().to_str().expect("path");
    let out = cli.run_with(
        &[
            "dss",
            "upload",
            "--src-dir",
            src_dir,
            "--replica",
            "aws",
            "--staging-bucket",
            &staging,
        ],
        &aws_env,
    );
    let v: Value = serde_json::from_str(&out).expect("upload answer");
    (cli, v, meta, big)
}

/// `hca dss download` of the bundle from replica `gcp` returns exactly `meta` and `big`.
fn hca_download_from_gcp(cli: &Cli, bundle: &str, version: &str, meta: &[u8], big: &[u8]) {
    let dl = tempfile::tempdir().expect("download dir");
    let dl_dir = dl.path().to_str().expect("path");
    cli.run(&[
        "dss",
        "download",
        "--bundle-uuid",
        bundle,
        "--replica",
        "gcp",
        "--download-dir",
        dl_dir,
    ]);
    let root = dl.path().join(format!("{bundle}.{version}"));
    assert_eq!(
        std::fs::read(root.join("organ.json")).expect("organ.json"),
        meta
    );
    assert!(
        std::fs::read(root.join("reads.bin")).expect("reads.bin") == big,
        "identical bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and the official hca CLI; run by infra/local/test.sh"]
async fn the_hca_cli_uploads_through_s3_staging_and_downloads_from_the_other_replica() {
    let (env, aws_bucket) = aws_env();
    let dir = tempfile::tempdir().expect("tempdir");
    infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;
    // Above 64 MiB: registered by a background copy (202), which the CLI waits for.
    let (cli, v, meta, big) = hca_upload(&dss, &aws_bucket, "liver", 247).await;
    let bundle = v["bundle_uuid"].as_str().expect("bundle uuid").to_string();
    let version = v["version"].as_str().expect("version").to_string();
    assert_eq!(v["files"].as_array().map(Vec::len), Some(2), "{v}");

    // Replicated to gcp, then downloaded from there by the CLI.
    answers(
        &dss,
        &format!("/v1/bundles/{bundle}?replica=gcp&version={version}"),
        200,
    )
    .await;
    for f in v["files"].as_array().expect("files") {
        let uuid = f["uuid"].as_str().expect("uuid");
        answers(
            &dss,
            &format!("/v1/files/{uuid}?replica=gcp&version={version}"),
            302,
        )
        .await;
    }
    hca_download_from_gcp(&cli, &bundle, &version, &meta, &big);
}

/// Runs the client command `dss args…` against `dss`, with S3 reached at moto as the AWS SDK's
/// environment says (and GCS at fake-gcs-server, when the test script started it): its JSON
/// answer.
fn dss_client(dss: &Dss, args: &[&str]) -> Value {
    dss_client_as(dss, &dss.token, args).unwrap_or_else(|log| panic!("dss {args:?}: {log}"))
}

/// As [`dss_client`], with bearer token `token`: the JSON answer, or the command's log.
fn dss_client_as(dss: &Dss, token: &str, args: &[&str]) -> Result<Value, String> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", moto()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    if let Ok(gcs) = std::env::var("DSS_TEST_GCS_URL") {
        // GCS staging on fake-gcs-server, as Google's client libraries find an emulator.
        env.push(("STORAGE_EMULATOR_HOST", gcs));
    }
    let (mut lines, _) = crate::client::client_with(dss, Some(token), args, &env)?;
    assert_eq!(lines.len(), 1, "one JSON answer: {lines:?}");
    Ok(lines.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an AWS-protocol server (moto); run by infra/local/test.sh"]
async fn dss_upload_goes_through_s3_staging_as_the_original_deployment_needs() {
    use dss_core::checksum::{checksums_of, declared_checksums};
    let (env, aws_bucket) = aws_env();
    let dir = tempfile::tempdir().expect("tempdir");
    infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;
    let staging =
        dss_aws::S3BlobStore::connect(&format!("{aws_bucket}-staging"), &moto_options()).await;
    staging.ensure_bucket().await.expect("staging bucket");
    let src = tempfile::tempdir().expect("src");
    let meta = b"{\"organ\": \"spleen\"}".to_vec();
    // Above 64 MiB: registered by a background copy (202), which the client waits for.
    let big: Vec<u8> = (0..70_000_000u32).map(|i| (i % 233) as u8).collect();
    std::fs::write(src.path().join("organ.json"), &meta).expect("write");
    std::fs::create_dir(src.path().join("reads")).expect("mkdir");
    std::fs::write(src.path().join("reads/r1.bin"), &big).expect("write");
    let src_dir = src.path().to_str().expect("path");
    let staging_url = format!("s3://{}/runs/1", staging.bucket());
    let args = ["upload", "--src-dir", src_dir, "--staging", &staging_url];
    // Refused by the deployment after staging (a bad token): the files stay staged, and the
    // next run registers them without sending them again.
    let refused = dss_client_as(&dss, "not-a-token", &args).expect_err("refused");
    assert!(refused.contains("401"), "{refused}");
    let up = dss_client(&dss, &args);
    let files = up["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{up}");
    assert_eq!(up["bytes_sent"], 0, "staged by the first run: {up}");

    // Each file is staged under runs/1/{uuid}/{name}, declaring its checksums as hca does.
    for (name, bytes) in [("organ.json", &meta), ("reads/r1.bin", &big)] {
        let f = files
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {up}"));
        let key = format!("runs/1/{}/{name}", f["uuid"].as_str().expect("uuid"));
        let d = staging
            .declared(&key)
            .await
            .expect("declared")
            .unwrap_or_else(|| panic!("{key} staged"));
        assert_eq!(d.size, bytes.len() as u64);
        assert!(d.values.contains_key("hca-dss-s3_etag"), "{:?}", d.values);
        assert_eq!(declared_checksums(&d.values), Ok(checksums_of(bytes)));
    }

    // The bundle is there, and downloads back identical.
    let bundle = up["bundle_uuid"].as_str().expect("bundle uuid");
    let dl = tempfile::tempdir().expect("download dir");
    let got = dss_client(
        &dss,
        &[
            "download",
            "--bundle-uuid",
            bundle,
            "--download-dir",
            dl.path().to_str().expect("path"),
        ],
    );
    let root = dl
        .path()
        .join(format!("{bundle}.{}", up["version"].as_str().expect("v")));
    assert_eq!(got["files"].as_array().map(Vec::len), Some(2), "{got}");
    assert_eq!(std::fs::read(root.join("organ.json")).expect("organ"), meta);
    assert!(
        std::fs::read(root.join("reads/r1.bin")).expect("reads") == big,
        "identical bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an AWS-protocol server (moto); run by infra/local/test.sh"]
async fn cloud_staging_sources_are_verified_and_large_ones_copied_in_the_background() {
    let (env, aws_bucket) = aws_env();
    let dir = tempfile::tempdir().expect("tempdir");
    infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;
    let staging =
        dss_aws::S3BlobStore::connect(&format!("{aws_bucket}-staging"), &moto_options()).await;
    staging.ensure_bucket().await.expect("staging bucket");
    let put_file = |uuid: String, source: String| {
        let (http, base, token) = (dss.http.clone(), dss.base.clone(), dss.token.clone());
        async move {
            http.put(format!("{base}/v1/files/{uuid}?version={V}"))
                .bearer_auth(token)
                .json(&json!({"source_url": source, "creator_uid": 7}))
                .send()
                .await
                .expect("put file")
        }
    };
    // Staged with the declared checksums as hca-dss-* tags, as the official CLI does.
    let s3 = moto_options().s3().await;
    let stage = |key: &'static str, data: Vec<u8>, declared: Vec<u8>| {
        let (s3, bucket) = (s3.clone(), staging.bucket().to_string());
        async move {
            let sums = dss_core::checksum::checksums_of(&declared);
            let tags = format!(
                "hca-dss-sha256={}&hca-dss-sha1={}&hca-dss-s3_etag={}&hca-dss-crc32c={}",
                sums.sha256, sums.sha1, sums.s3_etag, sums.crc32c
            );
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .content_type("application/json")
                .tagging(tags)
                .body(aws_sdk_s3::primitives::ByteStream::from(data))
                .send()
                .await
                .expect("stage");
            format!("s3://{bucket}/{key}")
        }
    };
    let good = stage("ok/a.json", b"{\"a\": 1}".to_vec(), b"{\"a\": 1}".to_vec()).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let r = put_file(uuid.clone(), good.clone()).await;
    assert_eq!(r.status(), 201);
    let r = put_file(uuid.clone(), good).await;
    assert_eq!(r.status(), 200, "an identical re-PUT");
    let head = dss
        .http
        .head(format!(
            "{}/v1/files/{uuid}?replica=aws&version={V}",
            dss.base
        ))
        .send()
        .await
        .expect("head");
    assert_eq!(head.headers()["x-dss-content-type"], "application/json");
    assert_eq!(head.headers()["x-dss-creator-uid"], "7");

    // Small sources whose bytes do not match: refused at once, nothing registered.
    let bad = stage("bad/a.json", b"{\"a\": 2}".to_vec(), b"{\"a\": 1}".to_vec()).await;
    let r = put_file(uuid::Uuid::new_v4().to_string(), bad).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.expect("problem");
    assert_eq!(v["code"], "checksum_mismatch");
    let r = put_file(
        uuid::Uuid::new_v4().to_string(),
        format!("s3://{}/missing", staging.bucket()),
    )
    .await;
    assert_eq!(r.status(), 400);

    // Large: 202, then 404 until the copy is verified; a corrupt one ends in 422.
    let n = 64 * 1024 * 1024 + 1;
    let big: Vec<u8> = (0..n as u32).map(|i| (i % 241) as u8).collect();
    let mut wrong = big.clone();
    wrong[n / 2] ^= 1;
    let ok = stage("big/ok.bin", big.clone(), big.clone()).await;
    let corrupt = stage("big/bad.bin", wrong, big).await;
    let (ok_uuid, bad_uuid) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    for (u, src) in [(&ok_uuid, ok), (&bad_uuid, corrupt)] {
        let r = put_file(u.clone(), src).await;
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["version"], V);
        assert!(v["task_id"].as_str().is_some_and(|t| t.len() == 36), "{v}");
    }
    answers(
        &dss,
        &format!("/v1/files/{ok_uuid}?replica=aws&version={V}"),
        302,
    )
    .await;
    let r = answers(
        &dss,
        &format!("/v1/files/{bad_uuid}?replica=aws&version={V}"),
        422,
    )
    .await;
    let v: Value = r.json().await.expect("problem");
    assert_eq!(v["code"], "checksum_mismatch", "{v}");
}

/// The GCS emulator and Pub/Sub emulator the test script started.
fn google() -> (String, String) {
    let var = |v: &str| {
        std::env::var(v)
            .unwrap_or_else(|_| panic!("{v} is not set (infra/local/test.sh starts the emulators)"))
    };
    (var("DSS_TEST_GCS_URL"), var("DSS_TEST_PUBSUB_URL"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto, fake-gcs-server, the Pub/Sub emulator and the hca CLI; run by infra/local/test.sh"]
async fn replicas_on_s3_and_gcs_replicate_both_ways_through_sqs_and_the_event_relay() {
    let (mut env, aws_bucket) = aws_env();
    let (gcs, pubsub) = google();
    let gcp_bucket = aws_bucket.replace("-aws", "-gcp");
    env.retain(|(k, _)| *k != "DSS_REPLICAS__GCP__URL");
    env.extend([
        ("DSS_REPLICAS__GCP__URL", format!("gs://{gcp_bucket}")),
        ("DSS_GCP__STORAGE_ENDPOINT", gcs),
        ("DSS_GCP__PUBSUB_ENDPOINT", pubsub),
        ("DSS_GCP__PROJECT", "dss-test".to_string()),
        ("DSS_GCP__ANONYMOUS", "true".to_string()),
        // The topic fake-gcs-server publishes every bucket's events to.
        ("DSS_GCP__EVENTS_TOPIC", "gcs-events".to_string()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;

    // aws → gcp: the official CLI uploads through S3 staging; the CLI downloads from GCS.
    let (cli, v, meta, big) = hca_upload(&dss, &aws_bucket, "heart", 239).await;
    let bundle = v["bundle_uuid"].as_str().expect("bundle uuid").to_string();
    let version = v["version"].as_str().expect("version").to_string();
    answers(
        &dss,
        &format!("/v1/bundles/{bundle}?replica=gcp&version={version}"),
        200,
    )
    .await;
    hca_download_from_gcp(&cli, &bundle, &version, &meta, &big);

    // `dss upload --staging gs://…` to replica gcp: staged on GCS, registered from there, and
    // replicated to aws.
    let staging = dss_gcp::GcsBlobStore::connect(
        &format!("{gcp_bucket}-staging"),
        &dss_gcp::GcpOptions {
            endpoint: Some(google().0),
            project: Some("dss-test".into()),
            anonymous: true,
            ..Default::default()
        },
    )
    .expect("gcs client");
    staging.ensure_bucket().await.expect("staging bucket");
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("lung.json"), b"{\"organ\": \"lung\"}").expect("write");
    let staged = format!("gs://{}/up", staging.bucket());
    let up = dss_client(
        &dss,
        &[
            "upload",
            "--src-dir",
            src.path().to_str().expect("path"),
            "--replica",
            "gcp",
            "--staging",
            &staged,
        ],
    );
    let file = up["files"][0]["uuid"]
        .as_str()
        .expect("file uuid")
        .to_string();
    let declared = dss_core::ports::Staging::declared(
        &dss_gcp::GcsBuckets::like(&staging),
        staging.bucket(),
        &format!("up/{file}/lung.json"),
    )
    .await
    .expect("declared")
    .expect("staged on GCS");
    assert!(
        declared.values.contains_key("hca-dss-sha256"),
        "{declared:?}"
    );
    assert_eq!(download(&dss, &file, "aws").await, b"{\"organ\": \"lung\"}");

    // gcp → aws: a file written to GCS reaches S3 through the relay, SNS and SQS.
    let uuid = uuid::Uuid::new_v4().to_string();
    let r = dss
        .http
        .put(format!(
            "{}/v1/files/{uuid}/content?version={V}&replica=gcp",
            dss.base
        ))
        .bearer_auth(&dss.token)
        .header("content-type", "text/plain")
        .body("written to gcs")
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    assert_eq!(download(&dss, &uuid, "aws").await, b"written to gcs");
    // The request's id crosses the GCS notification and the relay: recorded with the object,
    // sent in the notification's resource, put on the relayed event.
    let traced = dss
        .bundle_in(
            "gcp",
            Some("gcs-trace-5"),
            V,
            &[(uuid.clone(), "note.txt".into())],
        )
        .await;
    traced_everywhere(
        &dss,
        "gcs-trace-5",
        &traced,
        &[
            ("index", "replica", "gcp", "indexed bundle"),
            ("sync", "dest", "aws", "replicated"),
            ("index", "replica", "aws", "indexed bundle"),
        ],
    )
    .await;
    let head = |replica: &'static str| {
        dss.http
            .head(format!("{}/v1/files/{uuid}?replica={replica}", dss.base))
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
}
