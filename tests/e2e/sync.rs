//! Replication end to end: what is uploaded to replica `aws` of `dss up` is served by replica
//! `gcp`, deletions included; a sync killed with SIGKILL mid-copy of a large object is finished
//! by its successor.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Dss;

const V: &str = "2026-07-08T090807.060504Z";

/// Waits until `GET {path}` answers `status` (up to 30 s); returns the answer.
async fn answers(dss: &Dss, path: &str, status: u16) -> reqwest::Response {
    for _ in 0..3000 {
        let r = dss
            .http
            .get(format!("{}{path}", dss.base))
            .send()
            .await
            .expect("get");
        if r.status() == status {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never answered {status}");
}

/// The bytes of a file, following the download redirect.
async fn download(dss: &Dss, file: &str, replica: &str) -> Vec<u8> {
    let r = answers(dss, &format!("/v1/files/{file}?replica={replica}"), 302).await;
    let to = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let r = dss.http.get(to).send().await.expect("download");
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("bytes").to_vec()
}

#[tokio::test]
async fn what_is_uploaded_to_one_replica_is_served_by_the_other() {
    let dss = Dss::up().await;
    let a = dss
        .upload(V, b"{\"donor\": 1}".to_vec(), "application/json")
        .await;
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let b = dss.upload(V, big.clone(), "application/octet-stream").await;
    let bundle = dss
        .bundle(
            V,
            &[
                (a.clone(), "donor.json".into()),
                (b.clone(), "reads.bin".into()),
            ],
        )
        .await;
    let path = format!("/v1/bundles/{bundle}?replica=gcp&version={V}");
    let got: Value = answers(&dss, &path, 200).await.json().await.expect("json");
    let names: Vec<&str> = got["bundle"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["donor.json", "reads.bin"]);
    assert_eq!(download(&dss, &a, "gcp").await, b"{\"donor\": 1}");
    assert!(download(&dss, &b, "gcp").await == big, "identical bytes");
    let head = dss
        .http
        .head(format!("{}/v1/files/{b}?replica=gcp", dss.base))
        .send()
        .await
        .expect("head");
    let aws = dss
        .http
        .head(format!("{}/v1/files/{b}?replica=aws", dss.base))
        .send()
        .await
        .expect("head");
    for h in [
        "x-dss-sha256",
        "x-dss-sha1",
        "x-dss-s3-etag",
        "x-dss-crc32c",
    ] {
        assert_eq!(head.headers()[h], aws.headers()[h], "{h}");
    }

    // A deletion is a tombstone, which replicates too.
    let r = dss
        .http
        .delete(format!("{}/v1/bundles/{bundle}?replica=aws", dss.base))
        .bearer_auth(&dss.token)
        .json(&json!({"reason": "e2e"}))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    answers(&dss, &path, 404).await;
}

#[tokio::test]
async fn a_sync_killed_mid_copy_is_finished_by_its_successor() {
    let env = [("DSS_SYNC__VISIBILITY_SECS", "2".to_string())];
    let dss = Dss::up_with(&env).await;
    // Large enough that the copy into gcp (all four checksums) is seen under way.
    let big: Vec<u8> = (0..400_000_000u32).map(|i| (i % 253) as u8).collect();
    let file = dss.upload(V, big.clone(), "application/octet-stream").await;
    let gcp = dss.dir.path().join("data/buckets/gcp");
    let mut seen = false;
    for _ in 0..30000 {
        // A file in gcp holding some of the blob's bytes (not the small metadata documents).
        let partial = files_under(&gcp)
            .iter()
            .any(|len| (1 << 20..big.len() as u64).contains(len));
        if partial {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(seen, "no copy under way in gcp");
    let dir = dss.kill9();
    let dss = Dss::up_in_with(dir, &env).await;
    assert!(
        download(&dss, &file, "gcp").await == big,
        "the copy is complete"
    );
}

/// The sizes of the files below `dir`.
fn files_under(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => sizes.extend(files_under(&e.path())),
            Ok(_) => sizes.extend(e.metadata().map(|m| m.len())),
            Err(_) => {}
        }
    }
    sizes
}
