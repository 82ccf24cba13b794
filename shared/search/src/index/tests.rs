//! Query semantics on fixtures where ES behaviour is subtle (arrays, keyword vs text, missing
//! fields, date ranges), and agreement of search with one-document matching for every case.

use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::{Budget, parse_body};

const NOW: OffsetDateTime = datetime!(2020-07-01 12:00 UTC);

fn fixtures() -> Vec<(&'static str, Value)> {
    vec![
        (
            "a.1",
            json!({
                "uuid": "aaaaaaaa-0000-4000-8000-000000000001",
                "state": "new",
                "manifest": {"version": "2019-01-01T000000.000000Z", "files": [
                    {"name": "donor_organism_0.json", "indexed": true, "size": 100},
                    {"name": "reads.fastq.gz", "indexed": false, "size": 5000}]},
                "files": {
                    "donor_organism_json": [{
                        "genus_species": [{"text": "Homo sapiens"}],
                        "organism_age": "38", "age": 38,
                        "biomaterial_core": {"biomaterial_id": "Donor-1"},
                        "provenance": {"submission_date": "2019-01-05T10:00:00Z"}}],
                    "project_json": [{"project_core": {
                        "project_short_name": "Kidney Atlas",
                        "project_title": "A single-cell atlas of the human kidney"}}],
                    "specimen_json": [
                        {"organ": {"text": "kidney"}, "disease": {"text": "normal"}},
                        {"organ": {"text": "brain"}, "disease": {"text": "glioma"}}]}
            }),
        ),
        (
            "b.1",
            json!({
                "uuid": "bbbbbbbb-0000-4000-8000-000000000002",
                "state": "new",
                "manifest": {"version": "2020-06-01T000000.000000Z", "files": [
                    {"name": "donor_organism_0.json", "indexed": true, "size": 300}]},
                "files": {
                    "donor_organism_json": [
                        {"genus_species": [{"text": "Mus musculus"}], "age": 2, "is_living": false,
                         "provenance": {"submission_date": "2020-06-01T08:00:00Z"}},
                        {"genus_species": [{"text": "Homo sapiens"}], "age": 70}],
                    "project_json": [{"project_core": {
                        "project_short_name": "Mouse Brain",
                        "project_title": "Brain of the mouse, kidney excluded"}}],
                    "specimen_json": [
                        {"organ": {"text": "kidney"}, "disease": {"text": "glioma"}}]}
            }),
        ),
        (
            "c.1",
            json!({
                "uuid": "cccccccc-0000-4000-8000-000000000003",
                "manifest": {"version": null},
                "admin_deleted": true, "reason": "consent withdrawn", "email": "ops@example.org",
                "details": {}
            }),
        ),
        (
            "d.1",
            json!({
                "uuid": "dddddddd-0000-4000-8000-000000000004",
                "manifest": {"version": "2020-01-01T000000.000000Z", "files": []},
                "files": {"notes_json": [{"long": "x".repeat(300), "count": "12", "tags": ["Alpha", "beta", null]}]}
            }),
        ),
    ]
}

