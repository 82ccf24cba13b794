//! The official `hca` 7.0.1 and `dbio` 1.0.0 CLIs work unchanged against `dss up`.
//!
//! Needs the CLIs: `infra/local/test.sh` installs them into `.tools/` and runs these tests (they
//! are ignored by a plain `cargo test`). `DSS_TEST_HCA` / `DSS_TEST_DBIO` may point elsewhere.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::Dss;

const V: &str = "2026-03-04T050607.080910Z";

/// One of the official CLIs: its binary and the variable naming its config file.
pub struct Cli {
    bin: PathBuf,
    config_var: &'static str,
    home: tempfile::TempDir,
}

fn binary(name: &str, var: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../.tools/{name}-venv/bin/{name}"));
    assert!(
        p.exists(),
        "the {name} CLI is not installed: run infra/local/test.sh (or set {var})"
    );
    p
}

impl Cli {
    /// The CLI `name` (binary from `var`, else `.tools/`) configured for `dss`.
    pub fn new(dss: &Dss, name: &str, var: &str, config_var: &'static str) -> Cli {
        let home = tempfile::tempdir().expect("tempdir");
        let swagger = format!("{}/v1/swagger.json", dss.base);
        let expires_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        // Authenticated calls: the deployment's bearer token as a stored OAuth2 token (the
        // CLIs otherwise fetch client secrets from the original's auth service).
        let cfg = serde_json::json!({"DSSClient": {"swagger_url": swagger}, "AuthClient": {"swagger_url": swagger},
            "application_secrets": {"installed": {"client_id": "dss-tests", "client_secret": "unused",
                "token_uri": format!("{}/unused-token-endpoint", dss.base)}},
            "oauth2_token": {"access_token": dss.token, "token_type": "Bearer", "expires_at": expires_at}});
        std::fs::write(home.path().join("config.json"), cfg.to_string()).expect("config");
        Cli {
            bin: binary(name, var),
            config_var,
            home,
        }
    }

