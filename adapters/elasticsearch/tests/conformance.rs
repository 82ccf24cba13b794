//! The `SearchIndex` conformance suite against a real OpenSearch-API server: osmem-server, which
//! `infra/local/test.sh` starts and names in `DSS_TEST_ES_URL` (point it at a real Elasticsearch 8
//! or OpenSearch 2 to run the same suite there).

use dss_elasticsearch::ElasticsearchIndex;

#[tokio::test]
#[ignore = "needs an Elasticsearch/OpenSearch API server; run by infra/local/test.sh"]
async fn elasticsearch_adapter_conforms() {
    let url = std::env::var("DSS_TEST_ES_URL")
        .expect("DSS_TEST_ES_URL names the Elasticsearch/OpenSearch server to test against");
    // A fresh prefix per run: the suite needs empty indices.
    let prefix = format!("dss-test-{}", uuid::Uuid::new_v4().simple());
    let index = ElasticsearchIndex::new(&url, &prefix).expect("client");
    dss_conformance::search::run(&index, "aws").await;
    dss_conformance::search::run(&index, "gcp").await;
}