fn index() -> (MemIndex, Vec<(&'static str, Value)>) {
    let docs = fixtures();
    let mut idx = MemIndex::new();
    for (id, d) in &docs {
        idx.insert(id, d);
    }
    (idx, docs)
}

/// Runs `body` and checks the hits are `expected`, and that one-document matching agrees.
fn check(body: Value, expected: &[&str]) {
    let (idx, docs) = index();
    let q = parse_body(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    let loader = |ord: u32| docs.get(ord as usize).map(|(_, d)| d.clone());
    let hits = idx
        .search(
            &q,
            &EvalContext {
                now: NOW,
                loader: &loader,
                budget: &Budget::new(u64::MAX),
            },
        )
        .unwrap();
    let mut got: Vec<&str> = hits.iter().filter_map(|d| idx.id(d)).collect();
    got.sort();
    assert_eq!(got, expected, "query {body}");
    for (id, d) in &docs {
        assert_eq!(
            SingleDoc::new(id, d, NOW)
                .matches(&q, &Budget::new(u64::MAX))
                .unwrap(),
            expected.contains(id),
            "one-document matching disagrees on {id} for {body}"
        );
    }
}

#[test]
fn keyword_fields_match_whole_values_case_insensitively() {
    check(
        json!({"query": {"term": {"files.project_json.project_core.project_short_name": "kidney atlas"}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"term": {"files.project_json.project_core.project_short_name": "Kidney"}}}),
        &[],
    );
    check(
        json!({"query": {"match": {"files.project_json.project_core.project_short_name": "KIDNEY ATLAS"}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"match": {"files.project_json.project_core.project_short_name": "kidney"}}}),
        &[],
    );
}

#[test]
fn text_sub_fields_are_analysed() {
    let f = "files.project_json.project_core.project_title.text";
    check(json!({"query": {"match": {f: "Kidney"}}}), &["a.1", "b.1"]);
    check(
        json!({"query": {"match": {f: {"query": "kidney atlas", "operator": "and"}}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"match": {f: "atlas mouse"}}}),
        &["a.1", "b.1"],
    );
    check(
        json!({"query": {"match": {f: {"query": "atlas mouse human", "minimum_should_match": 2}}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"match_phrase": {f: "human kidney"}}}),
        &["a.1"],
    );
    check(json!({"query": {"match_phrase": {f: "kidney human"}}}), &[]);
    check(
        json!({"query": {"match_phrase": {f: "atlas of the human"}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"match_phrase": {f: "Brain of the mouse"}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"match_phrase": {f: "the human atlas"}}}),
        &[],
    );
    // Words from two different values of an array are not a phrase.
    check(
        json!({"query": {"match_phrase": {"files.specimen_json.organ.text.text": "kidney brain"}}}),
        &[],
    );
    check(
        json!({"query": {"bool": {"must": [
            {"match_phrase": {f: "of the human kidney"}},
            {"term": {"state": "new"}}]}}}),
        &["a.1"],
    );
    // term on a text field compares a single token, unanalysed.
    check(json!({"query": {"term": {f: "kidney"}}}), &["a.1", "b.1"]);
    check(json!({"query": {"term": {f: "Kidney"}}}), &[]);
}

#[test]
fn arrays_match_when_any_element_does() {
    let f = "files.donor_organism_json.genus_species.text";
    check(
        json!({"query": {"term": {f: "homo sapiens"}}}),
        &["a.1", "b.1"],
    );
    check(json!({"query": {"term": {f: "mus musculus"}}}), &["b.1"]);
    check(
        json!({"query": {"range": {"files.donor_organism_json.age": {"gte": 60}}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"terms": {"files.notes_json.tags": ["ALPHA", "gamma"]}}}),
        &["d.1"],
    );
    // Without `nested`, conditions on different elements combine across objects (ES semantics).
    check(
        json!({"query": {"bool": {"must": [
            {"term": {"files.specimen_json.organ.text": "kidney"}},
            {"term": {"files.specimen_json.disease.text": "glioma"}}]}}}),
        &["a.1", "b.1"],
    );
    check(
        json!({"query": {"nested": {"path": "files.specimen_json", "query": {"bool": {"must": [
            {"term": {"files.specimen_json.organ.text": "kidney"}},
            {"term": {"files.specimen_json.disease.text": "glioma"}}]}}}}}),
        &["b.1"],
    );
}

#[test]
fn numbers_dates_and_strings_range_in_their_own_domain() {
    check(
        json!({"query": {"range": {"files.donor_organism_json.age": {"gt": 2, "lt": 70}}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"term": {"files.donor_organism_json.age": "38"}}}),
        &["a.1"],
    );
    // A number kept as a string is a keyword: string order, not numeric.
    check(
        json!({"query": {"range": {"files.notes_json.count": {"gte": "100"}}}}),
        &["d.1"],
    );
    let date = "files.donor_organism_json.provenance.submission_date";
    check(
        json!({"query": {"range": {date: {"gte": "2019-01-01", "lt": "2020-01-01"}}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"range": {date: {"gte": "2020"}}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"range": {date: {"gte": "now-1y"}}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"range": {date: {"lte": "2020-06-01||/d"}}}}),
        &["a.1", "b.1"],
    );
    check(
        json!({"query": {"range": {date: {"lt": "2020-06-01||/d"}}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"term": {date: "2019-01-05T11:00:00+01:00"}}}),
        &["a.1"],
    );
    // DSS versions are keywords and range as strings.
    check(
        json!({"query": {"range": {"manifest.version": {"gte": "2020-01-01T000000.000000Z"}}}}),
        &["b.1", "d.1"],
    );
}

#[test]
fn missing_fields_booleans_and_exists() {
    check(
        json!({"query": {"exists": {"field": "admin_deleted"}}}),
        &["c.1"],
    );
    check(
        json!({"query": {"term": {"admin_deleted": "true"}}}),
        &["c.1"],
    );
    check(
        json!({"query": {"term": {"admin_deleted": true}}}),
        &["c.1"],
    );
    check(
        json!({"query": {"bool": {"must_not": {"term": {"admin_deleted": true}}}}}),
        &["a.1", "b.1", "d.1"],
    );
    check(
        json!({"query": {"term": {"files.donor_organism_json.is_living": false}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"exists": {"field": "manifest.version"}}}),
        &["a.1", "b.1", "d.1"],
    );
    check(
        json!({"query": {"exists": {"field": "files.donor_organism_json"}}}),
        &["a.1", "b.1"],
    );
    check(json!({"query": {"exists": {"field": "details"}}}), &[]);
    check(
        json!({"query": {"exists": {"field": "files.notes_json.long"}}}),
        &["d.1"],
    );
    // Longer than ignore_above: not a keyword, still text.
    check(
        json!({"query": {"term": {"files.notes_json.long": "x".repeat(300)}}}),
        &[],
    );
    check(
        json!({"query": {"prefix": {"files.notes_json.long.text": "xxx"}}}),
        &["d.1"],
    );
}

#[test]
fn bool_combinations() {
    let human = json!({"term": {"files.donor_organism_json.genus_species.text": "homo sapiens"}});
    let mouse = json!({"term": {"files.donor_organism_json.genus_species.text": "mus musculus"}});
    let dead = json!({"term": {"admin_deleted": true}});
    check(
        json!({"query": {"bool": {"should": [human, dead]}}}),
        &["a.1", "b.1", "c.1"],
    );
    check(
        json!({"query": {"bool": {"should": [human, mouse], "minimum_should_match": 2}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"bool": {"must": human, "should": mouse}}}),
        &["a.1", "b.1"],
    );
    check(
        json!({"query": {"bool": {"filter": human, "must_not": [mouse]}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"bool": {"must": human, "should": [mouse], "minimum_should_match": 1}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"bool": {}}}),
        &["a.1", "b.1", "c.1", "d.1"],
    );
    check(
        json!({"query": {"constant_score": {"filter": dead}}}),
        &["c.1"],
    );
    check(json!({"query": {"match_none": {}}}), &[]);
    check(json!({}), &["a.1", "b.1", "c.1", "d.1"]);
}

#[test]
fn prefix_wildcard_ids_and_multi_field_queries() {
    check(
        json!({"query": {"prefix": {"files.donor_organism_json.biomaterial_core.biomaterial_id": "donor-"}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"wildcard": {"files.project_json.project_core.project_short_name": "*atl?s"}}}),
        &["a.1"],
    );
    check(
        json!({"query": {"wildcard": {"uuid": {"value": "b*2"}}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"ids": {"values": ["a.1", "c.1", "zz"]}}}),
        &["a.1", "c.1"],
    );
    check(
        json!({"query": {"multi_match": {"query": "brain", "fields": ["files.project_json.project_core.*.text"]}}}),
        &["b.1"],
    );
    check(
        json!({"query": {"multi_match": {"query": "consent"}}}),
        &["c.1"],
    );
    check(
        json!({"query": {"multi_match": {"query": "mouse kidney", "type": "cross_fields", "operator": "and",
            "fields": ["files.project_json.project_core.project_title.text"]}}}),
        &["b.1"],
    );
}

#[test]
fn query_string_simple_form() {
    let qs = |q: &str| json!({"query": {"query_string": {"query": q}}});
    check(qs("glioma"), &["a.1", "b.1"]);
    check(qs("kidney AND NOT mouse"), &["a.1"]);
    check(qs("files.donor_organism_json.age:[30 TO 40]"), &["a.1"]);
    check(qs("files.donor_organism_json.age:>50"), &["b.1"]);
    check(qs("\"human kidney\""), &["a.1"]);
    check(qs("_exists_:admin_deleted"), &["c.1"]);
    check(qs("uuid:dddd*"), &["d.1"]);
    check(
        qs(
            "reason.text:consent OR files.project_json.project_core.project_short_name:\"mouse brain\"",
        ),
        &["b.1", "c.1"],
    );
    check(
        json!({"query": {"query_string": {"query": "kidney atlas", "default_operator": "AND",
            "default_field": "files.project_json.project_core.project_title.text"}}}),
        &["a.1"],
    );
}

#[test]
fn paging_returns_every_hit_once_in_sort_order() {
    let mut idx = MemIndex::new();
    let mut expected = Vec::new();
    for i in 0..57u32 {
        let uuid = format!("{:08x}-0000-4000-8000-000000000000", i % 19);
        let version = (i % 3 != 0).then(|| format!("2019-01-{:02}T000000.000000Z", 1 + i % 7));
        let id = format!("{uuid}.{i}");
        idx.insert(
            &id,
            &json!({"uuid": uuid, "manifest": {"version": version}}),
        );
        expected.push(id);
    }
    let loader = |_: u32| None;
    let all = idx
        .search(
            &Query::MatchAll,
            &EvalContext {
                now: NOW,
                loader: &loader,
                budget: &Budget::new(u64::MAX),
            },
        )
        .unwrap();
    for size in [1, 7, 10, 56, 57, 100] {
        let mut seen = Vec::new();
        let mut after: Option<SortKey> = None;
        loop {
            let page = idx.top(&all, after.as_ref(), size);
            if page.is_empty() {
                break;
            }
            let keys: Vec<SortKey> = page.iter().map(|d| idx.key(*d).unwrap().clone()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "page out of order");
            let last = keys.last().unwrap().clone();
            // Cursors survive their text form.
            after = Some(SortKey::parse_cursor(&last.cursor()).unwrap());
            assert_eq!(after.as_ref(), Some(&last));
            seen.extend(keys.into_iter().map(|k| k.id));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 57, "page size {size}: every hit once");
        assert_eq!(seen.len(), 57);
    }
}

#[test]
fn replacing_and_removing_documents() {
    let (mut idx, _) = index();
    let loader = |_: u32| None;
    let ctx = EvalContext {
        now: NOW,
        loader: &loader,
        budget: &Budget::new(u64::MAX),
    };
    let q = parse_body(&json!({"query": {"term": {"admin_deleted": true}}})).unwrap();
    assert_eq!(idx.search(&q, &ctx).unwrap().len(), 1);
    idx.insert("a.1", &json!({"uuid": "a", "admin_deleted": true}));
    assert_eq!(idx.search(&q, &ctx).unwrap().len(), 2);
    assert_eq!(idx.len(), 4);
    assert!(idx.remove("c.1"));
    assert!(!idx.remove("c.1"));
    assert_eq!(idx.search(&q, &ctx).unwrap().len(), 1);
    assert_eq!(idx.len(), 3);
    assert_eq!(idx.garbage(), 2, "the replaced a.1 and the removed c.1");
    let before: Vec<RoaringBitmap> = [&q, &Query::MatchAll]
        .iter()
        .map(|q| idx.search(q, &ctx).unwrap())
        .collect();
    idx.purge();
    assert_eq!(idx.garbage(), 0);
    let after: Vec<RoaringBitmap> = [&q, &Query::MatchAll]
        .iter()
        .map(|q| idx.search(q, &ctx).unwrap())
        .collect();
    assert_eq!(before, after, "purging changes no answer");
    assert_eq!(
        idx.search(
            &parse_body(&json!({"query": {"term": {"reason.text": "consent"}}})).unwrap(),
            &ctx
        )
        .unwrap()
        .len(),
        0
    );
    assert_eq!(
        idx.search(
            &parse_body(&json!({"query": {"prefix": {"uuid": "c"}}})).unwrap(),
            &ctx
        )
        .unwrap()
        .len(),
        0
    );
    idx.insert("e.1", &json!({"uuid": "e", "admin_deleted": true}));
    assert_eq!(idx.search(&q, &ctx).unwrap().len(), 2);
    let st = idx.stats();
    assert_eq!(st.documents, 4);
    assert!(
        st.fields > 10 && st.terms > 20 && st.values > 0 && st.pairs > 0,
        "{st:?}"
    );
}

#[test]
fn globs() {
    assert!(glob("a*c", "abbbc"));
    assert!(glob("a?c", "abc"));
    assert!(!glob("a?c", "abbc"));
    assert!(glob("*", ""));
    assert!(glob("files.*.name", "files.x.y.name"));
    assert!(!glob("abc", "abcd"));
    // One `?` is one character, also outside ASCII.
    assert!(glob("h?llo", "héllo"));
    assert!(!glob("h??llo", "héllo"));
    assert!(glob("*é*", "café au lait"));
}
