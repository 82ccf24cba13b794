//! The client commands `dss upload`, `dss search` and `dss download` against `dss up`, on a
//! replica whose downloads come from checkout copies (so `download` waits out 301s).

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::Dss;

/// Runs `dss args…` against `dss` with `token`; its standard output, parsed as JSON lines.
fn client(dss: &Dss, token: Option<&str>, args: &[&str]) -> Result<Vec<Value>, String> {
    client_logged(dss, token, args).map(|(out, _)| out)
}

/// As [`client`], with the command's log (standard error).
fn client_logged(
    dss: &Dss,
    token: Option<&str>,
    args: &[&str],
) -> Result<(Vec<Value>, String), String> {
    client_with(dss, token, args, &[])
}

/// As [`client_logged`], with `env` added (where a cloud staging bucket is, and how to reach it).
pub(crate) fn client_with(
    dss: &Dss,
    token: Option<&str>,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<(Vec<Value>, String), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dss"));
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DSS_URL", format!("{}/v1", dss.base))
        .env("XDG_STATE_HOME", dss.dir.path().join("state"))
        .env_remove("DSS_TOKEN");
    if let Some(t) = token {
        cmd.env("DSS_TOKEN", t);
    }
    let out = cmd.output().expect("run dss");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    Ok((lines, String::from_utf8_lossy(&out.stderr).into_owned()))
}

#[tokio::test]
async fn upload_search_and_download_round_trip_through_the_client_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = format!("file://{}/data/buckets/aws", dir.path().display());
    let dss = Dss::up_in_with(
        dir,
        &[
            ("DSS_REPLICAS__AWS__URL", bucket),
            ("DSS_REPLICAS__AWS__DOWNLOAD", "checkout".into()),
        ],
    )
    .await;
    let src = tempfile::tempdir().expect("tempdir");
    let donor = json!({"donor": {"id": "client-e2e"}});
    std::fs::write(src.path().join("donor.json"), donor.to_string()).expect("write");
    std::fs::create_dir(src.path().join("reads")).expect("mkdir");
    let reads: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.path().join("reads/r1.fastq"), &reads).expect("write");
    let src_dir = src.path().display().to_string();

    let err = client(&dss, None, &["upload", "--src-dir", &src_dir]).unwrap_err();
    assert!(err.contains("401") && err.contains("DSS_TOKEN"), "{err}");

    let up = client(&dss, Some(&dss.token), &["upload", "--src-dir", &src_dir])
        .expect("upload")
        .remove(0);
    let bundle = up["bundle_uuid"].as_str().expect("bundle uuid").to_string();
    let version = up["version"].as_str().expect("version").to_string();
    assert_eq!(up["bytes_sent"], 2_000_000 + donor.to_string().len());
    assert_eq!(up["files"].as_array().map(Vec::len), Some(2));

    let query = json!({"query": {"term": {"files.donor_json.donor.id": "client-e2e"}}});
    dss.wait_searchable(&query, 1).await;
    let hits = client(
        &dss,
        None,
        &[
            "search",
            "--es-query",
            &query.to_string(),
            "--output-format",
            "raw",
        ],
    )
    .expect("search");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["bundle_fqid"], format!("{bundle}.{version}"));
    assert_eq!(
        hits[0]["metadata"]["files"]["donor_json"][0]["donor"]["id"],
        "client-e2e"
    );

    let out = tempfile::tempdir().expect("tempdir");
    let out_dir = out.path().display().to_string();
    let (mut down, log) = client_logged(
        &dss,
        None,
        &[
            "download",
            "--bundle-uuid",
            &bundle,
            "--download-dir",
            &out_dir,
        ],
    )
    .expect("download");
    let down = down.remove(0);
    assert!(
        log.contains("preparing the file"),
        "the first answers were 301s while the checkout copies were made: {log}"
    );
    let dir = out.path().join(format!("{bundle}.{version}"));
    assert_eq!(down["dir"], dir.display().to_string());
    assert!(std::fs::read(dir.join("reads/r1.fastq")).expect("read") == reads);
    assert_eq!(
        std::fs::read_to_string(dir.join("donor.json")).expect("read"),
        donor.to_string()
    );

    let err = client(&dss, None, &["search", "--es-query", "{not json"]).unwrap_err();
    assert!(err.contains("--es-query is not JSON"), "{err}");
}
