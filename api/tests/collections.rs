//! `/v1/collections` through the HTTP API: create, read, change, delete, list with paging,
//! owner checks, and references that must exist.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put(
    s: &Server,
    token: &str,
    uuid: &str,
    version: &str,
    body: Value,
) -> (StatusCode, Value) {
    let (st, _, v) = s
        .call(
            Method::PUT,
            &format!("/v1/collections?replica=aws&uuid={uuid}&version={version}"),
            Some(token),
            Some(body),
        )
        .await;
    (st, v)
}

fn body(contents: Value) -> Value {
    json!({"name": "c", "description": "**d**", "details": {"k": 1}, "contents": contents, "extra": true})
}

#[tokio::test]
async fn collections_are_created_changed_listed_and_deleted_by_their_owner() {
    let s = start().await;
    let (file, meta) = (uuid(), uuid());
    assert_eq!(
        s.upload(&file, V1, b"bytes", "text/plain").await,
        StatusCode::CREATED
    );
    let doc = br#"{"donor": {"species": ["human"]}}"#;
    assert_eq!(
        s.upload(&meta, V1, doc, "application/json").await,
        StatusCode::CREATED
    );
    let bundle = uuid();
    let (st, v) = s
        .put_bundle(
            &bundle,
            V1,
            json!([{"uuid": file, "version": V1, "name": "f", "indexed": false}]),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let f = json!({"type": "file", "uuid": file, "version": V1});
    let b = json!({"type": "bundle", "uuid": bundle, "version": V1});
    let frag =
        json!({"type": "donor", "uuid": meta, "version": V1, "fragment": "/donor/species/0"});
    let c = uuid();
    let (st, v) = put(&s, &s.user, &c, V1, body(json!([f, b, f, frag]))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v, json!({"uuid": c, "version": V1}));
    // The same again is fine; different contents under the same version are not.
    let (st, _) = put(&s, &s.user, &c, V1, body(json!([f, b, frag]))).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = put(&s, &s.user, &c, V1, body(json!([f]))).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("collection_already_exists"))
    );

    let one = format!("/v1/collections/{c}?replica=aws");
    let (st, _, got) = s.call(Method::GET, &one, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::OK, "{got}");
    assert_eq!(
        got["contents"],
        json!([f, b, frag]),
        "duplicates kept once, in order"
    );
    assert_eq!(got["owner"], "user@example.org");
    assert_eq!(got["extra"], true, "extra keys are kept");
    let (st, _, v) = s.call(Method::GET, &one, Some(&s.admin), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (st, _) = put(&s, &s.admin, &c, V2, body(json!([f]))).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "no new versions of someone else's collection"
    );

    // PATCH: a new version with changes; the old one is unchanged.
    let patch = format!("/v1/collections/{c}?replica=aws&version={V1}");
    let (st, _, v) = s
        .call(Method::PATCH, &patch, Some(&s.user),
            Some(json!({"name": "renamed", "remove_contents": [b], "add_contents": [b, json!({"type": "collection", "uuid": c, "version": V1})]})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let v2 = v["version"].as_str().expect("new version").to_string();
    assert_ne!(v2, V1);
    let (_, _, got) = s.call(Method::GET, &one, Some(&s.user), None).await;
    assert_eq!(got["name"], "renamed");
    assert_eq!(got["contents"].as_array().map(Vec::len), Some(4));
    assert_eq!(got["contents"][2], b, "removed, then added at the end");
    let (_, _, old) = s
        .call(
            Method::GET,
            &format!("{one}&version={V1}"),
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(old["name"], "c");
    let (st, _, _) = s
        .call(Method::PATCH, &patch, Some(&s.admin), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let many: Vec<Value> = (0..1001).map(|_| f.clone()).collect();
    let (st, _, _) = s
        .call(
            Method::PATCH,
            &patch,
            Some(&s.user),
            Some(json!({"add_contents": many})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Listing: only PUT versions, newest uuid first.
    let (st, _, list) = s
        .call(Method::GET, "/v1/collections", Some(&s.user), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list, json!({"collections": [{"uuid": c, "version": V1}]}));
    let (_, _, list) = s
        .call(Method::GET, "/v1/collections", Some(&s.admin), None)
        .await;
    assert_eq!(list, json!({"collections": []}));

    // DELETE: once, then it is gone everywhere.
    let (st, _, _) = s.call(Method::DELETE, &one, Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, v) = s.call(Method::DELETE, &one, Some(&s.user), None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({})));
    for m in [Method::GET, Method::DELETE] {
        let (st, _, _) = s.call(m, &one, Some(&s.user), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
    let (_, _, list) = s
        .call(Method::GET, "/v1/collections", Some(&s.user), None)
        .await;
    assert_eq!(list, json!({"collections": []}));
}

#[tokio::test]
async fn references_must_exist_and_items_must_be_well_formed() {
    let s = start().await;
    let meta = uuid();
    assert_eq!(
        s.upload(&meta, V1, br#"{"a": 1}"#, "application/json")
            .await,
        StatusCode::CREATED
    );
    let c = uuid();
    for item in [
        json!({"type": "file", "uuid": uuid(), "version": V1}),
        json!({"type": "bundle", "uuid": meta, "version": V1}),
        json!({"type": "donor", "uuid": meta, "version": V1, "fragment": "/b"}),
        json!({"type": "donor", "uuid": meta, "version": V1}),
    ] {
        let (st, v) = put(&s, &s.user, &c, V1, body(json!([item]))).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_link")),
            "{item}: {v}"
        );
    }
    for item in [
        json!({"type": "file", "uuid": "nope", "version": V1}),
        json!({"type": "file", "uuid": meta, "version": "yesterday"}),
        json!({"uuid": meta, "version": V1}),
    ] {
        let (st, v) = put(&s, &s.user, &c, V1, body(json!([item]))).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("illegal_arguments")),
            "{item}: {v}"
        );
    }
    let (st, _) = put(&s, &s.user, &c, V1, json!({"name": "x", "contents": []})).await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "description and details are required"
    );
    let (st, _) = put(&s, &s.user, &c, "yesterday", body(json!([]))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = put(&s, &s.outsider, &c, V1, body(json!([]))).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "not in the group");
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/collections/{c}?replica=aws"),
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing was written");
}

#[tokio::test]
async fn listing_pages_with_links() {
    let s = start().await;
    let mut made = Vec::new();
    for _ in 0..12 {
        let c = uuid();
        let (st, v) = put(&s, &s.user, &c, V1, body(json!([]))).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        made.push(c);
    }
    made.sort();
    made.reverse();
    let (st, headers, page) = s
        .call(
            Method::GET,
            "/v1/collections?per_page=10",
            Some(&s.user),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["x-openapi-pagination"], "true");
    assert_eq!(headers["x-openapi-paginated-content-key"], "collections");
    let got: Vec<&str> = page["collections"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["uuid"].as_str())
        .collect();
    assert_eq!(
        got,
        made[..10].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let link = headers["link"].to_str().expect("link");
    let next = link
        .trim_start_matches('<')
        .split_once(">;")
        .expect("url")
        .0;
    assert!(next.contains("start_at=10"), "{next}");
    let path = next
        .split_once("://")
        .and_then(|(_, r)| r.split_once('/'))
        .map(|(_, p)| format!("/{p}"))
        .expect("path");
    let (st, _, page) = s.call(Method::GET, &path, Some(&s.user), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["collections"].as_array().map(Vec::len), Some(2));
    for bad in ["per_page=9", "per_page=501", "start_at=-1"] {
        let (st, _, _) = s
            .call(
                Method::GET,
                &format!("/v1/collections?{bad}"),
                Some(&s.user),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    }
}
