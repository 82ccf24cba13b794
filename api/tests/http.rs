//! API integration tests: a real server on a random port over a temp data directory, driven by
//! an HTTP client. Every status code of the files and bundles endpoints is exercised.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use dss_core::checksum::checksums_of;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn put_file_from_staging_covers_every_status() {
    let s = start().await;
    let data = b"{\"donor\": 1}".to_vec();
    let src = staged(&s, "donor.json", &data);
    let u = uuid();
    let body = json!({"source_url": src, "creator_uid": 1, "checksums": checksums_json(&data)});
    let path = format!("/v1/files/{u}?version={V1}");

    let (st, _, v) = s
        .call(Method::PUT, &path, Some(&s.user), Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v, json!({"version": V1}));
    let (st, _, _) = s
        .call(Method::PUT, &path, Some(&s.user), Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::OK, "identical retry");
    let mut other = body.clone();
    other["creator_uid"] = json!(2);
    let (st, _, v) = s.call(Method::PUT, &path, Some(&s.user), Some(other)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("file_already_exists"))
    );

    // Checksum errors: missing, malformed, mismatching; nothing is stored.
    let u2 = uuid();
    let p2 = format!("/v1/files/{u2}?version={V1}");
    let mut missing = body.clone();
    missing["checksums"]
        .as_object_mut()
        .unwrap()
        .remove("crc32c");
    let (st, _, v) = s.call(Method::PUT, &p2, Some(&s.user), Some(missing)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("missing_checksum"))
    );
    let mut malformed = body.clone();
    malformed["checksums"]["sha1"] = json!("xyz");
    let (st, _, v) = s
        .call(Method::PUT, &p2, Some(&s.user), Some(malformed))
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_checksum"))
    );
    let blobs_before = s.bucket_files("blobs");
    let mut wrong = body.clone();
    wrong["checksums"] = checksums_json(b"other bytes");
    let (st, _, v) = s.call(Method::PUT, &p2, Some(&s.user), Some(wrong)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("checksum_mismatch")),
        "{v}"
    );
    assert_eq!(s.bucket_files("blobs"), blobs_before, "no blob left behind");
    assert_eq!(s.bucket_files(".tmp"), 0, "no temp file left behind");
    let (st, _, _) = s
        .call(
            Method::HEAD,
            &format!("/v1/files/{u2}?replica=aws"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no file version left behind");

    // Bad identifiers and sources.
    let (st, _, v) = s
        .call(
            Method::PUT,
            &format!("/v1/files/{u}?version=2026"),
            Some(&s.user),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_version"))
    );
    let (st, _, v) = s
        .call(
            Method::PUT,
            &format!("/v1/files/{u}"),
            Some(&s.user),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("Missing query parameter 'version'")
        )
    );
    let (st, _, v) = s
        .call(
            Method::PUT,
            &format!("/v1/files/not-a-uuid?version={V1}"),
            Some(&s.user),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_arguments"))
    );
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), &data).unwrap();
    for src in [
        format!("file://{}/../keys/url-signing.key", s.staging().display()),
        format!("file://{}", outside.path().display()),
        format!("file://{}/nope.json", s.staging().display()),
        "file://relative/path".to_string(),
    ] {
        let b = json!({"source_url": src, "creator_uid": 1, "checksums": checksums_json(&data)});
        let (st, _, v) = s.call(Method::PUT, &p2, Some(&s.user), Some(b)).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("illegal_arguments")),
            "{src}: {v}"
        );
    }
    let b = json!({"source_url": "s3://bucket/key", "creator_uid": 1});
    let (st, _, v) = s.call(Method::PUT, &p2, Some(&s.user), Some(b)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_source_schema"))
    );
    let (st, _, v) = s
        .call(
            Method::PUT,
            &p2,
            Some(&s.user),
            Some(json!({"creator_uid": 1})),
        )
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("'source_url' is a required property")
        )
    );

    // Auth.
    let (st, _, v) = s.call(Method::PUT, &path, None, Some(body.clone())).await;
    assert_eq!(
        (st, v["code"].as_str(), v["title"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("OAuthProblem"),
            Some("No authorization token provided")
        )
    );
    let (st, _, v) = s
        .call(Method::PUT, &path, Some("garbage"), Some(body.clone()))
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Failed to decode token."))
    );
    let (st, _, v) = s
        .call(Method::PUT, &path, Some(&s.outsider), Some(body.clone()))
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("Forbidden"))
    );
    let mut tampered = s.user.clone();
    tampered.pop();
    tampered.push(if s.user.ends_with('A') { 'B' } else { 'A' });
    let (st, _, v) = s
        .call(Method::PUT, &path, Some(&tampered), Some(body.clone()))
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Authorization token is invalid")
        )
    );

    // Body format.
    let r = s
        .http
        .put(s.url(&path))
        .bearer_auth(&s.user)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = s
        .http
        .put(s.url(&path))
        .bearer_auth(&s.user)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .put(s.url(&path))
        .bearer_auth(&s.user)
        .header("content-type", "application/json")
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let big = json!({"source_url": "x".repeat(300_000), "creator_uid": 1});
    let (st, _, v) = s.call(Method::PUT, &path, Some(&s.user), Some(big)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn direct_upload_verifies_checksums_and_limits() {
    let s = start().await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let u = uuid();
    assert_eq!(
        s.upload(&u, V1, &data, "application/octet-stream").await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.upload(&u, V1, &data, "application/octet-stream").await,
        StatusCode::OK,
        "identical retry"
    );
    assert_eq!(
        s.upload(&u, V1, b"different", "application/octet-stream")
            .await,
        StatusCode::CONFLICT
    );

    let c = checksums_of(&data);
    let u2 = uuid();
    let send = |sha256: &str| {
        s.http
            .put(s.url(&format!("/v1/files/{u2}/content?version={V1}&replica=aws")))
            .bearer_auth(&s.user)
            .header("x-dss-sha256", sha256.to_string())
            .body(data.clone())
            .send()
    };
    let r = send(&"0".repeat(64)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "checksum_mismatch"
    );
    assert_eq!(s.bucket_files("uploads"), 0, "temp upload removed");
    let (st, _, _) = s
        .call(
            Method::HEAD,
            &format!("/v1/files/{u2}?replica=aws"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(send(&c.sha256).await.unwrap().status(), StatusCode::CREATED);

    // All four given: streamed straight to the blob key and verified.
    let u3 = uuid();
    let r = s
        .http
        .put(s.url(&format!("/v1/files/{u3}/content?version={V1}&replica=aws")))
        .bearer_auth(&s.user)
        .header("x-dss-sha256", &c.sha256)
        .header("x-dss-sha1", &c.sha1)
        .header("x-dss-s3-etag", &c.s3_etag)
        .header("x-dss-crc32c", "00000000")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Over the configured maximum.
    let r = s
        .http
        .put(s.url(&format!(
            "/v1/files/{}/content?version={V1}&replica=aws",
            uuid()
        )))
        .bearer_auth(&s.user)
        .body(vec![0u8; 1_000_001])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A truncated upload (client promises more bytes than it sends, then hangs up) stores nothing.
    let u4 = uuid();
    {
        use tokio::io::AsyncWriteExt;
        let addr = s.base.trim_start_matches("http://").to_string();
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "PUT /v1/files/{u4}/content?version={V1}&replica=aws HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n",
            s.user
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        sock.write_all(&[1u8; 100]).await.unwrap();
        sock.shutdown().await.unwrap();
        drop(sock);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, _, _) = s
        .call(
            Method::HEAD,
            &format!("/v1/files/{u4}?replica=aws"),
            None,
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "truncated upload registered nothing"
    );
    assert_eq!(s.bucket_files("uploads"), 0, "no partial upload object");
    assert_eq!(s.bucket_files(".tmp"), 0, "no temp file");
}

#[tokio::test]
async fn head_and_get_files_serve_signed_ranges() {
    let s = start().await;
    let u = uuid();
    let data = b"0123456789abcdef".to_vec();
    assert_eq!(
        s.upload(&u, V1, &data, "text/plain").await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.upload(&u, V2, b"newer", "text/plain").await,
        StatusCode::CREATED
    );

    let (st, h, _) = s
        .call(
            Method::HEAD,
            &format!("/v1/files/{u}?replica=aws&version={V1}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let c = checksums_of(&data);
    assert_eq!(h["x-dss-sha256"], c.sha256.as_str());
    assert_eq!(h["x-dss-s3-etag"], c.s3_etag.as_str());
    assert_eq!(h["x-dss-size"], "16");
    assert_eq!(h["x-dss-content-type"], "text/plain");
    let (_, h, _) = s
        .call(
            Method::HEAD,
            &format!("/v1/files/{}?replica=aws", u.to_uppercase()),
            None,
            None,
        )
        .await;
    assert_eq!(
        h["x-dss-version"], V2,
        "latest version; upper-case UUID accepted"
    );

    let (st, h, _) = s
        .call(
            Method::GET,
            &format!("/v1/files/{u}?replica=aws&version={V1}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FOUND);
    assert_eq!(h["x-dss-sha1"], c.sha1.as_str());
    let loc = h["location"].to_str().unwrap().to_string();
    let r = s.http.get(&loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    let r = s
        .http
        .get(&loc)
        .header("range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 10-15/16");
    assert_eq!(&r.bytes().await.unwrap()[..], b"abcdef");
    let r = s
        .http
        .get(&loc)
        .header("range", "bytes=99-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = s
        .http
        .get(loc.replace("signature=", "signature=00"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "tampered signature");

    let (st, h, _) = s
        .call(
            Method::GET,
            &format!("/v1/files/{u}?replica=aws&directurl=true"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FOUND);
    assert!(h["location"].to_str().unwrap().starts_with("file:///"));

    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/files/{}?replica=aws", uuid()),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (StatusCode::NOT_FOUND, Some("Cannot find file!"))
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/files/{u}?replica=aws&version=2026"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, v) = s
        .call(Method::GET, &format!("/v1/files/{u}"), None, None)
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("Missing query parameter 'replica'")
        )
    );
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/files/{u}?replica=AWS"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["title"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("'AWS' is not one of ['aws', 'gcp']")
        )
    );
    let (st, _, _) = s
        .call(Method::GET, "/v1/files/nope?replica=aws", None, None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = s
        .call(Method::HEAD, "/v1/files/nope?replica=aws", None, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/files/{u}?replica=gcp"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "replicas are separate buckets");
}

async fn three_files(s: &Server) -> Vec<Value> {
    let mut files = Vec::new();
    for (i, name) in ["a.json", "dir/b.txt", "c.bin"].iter().enumerate() {
        let u = uuid();
        assert_eq!(
            s.upload(&u, V1, format!("file {i}").as_bytes(), "application/json")
                .await,
            StatusCode::CREATED
        );
        files.push(json!({"uuid": u, "version": V1, "name": name, "indexed": i == 0}));
    }
    files
}

#[tokio::test]
async fn bundles_put_get_patch_delete() {
    let s = start().await;
    let files = three_files(&s).await;
    let b = uuid();
    let (st, v) = s.put_bundle(&b, V1, json!(files)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["manifest"]["files"][1]["name"], "dir/b.txt");
    assert_eq!(
        v["manifest"]["files"][0]["s3-etag"].as_str().map(str::len),
        Some(32)
    );
    let (st, _) = s.put_bundle(&b, V1, json!(files)).await;
    assert_eq!(st, StatusCode::OK, "identical retry creates nothing new");
    let (st, v) = s.put_bundle(&b, V1, json!(files[..2])).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("bundle_already_exists"))
    );
    let missing = json!([{"uuid": uuid(), "version": V1, "name": "x", "indexed": false}]);
    let (st, v) = s.put_bundle(&uuid(), V1, missing).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("file_missing"))
    );
    let dup = json!([files[0].clone(), {"uuid": files[1]["uuid"], "version": V1, "name": "a.json", "indexed": false}]);
    let (st, v) = s.put_bundle(&uuid(), V1, dup).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("duplicate_filename"))
    );
    for bad in ["../x", "/abs", "a/./b", "", "a\\b"] {
        let f = json!([{"uuid": files[0]["uuid"], "version": V1, "name": bad, "indexed": false}]);
        let (st, v) = s.put_bundle(&uuid(), V1, f).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("illegal_arguments")),
            "{bad:?}"
        );
    }
    let f =
        json!([{"uuid": files[0]["uuid"], "version": "yesterday", "name": "n", "indexed": false}]);
    let (st, v) = s.put_bundle(&uuid(), V1, f).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_version"))
    );

    let (st, h, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["x-openapi-paginated-content-key"], "bundle.files");
    assert_eq!(v["bundle"]["version"], V1);
    assert_eq!(v["bundle"]["creator_uid"], 7);
    assert!(
        v["bundle"]["files"][0]["s3_etag"].is_string(),
        "API shows s3_etag"
    );
    let (st, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws&directurls=true&presignedurls=true"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("only_one_urltype"))
    );
    let (_, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws&presignedurls=true"),
            None,
            None,
        )
        .await;
    let url = v["bundle"]["files"][2]["url"].as_str().unwrap().to_string();
    assert_eq!(
        s.http.get(url).send().await.unwrap().text().await.unwrap(),
        "file 2"
    );

    // PATCH: remove one, add one; the result is a new version.
    let extra = uuid();
    assert_eq!(
        s.upload(&extra, V1, b"extra", "text/plain").await,
        StatusCode::CREATED
    );
    let patch = json!({"remove_files": [files[0]], "add_files": [{"uuid": extra, "version": V1, "name": "extra.txt", "indexed": false}]});
    let (st, _, v) = s
        .call(
            Method::PATCH,
            &format!("/v1/bundles/{b}?replica=aws&version={V1}"),
            Some(&s.user),
            Some(patch),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let new_version = v["version"].as_str().unwrap().to_string();
    assert!(new_version.as_str() > V1);
    let (_, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws"),
            None,
            None,
        )
        .await;
    let names: Vec<&str> = v["bundle"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["dir/b.txt", "c.bin", "extra.txt"]);
    let too_many: Vec<Value> = (0..1001).map(|_| files[0].clone()).collect();
    let (st, _, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/bundles/{b}?replica=aws&version={V1}"),
            Some(&s.user),
            Some(json!({"add_files": too_many})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, v) = s
        .call(
            Method::PATCH,
            &format!("/v1/bundles/{b}?replica=aws&version={V1}"),
            Some(&s.user),
            Some(json!({"add_files": [files[1]]})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("duplicate_filename"))
    );
    let (st, _, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/bundles/{}?replica=aws&version={V1}", uuid()),
            Some(&s.user),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // DELETE: admins only; a versioned tombstone hides one version; a whole one hides all.
    let (srv, bid) = (&s, b.clone());
    let del = |token: String, q: String, reason: &'static str| {
        let bid = bid.clone();
        async move {
            srv.call(
                Method::DELETE,
                &format!("/v1/bundles/{bid}?replica=aws{q}"),
                Some(&token),
                Some(json!({"reason": reason})),
            )
            .await
        }
    };
    let (st, _, v) = del(s.user.clone(), String::new(), "r").await;
    assert_eq!(
        (st, v["title"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("You can't delete bundles with these credentials!")
        )
    );
    let (st, _, _) = del(s.admin.clone(), format!("&version={new_version}"), "bad").await;
    assert_eq!(st, StatusCode::OK);
    let (_, _, v) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws"),
            None,
            None,
        )
        .await;
    assert_eq!(
        v["bundle"]["version"], V1,
        "the tombstoned version is skipped"
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws&version={new_version}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = del(s.admin.clone(), String::new(), "gone").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = del(s.admin.clone(), String::new(), "gone").await;
    assert_eq!(st, StatusCode::OK, "same tombstone again is a no-op");
    let (st, _, v) = del(s.admin.clone(), String::new(), "another reason").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("bundle_tombstone_already_exists")
        )
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws&version={V1}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "whole-bundle tombstone hides every version"
    );
    let (st, _, v) = del(s.admin.clone(), "&version=2017".into(), "r").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_version"))
    );
    let (st, _, _) = s
        .call(
            Method::DELETE,
            &format!("/v1/bundles/{}?replica=aws", uuid()),
            Some(&s.admin),
            Some(json!({"reason": "r"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bundle_manifests_page_with_links() {
    let s = start().await;
    let mut files = Vec::new();
    for i in 0..25 {
        let u = uuid();
        assert_eq!(
            s.upload(&u, V1, format!("f{i}").as_bytes(), "text/plain")
                .await,
            StatusCode::CREATED
        );
        files.push(json!({"uuid": u, "version": V1, "name": format!("f{i:02}"), "indexed": false}));
    }
    let b = uuid();
    assert_eq!(
        s.put_bundle(&b, V1, json!(files)).await.0,
        StatusCode::CREATED
    );
    let mut url = s.url(&format!("/v1/bundles/{b}?replica=aws&per_page=10"));
    let mut names = Vec::new();
    let mut statuses = Vec::new();
    loop {
        let r = s.http.get(&url).send().await.unwrap();
        statuses.push(r.status().as_u16());
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        assert_eq!(
            r.headers()["x-openapi-pagination"],
            if link.is_some() { "true" } else { "false" }
        );
        let v: Value = r.json().await.unwrap();
        names.extend(
            v["bundle"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string()),
        );
        match link {
            Some(l) => {
                url = l
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string()
            }
            None => break,
        }
    }
    assert_eq!(statuses, vec![206, 206, 200]);
    assert_eq!(
        names,
        (0..25).map(|i| format!("f{i:02}")).collect::<Vec<_>>()
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            &format!("/v1/bundles/{b}?replica=aws&per_page=9"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn enumeration_pages_through_live_bundles_only() {
    let s = start().await;
    let files = three_files(&s).await;
    let mut live = std::collections::BTreeSet::new();
    let mut bundles = Vec::new();
    for i in 0..30 {
        let b = uuid();
        let versions: &[&str] = if i % 5 == 0 { &[V1, V2] } else { &[V1] };
        for v in versions {
            assert_eq!(
                s.put_bundle(&b, v, json!(files)).await.0,
                StatusCode::CREATED
            );
        }
        bundles.push(b.clone());
        match i % 7 {
            0 => {
                s.call(
                    Method::DELETE,
                    &format!("/v1/bundles/{b}?replica=aws"),
                    Some(&s.admin),
                    Some(json!({"reason": "x"})),
                )
                .await;
            }
            1 => {
                s.call(
                    Method::DELETE,
                    &format!("/v1/bundles/{b}?replica=aws&version={V1}"),
                    Some(&s.admin),
                    Some(json!({"reason": "x"})),
                )
                .await;
                for v in versions.iter().filter(|v| **v != V1) {
                    live.insert(format!("{b}.{v}"));
                }
            }
            _ => {
                for v in versions {
                    live.insert(format!("{b}.{v}"));
                }
            }
        }
    }
    let mut seen = Vec::new();
    let mut url = s.url("/v1/bundles/all?replica=aws&per_page=10");
    loop {
        let r = s.http.get(&url).send().await.unwrap();
        let status = r.status();
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let v: Value = r.json().await.unwrap();
        for b in v["bundles"].as_array().unwrap() {
            seen.push(format!(
                "{}.{}",
                b["uuid"].as_str().unwrap(),
                b["version"].as_str().unwrap()
            ));
        }
        if status == StatusCode::PARTIAL_CONTENT {
            assert_eq!(v["page_count"], 10);
            assert_eq!(v["has_more"], true);
            url = v["link"].as_str().unwrap().to_string();
            assert!(link.unwrap().ends_with("; rel='next'"));
        } else {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(v["has_more"], false);
            break;
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "key order");
    assert_eq!(
        seen.into_iter().collect::<std::collections::BTreeSet<_>>(),
        live,
        "every live bundle exactly once, no dead ones"
    );
    let (st, _, _) = s
        .call(
            Method::GET,
            "/v1/bundles/all?replica=aws&prefix=!@",
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = s
        .call(
            Method::GET,
            "/v1/bundles/all?replica=aws&per_page=501",
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let prefix = &bundles[3][..4];
    let (_, _, v) = s
        .call(
            Method::GET,
            &format!(
                "/v1/bundles/all?replica=aws&prefix={}",
                prefix.to_uppercase()
            ),
            None,
            None,
        )
        .await;
    assert!(
        v["bundles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["uuid"].as_str().unwrap().starts_with(prefix))
    );
}

#[tokio::test]
async fn service_routes_and_read_only_mode() {
    let s = start().await;
    let (st, _, v) = s.call(Method::GET, "/version", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["version_info"]["version"].is_string());
    let (st, _, v) = s.call(Method::GET, "/internal/health", None, None).await;
    assert_eq!(
        (st, v["Healthy"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    for dependency in ["replica:aws", "replica:gcp", "queues", "search"] {
        assert_eq!(v["checks"][dependency], "ok", "{v}");
    }
    let (st, _, v) = s.call(Method::GET, "/v1/swagger.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["servers"][0]["url"], format!("{}/v1", s.base));
    let (st, _, _) = s.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, v) = s.call(Method::POST, "/v1/bundles/all", None, None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (st, _, _) = s
        .call(Method::GET, "/v1/bundles/all/?replica=aws", None, None)
        .await;
    assert_eq!(st, StatusCode::OK, "one trailing slash is ignored");

    let ro = start_with("", "read_only = true", Duration::ZERO).await;
    let r = ro
        .http
        .put(ro.url(&format!(
            "/v1/files/{}/content?version={V1}&replica=aws",
            uuid()
        )))
        .bearer_auth(&ro.user)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "10");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "read_only");
    let (st, _, _) = ro
        .call(Method::GET, "/v1/bundles/all?replica=aws", None, None)
        .await;
    assert_eq!(st, StatusCode::OK, "reads still work");
}

#[tokio::test]
async fn bundle_put_waits_for_files_that_arrive_late() {
    let s = start_with("", "", Duration::from_secs(5)).await;
    let u = uuid();
    let b = uuid();
    let files = json!([{"uuid": u, "version": V1, "name": "late.txt", "indexed": false}]);
    let put = s.put_bundle(&b, V1, files);
    let late = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.upload(&u, V1, b"late", "text/plain").await
    };
    let ((st, v), up) = tokio::join!(put, late);
    assert_eq!(up, StatusCode::CREATED);
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

fn write_jwks(dir: &Path) -> (jsonwebtoken::EncodingKey, PathBuf) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let doc = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    (jsonwebtoken::EncodingKey::from_ec_der(doc.as_ref()), path)
}

#[tokio::test]
async fn tokens_from_a_configured_issuer() {
    let keydir = tempfile::tempdir().unwrap();
    let (key, jwks) = write_jwks(keydir.path());
    let s = start_with(
        &format!(
            "[auth]\nlocal_issuer = false\nemail_claim = \"https://example.org/email\"\ngroup_claim = \"https://example.org/group\"\n[[auth.issuers]]\nissuer = \"https://idp.example.org/\"\naudiences = [\"dss-test\"]\njwks_file = \"{}\"\n",
            jwks.display()
        ),
        "",
        Duration::ZERO,
    )
    .await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mint = |iss: &str, aud: &str, exp: i64, group: &str| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("k1".into());
        let claims = json!({"iss": iss, "aud": aud, "exp": exp, "iat": now, "sub": "x",
            "https://example.org/email": "x@example.org", "https://example.org/group": group});
        jsonwebtoken::encode(&h, &claims, &key).unwrap()
    };
    let put = |token: String| {
        let s = &s;
        async move {
            s.http
                .put(s.url(&format!(
                    "/v1/files/{}/content?version={V1}&replica=aws",
                    uuid()
                )))
                .bearer_auth(token)
                .body("x")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        put(mint(
            "https://idp.example.org/",
            "dss-test",
            now + 600,
            "dbio"
        ))
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(mint("https://idp.example.org/", "other", now + 600, "dbio")).await,
        StatusCode::UNAUTHORIZED,
        "wrong audience"
    );
    assert_eq!(
        put(mint(
            "https://idp.example.org/",
            "dss-test",
            now - 10,
            "dbio"
        ))
        .await,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    assert_eq!(
        put(mint(
            "https://evil.example.org/",
            "dss-test",
            now + 600,
            "dbio"
        ))
        .await,
        StatusCode::FORBIDDEN,
        "untrusted issuer"
    );
    assert_eq!(
        put(mint(
            "https://idp.example.org/",
            "dss-test",
            now + 600,
            "public"
        ))
        .await,
        StatusCode::FORBIDDEN,
        "wrong group"
    );
    assert_eq!(
        put(s.user.clone()).await,
        StatusCode::FORBIDDEN,
        "local issuer disabled"
    );
}

#[tokio::test]
async fn the_api_document_matches_the_router() {
    let s = start().await;
    let (_, _, doc) = s.call(Method::GET, "/v1/swagger.json", None, None).await;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let concrete = format!("/v1{}", path.replace("{uuid}", &uuid()));
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let required: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .filter_map(|p| p["name"].as_str())
                .collect();
            let body = op.get("requestBody").map(|_| json!({}));
            // `{}` among the requirements makes a token optional.
            let optional = op["security"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if op.get("security").is_some() && !optional {
                let (st, _, v) = s.call(m.clone(), &concrete, None, body.clone()).await;
                assert_eq!(
                    st,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} without a token: {v}"
                );
            }
            // Each required query parameter, left out alone, is reported by name.
            let id = uuid();
            for missing in &required {
                let q: Vec<String> = required
                    .iter()
                    .filter(|r| *r != missing)
                    .map(|r| {
                        let value = match *r {
                            "version" => V1,
                            "uuid" => id.as_str(),
                            _ => "aws",
                        };
                        format!("{r}={value}")
                    })
                    .collect();
                let (st, _, v) = s
                    .call(
                        m.clone(),
                        &format!("{concrete}?{}", q.join("&")),
                        Some(&s.admin),
                        body.clone(),
                    )
                    .await;
                assert_eq!(
                    st,
                    StatusCode::BAD_REQUEST,
                    "{method} {path} without {missing}: {v}"
                );
                if st == StatusCode::BAD_REQUEST
                    && v.is_object()
                    && v["title"]
                        .as_str()
                        .is_some_and(|t| t.contains("required property"))
                {
                    continue; // the body is checked first, as in the original
                }
                if m != Method::HEAD {
                    assert_eq!(
                        v["title"],
                        format!("Missing query parameter '{missing}'"),
                        "{method} {path}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "every documented operation was checked");
}

#[tokio::test]
async fn pem_and_jwks_url_issuers() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let keydir = tempfile::tempdir().unwrap();
    // Issuer A: a PEM public key file.
    let doc = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
    let lines: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let pem_path = keydir.path().join("a.pem");
    std::fs::write(
        &pem_path,
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let key_a = jsonwebtoken::EncodingKey::from_ec_der(doc.as_ref());
    // Issuer B: a JWKS served over HTTP, fetched when a token names an unknown kid.
    let (key_b, jwks_file) = write_jwks(keydir.path());
    let jwks = std::fs::read_to_string(&jwks_file).unwrap();
    let idp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_addr = idp.local_addr().unwrap();
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = jwks.clone();
            async move { body }
        }),
    );
    tokio::spawn(async move { axum::serve(idp, app).await });
    let s = start_with(
        &format!(
            "[[auth.issuers]]\nissuer = \"https://a.example.org/\"\naudiences = [\"dss\"]\npem_file = \"{}\"\n\
             [[auth.issuers]]\nissuer = \"https://b.example.org/\"\naudiences = [\"dss\"]\njwks_url = \"http://{idp_addr}/jwks.json\"\n",
            pem_path.display()
        ),
        "",
        Duration::ZERO,
    )
    .await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mint = |iss: &str, kid: Option<&str>, key: &jsonwebtoken::EncodingKey| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        let claims = json!({"iss": iss, "aud": "dss", "exp": now + 600, "email": "x@example.org", "group": "dbio"});
        jsonwebtoken::encode(&h, &claims, key).unwrap()
    };
    let put = |token: String| {
        let s = &s;
        async move {
            s.http
                .put(s.url(&format!(
                    "/v1/files/{}/content?version={V1}&replica=aws",
                    uuid()
                )))
                .bearer_auth(token)
                .body("x")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        put(mint("https://a.example.org/", None, &key_a)).await,
        StatusCode::CREATED,
        "PEM issuer"
    );
    assert_eq!(
        put(mint("https://a.example.org/", None, &key_b)).await,
        StatusCode::UNAUTHORIZED,
        "wrong key for PEM issuer"
    );
    assert_eq!(
        put(mint("https://b.example.org/", Some("k1"), &key_b)).await,
        StatusCode::CREATED,
        "JWKS URL issuer"
    );
    assert_eq!(
        put(mint("https://b.example.org/", Some("k1"), &key_b)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "keys are cached after the first fetch"
    );
    assert_eq!(
        put(mint("https://b.example.org/", Some("k1"), &key_a)).await,
        StatusCode::UNAUTHORIZED,
        "wrong key for JWKS issuer"
    );
    // Unauthenticated requests naming unknown key ids cannot make the API fetch the issuer's
    // keys again and again: once per minute at most, one fetch at a time.
    let unknown: Vec<_> = (0..50)
        .map(|i| {
            put(mint(
                "https://b.example.org/",
                Some(&format!("k{i}x")),
                &key_b,
            ))
        })
        .collect();
    for st in futures::future::join_all(unknown).await {
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A token not valid before some time in the future is refused.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    let early = json!({"iss": "https://b.example.org/", "aud": "dss", "exp": now + 1200,
        "nbf": now + 600, "email": "x@example.org", "group": "dbio"});
    assert_eq!(
        put(jsonwebtoken::encode(&h, &early, &key_b).unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "not valid before nbf"
    );
}

#[tokio::test]
async fn every_request_has_a_correlation_id_that_reaches_the_bucket_events_it_causes() {
    let s = start().await;
    let answer = |id: Option<&str>| {
        let mut r = s.http.get(s.url("/version"));
        if let Some(id) = id {
            r = r.header("x-request-id", id);
        }
        async move {
            let res = r.send().await.unwrap();
            res.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        }
    };
    assert_eq!(answer(Some("trace-1")).await.as_deref(), Some("trace-1"));
    let made = answer(None).await.expect("a new id");
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let replaced = answer(Some("not a valid id")).await.expect("a new id");
    assert_ne!(replaced, "not a valid id");

    // A file written by a request: its bucket events (on the sync queue, which reads every key)
    // carry the request's id to the daemons.
    let d = second_process(&s, "");
    d.declare_queues().await.unwrap();
    let uuid = uuid();
    let r = s
        .http
        .put(s.url(&format!(
            "/v1/files/{uuid}/content?version={V1}&replica=aws"
        )))
        .bearer_auth(&s.user)
        .header("x-request-id", "upload-42")
        .body(b"traced".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sync = d.queue(dss_core::names::SYNC_QUEUE).await.unwrap();
    let messages = sync
        .receive(10, Duration::from_secs(30), Duration::from_millis(100))
        .await
        .unwrap();
    let ids: Vec<(String, Option<String>)> = messages
        .iter()
        .map(|m| {
            let e: dss_core::ports::BucketEvent = serde_json::from_str(&m.body).unwrap();
            (e.key, e.correlation_id)
        })
        .collect();
    assert!(
        ids.iter()
            .any(|(k, c)| k == &format!("files/{uuid}.{V1}") && c.as_deref() == Some("upload-42")),
        "{ids:?}"
    );
    assert!(
        ids.iter().all(|(_, c)| c.as_deref() == Some("upload-42")),
        "{ids:?}"
    );
}

#[tokio::test]
async fn answers_given_before_the_body_was_read_close_the_connection() {
    let s = start().await;
    let body = vec![7u8; 800_000];
    let url = |u: &str| s.url(&format!("/v1/files/{u}/content?version={V1}&replica=aws"));
    let connection = |r: &reqwest::Response| {
        r.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Refused before a byte of the body is read: the client must not reuse the connection.
    let r = s
        .http
        .put(url(&uuid()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(connection(&r).as_deref(), Some("close"));
    // Read to the end: the connection stays open for the next request.
    let r = s
        .http
        .put(url(&uuid()))
        .bearer_auth(&s.user)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(connection(&r), None);
    let r = s.http.get(s.url("/version")).send().await.unwrap();
    assert_eq!(connection(&r), None, "no body, nothing to close for");
}

#[tokio::test]
async fn bundle_writes_need_the_writer_group() {
    let s = start().await;
    let b = uuid();
    let put = format!("/v1/bundles/{b}?version={V1}&replica=aws");
    let body = json!({"creator_uid": 7, "files": []});
    let (st, _, v) = s
        .call(Method::PUT, &put, Some(&s.outsider), Some(body.clone()))
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("Forbidden")),
        "{v}"
    );
    let (st, _, v) = s.call(Method::PUT, &put, Some(&s.user), Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let patch = format!("/v1/bundles/{b}?version={V1}&replica=aws");
    let (st, _, v) = s
        .call(Method::PATCH, &patch, Some(&s.outsider), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn a_private_deployment_asks_a_token_for_the_operations_it_names() {
    let s = start_with("[auth]\nrequire = [\"all\"]\n", "", Duration::ZERO).await;
    let file = uuid();
    assert_eq!(
        s.upload(&file, V1, b"{}", "application/json").await,
        StatusCode::CREATED
    );
    let open_in_the_original = [
        (Method::GET, format!("/v1/files/{file}?replica=aws")),
        (Method::HEAD, format!("/v1/files/{file}?replica=aws")),
        (Method::GET, "/v1/bundles/all?replica=aws".to_string()),
        (Method::GET, format!("/v1/bundles/{}?replica=aws", uuid())),
        (Method::POST, "/v1/search?replica=aws".to_string()),
        (Method::GET, "/v1/events?replica=aws".to_string()),
        (Method::GET, format!("/ga4gh/drs/v1/objects/{file}")),
    ];
    for (m, path) in &open_in_the_original {
        let body = (*m == Method::POST).then(|| json!({"es_query": {}}));
        let (st, _, _) = s.call(m.clone(), path, None, body.clone()).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{m} {path}");
        let (st, _, _) = s.call(m.clone(), path, Some(&s.user), body).await;
        assert_ne!(st, StatusCode::UNAUTHORIZED, "{m} {path} with a token");
    }
    // The document says so, for the CLIs; it, the version and health stay open.
    let (st, _, doc) = s.call(Method::GET, "/v1/swagger.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        doc["paths"]["/bundles/{uuid}"]["get"]["security"],
        json!([{"BearerAuth": []}])
    );
    assert_eq!(
        doc["paths"]["/search"]["post"]["security"],
        json!([{"BearerAuth": []}])
    );
    for path in ["/version", "/internal/health"] {
        let (st, _, _) = s.call(Method::GET, path, None, None).await;
        assert_eq!(st, StatusCode::OK, "{path}");
    }
    // A deployment that names an operation that does not exist does not start.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dss_config::Config::from_toml(&format!(
        "data_dir = \"{}\"\n[auth]\nrequire = [\"getBundel\"]\n",
        dir.path().display()
    ))
    .unwrap();
    let d = dss_runtime::deployment::Deployment::open(cfg, dss_core::clock::system()).unwrap();
    let e = dss_api::state(d, None).err().expect("refused").to_string();
    assert!(e.contains("auth.require") && e.contains("getBundel"), "{e}");
}

#[tokio::test]
async fn only_a_bundles_creator_or_an_administrator_adds_versions_to_it() {
    let s = start().await;
    let b = uuid();
    let at = |v: &str| format!("/v1/bundles/{b}?version={v}&replica=aws");
    let body = json!({"creator_uid": 7, "files": []});
    let (st, _, v) = s
        .call(Method::PUT, &at(V1), Some(&s.user), Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // A colleague of the writer group may not derive a newer "latest" version of it…
    let (st, _, v) = s
        .call(Method::PATCH, &at(V1), Some(&s.colleague), Some(json!({})))
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("Forbidden")),
        "{v}"
    );
    let later = "2026-02-01T000000.000000Z";
    let (st, _, v) = s
        .call(
            Method::PUT,
            &at(later),
            Some(&s.colleague),
            Some(body.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "nor PUT one: {v}");
    // …its creator may, and an administrator; an administrator's version stays the creator's.
    let (st, _, v) = s
        .call(Method::PATCH, &at(V1), Some(&s.user), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, v) = s
        .call(Method::PATCH, &at(V1), Some(&s.admin), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let derived = v["version"].as_str().unwrap().to_string();
    let (st, _, v) = s
        .call(Method::PATCH, &at(&derived), Some(&s.user), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, v) = s
        .call(
            Method::PATCH,
            &at(&derived),
            Some(&s.colleague),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    // A re-PUT of the same version by its creator is still idempotent.
    let (st, _, v) = s
        .call(Method::PUT, &at(V1), Some(&s.user), Some(body))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A bundle written before creators were recorded: administrators only.
    let legacy = uuid();
    let d = second_process(&s, "");
    d.replicas["aws"]
        .store
        .put_bytes(
            &format!("bundles/{legacy}.{V1}"),
            bytes::Bytes::from(
                json!({"format": "0.0.1", "version": V1, "files": [], "creator_uid": 1})
                    .to_string(),
            ),
            dss_core::ports::PutOptions::default(),
        )
        .await
        .unwrap();
    let at = |v: &str| format!("/v1/bundles/{legacy}?version={v}&replica=aws");
    let (st, _, _) = s
        .call(Method::PATCH, &at(V1), Some(&s.user), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, v) = s
        .call(Method::PATCH, &at(V1), Some(&s.admin), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}
