//! `POST /v1/search` and `GET /v1/events` through the HTTP API, with the index daemon running
//! against the same data directory as a second process would.

mod common;

use std::time::Duration;

use common::*;
use dss_core::ports::{EventKind, NewEvent};
use dss_runtime::deployment::Deployment;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Starts the index daemon on the server's data directory; returns its deployment handle.
async fn indexer(s: &Server) -> (Deployment, CancellationToken) {
    let d = second_process(s, "");
    let stop = CancellationToken::new();
    let (dep, token) = (d.clone(), stop.clone());
    tokio::spawn(async move { dss_index::run(&dep, token).await });
    (d, stop)
}

/// Uploads a donor metadata file and puts a bundle holding it; returns the bundle uuid.
async fn bundle(s: &Server, i: u32) -> String {
    let file = uuid();
    let species = if i.is_multiple_of(2) {
        "Homo sapiens"
    } else {
        "Mus musculus"
    };
    let meta = json!({"genus_species": [{"text": species}], "number": i});
    assert_eq!(
        s.upload(&file, V1, meta.to_string().as_bytes(), "application/json")
            .await,
        StatusCode::CREATED
    );
    let b = uuid();
    let (st, v) = s
        .put_bundle(&b, V1, json!([{"uuid": file, "version": V1, "name": "donor_organism_0.json", "indexed": true}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    b
}

async fn search(
    s: &Server,
    query: &str,
    es_query: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    s.call(
        Method::POST,
        &format!("/v1/search?{query}"),
        None,
        Some(json!({"es_query": es_query})),
    )
    .await
}

async fn wait_for_hits(s: &Server, es_query: Value, n: u64) {
    for _ in 0..3000 {
        let (_, _, v) = search(s, "replica=aws", es_query.clone()).await;
        if v["total_hits"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("search never reached {n} hits for {es_query}");
}

fn next_link(h: &reqwest::header::HeaderMap) -> Option<String> {
    let link = h.get("link")?.to_str().ok()?;
    Some(link.strip_prefix('<')?.split_once('>')?.0.to_string())
}

#[tokio::test]
async fn search_pages_formats_and_errors() {
    let s = start().await;
    let (_d, stop) = indexer(&s).await;
    let mut uuids = Vec::new();
    for i in 0..23 {
        uuids.push(bundle(&s, i).await);
    }
    wait_for_hits(&s, json!({}), 23).await;

    // Summary pages of 10: 206, 206, 200; every bundle once, uuid descending.
    let q = json!({"query": {"match_all": {}}});
    let (mut st, mut h, mut v) = search(&s, "replica=aws&per_page=10", q.clone()).await;
    let mut seen = Vec::new();
    loop {
        assert_eq!(v["es_query"], q, "the query is echoed as sent");
        assert_eq!(v["total_hits"], 23);
        for r in v["results"].as_array().unwrap() {
            let fqid = r["bundle_fqid"].as_str().unwrap().to_string();
            assert_eq!(
                r["bundle_url"],
                s.url(&format!(
                    "/v1/bundles/{}?version={V1}&replica=aws",
                    &fqid[..36]
                ))
            );
            assert!(r.get("metadata").is_none());
            seen.push(fqid[..36].to_string());
        }
        assert_eq!(h["x-openapi-paginated-content-key"], "results");
        if st == StatusCode::OK {
            assert_eq!(h["x-openapi-pagination"], "false");
            break;
        }
        assert_eq!(st, StatusCode::PARTIAL_CONTENT);
        let next = next_link(&h).expect("Link rel=next");
        assert!(
            next.contains("search_after=") && next.contains("per_page=10"),
            "{next}"
        );
        let res = s
            .http
            .post(&next)
            .json(&json!({"es_query": q}))
            .send()
            .await
            .unwrap();
        st = res.status();
        h = res.headers().clone();
        v = res.json().await.unwrap();
    }
    let mut expected = uuids.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected);

    // A query on the indexed metadata; raw output carries the documents, 10 per page.
    let human = json!({"query": {"match": {"files.donor_organism_json.genus_species.text.text": "sapiens"}}});
    let (st, _, v) = search(&s, "replica=aws", human.clone()).await;
    assert_eq!((st, v["total_hits"].clone()), (StatusCode::OK, json!(12)));
    let (st, _, v) = search(&s, "replica=aws&output_format=raw&per_page=11", json!({})).await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    assert_eq!(results[0]["metadata"]["state"], "new");
    assert!(results[0]["metadata"]["files"]["donor_organism_json"][0]["number"].is_number());
    // The other replica has nothing indexed.
    let (_, _, v) = search(&s, "replica=gcp", json!({})).await;
    assert_eq!(v["total_hits"], 0);

    // Errors.
    let (st, _, v) = search(&s, "replica=aws", json!({"query": {"mtch": {"a": "b"}}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "elasticsearch_bad_request");
    assert!(
        v["title"]
            .as_str()
            .unwrap()
            .starts_with("Invalid Elasticsearch query was received: "),
        "{v}"
    );
    let (st, _, v) = search(&s, "replica=aws", json!({"query": {"match": ["x"]}})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("elasticsearch_bad_request"))
    );
    for bad in [
        "replica=aws&per_page=9",
        "replica=aws&per_page=501",
        "per_page=10",
        "replica=nowhere",
        "replica=aws&output_format=xml",
    ] {
        let (st, _, v) = search(&s, bad, json!({})).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("illegal_arguments")),
            "{bad}: {v}"
        );
    }
    let (st, _, v) = s
        .call(
            Method::POST,
            "/v1/search?replica=aws",
            None,
            Some(json!({"query": {}})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_arguments")),
        "{v}"
    );
    let (st, _, v) = s
        .call(
            Method::POST,
            "/v1/search?replica=aws",
            None,
            Some(json!({"es_query": [1]})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_arguments")),
        "{v}"
    );

    // A tombstoned bundle is found by its tombstone fields.
    let (st, _, v) = s
        .call(
            Method::DELETE,
            &format!("/v1/bundles/{}?replica=aws", uuids[3]),
            Some(&s.admin),
            Some(json!({"reason": "withdrawn"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    wait_for_hits(
        &s,
        json!({"query": {"bool": {"must": [{"term": {"admin_deleted": "true"}}]}}}),
        1,
    )
    .await;
    let (_, _, v) = search(
        &s,
        "replica=aws",
        json!({"query": {"term": {"reason.text": "withdrawn"}}}),
    )
    .await;
    assert_eq!(v["results"][0]["bundle_fqid"], format!("{}.{V1}", uuids[3]));

    // Events of the replica: 23 CREATE and 1 TOMBSTONE in one stream (the journal is written
    // right after the search document).
    let mut tries = 0;
    let (st, h, v) = loop {
        let (st, h, v) = s
            .call(Method::GET, "/v1/events?replica=aws", None, None)
            .await;
        tries += 1;
        if v["event_streams"][0]["events"].as_array().map(Vec::len) == Some(24) || tries > 100 {
            break (st, h, v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(h["x-openapi-paginated-content-key"], "event_streams");
    let stream = &v["event_streams"][0];
    let events = stream["events"].as_array().unwrap();
    assert_eq!(events.len(), 24);
    let bytes = s
        .http
        .get(stream["stream_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, stream["size"].as_u64().unwrap());
    let last = &events[23];
    let (off, size) = (
        last["offset"].as_u64().unwrap(),
        last["size"].as_u64().unwrap(),
    );
    let res = s
        .http
        .get(stream["stream_url"].as_str().unwrap())
        .header("range", format!("bytes={off}-{}", off + size - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let doc: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(doc["event_type"], "TOMBSTONE");
    assert_eq!(
        doc["bundle_info"],
        json!({"uuid": uuids[3], "version": null})
    );

    // One bundle's CREATE document; gone once tombstoned.
    let (st, _, doc) = s
        .call(
            Method::GET,
            &format!("/v1/events/{}?replica=aws&version={V1}", uuids[5]),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["event_type"], "CREATE");
    assert_eq!(doc["manifest"]["files"][0]["name"], "donor_organism_0.json");
    assert_eq!(doc["files"]["donor_organism_json"][0]["number"], 5);
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/events/{}?replica=aws&version={V1}", uuids[3]),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/events/{}?replica=aws&version={V1}", uuid()),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    stop.cancel();
}

#[tokio::test]
async fn event_streams_page_by_time() {
    let s = start().await;
    let d = second_process(&s, "");
    let events: Vec<NewEvent> = (0..2500)
        .map(|i| NewEvent {
            event_id: format!("{:08}-0000-4000-8000-000000000000.{V1}", i),
            kind: EventKind::Create,
            body: json!({"event_type": "CREATE", "n": i}).to_string(),
        })
        .collect();
    assert_eq!(d.journal.record("gcp", events).await.unwrap(), 2500);

    // One stream per page: 1000, 1000, 500 events, each exactly once and in order.
    let mut url = s.url("/v1/events?replica=gcp&per_page=1");
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let res = s.http.get(&url).send().await.unwrap();
        let status = res.status();
        let h = res.headers().clone();
        let v: Value = res.json().await.unwrap();
        pages += 1;
        let streams = v["event_streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1);
        let stream = &streams[0];
        let evs = stream["events"].as_array().unwrap();
        assert_eq!(stream["from_date"], evs[0]["timestamp"]);
        assert_eq!(stream["to_date"], evs[evs.len() - 1]["timestamp"]);
        all.extend(
            evs.iter()
                .map(|e| e["timestamp"].as_str().unwrap().to_string()),
        );
        match status {
            StatusCode::PARTIAL_CONTENT => url = next_link(&h).expect("Link"),
            StatusCode::OK => break,
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 2500);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "in order, each once");

    // from_date inclusive, to_date exclusive; several streams per page.
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!(
                "/v1/events?replica=gcp&per_page=10&from_date={}&to_date={}",
                all[10], all[1500]
            ),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let streams = v["event_streams"].as_array().unwrap();
    let counts: Vec<usize> = streams
        .iter()
        .map(|s| s["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [990, 500]);
    assert_eq!(streams[0]["from_date"], all[10].as_str());

    // Errors: reversed range, malformed dates.
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!(
                "/v1/events?replica=gcp&from_date={}&to_date={}",
                all[5], all[1]
            ),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (st, _, v) = s
        .call(
            Method::GET,
            "/v1/events?replica=gcp&from_date=yesterday",
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_arguments"))
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            "/v1/events?replica=gcp&per_page=11",
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // An empty journal answers an empty list.
    let (st, _, v) = s
        .call(Method::GET, "/v1/events?replica=aws", None, None)
        .await;
    assert_eq!((st, v), (StatusCode::OK, json!({"event_streams": []})));
}

#[tokio::test]
async fn hostile_queries_get_a_clear_400_and_the_service_keeps_answering() {
    let s = start_with("[limits]\nquery_max_cost = 50\n", "", Duration::ZERO).await;
    let (_d, stop) = indexer(&s).await;
    for i in 0..4 {
        bundle(&s, i).await;
    }
    wait_for_hits(&s, json!({}), 4).await;
    // Date math beyond the representable years is not a date: no match, no panic.
    for bound in [
        "now+99999999d",
        "now-9223372036854775807y",
        "2020||+99999999999M",
    ] {
        let (st, _, v) = search(
            &s,
            "replica=aws",
            json!({"query": {"range": {"files.donor_organism_json.number": {"gte": bound}}}}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{bound}: {v}");
    }
    // Nesting, clauses and patterns over the limits, and a query whose evaluation would
    // scan more than its budget.
    let mut deep = json!({"match_all": {}});
    for _ in 0..30 {
        deep = json!({"bool": {"must": [deep]}});
    }
    let values: Vec<u32> = (0..5000).collect();
    for q in [
        deep,
        json!({"terms": {"files.donor_organism_json.number": values}}),
        json!({"wildcard": {"uuid": format!("{}*", "a".repeat(1000))}}),
        json!({"query_string": {"query": format!("{}a{}", "(".repeat(5000), ")".repeat(5000))}}),
        json!({"query_string": {"query": "*a*", "fields": ["*"]}}),
    ] {
        let (st, _, v) = search(&s, "replica=aws", json!({"query": q})).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("elasticsearch_bad_request")),
            "{v}"
        );
    }
    let (st, _, v) = search(&s, "replica=aws", json!({"query": {"match_all": {}}})).await;
    assert_eq!((st, v["total_hits"].as_u64()), (StatusCode::OK, Some(4)));
    stop.cancel();
}