    /// Runs the CLI with `args`; its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        self.run_with(args, &[])
    }

    /// Runs the CLI with `args` and extra environment `env`; its standard output.
    pub fn run_with(&self, args: &[&str], env: &[(&str, String)]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
            .env(self.config_var, self.home.path().join("config.json"))
            // oauthlib's switch for plain-HTTP servers such as this test's.
            .env("OAUTHLIB_INSECURE_TRANSPORT", "1")
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "{} {args:?} failed:\n{}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the official hca CLI; run by infra/local/test.sh"]
async fn hca_cli_works_unchanged() {
    let dss = Dss::up().await;
    let cli = Cli::new(&dss, "hca", "DSS_TEST_HCA", "HCA_CONFIG_FILE");
    exercise(&dss, &cli).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the official dbio CLI; run by infra/local/test.sh"]
async fn dbio_cli_works_unchanged() {
    let dss = Dss::up().await;
    let cli = Cli::new(&dss, "dbio", "DSS_TEST_DBIO", "DBIO_CONFIG_FILE");
    exercise(&dss, &cli).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the official hca CLI; run by infra/local/test.sh"]
async fn hca_cli_sends_its_token_where_a_private_deployment_requires_one() {
    let dss = Dss::up_with(&[("DSS_AUTH__REQUIRE", "all".into())]).await;
    let cli = Cli::new(&dss, "hca", "DSS_TEST_HCA", "HCA_CONFIG_FILE");
    let meta = dss
        .upload(V, b"{\"donor\": {\"id\": 1}}".to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(V, &[(meta, "donor.json".into())]).await;
    let anonymous = reqwest::get(format!("{}/v1/bundles/{bundle}?replica=aws", dss.base))
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);
    let v: Value = serde_json::from_str(&cli.run(&[
        "dss",
        "get-bundle",
        "--uuid",
        &bundle,
        "--replica",
        "aws",
    ]))
    .expect("get-bundle JSON");
    assert_eq!(v["bundle"]["uuid"], bundle.as_str());
    let found: Value = serde_json::from_str(&cli.run(&[
        "dss",
        "post-search",
        "--replica",
        "aws",
        "--es-query",
        "{}",
    ]))
    .expect("post-search JSON");
    assert!(found["results"].is_array(), "{found}");
}

/// get-bundle (one page and auto-paged), head-file, get-file, get-bundles-all, post-search,
/// download, get-collection, download-collection, post-bundles-checkout, get-bundles-checkout.
async fn exercise(dss: &Dss, cli: &Cli) {
    let meta = dss
        .upload(V, b"{\"donor\": {\"id\": 1}}".to_vec(), "application/json")
        .await;
    let data = dss
        .upload(
            V,
            (0..200_000u32).map(|i| (i % 253) as u8).collect(),
            "application/octet-stream",
        )
        .await;
    let small = dss
        .bundle(
            V,
            &[
                (meta.clone(), "metadata/donor.json".into()),
                (data.clone(), "reads.bin".into()),
            ],
        )
        .await;
    let mut many = Vec::new();
    for i in 0..505 {
        many.push((
            dss.upload(V, format!("file {i}").into_bytes(), "text/plain")
                .await,
            format!("f{i:03}.txt"),
        ));
    }
    let big = dss.bundle(V, &many).await;

    let v: Value = serde_json::from_str(&cli.run(&[
        "dss",
        "get-bundle",
        "--uuid",
        &small,
        "--replica",
        "aws",
    ]))
    .expect("json");
    assert_eq!(v["bundle"]["version"], V);
    assert_eq!(v["bundle"]["files"][0]["name"], "metadata/donor.json");

    let v: Value =
        serde_json::from_str(&cli.run(&["dss", "get-bundle", "--uuid", &big, "--replica", "aws"]))
            .expect("json");
    assert_eq!(
        v["bundle"]["files"].as_array().map(Vec::len),
        Some(505),
        "the CLI follows Link pages of a 505-file bundle"
    );

    let out = cli.run(&["dss", "head-file", "--uuid", &data, "--replica", "aws"]);
    assert!(out.contains("200"), "head-file: {out}");

    let out = cli.run(&["dss", "get-file", "--uuid", &meta, "--replica", "aws"]);
    let v: Value = serde_json::from_str(&out).expect("get-file prints the JSON file");
    assert_eq!(v["donor"]["id"], 1);

    let v: Value = serde_json::from_str(&cli.run(&["dss", "get-bundles-all", "--replica", "aws"]))
        .expect("json");
    let listed: Vec<&str> = v["bundles"]
        .as_array()
        .expect("bundles")
        .iter()
        .filter_map(|b| b["uuid"].as_str())
        .collect();
    assert!(
        listed.contains(&small.as_str()) && listed.contains(&big.as_str()),
        "{listed:?}"
    );

    // The bundle's indexed metadata is searchable once the index daemon has seen it.
    let query = serde_json::json!({"query": {"term": {"files.metadata/donor_json.donor.id": 1}}});
    dss.wait_searchable(&query, 1).await;
    let v: Value = serde_json::from_str(&cli.run(&[
        "dss",
        "post-search",
        "--replica",
        "aws",
        "--es-query",
        &query.to_string(),
    ]))
    .expect("json");
    assert_eq!(v["total_hits"], 1, "{v}");
    assert_eq!(v["results"][0]["bundle_fqid"], format!("{small}.{V}"));

    let dl = cli.home.path().join("dl");
    cli.run(&[
        "dss",
        "download",
        "--bundle-uuid",
        &small,
        "--replica",
        "aws",
        "--download-dir",
        dl.to_str().expect("path"),
    ]);
    let root = dl.join(format!("{small}.{V}"));
    assert_eq!(
        std::fs::read(root.join("metadata/donor.json")).expect("donor.json"),
        b"{\"donor\": {\"id\": 1}}"
    );
    let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(
        std::fs::read(root.join("reads.bin")).expect("reads.bin"),
        expected,
        "download verified and wrote the bytes"
    );

    // A collection holding the small bundle and, nested, another collection.
    let put_collection = |contents: serde_json::Value| {
        let uuid = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({"name": "n", "description": "d", "details": {}, "contents": contents});
        let req = dss
            .http
            .put(format!(
                "{}/v1/collections?replica=aws&uuid={uuid}&version={V}",
                dss.base
            ))
            .bearer_auth(&dss.token)
            .json(&body);
        async move {
            let r = req.send().await.expect("put collection");
            assert_eq!(r.status(), 201, "{:?}", r.text().await);
            uuid
        }
    };
    let inner =
        put_collection(serde_json::json!([{"type": "bundle", "uuid": small, "version": V}])).await;
    let outer =
        put_collection(serde_json::json!([{"type": "collection", "uuid": inner, "version": V}]))
            .await;
    let v: Value = serde_json::from_str(&cli.run(&[
        "dss",
        "get-collection",
        "--uuid",
        &outer,
        "--replica",
        "aws",
    ]))
    .expect("json");
    assert_eq!(v["contents"][0]["uuid"], inner.as_str());
    let cdl = cli.home.path().join("cdl");
    cli.run(&[
        "dss",
        "download-collection",
        "--uuid",
        &outer,
        "--replica",
        "aws",
        "--download-dir",
        cdl.to_str().expect("path"),
    ]);
    assert_eq!(
        std::fs::read(cdl.join(format!("{small}.{V}")).join("reads.bin")).expect("reads.bin"),
        expected,
        "download-collection followed the nested collection to the bundle"
    );

    // Check the small bundle out and follow the job to its end.
    let v: Value = serde_json::from_str(&cli.run(&[
        "dss",
        "post-bundles-checkout",
        "--uuid",
        &small,
        "--replica",
        "aws",
        "--email",
        "cli-user@example.org",
    ]))
    .expect("json");
    let job = v["checkout_job_id"].as_str().expect("a job id").to_string();
    let mut status = Value::Null;
    for _ in 0..600 {
        status = serde_json::from_str(&cli.run(&[
            "dss",
            "get-bundles-checkout",
            "--checkout-job-id",
            &job,
            "--replica",
            "aws",
        ]))
        .expect("json");
        if status["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "SUCCEEDED", "{status}");
    assert!(
        status["location"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("aws-checkout/bundles/{small}.{V}"))),
        "{status}"
    );
    assert_eq!(status["files_total"], 2);
}
