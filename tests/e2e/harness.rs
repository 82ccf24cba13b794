//! Starts `dss up` on a free port in a temp directory and stops it with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `dss up`.
pub struct Dss {
    pub child: Child,
    pub base: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Where the process's log (its standard error) goes.
    pub log: std::path::PathBuf,
}

/// The embedded deployment on the data directory `data`, opened as another process would.
pub fn open_data(data: &std::path::Path) -> dss_runtime::deployment::Deployment {
    let cfg = dss_config::Config::from_toml(&format!("data_dir = \"{}\"", data.display()))
        .expect("config");
    dss_runtime::deployment::Deployment::open(cfg, dss_core::clock::system()).expect("open")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Dss {
    /// Starts `dss up` on a new data directory and waits until it answers.
    pub async fn up() -> Dss {
        Self::up_in(tempfile::tempdir().expect("tempdir")).await
    }

    /// Starts `dss up` on the data directory inside `dir` and waits until it answers.
    pub async fn up_in(dir: tempfile::TempDir) -> Dss {
        let data = dir.path().join("data");
        Self::up_at(dir, &data).await
    }

    /// Starts `dss up` on a new data directory with extra environment (`DSS_*` configuration).
    pub async fn up_with(env: &[(&str, String)]) -> Dss {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::start(dir, &data, env).await
    }

    /// Starts `dss up` again on the data directory inside `dir`, with extra environment.
    pub async fn up_in_with(dir: tempfile::TempDir, env: &[(&str, String)]) -> Dss {
        let data = dir.path().join("data");
        Self::start(dir, &data, env).await
    }

    /// Starts `dss up` on `data` (another process may use it too); `dir` is kept for cleanup.
    pub async fn up_at(dir: tempfile::TempDir, data: &std::path::Path) -> Dss {
        Self::start(dir, data, &[]).await
    }

    async fn start(dir: tempfile::TempDir, data: &std::path::Path, env: &[(&str, String)]) -> Dss {
        let port = free_port();
        let log = dir.path().join(format!("dss-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        // `dss up` prints no token: mint one with the key it will use.
        let minted = Command::new(env!("CARGO_BIN_EXE_dss"))
            .args(["token", "--admin", "--data-dir"])
            .arg(data)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("dss token");
        assert!(minted.status.success(), "dss token: {minted:?}");
        let token = String::from_utf8(minted.stdout)
            .expect("token text")
            .trim()
            .to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dss"))
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn dss up");
        // Wait for the banner, then keep reading: a closed pipe would fail dss's later writes.
        let stdout = child.stdout.take().expect("stdout");
        let (seen, banner) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let found = lines.any(|l| l.starts_with("DSS is running at"));
            let _ = seen.send(found);
            lines.for_each(drop);
        });
        assert!(
            banner.await.unwrap_or(false),
            "dss up prints its banner; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("{base}/internal/health"))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "dss up did not answer; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Dss {
            child,
            base,
            token,
            dir,
            http,
            log,
        }
    }

    /// The data directory opened as another process would.
    pub fn deployment(&self) -> dss_runtime::deployment::Deployment {
        open_data(&self.dir.path().join("data"))
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Uploads bytes as a new file version; returns the file UUID.
    pub async fn upload(&self, version: &str, data: Vec<u8>, content_type: &str) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let r = self
            .http
            .put(format!(
                "{}/v1/files/{uuid}/content?version={version}&replica=aws",
                self.base
            ))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(data)
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status(), 201, "upload");
        uuid
    }

    /// Creates a bundle from `(uuid, name)` pairs; returns its UUID.
    pub async fn bundle(&self, version: &str, files: &[(String, String)]) -> String {
        self.bundle_in("aws", None, version, files).await
    }

    /// As [`Dss::bundle`], in `replica`, sent with `X-Request-Id: request_id` when given.
    pub async fn bundle_in(
        &self,
        replica: &str,
        request_id: Option<&str>,
        version: &str,
        files: &[(String, String)],
    ) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|(u, n)| serde_json::json!({"uuid": u, "version": version, "name": n, "indexed": n.ends_with(".json")}))
            .collect();
        let mut put = self
            .http
            .put(format!(
                "{}/v1/bundles/{uuid}?version={version}&replica={replica}",
                self.base
            ))
            .bearer_auth(&self.token);
        if let Some(id) = request_id {
            put = put.header("x-request-id", id);
        }
        let r = put
            .json(&serde_json::json!({"creator_uid": 1, "files": files}))
            .send()
            .await
            .expect("put bundle");
        assert_eq!(r.status(), 201, "put bundle");
        uuid
    }

    /// Waits until `es_query` finds `hits` bundles in replica `aws`.
    pub async fn wait_searchable(&self, es_query: &serde_json::Value, hits: u64) {
        wait_searchable_at(&self.http, &self.base, es_query, hits).await;
    }

    /// `GET path` until `done` holds of the JSON answer (up to 60 s); the answer.
    pub async fn until(
        &self,
        path: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        until_json(&self.http, &self.token, &url, 60, done).await
    }

    /// Kills the process with SIGKILL and hands back its directory.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for Dss {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `es_query` finds `hits` bundles in replica `aws` of the API at `base` (up to 60 s).
pub async fn wait_searchable_at(
    http: &reqwest::Client,
    base: &str,
    es_query: &serde_json::Value,
    hits: u64,
) {
    for _ in 0..3000 {
        let v: serde_json::Value = http
            .post(format!("{base}/v1/search?replica=aws"))
            .json(&serde_json::json!({"es_query": es_query}))
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("search answer");
        if v["total_hits"] == hits {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{es_query} never found {hits} bundles");
}

/// `GET url` with `token` until `done` holds of the JSON answer (up to `secs` seconds; a
/// request that fails counts as a `null` answer); the answer.
pub async fn until_json(
    http: &reqwest::Client,
    token: &str,
    url: &str,
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = match http.get(url).bearer_auth(token).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "GET {url} never got there: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads `body` as `sample.json` to replica `aws` of the API at `base` and makes a bundle of
/// it (indexed) at `version`; the bundle's UUID.
pub async fn put_sample_bundle(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    version: &str,
    body: String,
) -> String {
    let file = uuid::Uuid::new_v4().to_string();
    let r = http
        .put(format!(
            "{base}/v1/files/{file}/content?version={version}&replica=aws"
        ))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201, "upload");
    let bundle = uuid::Uuid::new_v4().to_string();
    let r = http
        .put(format!("{base}/v1/bundles/{bundle}?version={version}&replica=aws"))
        .bearer_auth(token)
        .json(&serde_json::json!({"creator_uid": 1, "files": [{"uuid": file, "version": version, "name": "sample.json", "indexed": true}]}))
        .send()
        .await
        .expect("put bundle");
    assert_eq!(r.status(), 201, "put bundle: {:?}", r.text().await);
    bundle
}
