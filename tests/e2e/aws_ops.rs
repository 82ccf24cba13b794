//! The operator commands against a deployment on AWS protocols (moto): replicas on S3, daemon
//! queues and their dead-letter queues on SQS, bucket events through SNS.

use std::time::Duration;

use dss_core::ports::{BlobStore, Queue};
use serde_json::json;

use crate::aws::{answers, aws_env, infra_local, moto_options};
use crate::harness::Dss;
use crate::ops::dss_json_with;

const V: &str = "2026-12-03T090807.060504Z";

/// Runs `check` every 100 ms until it is true (up to 60 s).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an AWS-protocol server (moto); run by infra/local/test.sh"]
async fn operators_run_their_commands_against_a_deployment_on_s3_and_sqs() {
    let (env, aws_bucket) = aws_env();
    let prefix = env
        .iter()
        .find(|(k, _)| *k == "DSS_QUEUES__PREFIX")
        .map(|(_, v)| v.clone())
        .expect("queue prefix");
    let dir = tempfile::tempdir().expect("tempdir");
    infra_local(&env, &dir.path().join("data"));
    let dss = Dss::up_in_with(dir, &env).await;
    let file = dss
        .upload(V, b"{\"organ\": \"liver\"}".to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(V, &[(file.clone(), "organ.json".into())]).await;
    answers(
        &dss,
        &format!("/v1/bundles/{bundle}?replica=gcp&version={V}"),
        200,
    )
    .await;

    // Every daemon queue and its dead-letter queue on SQS, with its gauges.
    let queues = dss_json_with(&dss, &env, &["ops", "queues"]);
    let names: Vec<&str> = queues.iter().filter_map(|q| q["queue"].as_str()).collect();
    for q in [
        "index",
        "index-dlq",
        "sync",
        "sync-dlq",
        "notify",
        "checkout",
        "ingest",
    ] {
        assert!(names.contains(&q), "{q} in {names:?}");
    }
    for q in &queues {
        assert!(q["visible"].is_u64() && q["in_flight"].is_u64(), "{q}");
    }

    // The replicas agree once sync is done; a lost copy is found, and repaired on request.
    eventually("replicas agreeing", || {
        dss_json_with(&dss, &env, &["ops", "verify", "replicas"])
            .iter()
            .all(|r| r["missing"] == 0 && r["different"] == 0)
    })
    .await;
    let gcp =
        dss_aws::S3BlobStore::connect(&aws_bucket.replace("-aws", "-gcp"), &moto_options()).await;
    let key = format!("files/{file}.{V}");
    assert!(gcp.delete(&key).await.expect("delete"), "gcp had {key}");
    let report = dss_json_with(
        &dss,
        &env,
        &["ops", "verify", "replicas", "--prefix", "files/"],
    );
    assert_eq!(report[0]["missing"], 1, "{report:?}");
    assert_eq!(
        report[0]["findings"],
        json!([{"key": key, "replica": "gcp", "kind": "missing"}])
    );
    let repaired = dss_json_with(
        &dss,
        &env,
        &[
            "ops", "verify", "replicas", "--prefix", "files/", "--repair",
        ],
    );
    assert_eq!(repaired[0]["enqueued"], 1, "{repaired:?}");
    answers(
        &dss,
        &format!("/v1/files/{file}?replica=gcp&version={V}"),
        302,
    )
    .await;
    assert!(gcp.head(&key).await.expect("head").is_some(), "repaired");

    // Each replica is consistent within itself.
    for replica in ["aws", "gcp"] {
        let r = dss_json_with(
            &dss,
            &env,
            &["ops", "verify", "integrity", "--replica", replica],
        );
        assert_eq!(
            (
                r[0]["files"].as_u64(),
                r[0]["bundles"].as_u64(),
                r[0]["problems"].as_u64()
            ),
            (Some(1), Some(1), Some(0)),
            "{replica}: {r:?}"
        );
    }

    // A poison message on the SQS index queue: dead-lettered, shown, redriven, purged.
    let sqs = moto_options().sqs().await;
    dss_aws::SqsQueue::open(&sqs, &format!("{prefix}index"))
        .await
        .expect("index queue")
        .send("not a bucket event", Duration::ZERO)
        .await
        .expect("send");
    let letters = || {
        dss_json_with(&dss, &env, &["ops", "dlq", "list"])
            .into_iter()
            .find(|l| l["queue"] == "index")
            .and_then(|l| l["letters"].as_u64())
    };
    eventually("a dead letter", || letters() == Some(1)).await;
    let shown = dss_json_with(&dss, &env, &["ops", "dlq", "show", "index"]);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["body"], "not a bucket event");
    eventually("the letter visible again after show", || {
        letters() == Some(1)
    })
    .await;
    let r = dss_json_with(&dss, &env, &["ops", "dlq", "redrive", "index"]);
    assert_eq!(r[0]["redriven"], 1, "{r:?}");
    eventually("the redriven letter dead-lettered again", || {
        letters() == Some(1)
    })
    .await;
    let p = dss_json_with(&dss, &env, &["ops", "dlq", "purge", "index"]);
    assert_eq!(p[0]["purged"], 1, "{p:?}");
    eventually("an empty dead-letter queue", || letters() == Some(0)).await;

    // Events replayed to the index daemon, and the index rebuilt from the bucket.
    let replayed = dss_json_with(
        &dss,
        &env,
        &[
            "ops",
            "events",
            "replay",
            "--to",
            "index",
            "--replica",
            "aws",
        ],
    );
    assert_eq!(replayed[0]["replayed"], 1, "{replayed:?}");
    let reindexed = dss_json_with(&dss, &env, &["ops", "reindex", "--replica", "gcp"]);
    assert_eq!(reindexed[0]["replica"], "gcp", "{reindexed:?}");
    assert_eq!(
        (
            reindexed[0]["bundles"].as_u64(),
            reindexed[0]["documents"].as_u64(),
            reindexed[0]["failures"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{reindexed:?}"
    );

    // A checkout job's status, read from the S3 checkout bucket.
    let job = crate::checkout::post_checkout(&dss, &bundle, json!({})).await;
    eventually("a finished checkout", || {
        dss_json_with(
            &dss,
            &env,
            &["ops", "checkout", "status", &job, "--replica", "aws"],
        )
        .first()
        .is_some_and(|s| s["status"] == "SUCCEEDED")
    })
    .await;
}
