//! Conformance suite of the `SearchIndex` port: storage semantics, the query forms DSS users
//! send, ordering and paging. Run it on a fresh replica name per adapter.

use serde_json::{Value, json};

use dss_core::ports::search::{SearchError, SearchIndex, SearchRequest};

fn bundle(uuid: &str, version: &str, species: &str, age: u32, title: &str) -> Value {
    json!({
        "manifest": {"version": version, "files": [{"name": "donor_organism_0.json", "indexed": true}]},
        "state": "new",
        "files": {
            "donor_organism_json": [{"genus_species": [{"text": species}], "age": age,
                "provenance": {"submission_date": format!("2019-0{}-01T00:00:00Z", 1 + age % 9)}}],
            "project_json": [{"project_core": {"project_title": title}}]
        },
        "uuid": uuid,
        "shape_descriptor": "v5"
    })
}

async fn hits(index: &dyn SearchIndex, replica: &str, body: Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = index
            .search(
                replica,
                &SearchRequest {
                    body: body.clone(),
                    size: 10,
                    after: after.clone(),
                    with_source: false,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("search {body}: {e}"));
        ids.extend(page.hits.iter().map(|h| h.id.clone()));
        if page.hits.len() < 10 {
            assert_eq!(page.total as usize, ids.len(), "total_hits of {body}");
            return ids;
        }
        after = page.hits.last().map(|h| h.cursor.clone());
    }
}

