//! The official `hca` 7.0.1 CLI works unchanged against `dss up`.
//!
//! Needs the CLI: `infra/local/test.sh` installs it into `.tools/hca-venv` and runs this test
//! (it is ignored by a plain `cargo test`). `DSS_TEST_HCA` may point at another `hca` binary.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::Dss;

const V: &str = "2026-03-04T050607.080910Z";

fn hca_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DSS_TEST_HCA") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/hca-venv/bin/hca");
    assert!(
        p.exists(),
        "the hca CLI is not installed: run infra/local/test.sh (or set DSS_TEST_HCA)"
    );
    p
}

struct Hca {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Hca {
    fn new(dss: &Dss) -> Hca {
        let home = tempfile::tempdir().expect("tempdir");
        let swagger = format!("{}/v1/swagger.json", dss.base);
        let cfg = serde_json::json!({"DSSClient": {"swagger_url": swagger}, "AuthClient": {"swagger_url": swagger}});
        std::fs::write(home.path().join("config.json"), cfg.to_string()).expect("config");
        Hca {
            bin: hca_binary(),
            home,
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
            .env("HCA_CONFIG_FILE", self.home.path().join("config.json"))
            .output()
            .expect("run hca");
        assert!(
            out.status.success(),
            "hca {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the official hca CLI; run by infra/local/test.sh"]
async fn hca_cli_works_unchanged() {
    let dss = Dss::up().await;
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
    let hca = Hca::new(&dss);

    let v: Value = serde_json::from_str(&hca.run(&[
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
        serde_json::from_str(&hca.run(&["dss", "get-bundle", "--uuid", &big, "--replica", "aws"]))
            .expect("json");
    assert_eq!(
        v["bundle"]["files"].as_array().map(Vec::len),
        Some(505),
        "the CLI follows Link pages of a 505-file bundle"
    );

    let out = hca.run(&["dss", "head-file", "--uuid", &data, "--replica", "aws"]);
    assert!(out.contains("200"), "head-file: {out}");

    let out = hca.run(&["dss", "get-file", "--uuid", &meta, "--replica", "aws"]);
    let v: Value = serde_json::from_str(&out).expect("get-file prints the JSON file");
    assert_eq!(v["donor"]["id"], 1);

    let v: Value = serde_json::from_str(&hca.run(&["dss", "get-bundles-all", "--replica", "aws"]))
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

    let dl = hca.home.path().join("dl");
    hca.run(&[
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
}
