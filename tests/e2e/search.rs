//! `dss up` with its search documents in Elasticsearch/OpenSearch (`search.url`): osmem-server,
//! started by `infra/local/test.sh`, or the server `DSS_TEST_ES_URL` names.

use serde_json::json;

use crate::harness::Dss;

const V: &str = "2026-05-06T070809.101112Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn dss_up_searches_through_elasticsearch() {
    let url = std::env::var("DSS_TEST_ES_URL")
        .expect("DSS_TEST_ES_URL names the Elasticsearch/OpenSearch server to test against");
    let prefix = format!("dss-e2e-{}", uuid::Uuid::new_v4().simple());
    let dss = Dss::up_with(&[
        ("DSS_SEARCH__URL", url.clone()),
        ("DSS_SEARCH__INDEX_PREFIX", prefix.clone()),
    ])
    .await;
    let meta = dss
        .upload(V, br#"{"donor": {"id": 7}}"#.to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(V, &[(meta, "donor.json".into())]).await;
    dss.wait_searchable(
        &json!({"query": {"term": {"files.donor_json.donor.id": 7}}}),
        1,
    )
    .await;
    // The document is in the cluster, in the shape index behind the replica's alias.
    let hits: serde_json::Value = dss
        .http
        .post(format!("{url}/{prefix}-aws-docs-alias/_search"))
        .header("content-type", "application/json")
        .body(json!({"query": {"ids": {"values": [format!("{bundle}.{V}")]}}}).to_string())
        .send()
        .await
        .expect("cluster search")
        .json()
        .await
        .expect("json");
    let hit = &hits["hits"]["hits"][0];
    assert_eq!(hit["_source"]["uuid"], bundle.as_str());
    assert!(
        hit["_index"]
            .as_str()
            .is_some_and(|i| i.starts_with(&format!("{prefix}-aws-docs-"))),
        "{hit}"
    );
    // Tombstoning replaces it with the tombstone document.
    let r = dss
        .http
        .delete(format!("{}/v1/bundles/{bundle}?replica=aws", dss.base))
        .bearer_auth(&dss.token)
        .json(&json!({"reason": "e2e"}))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    dss.wait_searchable(&json!({"query": {"term": {"admin_deleted": true}}}), 1)
        .await;
}

/// Moving a deployment's search documents to Elasticsearch/OpenSearch: the new index is empty
/// until `dss ops reindex` fills it from the bucket, while the API keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn reindex_fills_a_new_elasticsearch_index_from_the_bucket() {
    let url = std::env::var("DSS_TEST_ES_URL")
        .expect("DSS_TEST_ES_URL names the Elasticsearch/OpenSearch server to test against");
    let dss = Dss::up().await;
    let meta = dss
        .upload(V, br#"{"donor": {"id": 8}}"#.to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(V, &[(meta, "donor.json".into())]).await;
    let query = json!({"query": {"term": {"files.donor_json.donor.id": 8}}});
    dss.wait_searchable(&query, 1).await;
    let dir = dss.kill9();

    let env = [
        ("DSS_SEARCH__URL", url),
        (
            "DSS_SEARCH__INDEX_PREFIX",
            format!("dss-e2e-{}", uuid::Uuid::new_v4().simple()),
        ),
    ];
    let dss = Dss::up_in_with(dir, &env).await;
    dss.wait_searchable(&query, 0).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dss"))
        .args(["ops", "reindex", "--json", "--replica", "aws", "--data-dir"])
        .arg(dss.dir.path().join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run dss ops reindex");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["replica"], "aws");
    assert_eq!(
        (report["bundles"].as_u64(), report["failures"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(report["documents"], 1);
    dss.wait_searchable(&query, 1).await;
    let r: serde_json::Value = dss
        .http
        .post(format!("{}/v1/search?replica=aws", dss.base))
        .json(&json!({"es_query": query}))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert!(
        r["results"][0]["bundle_fqid"]
            .as_str()
            .is_some_and(|f| f.starts_with(&bundle)),
        "{r}"
    );
}
