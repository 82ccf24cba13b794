//! The client side of a production cluster, against the server `DSS_TEST_ES_URL` names
//! (osmem-server in `infra/local/test.sh`) behind a proxy of the test's own: credentials
//! (basic, API key, AWS SigV4), a private CA, retries of overload answers and dropped
//! connections, failover between nodes, and `_bulk` writes with per-item errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use dss_config::SearchConfig;
use dss_conformance::proxy::{Answer, Fault, Gate, Options, Proxy, Seen};
use dss_core::ports::{SearchError, SearchIndex, SearchRequest};
use dss_elasticsearch::{AwsSigning, ElasticsearchIndex};
use serde_json::{Value, json};

fn upstream() -> String {
    std::env::var("DSS_TEST_ES_URL")
        .expect("DSS_TEST_ES_URL names the Elasticsearch/OpenSearch server to test against")
}

/// A configuration for `nodes` with a fresh index prefix and short backoffs.
fn config(nodes: Vec<String>) -> SearchConfig {
    SearchConfig {
        urls: nodes,
        index_prefix: format!("dss-cluster-{}", uuid::Uuid::new_v4().simple()),
        retry_base_ms: 10,
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        ..SearchConfig::default()
    }
}

/// A bundle document of one shape.
fn doc(n: Value) -> (String, Value) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let version = "2026-12-05T000000.000000Z";
    let d = json!({
        "uuid": uuid,
        "manifest": {"version": version},
        "shape_descriptor": "v1",
        "files": {"sample_json": {"n": n}},
    });
    (format!("{uuid}.{version}"), d)
}

async fn total(index: &ElasticsearchIndex) -> u64 {
    let req = SearchRequest {
        body: json!({"query": {"match_all": {}}}),
        size: 10,
        after: None,
        with_source: false,
    };
    index.search("aws", &req).await.expect("search").total
}

/// A proxy to the server letting through what `gate` lets through.
async fn gated(gate: Gate) -> Proxy {
    Proxy::start(
        &upstream(),
        Options {
            gate: Some(gate),
            ..Options::default()
        },
    )
    .await
}

/// A gate letting through requests whose `Authorization` is one of `accepted`, answering the
/// others as Elasticsearch's security layer does.
fn credentials_gate(accepted: &'static [&'static str]) -> Gate {
    Arc::new(move |seen: &Seen| {
        let given = seen
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match given {
            Some(a) if accepted.contains(&a) => Ok(()),
            _ => Err(Answer::json(
                401,
                r#"{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}"#,
            )),
        }
    })
}

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn basic_and_api_key_credentials_come_from_the_configuration() {
    // base64("dss:s3cret"); an API key as the cluster hands it out.
    let gate = credentials_gate(&["Basic ZHNzOnMzY3JldA==", "ApiKey a2V5LWlkOmtleS1zZWNyZXQ="]);
    let proxy = gated(gate).await;
    let basic = SearchConfig {
        username: Some("dss".into()),
        password: Some("s3cret".into()),
        ..config(vec![proxy.url("http")])
    };
    let api_key = SearchConfig {
        api_key: Some("a2V5LWlkOmtleS1zZWNyZXQ=".into()),
        ..config(vec![proxy.url("http")])
    };
    for cfg in [basic.clone(), api_key] {
        let index = ElasticsearchIndex::connect(&cfg, None).expect("client");
        let (id, d) = doc(json!(1));
        assert!(index.put("aws", &id, &d).await.expect("put"));
        assert_eq!(index.get("aws", &id).await.expect("get"), Some(d));
        assert_eq!(total(&index).await, 1);
    }
    let wrong = SearchConfig {
        password: Some("guess".into()),
        ..basic.clone()
    };
    let none = SearchConfig {
        username: None,
        password: None,
        ..basic
    };
    for cfg in [wrong, none] {
        let index = ElasticsearchIndex::connect(&cfg, None).expect("client");
        let (id, d) = doc(json!(1));
        let err = index.put("aws", &id, &d).await.expect_err("refused");
        assert!(err.to_string().contains("security_exception"), "{err}");
        assert!(!err.to_string().contains("guess"), "{err}");
    }
}

