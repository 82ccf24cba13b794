//! Bundle checkout over HTTP (`POST /v1/bundles/{uuid}/checkout`, `GET /v1/bundles/checkout/{id}`)
//! with the checkout daemon running as a second process on the same data directory, and
//! downloads from a replica that serves them from checkout copies (301 + Retry-After, then 302).

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Runs the checkout daemon on the server's data directory until the returned token is cancelled.
fn checkout_daemon(s: &Server, extra_toml: &str) -> CancellationToken {
    let d = second_process(
        s,
        &extra_toml.replace("{data_dir}", &s.dir.path().display().to_string()),
    );
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move { dss_checkout::run(&d, token).await });
    stop
}

async fn make_bundle(s: &Server, files: &[(&str, &[u8], &str)]) -> String {
    let bundle = uuid();
    let mut entries = Vec::new();
    for (name, data, ctype) in files {
        let f = uuid();
        assert_eq!(s.upload(&f, V1, data, ctype).await, StatusCode::CREATED);
        entries.push(json!({"uuid": f, "version": V1, "name": name, "indexed": false}));
    }
    let (st, _) = s.put_bundle(&bundle, V1, Value::Array(entries)).await;
    assert_eq!(st, StatusCode::CREATED);
    bundle
}

async fn job_status(s: &Server, job: &str) -> (StatusCode, Value) {
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/checkout/{job}?replica=aws"),
            None,
            None,
        )
        .await;
    (st, v)
}

