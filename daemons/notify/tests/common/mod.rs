//! A deployment in a temp directory with the notify daemon running on a manual clock, and
//! webhook receivers on 127.0.0.1.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use dss_config::Config;
use dss_core::checksum::checksums_of;
use dss_core::clock::ManualClock;
use dss_core::ports::{Attempt, BlobStore, PutOptions, Subscription, SubscriptionKind};
use dss_runtime::deployment::Deployment;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const U1: &str = "11111111-1111-4111-8111-111111111111";
pub const V1: &str = "2020-01-01T000000.000000Z";
pub const V2: &str = "2020-02-01T000000.000000Z";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub d: Deployment,
    pub clock: Arc<ManualClock>,
    pub stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the notify daemon with `extra` configuration (TOML lines).
pub async fn start(extra: &str) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "data_dir = \"{}\"\n[api]\npublic_url = \"https://dss.example.org\"\n[notify]\n{extra}\n",
        dir.path().display()
    );
    let cfg = Config::from_toml(&toml).expect("config");
    let clock = Arc::new(ManualClock::starting_at(
        time::macros::datetime!(2026-01-01 00:00:00 UTC),
    ));
    let d = Deployment::open(cfg, clock.clone()).expect("deployment");
    d.declare_queues().await.expect("queues");
    let stop = CancellationToken::new();
    let (dep, token) = (d.clone(), stop.clone());
    tokio::spawn(async move { dss_notify::run(&dep, token).await });
    Env {
        dir,
        d,
        clock,
        stop,
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
            .expect("put");
    }

    /// Writes a bundle with one JSON file (`project_0.json` with `title`).
    pub async fn bundle(&self, uuid: &str, version: &str, title: &str) {
        let data = json!({"describedBy": "https://schema.example.org/type/project/1.0.0/project",
            "title": title})
        .to_string()
        .into_bytes();
        let c = checksums_of(&data);
        self.put(
            &format!("blobs/{}.{}.{}.{}", c.sha256, c.sha1, c.s3_etag, c.crc32c),
            data.clone(),
        )
        .await;
        let manifest = json!({"format": "0.0.1", "version": version, "creator_uid": 1, "files": [{
            "name": "project_0.json", "uuid": "00000000-0000-4000-8000-000000000001",
            "version": version, "content-type": "application/json", "size": data.len(),
            "indexed": true, "crc32c": c.crc32c, "s3-etag": c.s3_etag, "sha1": c.sha1,
            "sha256": c.sha256}]});
        self.put(
            &format!("bundles/{uuid}.{version}"),
            manifest.to_string().into_bytes(),
        )
        .await;
    }

    /// Stores a subscription of `kind` with `fields` (callback_url etc.); returns its uuid.
    pub async fn subscribe(&self, kind: SubscriptionKind, fields: Value) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        self.subscribe_as(&uuid, kind, fields).await;
        uuid
    }

    /// Stores a subscription with the given uuid (no per-owner limit: the API tests cover it).
    pub async fn subscribe_as(&self, uuid: &str, kind: SubscriptionKind, fields: Value) {
        let mut doc = fields;
        doc["uuid"] = uuid.into();
        doc["owner"] = "owner@example.org".into();
        doc["replica"] = "aws".into();
        let s = Subscription {
            uuid: uuid.to_string(),
            replica: "aws".into(),
            owner: "owner@example.org".into(),
            kind,
            document: doc,
        };
        assert!(
            self.d
                .subscriptions
                .create(&s, usize::MAX)
                .await
                .expect("create")
        );
    }

    /// The subscription's attempts, oldest first.
    pub async fn attempts(&self, sub: &str) -> Vec<Attempt> {
        let mut a = self
            .d
            .deliveries
            .attempts(sub, 1000)
            .await
            .expect("attempts");
        a.reverse();
        a
    }

    /// Waits (real time) until the subscription has made `n` attempts.
    pub async fn wait_attempts(&self, sub: &str, n: usize) -> Vec<Attempt> {
        for _ in 0..6000 {
            let a = self.attempts(sub).await;
            if a.len() >= n {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "subscription {sub}: expected {n} attempts, got {:?}",
            self.attempts(sub).await
        );
    }

    pub async fn dead_letters(&self) -> u64 {
        let dlq = self
            .d
            .queue(&format!("{}-dlq", dss_core::names::DELIVERY_QUEUE))
            .await
            .expect("dlq");
        dlq.stats().await.expect("stats").depth()
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A webhook receiver on 127.0.0.1 that records requests and answers with a settable status.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub status: Arc<Mutex<u16>>,
    pub delay: Arc<Mutex<Duration>>,
}

#[derive(Clone)]
struct RState {
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    delay: Arc<Mutex<Duration>>,
}

async fn record(
    State(s): State<RState>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    s.got.lock().expect("lock").push(Received {
        method,
        path: uri.path().to_string(),
        headers,
        body,
    });
    let delay = *s.delay.lock().expect("lock");
    tokio::time::sleep(delay).await;
    let status = StatusCode::from_u16(*s.status.lock().expect("lock")).unwrap_or(StatusCode::OK);
    (status, [("location", "http://127.0.0.1:9/elsewhere")])
}

impl Receiver {
    /// Starts a receiver on `port` (0 = any free port).
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let state = RState {
            got: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(Mutex::new(200)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            got: state.got,
            status: state.status,
            delay: state.delay,
        }
    }

    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    pub fn answer(&self, status: u16) {
        *self.status.lock().expect("lock") = status;
    }

    /// Makes the receiver wait this long before answering.
    pub fn answer_after(&self, delay: Duration) {
        *self.delay.lock().expect("lock") = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (real time) for `n` requests.
    pub async fn wait(&self, n: usize) -> Vec<Received> {
        for _ in 0..6000 {
            let r = self.received();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "receiver: expected {n} requests, got {}",
            self.received().len()
        );
    }
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
