//! An embedded deployment for the index tests, with or without the index daemon running.
#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dss_config::Config;
use dss_core::checksum::checksums_of;
use dss_core::names::INDEX_QUEUE;
use dss_core::ports::{BlobStore, PutOptions, SearchRequest};
use dss_runtime::deployment::Deployment;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const U1: &str = "11111111-1111-4111-8111-111111111111";
pub const V1: &str = "2020-01-01T000000.000000Z";
pub const V2: &str = "2020-02-01T000000.000000Z";

/// A deployment in a temp directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub d: Deployment,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A deployment with the index daemon running.
pub async fn start() -> Env {
    let env = open().await;
    let (dep, token) = (env.d.clone(), env.stop.clone());
    tokio::spawn(async move { dss_index::run(&dep, token).await });
    env
}

/// A deployment with its queues declared and no daemon running.
pub async fn open() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml(&format!("data_dir = \"{}\"", dir.path().display())).unwrap();
    let d = Deployment::open(cfg, dss_core::clock::system()).unwrap();
    d.declare_queues().await.unwrap();
    Env {
        dir,
        d,
        stop: CancellationToken::new(),
    }
}

impl Env {
    pub fn store(&self) -> Arc<dyn BlobStore> {
        self.d.replicas["aws"].store.clone()
    }

    pub async fn put(&self, key: &str, data: Vec<u8>) {
        self.store()
            .put_bytes(key, Bytes::from(data), PutOptions::default())
            .await
            .unwrap();
    }

    /// Writes the blobs and the manifest of a bundle; `files` are (name, content type, indexed, bytes).
    pub async fn bundle(&self, uuid: &str, version: &str, files: &[(&str, &str, bool, Vec<u8>)]) {
        let mut entries = Vec::new();
        for (i, (name, ctype, indexed, data)) in files.iter().enumerate() {
            let c = checksums_of(data);
            self.put(
                &format!("blobs/{}.{}.{}.{}", c.sha256, c.sha1, c.s3_etag, c.crc32c),
                data.clone(),
            )
            .await;
            entries.push(
                json!({"name": name, "uuid": format!("00000000-0000-4000-8000-{i:012}"),
                "version": version, "content-type": ctype, "size": data.len(), "indexed": indexed,
                "crc32c": c.crc32c, "s3-etag": c.s3_etag, "sha1": c.sha1, "sha256": c.sha256}),
            );
        }
        let manifest =
            json!({"format": "0.0.1", "version": version, "files": entries, "creator_uid": 1});
        self.put(
            &format!("bundles/{uuid}.{version}"),
            manifest.to_string().into_bytes(),
        )
        .await;
    }

    pub async fn search(&self, body: Value) -> Vec<(String, Value)> {
        let page = self
            .d
            .search
            .search(
                "aws",
                &SearchRequest {
                    body,
                    size: 100,
                    after: None,
                    with_source: true,
                },
            )
            .await
            .unwrap();
        page.hits
            .into_iter()
            .map(|h| (h.id, h.source.unwrap_or(Value::Null)))
            .collect()
    }

    /// Waits until the index queue and its dead-letter queue have no message in flight or waiting.
    pub async fn drained(&self) {
        let q = self.d.queue(INDEX_QUEUE).await.unwrap();
        for _ in 0..3000 {
            if q.stats().await.unwrap().depth() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("index queue did not drain");
    }

    pub async fn dead_letters(&self) -> u64 {
        let dlq = self.d.queue(&format!("{INDEX_QUEUE}-dlq")).await.unwrap();
        dlq.stats().await.unwrap().depth()
    }
}

pub fn donor(species: &str) -> Vec<u8> {
    json!({"describedBy": "https://schema.example.org/type/biomaterial/15.5.0/donor_organism",
           "genus_species": [{"text": species}], "organism_age": "38"})
    .to_string()
    .into_bytes()
}