/// The signature the request should carry, computed from what arrived.
fn expected_signature(seen: &Seen, secret: &str) -> Result<String, String> {
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name}"))
    };
    let auth = header("authorization")?;
    let part = |key: &str| {
        auth.split([' ', ','])
            .find_map(|p| p.strip_prefix(key))
            .ok_or(format!("no {key} in {auth}"))
    };
    let credential: Vec<&str> = part("Credential=")?.split('/').collect();
    let [access_key, _, region, service, _] = credential[..] else {
        return Err(format!("credential scope {credential:?}"));
    };
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(header("x-amz-date")?, format)
        .map_err(|e| e.to_string())?
        .assume_utc();
    let mut signed = Vec::new();
    for name in part("SignedHeaders=")?.split(';') {
        if ![
            "host",
            "x-amz-date",
            "x-amz-content-sha256",
            "x-amz-security-token",
        ]
        .contains(&name)
        {
            signed.push((name, header(name)?));
        }
    }
    let token = seen
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let identity = Credentials::new(access_key, secret, token, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::from(at))
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let url = format!("http://{}{}", header("host")?, seen.target);
    let request = SignableRequest::new(
        &seen.method,
        &url,
        signed.into_iter(),
        SignableBody::Bytes(&seen.body),
    )
    .map_err(|e| e.to_string())?;
    let (_, signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(signature)
}

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn requests_are_signed_with_aws_sigv4_for_opensearch_service() {
    let verified = Arc::new(AtomicUsize::new(0));
    let count = verified.clone();
    let gate: Gate = Arc::new(move |seen: &Seen| {
        let given = seen
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ours = expected_signature(seen, "the-secret").map_err(|e| Answer::json(403, e))?;
        let token = seen.headers.get("x-amz-security-token");
        if given.ends_with(&format!("Signature={ours}")) && token.is_some_and(|t| t == "the-token")
        {
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            Err(Answer::json(
                403,
                r#"{"message":"The request signature we calculated does not match the signature you provided."}"#,
            ))
        }
    });
    let proxy = gated(gate).await;
    let cfg = SearchConfig {
        aws_sigv4: true,
        ..config(vec![proxy.url("http")])
    };
    let signing = |secret: &str| {
        let creds = Credentials::new("AKIDTEST", secret, Some("the-token".into()), None, "test");
        AwsSigning::new(SharedCredentialsProvider::new(creds), "eu-west-1", "es")
    };
    let index = ElasticsearchIndex::connect(&cfg, Some(signing("the-secret"))).expect("client");
    // Ids with characters that URL paths escape: the signed path must be the one sent.
    let (id, d) = doc(json!(7));
    let id = format!("{id}+ v");
    assert!(index.put("aws", &id, &d).await.expect("put"));
    assert_eq!(index.get("aws", &id).await.expect("get"), Some(d));
    assert!(index.delete("aws", &id).await.expect("delete"));
    assert_eq!(total(&index).await, 0);
    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.target.contains("_bulk")), "{seen:?}");
    assert!(
        seen.iter()
            .any(|s| s.method == "DELETE" && s.target.contains('%'))
    );
    assert_eq!(verified.load(Ordering::Relaxed), seen.len());
    let forged =
        ElasticsearchIndex::connect(&cfg, Some(signing("not-the-secret"))).expect("client");
    let err = forged
        .put("aws", &id, &doc(json!(1)).1)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("signature"), "{err}");
    let unsigned = ElasticsearchIndex::connect(&cfg, None);
    assert!(
        unsigned.is_err(),
        "aws_sigv4 without credentials must not start"
    );
}

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn a_cluster_with_a_private_ca_is_trusted_through_ca_file_only() {
    let ca = dss_conformance::tls::TestCa::new();
    let proxy = Proxy::start(
        &upstream(),
        Options {
            tls: Some(ca.server_config()),
            ..Options::default()
        },
    )
    .await;
    let dir = tempfile_dir();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).expect("write CA");
    let trusted = SearchConfig {
        ca_file: Some(ca_file),
        ..config(vec![proxy.url("https")])
    };
    let index = ElasticsearchIndex::connect(&trusted, None).expect("client");
    let (id, d) = doc(json!(1));
    assert!(index.put("aws", &id, &d).await.expect("put over TLS"));
    let untrusted = SearchConfig {
        ca_file: None,
        max_attempts: 1,
        ..trusted.clone()
    };
    let index = ElasticsearchIndex::connect(&untrusted, None).expect("client");
    match index.get("aws", &id).await {
        Err(SearchError::Unavailable(why)) => assert!(why.contains("certificate"), "{why}"),
        other => panic!("an unknown CA must be refused: {other:?}"),
    }
    let missing = SearchConfig {
        ca_file: Some(dir.join("none.pem")),
        ..trusted
    };
    let err = ElasticsearchIndex::connect(&missing, None).expect_err("no CA file");
    assert!(err.to_string().contains("search.ca_file"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dss-es-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn overload_answers_and_dropped_connections_are_retried() {
    let proxy = Proxy::open(&upstream()).await;
    let cfg = SearchConfig {
        max_attempts: 5,
        ..config(vec![proxy.url("http")])
    };
    let index = ElasticsearchIndex::connect(&cfg, None).expect("client");
    proxy.fail_next([
        Fault::Status(429),
        Fault::Status(503),
        Fault::Drop,
        Fault::Status(502),
    ]);
    let (id, d) = doc(json!(1));
    assert!(index.put("aws", &id, &d).await.expect("put after retries"));
    assert_eq!(index.get("aws", &id).await.expect("get"), Some(d.clone()));
    proxy.fail_next([Fault::Status(504), Fault::Drop]);
    assert_eq!(total(&index).await, 1);

    // Beyond the attempts the cluster is unavailable (the worker defers the event), and the
    // reason names the node and the answer.
    let once = SearchConfig {
        max_attempts: 2,
        ..cfg
    };
    let index = ElasticsearchIndex::connect(&once, None).expect("client");
    proxy.fail_next([Fault::Status(503), Fault::Status(503)]);
    match index.get("aws", &id).await {
        Err(SearchError::Unavailable(why)) => {
            assert!(
                why.contains("503") && why.contains(&proxy.addr.to_string()),
                "{why}"
            );
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(index.get("aws", &id).await.expect("get"), Some(d));
}

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn a_node_that_cannot_be_reached_is_passed_over() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let proxy = Proxy::open(&upstream()).await;
    let cfg = config(vec![dead.clone(), proxy.url("http")]);
    let index = ElasticsearchIndex::connect(&cfg, None).expect("client");
    for _ in 0..5 {
        let (id, d) = doc(json!(1));
        assert!(index.put("aws", &id, &d).await.expect("put"));
    }
    assert_eq!(total(&index).await, 5);

    let all_dead = SearchConfig {
        max_attempts: 2,
        ..config(vec![dead.clone()])
    };
    let index = ElasticsearchIndex::connect(&all_dead, None).expect("client");
    match index.get("aws", "x").await {
        Err(SearchError::Unavailable(why)) => assert!(why.contains(&dead), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn writes_that_arrive_together_go_out_as_one_bulk_request() {
    let proxy = Proxy::open(&upstream()).await;
    let index =
        ElasticsearchIndex::connect(&config(vec![proxy.url("http")]), None).expect("client");
    let docs: Vec<(String, Value)> = (0..40).map(|n| doc(json!(n))).collect();
    let written = futures_join(&index, &docs).await;
    assert!(written.iter().all(|r| matches!(r, Ok(true))), "{written:?}");
    assert_eq!(total(&index).await, 40);
    let seen = proxy.seen();
    let bulks = seen
        .iter()
        .filter(|s| s.target.starts_with("/_bulk"))
        .count();
    let single = seen
        .iter()
        .filter(|s| s.target.contains("/_doc/") || s.target.contains("/_create/"))
        .count();
    assert!(bulks <= 4, "40 writes took {bulks} bulk requests");
    assert_eq!(single, 0, "{seen:?}");

    // The same documents again: nothing is sent.
    let again = futures_join(&index, &docs).await;
    assert!(again.iter().all(|r| matches!(r, Ok(false))), "{again:?}");
    let bulks_after = proxy
        .seen()
        .iter()
        .filter(|s| s.target.starts_with("/_bulk"))
        .count();
    assert_eq!(bulks_after, bulks);

    // One bad document fails alone; the others of its batch are written.
    let mut mixed: Vec<(String, Value)> = (0..5).map(|n| doc(json!(100 + n))).collect();
    mixed.push(doc(json!({"not": "a number"})));
    let results = futures_join(&index, &mixed).await;
    assert!(
        results[..5].iter().all(|r| matches!(r, Ok(true))),
        "{results:?}"
    );
    match &results[5] {
        Err(SearchError::Backend(why)) => {
            assert!(why.contains("mapper_parsing_exception"), "{why}");
            assert!(why.contains(&mixed[5].0), "{why}");
        }
        other => panic!("the bad document must fail: {other:?}"),
    }
    assert_eq!(total(&index).await, 45);
}

/// Puts every document at once.
async fn futures_join(
    index: &ElasticsearchIndex,
    docs: &[(String, Value)],
) -> Vec<Result<bool, SearchError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (n, (id, d)) in docs.iter().enumerate() {
        let (index, id, d) = (index.clone(), id.clone(), d.clone());
        tasks.spawn(async move { (n, index.put("aws", &id, &d).await) });
    }
    let mut out: Vec<Option<Result<bool, SearchError>>> = docs.iter().map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (n, r) = done.expect("task");
        out[n] = Some(r);
    }
    out.into_iter().map(|r| r.expect("answered")).collect()
}
