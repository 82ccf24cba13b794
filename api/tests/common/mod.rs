//! The harness of the API integration tests: a real server on a random port over a temp data
//! directory, driven by an HTTP client.
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::time::Duration;

use dss_api::auth::LocalIssuer;
use dss_config::Config;
use dss_core::checksum::checksums_of;
use dss_runtime::deployment::Deployment;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// A running API server with its data directory and tokens.
pub struct Server {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub admin: String,
    pub user: String,
    pub outsider: String,
    /// Another member of the writer group.
    pub colleague: String,
    pub http: Client,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a server; `extra_toml` adds top-level tables (`{data_dir}` in it is the data
/// directory), `extra_api` adds `[api]` keys.
pub async fn start_with(extra_toml: &str, extra_api: &str, file_wait: Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let extra_toml = extra_toml.replace("{data_dir}", &dir.path().display().to_string());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let toml = format!(
        "data_dir = \"{}\"\n{extra_toml}\n[api]\nlisten = \"{addr}\"\nmax_json_body = 200000\nmax_small_json_body = 200000\nmax_upload = 1000000\nbundle_file_wait_ms = {}\n{extra_api}\n",
        dir.path().display(),
        file_wait.as_millis()
    );
    let cfg = Config::from_toml(&toml).unwrap();
    let local = LocalIssuer::load_or_create(&cfg.data_dir.join("keys")).unwrap();
    let admin = local
        .mint("admin@example.org", "dbio", true, 3600, &cfg.auth)
        .unwrap();
    let user = local
        .mint("user@example.org", "dbio", false, 3600, &cfg.auth)
        .unwrap();
    let colleague = local
        .mint("colleague@example.org", "dbio", false, 3600, &cfg.auth)
        .unwrap();
    let outsider = local
        .mint("someone@example.org", "someone", false, 3600, &cfg.auth)
        .unwrap();
    let deployment = Deployment::open(cfg, dss_core::clock::system()).unwrap();
    let state = dss_api::state(deployment, Some(&local)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dss_api::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Server {
        base: format!("http://{addr}"),
        dir,
        admin,
        user,
        outsider,
        colleague,
        http,
        stop: Some(tx),
    }
}

pub async fn start() -> Server {
    start_with("", "", Duration::ZERO).await
}

pub const V1: &str = "2026-01-01T000000.000000Z";
pub const V2: &str = "2026-01-02T000000.000000Z";

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Server {
    pub fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    pub fn staging(&self) -> PathBuf {
        let p = self.dir.path().join("staging");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub async fn call(
        &self,
        m: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut r = self.http.request(m, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, v)
    }

    pub async fn upload(
        &self,
        uuid: &str,
        version: &str,
        data: &[u8],
        content_type: &str,
    ) -> StatusCode {
        self.http
            .put(self.url(&format!(
                "/v1/files/{uuid}/content?version={version}&replica=aws"
            )))
            .bearer_auth(&self.user)
            .header("content-type", content_type)
            .body(data.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn put_bundle(&self, uuid: &str, version: &str, files: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(
                Method::PUT,
                &format!("/v1/bundles/{uuid}?version={version}&replica=aws"),
                Some(&self.user),
                Some(json!({"creator_uid": 7, "files": files})),
            )
            .await;
        (s, v)
    }

    pub fn bucket_files(&self, sub: &str) -> usize {
        let p = self.dir.path().join("buckets/aws").join(sub);
        std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
    }
}

pub fn checksums_json(data: &[u8]) -> Value {
    let c = checksums_of(data);
    json!({"sha256": c.sha256, "sha1": c.sha1, "s3_etag": c.s3_etag, "crc32c": c.crc32c})
}

pub fn staged(s: &Server, name: &str, data: &[u8]) -> String {
    let p = s.staging().join(name);
    std::fs::write(&p, data).unwrap();
    format!("file://{}", p.canonicalize().unwrap().display())
}

/// The server's data directory opened as a second process would, with `extra_toml`.
pub fn second_process(s: &Server, extra_toml: &str) -> Deployment {
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{}\"\n{extra_toml}",
        s.dir.path().display()
    ))
    .unwrap();
    Deployment::open(cfg, dss_core::clock::system()).unwrap()
}
