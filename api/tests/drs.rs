//! GA4GH DRS 1.x through the HTTP API: files and bundles as DRS objects, access URLs,
//! service-info, and DRS errors. Responses are checked against the DRS object schema's
//! required fields and types.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The DRS 1.x `DrsObject` rules: required fields and their types, checksum and access-method
/// shapes, and contents for bundles.
fn assert_drs_object(v: &Value) {
    for (field, ok) in [
        ("id", v["id"].is_string()),
        (
            "self_uri",
            v["self_uri"]
                .as_str()
                .is_some_and(|u| u.starts_with("drs://")),
        ),
        ("size", v["size"].is_u64()),
        (
            "created_time",
            v["created_time"].as_str().is_some_and(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            }),
        ),
        (
            "checksums",
            v["checksums"].as_array().is_some_and(|c| !c.is_empty()),
        ),
    ] {
        assert!(ok, "DRS object field {field} missing or mistyped: {v}");
    }
    for c in v["checksums"].as_array().into_iter().flatten() {
        assert!(c["checksum"].is_string() && c["type"].is_string(), "{c}");
    }
    for a in v["access_methods"].as_array().into_iter().flatten() {
        let t = a["type"].as_str().unwrap_or_default();
        assert!(
            [
                "s3", "gs", "ftp", "gsiftp", "globus", "htsget", "https", "file"
            ]
            .contains(&t),
            "access method type {t}"
        );
        assert!(
            a["access_url"]["url"].is_string() || a["access_id"].is_string(),
            "{a}"
        );
    }
    for c in v["contents"].as_array().into_iter().flatten() {
        assert!(c["name"].is_string(), "{c}");
    }
}