/// Runs the suite on `replica` of `index` (which must hold nothing under that replica).
pub async fn run(index: &dyn SearchIndex, replica: &str) {
    // Storage: create, identical re-put is a no-op, change, get, delete.
    let uuid = "0a000000-0000-4000-8000-000000000000";
    let v1 = "2019-01-01T000000.000000Z";
    let doc = bundle(uuid, v1, "Homo sapiens", 38, "Kidney atlas");
    let id = format!("{uuid}.{v1}");
    assert!(
        index.put(replica, &id, &doc).await.expect("put"),
        "first put creates"
    );
    assert!(
        !index.put(replica, &id, &doc).await.expect("put"),
        "identical put is a no-op"
    );
    assert_eq!(
        index.get(replica, &id).await.expect("get"),
        Some(doc.clone())
    );
    assert_eq!(index.get(replica, "absent").await.expect("get"), None);
    let tomb =
        json!({"admin_deleted": true, "reason": "gone", "uuid": uuid, "manifest": {"version": v1}});
    assert!(
        index.put(replica, &id, &tomb).await.expect("put"),
        "a changed document is written"
    );
    assert_eq!(
        hits(
            index,
            replica,
            json!({"query": {"term": {"admin_deleted": true}}})
        )
        .await,
        std::slice::from_ref(&id)
    );
    assert!(index.delete(replica, &id).await.expect("delete"));
    assert!(!index.delete(replica, &id).await.expect("delete"));
    assert_eq!(index.get(replica, &id).await.expect("get"), None);
    assert!(
        hits(index, replica, json!({})).await.is_empty(),
        "deleted documents are not found"
    );

    // A document whose shape changes is replaced, not duplicated.
    let mut reshaped = doc.clone();
    reshaped["shape_descriptor"] = json!("v.donor_organism.6");
    assert!(index.put(replica, &id, &doc).await.expect("put"));
    assert!(index.put(replica, &id, &reshaped).await.expect("put"));
    assert_eq!(
        index.get(replica, &id).await.expect("get"),
        Some(reshaped.clone())
    );
    assert_eq!(
        hits(index, replica, json!({})).await,
        std::slice::from_ref(&id)
    );
    assert!(index.delete(replica, &id).await.expect("delete"));
    assert!(hits(index, replica, json!({})).await.is_empty());

    // 45 bundles: 15 uuids × 3 versions, two species, ages 0..45.
    let mut all = Vec::new();
    for i in 0..45u32 {
        let uuid = format!("{:08x}-0000-4000-8000-000000000000", i % 15);
        let version = format!("2019-0{}-01T000000.000000Z", 1 + i / 15);
        let species = if i % 2 == 0 {
            "Homo sapiens"
        } else {
            "Mus musculus"
        };
        let title = if i % 3 == 0 {
            "Atlas of the human kidney"
        } else {
            "Mouse brain"
        };
        let doc = bundle(&uuid, &version, species, i, title);
        let id = format!("{uuid}.{version}");
        assert!(index.put(replica, &id, &doc).await.expect("put"));
        all.push((uuid, version, id));
    }
    // Order: uuid descending, then version descending; every hit exactly once across pages.
    let mut expected = all.clone();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let expected: Vec<String> = expected.into_iter().map(|e| e.2).collect();
    assert_eq!(
        hits(index, replica, json!({})).await,
        expected,
        "match_all order and paging"
    );
    assert_eq!(
        hits(index, replica, json!({"query": {"match_all": {}}}))
            .await
            .len(),
        45
    );

    let count = |body: Value| async move { hits(index, replica, body).await.len() };
    let species = "files.donor_organism_json.genus_species.text";
    assert_eq!(
        count(json!({"query": {"term": {species: "homo sapiens"}}})).await,
        23
    );
    assert_eq!(
        count(json!({"query": {"match": {format!("{species}.text"): "Sapiens"}}})).await,
        23
    );
    assert_eq!(
        count(
            json!({"query": {"range": {"files.donor_organism_json.age": {"gte": 10, "lt": 20}}}})
        )
        .await,
        10
    );
    assert_eq!(
        count(json!({"query": {"range": {"files.donor_organism_json.provenance.submission_date": {"gte": "2019-09-01"}}}})).await,
        5,
        "date range"
    );
    assert_eq!(
        count(json!({"query": {"bool": {
            "must": [{"match": {"files.project_json.project_core.project_title.text": "kidney"}}],
            "must_not": [{"term": {species: "mus musculus"}}]}}}))
        .await,
        8
    );
    assert_eq!(
        count(json!({"query": {"bool": {"should": [
            {"term": {"files.donor_organism_json.age": 1}},
            {"term": {"files.donor_organism_json.age": 2}}]}}}))
        .await,
        2
    );
    assert_eq!(
        count(json!({"query": {"exists": {"field": "files.project_json"}}})).await,
        45
    );
    assert_eq!(
        count(json!({"query": {"prefix": {"uuid": "0000000a"}}})).await,
        3
    );
    assert_eq!(
        count(json!({"query": {"wildcard": {"uuid": "*a-0000-*"}}})).await,
        3
    );
    assert_eq!(
        count(json!({"query": {"match_phrase": {"files.project_json.project_core.project_title.text": "human kidney"}}})).await,
        15
    );
    assert_eq!(
        count(json!({"query": {"query_string": {"query": "kidney AND sapiens"}}})).await,
        8
    );
    assert_eq!(
        count(json!({"query": {"ids": {"values": [all[0].2.clone(), "x"]}}})).await,
        1
    );

    // Sources come back when asked for.
    let page = index
        .search(
            replica,
            &SearchRequest {
                body: json!({"query": {"ids": {"values": [all[4].2.clone()]}}}),
                size: 10,
                after: None,
                with_source: true,
            },
        )
        .await
        .expect("search");
    assert_eq!(page.hits.len(), 1);
    assert_eq!(
        page.hits[0]
            .source
            .as_ref()
            .and_then(|s| s.get("uuid"))
            .and_then(Value::as_str),
        Some(all[4].0.as_str())
    );

    // Malformed queries are refused with the reason.
    for bad in [
        json!({"query": {"mtch": {"a": "b"}}}),
        json!({"query": {"match": ["a"]}}),
        json!({"query": {"bool": {"must": 1}}}),
    ] {
        let e = index
            .search(
                replica,
                &SearchRequest {
                    body: bad.clone(),
                    size: 10,
                    after: None,
                    with_source: false,
                },
            )
            .await
            .expect_err("malformed query");
        assert!(matches!(e, SearchError::BadQuery(_)), "{bad}: {e:?}");
    }
}