async fn ended(s: &Server, job: &str) -> Value {
    for _ in 0..3000 {
        let (st, v) = job_status(s, job).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if v["status"] != "RUNNING" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("checkout {job} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_requests_are_validated_like_the_original() {
    let s = start().await;
    let bundle = make_bundle(&s, &[("a.json", b"{}", "application/json")]).await;
    let post = |path: String, body: Option<Value>| {
        let s = &s;
        async move { s.call(Method::POST, &path, None, body).await }
    };
    let (st, _, v) = post(
        format!("/v1/bundles/{}/checkout?replica=aws", uuid()),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(v["title"], "Cannot find bundle!");
    let (st, _, v) = post(format!("/v1/bundles/{bundle}/checkout"), Some(json!({}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["title"], "Missing query parameter 'replica'");
    for dest in ["a/b", "aws", "gcp", "..", ""] {
        let (st, _, v) = post(
            format!("/v1/bundles/{bundle}/checkout?replica=aws"),
            Some(json!({"destination": dest})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{dest}: {v}");
        assert_eq!(v["code"], "illegal_arguments");
        assert!(
            v["title"]
                .as_str()
                .unwrap()
                .starts_with("Destination bucket invalid!")
        );
    }
    let (st, _, v) = post(
        format!("/v1/bundles/{bundle}/checkout?replica=aws"),
        Some(json!({"email": "not an address"})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_arguments"))
    );
    let (st, _, v) = post(
        format!("/v1/bundles/{bundle}/checkout?replica=aws&version=2017"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_version"))
    );
    let r = s
        .http
        .post(s.url(&format!("/v1/bundles/{bundle}/checkout?replica=aws")))
        .header("content-type", "text/plain")
        .body("destination=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The replica's checkout bucket is open; another bucket or an e-mail needs a caller, an
    // allowed bucket, and the caller's own address (an administrator may name any).
    let checkout = format!("/v1/bundles/{bundle}/checkout?replica=aws");
    for body in [
        json!({"destination": "aws-checkout"}),
        json!({"destination": "other-stage-bucket"}),
        json!({"email": "victim@example.org"}),
    ] {
        let (st, _, v) = post(checkout.clone(), Some(body.clone())).await;
        let want = if body["destination"] == "aws-checkout" {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(st, want, "{body}: {v}");
    }
    let as_caller = |token: String, body: Value| {
        let (s, checkout) = (&s, checkout.clone());
        async move {
            s.call(Method::POST, &checkout, Some(&token), Some(body))
                .await
        }
    };
    let (st, _, v) = as_caller(s.user.clone(), json!({"destination": "other-stage-bucket"})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("Forbidden")),
        "{v}"
    );
    let (st, _, v) = as_caller(s.user.clone(), json!({"email": "victim@example.org"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _, v) = as_caller(s.user.clone(), json!({"email": "USER@example.org"})).await;
    assert_eq!(st, StatusCode::OK, "the caller's own address: {v}");
    let (st, _, v) = as_caller(s.admin.clone(), json!({"email": "someone@example.org"})).await;
    assert_eq!(st, StatusCode::OK, "an administrator: {v}");

    // No body at all is accepted (the original's API document says it is optional).
    let r = s
        .http
        .post(s.url(&format!("/v1/bundles/{bundle}/checkout?replica=aws")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let job = r.json::<Value>().await.unwrap()["checkout_job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        job_status(&s, &job).await,
        (StatusCode::OK, json!({"status": "RUNNING"}))
    );
    let (st, v) = job_status(&s, &uuid()).await;
    assert_eq!(
        (st, v["title"].as_str()),
        (StatusCode::NOT_FOUND, Some("Cannot find checkout!"))
    );
    let (st, v) = job_status(&s, "not-a-uuid").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/checkout/{job}?replica=gcp"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "statuses are per replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_runs_to_success_or_failure_through_the_daemon() {
    let allowed = "[checkout]\nallowed_destinations = [\"results\", \"nowhere\"]\n";
    let s = start_with(allowed, "", Duration::ZERO).await;
    let _daemon = checkout_daemon(&s, allowed);
    let bundle = make_bundle(
        &s,
        &[
            ("a.json", b"{\"x\": 1}", "application/json"),
            (
                "data/b.bin",
                &vec![7u8; 200_000],
                "application/octet-stream",
            ),
        ],
    )
    .await;
    std::fs::create_dir_all(s.dir.path().join("buckets/results")).unwrap();
    let (st, _, v) = s
        .call(
            Method::POST,
            &format!("/v1/bundles/{bundle}/checkout?replica=aws"),
            Some(&s.user),
            Some(json!({"destination": "results", "email": "user@example.org"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let done = ended(&s, v["checkout_job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let location = done["location"].as_str().unwrap();
    assert!(
        location.ends_with(&format!("/results/bundles/{bundle}.{V1}")),
        "{location}"
    );
    assert_eq!(
        (done["files_done"].as_u64(), done["bytes_total"].as_u64()),
        (Some(2), Some(200_008))
    );
    let mail_dir = s.dir.path().join("mail");
    let mut mails = Vec::new();
    for _ in 0..3000 {
        mails = std::fs::read_dir(&mail_dir)
            .map(|d| d.collect::<Vec<_>>())
            .unwrap_or_default();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mails.len(), 1, "one e-mail");

    let (_, _, v) = s
        .call(
            Method::POST,
            &format!("/v1/bundles/{bundle}/checkout?replica=aws"),
            Some(&s.user),
            Some(json!({"destination": "nowhere"})),
        )
        .await;
    let failed = ended(&s, v["checkout_job_id"].as_str().unwrap()).await;
    assert_eq!(
        failed,
        json!({"status": "FAILED", "cause": "Bucket nowhere doesn't exist (FAILED)"})
    );
}

const CHECKOUT_REPLICA: &str = "[replicas.aws]\nurl = \"file://{data_dir}/buckets/aws\"\ndownload = \"checkout\"\n[checkout]\nestimate_bytes_per_sec = 20000\nprogress_every_ms = 50";

/// Follows 301s (waiting as told, at most `max_wait` in all) until a final answer.
async fn follow(s: &Server, mut url: String) -> (reqwest::Response, Vec<u64>) {
    let mut waits = Vec::new();
    for _ in 0..1200 {
        let r = s.http.get(&url).send().await.unwrap();
        if r.status() != StatusCode::MOVED_PERMANENTLY {
            return (r, waits);
        }
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        waits.push(retry);
        url = r.headers()["location"].to_str().unwrap().to_string();
        assert!(url.contains("token="), "{url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still redirected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_from_checkout_copies_wait_with_a_computed_retry_after() {
    let s = start_with(CHECKOUT_REPLICA, "", Duration::ZERO).await;
    let data = vec![3u8; 100_000];
    let file = uuid();
    assert_eq!(
        s.upload(&file, V1, &data, "application/octet-stream").await,
        StatusCode::CREATED
    );
    let url = s.url(&format!("/v1/files/{file}?replica=aws"));
    // No daemon yet: the copy cannot be there; the wait is estimated from the size.
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        r.headers()["retry-after"],
        "5",
        "100,000 bytes at 20,000 bytes/s"
    );
    assert!(
        r.headers().get("x-dss-sha256").is_none(),
        "no metadata headers on 301"
    );
    let again = r.headers()["location"].to_str().unwrap().to_string();
    let token: Value = serde_json::from_str(
        &url::Url::parse(&again)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(token["attempts"], 0);
    let r = s.http.get(&again).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    let next = r.headers()["location"].to_str().unwrap().to_string();
    assert!(next.contains("%22attempts%22%3A1"), "{next}");
    // A second client without a token waits for the same copy instead of starting another.
    let r = s.http.get(&url).send().await.unwrap();
    let other = r.headers()["location"].to_str().unwrap().to_string();
    let id = |u: &str| -> String {
        let q = url::Url::parse(u).unwrap();
        let t = q
            .query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .to_string();
        serde_json::from_str::<Value>(&t).unwrap()["execution_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(id(&other), id(&again));

    let _daemon = checkout_daemon(&s, CHECKOUT_REPLICA);
    let (r, _) = follow(&s, next).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["x-dss-size"], "100000");
    let target = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        target.contains("aws-checkout"),
        "served from the checkout bucket: {target}"
    );
    let bytes = s
        .http
        .get(&target)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        bytes.as_ref() == data.as_slice(),
        "the copy serves the file's bytes"
    );
    // Now ready: 302 at once, even with a token that makes no sense.
    let r = s
        .http
        .get(format!("{url}&token=garbage"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    // A cold file with a garbage token: 400 illegal_token.
    let cold = uuid();
    s.upload(&cold, V1, b"cold bytes", "text/plain").await;
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/files/{cold}?replica=aws&token=%7Bnope"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_token"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_files_are_copied_when_stored_and_bundles_get_checkout_urls() {
    let s = start_with(CHECKOUT_REPLICA, "", Duration::ZERO).await;
    let _daemon = checkout_daemon(&s, CHECKOUT_REPLICA);
    let json_file = uuid();
    assert_eq!(
        s.upload(&json_file, V1, b"{\"cached\": true}", "application/json")
            .await,
        StatusCode::CREATED
    );
    // Stored means recorded in the bucket (a copy's file is written before its record).
    let checkout = second_process(&s, "").replicas["aws"].checkout.clone();
    for _ in 0..3000 {
        if !checkout.list_all("blobs/").await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s
        .http
        .get(s.url(&format!("/v1/files/{json_file}?replica=aws")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "a cached file never waits once stored"
    );

    let bundle = make_bundle(
        &s,
        &[
            ("x.bin", &vec![1u8; 50_000], "application/octet-stream"),
            ("y.json", b"{}", "application/json"),
        ],
    )
    .await;
    let plain = s.url(&format!("/v1/bundles/{bundle}?replica=aws"));
    let r = s.http.get(&plain).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "no URLs asked for: no checkout");
    let (r, waits) = follow(&s, format!("{plain}&presignedurls=true")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!waits.is_empty(), "the bundle copy was made on demand");
    let body: Value = r.json().await.unwrap();
    for f in body["bundle"]["files"].as_array().unwrap() {
        let u = f["url"].as_str().unwrap();
        assert!(u.contains("aws-checkout"), "{u}");
        let got = s.http.get(u).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(got.len() as u64, f["size"].as_u64().unwrap());
    }
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{bundle}?replica=aws&directurls=true"),
            None,
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "the copy is complete: direct URLs at once"
    );
    assert!(
        v["bundle"]["files"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("file://")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_corrupted_bytes_fails_with_checkout_error() {
    let s = start_with(CHECKOUT_REPLICA, "", Duration::ZERO).await;
    let file = uuid();
    let data = vec![9u8; 10_000];
    s.upload(&file, V1, &data, "application/octet-stream").await;
    // Flip the stored bytes behind the store's back.
    let blobs = s.dir.path().join("buckets/aws/blobs");
    let path = std::fs::read_dir(&blobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bad = data.clone();
    bad[17] ^= 1;
    std::fs::write(&path, bad).unwrap();
    let _daemon = checkout_daemon(&s, CHECKOUT_REPLICA);
    let (r, _) = follow(&s, s.url(&format!("/v1/files/{file}?replica=aws"))).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "checkout_error", "{v}");
    assert!(
        v["title"]
            .as_str()
            .unwrap()
            .contains("does not match its checksums"),
        "{v}"
    );
    assert!(
        std::fs::read_dir(s.dir.path().join("buckets/aws-checkout/blobs"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no copy of corrupted bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drs_access_waits_with_202_for_one_copy_then_serves_it() {
    let s = start_with(CHECKOUT_REPLICA, "", Duration::ZERO).await;
    let file = uuid();
    let data = vec![5u8; 40_000];
    s.upload(&file, V1, &data, "application/octet-stream").await;
    let (st, _, obj) = s
        .call(
            Method::GET,
            &format!("/ga4gh/drs/v1/objects/{file}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(obj["access_methods"][0]["access_id"], "aws");
    assert!(
        obj["access_methods"][0].get("access_url").is_none(),
        "no URL before the copy exists: {obj}"
    );
    let access = s.url(&format!("/ga4gh/drs/v1/objects/{file}/access/aws"));
    for _ in 0..3 {
        let r = s.http.get(&access).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(
            r.headers()["retry-after"],
            "2",
            "40,000 bytes at 20,000 bytes/s"
        );
    }
    let statuses = std::fs::read_dir(s.dir.path().join("buckets/aws-checkout/checkout/status"))
        .unwrap()
        .count();
    assert_eq!(
        statuses, 1,
        "retries wait for the one copy instead of starting more"
    );
    let _daemon = checkout_daemon(&s, CHECKOUT_REPLICA);
    let mut url = None;
    for _ in 0..3000 {
        let r = s.http.get(&access).send().await.unwrap();
        if r.status() == StatusCode::OK {
            url = Some(
                r.json::<Value>().await.unwrap()["url"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            break;
        }
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = url.expect("the copy became ready");
    let got = s
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == data.as_slice());
}
