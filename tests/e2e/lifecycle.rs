//! `dss up` serves requests and shuts down gracefully: in-flight requests finish, nothing is torn.

use std::time::Duration;

use crate::harness::Dss;

const V: &str = "2026-02-03T040506.070809Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_upload_finish() {
    let mut dss = Dss::up().await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let chunk = bytes::Bytes::from(vec![7u8; 64 * 1024]);
    // A client trickling 4 MiB over ~1.3 s.
    let body = futures::stream::unfold(0u32, move |i| {
        let chunk = chunk.clone();
        async move {
            if i == 64 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok::<_, std::io::Error>(chunk), i + 1))
        }
    });
    let req = dss
        .http
        .put(format!(
            "{}/v1/files/{uuid}/content?version={V}&replica=aws",
            dss.base
        ))
        .bearer_auth(&dss.token)
        .header("content-length", (64 * 64 * 1024).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(req);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::block_in_place(|| dss.terminate());
    let answer = upload
        .await
        .expect("join")
        .expect("the in-flight request gets an answer");
    assert_eq!(answer.status(), 201, "the in-flight upload completed");
    assert!(status.success(), "dss exits cleanly on SIGTERM: {status:?}");
    let tmp = dss.dir.path().join("data/buckets/aws/.tmp");
    assert_eq!(
        std::fs::read_dir(tmp).expect("tmp dir").count(),
        0,
        "no torn temp files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dss = Dss::up().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let file = dss
        .upload(V, data.clone(), "application/octet-stream")
        .await;
    let bundle = dss.bundle(V, &[(file.clone(), "data.bin".into())]).await;
    let dir = dss.kill9();
    let dss = Dss::up_in(dir).await;
    let r = dss
        .http
        .get(format!("{}/v1/bundles/{bundle}?replica=aws", dss.base))
        .send()
        .await
        .expect("get bundle");
    assert_eq!(
        r.status(),
        200,
        "the bundle acknowledged before kill -9 is there"
    );
    let r = dss
        .http
        .get(format!("{}/v1/files/{file}?replica=aws", dss.base))
        .send()
        .await
        .expect("get file");
    assert_eq!(r.status(), 302);
    let url = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let bytes = dss
        .http
        .get(url)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(
        bytes.to_vec(),
        data,
        "the bytes acknowledged before kill -9 are intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_data_directory() {
    let first = Dss::up().await;
    let data = first.dir.path().join("data");
    let second = Dss::up_at(tempfile::tempdir().expect("tempdir"), &data).await;
    let mut writes = Vec::new();
    for i in 0..20u32 {
        let writer = if i % 2 == 0 { &first } else { &second };
        let file = writer
            .upload(
                V,
                format!("{{\"n\": {i}}}").into_bytes(),
                "application/json",
            )
            .await;
        writes.push((
            file.clone(),
            writer.bundle(V, &[(file, "n.json".into())]).await,
        ));
    }
    for (i, (file, bundle)) in writes.iter().enumerate() {
        let reader = if i % 2 == 0 { &second } else { &first };
        let r = reader
            .http
            .get(format!("{}/v1/bundles/{bundle}?replica=aws", reader.base))
            .send()
            .await
            .expect("get");
        assert_eq!(
            r.status(),
            200,
            "a bundle written by one process is read by the other"
        );
        let r = reader
            .http
            .head(format!("{}/v1/files/{file}?replica=aws", reader.base))
            .send()
            .await
            .expect("head");
        assert_eq!(r.status(), 200);
    }
    // Both processes index (one queue, each event to one of them) and both search everything.
    let query = serde_json::json!({"query": {"range": {"files.n_json.n": {"gte": 0}}}});
    first.wait_searchable(&query, 20).await;
    second.wait_searchable(&query, 20).await;
    let all: serde_json::Value = first
        .http
        .get(format!("{}/v1/bundles/all?replica=aws", first.base))
        .send()
        .await
        .expect("enumerate")
        .json()
        .await
        .expect("json");
    assert_eq!(all["bundles"].as_array().map(Vec::len), Some(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_correlation_id_is_on_the_log_lines_of_the_daemons_it_triggers() {
    let dss = Dss::up().await;
    let file = dss
        .upload(
            V,
            br#"{"donor": {"id": "traced"}}"#.to_vec(),
            "application/json",
        )
        .await;
    let bundle = uuid::Uuid::new_v4().to_string();
    let r = dss
        .http
        .put(format!(
            "{}/v1/bundles/{bundle}?version={V}&replica=aws",
            dss.base
        ))
        .bearer_auth(&dss.token)
        .header("x-request-id", "e2e-trace-7")
        .json(&serde_json::json!({"creator_uid": 1, "files": [{"uuid": file, "version": V, "name": "donor.json", "indexed": true}]}))
        .send()
        .await
        .expect("put bundle");
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("e2e-trace-7")
    );
    // The index daemon indexes the bundle (and sync copies it) under the request's id.
    let wanted = |line: &str| {
        line.contains("correlation_id=e2e-trace-7")
            && line.contains("worker=index")
            && line.contains("indexed bundle")
    };
    for _ in 0..600 {
        let log = std::fs::read_to_string(&dss.log).expect("log");
        if log.lines().any(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no index log line carries the request's id:\n{}",
        std::fs::read_to_string(&dss.log).unwrap_or_default()
    );
}