#[tokio::test]
async fn files_and_bundles_are_drs_objects() {
    let s = start().await;
    let (f1, f2) = (uuid(), uuid());
    let (d1, d2) = (b"hello drs".to_vec(), b"{\"a\": 1}".to_vec());
    assert_eq!(
        s.upload(&f1, V1, &d1, "text/plain").await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.upload(&f2, V1, &d2, "application/json").await,
        StatusCode::CREATED
    );
    let b = uuid();
    let (st, v) = s
        .put_bundle(
            &b,
            V2,
            json!([{"uuid": f1, "version": V1, "name": "a.txt", "indexed": false},
                   {"uuid": f2, "version": V1, "name": "b.json", "indexed": true}]),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // A file: checksums, size, type, and a URL that serves its bytes.
    let (st, _, file) = s
        .call(
            Method::GET,
            &format!("/ga4gh/drs/v1/objects/{f1}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{file}");
    assert_drs_object(&file);
    assert_eq!(file["id"], format!("{f1}.{V1}"));
    assert_eq!(file["size"], d1.len());
    assert_eq!(file["mime_type"], "text/plain");
    assert_eq!(file["version"], V1);
    let sums = checksums_json(&d1);
    let by_type = |t: &str| {
        file["checksums"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["type"] == t))
            .map(|x| x["checksum"].clone())
    };
    assert_eq!(by_type("sha-256"), Some(sums["sha256"].clone()));
    assert_eq!(by_type("sha-1"), Some(sums["sha1"].clone()));
    assert_eq!(by_type("crc32c"), Some(sums["crc32c"].clone()));
    assert_eq!(by_type("etag"), Some(sums["s3_etag"].clone()));
    let url = file["access_methods"][0]["access_url"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(
        s.http
            .get(&url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes"),
        d1
    );

    // Its access endpoint gives a fresh URL; the id with a version finds the same object.
    let access_id = file["access_methods"][0]["access_id"]
        .as_str()
        .expect("access id");
    let (st, _, access) = s
        .call(
            Method::GET,
            &format!("/ga4gh/drs/v1/objects/{f1}.{V1}/access/{access_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{access}");
    let url = access["url"].as_str().expect("url");
    assert_eq!(
        s.http
            .get(url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes"),
        d1
    );

    // A bundle: contents, total size, checksums by the DRS bundle rule.
    let (st, _, bundle) = s
        .call(
            Method::GET,
            &format!("/ga4gh/drs/v1/objects/{b}?replica=aws"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{bundle}");
    assert_drs_object(&bundle);
    assert_eq!(bundle["id"], format!("{b}.{V2}"));
    assert_eq!(bundle["size"], d1.len() + d2.len());
    let names: Vec<&str> = bundle["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["a.txt", "b.json"]);
    assert_eq!(bundle["contents"][0]["id"], format!("{f1}.{V1}"));
    let mut parts = [
        checksums_json(&d1)["sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        checksums_json(&d2)["sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    parts.sort();
    let want = hex::encode(Sha256::digest(parts.concat().as_bytes()));
    assert_eq!(
        bundle["checksums"][0],
        json!({"type": "sha-256", "checksum": want})
    );
    // A content's drs_uri resolves to the file.
    let inner = bundle["contents"][1]["drs_uri"][0]
        .as_str()
        .expect("drs uri");
    let inner_id = inner.rsplit('/').next().expect("id");
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/ga4gh/drs/v1/objects/{inner_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["size"].as_u64()),
        (StatusCode::OK, Some(d2.len() as u64))
    );
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/ga4gh/drs/v1/objects/{b}/access/aws"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a bundle has no bytes: {v}");
}

#[tokio::test]
async fn drs_errors_and_service_info() {
    let s = start().await;
    let missing = uuid();
    for (path, status) in [
        (
            format!("/ga4gh/drs/v1/objects/{missing}"),
            StatusCode::NOT_FOUND,
        ),
        (
            "/ga4gh/drs/v1/objects/not-a-uuid".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/ga4gh/drs/v1/objects/{missing}.yesterday"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ga4gh/drs/v1/objects/{missing}?replica=moon"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ga4gh/drs/v1/objects/{missing}/access/moon"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (st, _, v) = s.call(Method::GET, &path, None, None).await;
        assert_eq!(st, status, "{path}: {v}");
        assert_eq!(v["status_code"], status.as_u16(), "DRS error body: {v}");
        assert!(v["msg"].is_string(), "{v}");
    }
    let (st, _, info) = s
        .call(Method::GET, "/ga4gh/drs/v1/service-info", None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info["type"]["group"], "org.ga4gh");
    assert_eq!(info["type"]["artifact"], "drs");
    for f in ["id", "name", "version"] {
        assert!(info[f].is_string(), "{f}: {info}");
    }
    assert!(info["organization"]["name"].is_string() && info["organization"]["url"].is_string());
}

/// The original's path, `/v1/ga4gh/drs/v1/…`, gives the same answers and is in the API document.
#[tokio::test]
async fn drs_is_served_under_the_originals_path_too() {
    let s = start().await;
    let f = uuid();
    assert_eq!(
        s.upload(&f, V1, b"under v1", "text/plain").await,
        StatusCode::CREATED
    );
    let missing = uuid();
    for path in [
        format!("/ga4gh/drs/v1/objects/{f}?replica=aws"),
        format!("/ga4gh/drs/v1/objects/{f}.{V1}/access/aws"),
        format!("/ga4gh/drs/v1/objects/{missing}"),
        format!("/ga4gh/drs/v1/objects/{missing}.yesterday"),
        "/ga4gh/drs/v1/service-info".to_string(),
    ] {
        let (st, _, root) = s.call(Method::GET, &path, None, None).await;
        let (st_v1, _, v1) = s.call(Method::GET, &format!("/v1{path}"), None, None).await;
        assert_eq!(st_v1, st, "{path}: {v1}");
        // Signed URLs differ by their signature's time; the rest is the same.
        let strip = |mut v: Value| {
            if let Some(m) = v["access_methods"].as_array_mut() {
                m.iter_mut().for_each(|m| m["access_url"] = Value::Null);
            }
            if v["url"].is_string() {
                v["url"] = Value::Null;
            }
            v
        };
        assert_eq!(strip(v1), strip(root), "{path}");
    }
    let (st, _, doc) = s.call(Method::GET, "/v1/swagger.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        doc["paths"]["/ga4gh/drs/v1/objects/{object_id}"]["get"]["operationId"],
        "getDrsObject"
    );
}
