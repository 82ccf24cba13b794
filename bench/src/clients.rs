//! The client commands against the official `hca` 7.0.1 CLI, on the same bundles of the same
//! `dss up`, in the same run: downloading many small files, downloading a few large files, and
//! paging through a search. Both are timed as a user runs them (a process each, from start to
//! exit, the CLI's API document already cached).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Row, Server, start_with};

/// The `hca` binary: `DSS_BENCH_HCA`, else the one `infra/local/install-test-tools.sh` installs.
fn hca_binary() -> Result<PathBuf> {
    let p = std::env::var_os("DSS_BENCH_HCA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/hca-venv/bin/hca"),
        PathBuf::from,
    );
    if !p.exists() {
        bail!(
            "the hca CLI is not at {} (bench/run.sh installs it)",
            p.display()
        );
    }
    Ok(p)
}

/// The official CLI, configured for `server` in its own home.
struct Hca {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Hca {
    fn new(server: &Server) -> Result<Self> {
        let home = tempfile::tempdir()?;
        let swagger = format!("{}/v1/swagger.json", server.base);
        let expires_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            + 3600;
        // Authenticated calls (upload): the deployment's token as a stored OAuth2 token.
        let cfg = json!({"DSSClient": {"swagger_url": swagger}, "AuthClient": {"swagger_url": swagger},
            "application_secrets": {"installed": {"client_id": "bench", "client_secret": "unused",
                "token_uri": format!("{}/unused-token-endpoint", server.base)}},
            "oauth2_token": {"access_token": server.token, "token_type": "Bearer", "expires_at": expires_at}});
        std::fs::write(home.path().join("config.json"), cfg.to_string())?;
        Ok(Self {
            bin: hca_binary()?,
            home,
        })
    }

    /// Runs `hca args…`; its standard output and how long it took.
    fn run(&self, args: &[&str]) -> Result<(String, Duration)> {
        self.run_with(args, None, &[])
    }

    /// Runs `hca args…` in `cwd` (default its home) with extra environment `env`.
    fn run_with(
        &self,
        args: &[&str],
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<(String, Duration)> {
        let t = Instant::now();
        let out = Command::new(&self.bin)
            .args(args)
            .envs(env.iter().copied())
            // oauthlib's switch for plain-HTTP servers such as this one.
            .env("OAUTHLIB_INSECURE_TRANSPORT", "1")
            .current_dir(cwd.unwrap_or(self.home.path()))
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
            .env("HCA_CONFIG_FILE", self.home.path().join("config.json"))
            .output()
            .context("running hca")?;
        let took = t.elapsed();
        if !out.status.success() {
            bail!(
                "hca {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((String::from_utf8_lossy(&out.stdout).into_owned(), took))
    }
}

/// Runs `dss args…` against `server`; its standard output and how long it took.
fn dss_client(dss: &Path, server: &Server, args: &[&str]) -> Result<(String, Duration)> {
    dss_client_with(dss, server, args, &[])
}

/// As [`dss_client`], with `env` added.
fn dss_client_with(
    dss: &Path,
    server: &Server,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(String, Duration)> {
    let t = Instant::now();
    let out = Command::new(dss)
        .args(args)
        .envs(env.iter().copied())
        .env("DSS_URL", &server.base)
        .env("DSS_TOKEN", &server.token)
        .env("DSS_LOG__LEVEL", "warn")
        .output()
        .context("running dss")?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "dss {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), took))
}

/// Writes `count` files of `size` pseudo-random bytes under a new directory in `work`.
fn tree(work: &Path, name: &str, count: usize, size: usize) -> Result<PathBuf> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ (count as u64);
    for i in 0..count {
        let mut buf = vec![0u8; size];
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(dir.join(format!("part-{i:05}.bin")), buf)?;
    }
    Ok(dir)
}

/// Files and bytes under `dir`, recursively, skipping the CLI's hidden file store and the
/// manifests (`bundle.json`, formatted differently by each client).
fn bytes_under(dir: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "bundle.json" {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (f, b) = bytes_under(&entry.path())?;
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Uploads `dir` with `dss upload`; the bundle uuid.
fn upload(dss: &Path, server: &Server, dir: &Path) -> Result<(String, Duration)> {
    let (out, took) = dss_client(
        dss,
        server,
        &[
            "upload",
            "--no-resume",
            "--src-dir",
            &dir.display().to_string(),
        ],
    )?;
    let v: Value = serde_json::from_str(out.trim())?;
    let uuid = v["bundle_uuid"]
        .as_str()
        .context("bundle_uuid")?
        .to_string();
    Ok((uuid, took))
}

/// Uploads `dir` with `dss upload --staging s3://{staging}/…` (the S3 server at `moto`), as to a
/// deployment without direct upload; how long it took.
fn staged_upload(
    dss: &Path,
    server: &Server,
    moto: &str,
    staging: &str,
    dir: &Path,
) -> Result<Duration> {
    let dir = dir.display().to_string();
    let staged = format!("s3://{staging}/dss-upload");
    let args = [
        "upload",
        "--no-resume",
        "--src-dir",
        &dir,
        "--staging",
        &staged,
    ];
    let env = [
        ("AWS_ENDPOINT_URL", moto),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    Ok(dss_client_with(dss, server, &args, &env)?.1)
}

/// A new staging bucket on the S3 server at `url`.
async fn staging_bucket(url: &str) -> Result<String> {
    let name = format!(
        "dss-bench-staging-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let opts = dss_aws::AwsOptions {
        endpoint: Some(url.to_string()),
        region: Some("us-east-1".into()),
        path_style: true,
        credentials: Some(("testing".into(), "testing".into())),
    };
    dss_aws::S3BlobStore::connect(&name, &opts)
        .await
        .ensure_bucket()
        .await?;
    Ok(name)
}

/// `hca dss upload` of `dir` through `staging` on the S3 server at `moto`; how long it took.
fn hca_upload(hca: &Hca, moto: &str, staging: &str, dir: &Path) -> Result<Duration> {
    // Run beside the directory: the CLI names files by the path it is given.
    let (parent, name) = (
        dir.parent().context("the upload directory's parent")?,
        dir.file_name().context("the upload directory's name")?,
    );
    let (out, took) = hca.run_with(
        &[
            "dss",
            "upload",
            "--src-dir",
            &name.to_string_lossy(),
            "--replica",
            "aws",
            "--staging-bucket",
            staging,
        ],
        Some(parent),
        &[
            ("AWS_ENDPOINT_URL", moto),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ],
    )?;
    let v: Value = serde_json::from_str(&out).context("hca upload's answer")?;
    if v["bundle_uuid"].as_str().is_none() {
        bail!("hca upload answered {v}");
    }
    Ok(took)
}

/// Downloads `bundle` with both clients (best of `runs` each, fresh directories); a row.
fn download_row(
    dss: &Path,
    server: &Server,
    hca: &Hca,
    work: &Path,
    label: &str,
    bundle: &str,
    runs: usize,
) -> Result<Row> {
    let mut best = (Duration::MAX, Duration::MAX);
    let mut size = 0;
    for run in 0..runs {
        let ours = work.join(format!("dl-dss-{bundle}-{run}"));
        let (_, took) = dss_client(
            dss,
            server,
            &[
                "download",
                "--bundle-uuid",
                bundle,
                "--download-dir",
                &ours.display().to_string(),
            ],
        )?;
        let got = bytes_under(&ours)?;
        std::fs::remove_dir_all(&ours)?;
        best.0 = best.0.min(took);
        let theirs = work.join(format!("dl-hca-{bundle}-{run}"));
        let (_, took) = hca.run(&[
            "dss",
            "download",
            "--bundle-uuid",
            bundle,
            "--replica",
            "aws",
            "--download-dir",
            &theirs.display().to_string(),
        ])?;
        let want = bytes_under(&theirs)?;
        std::fs::remove_dir_all(&theirs)?;
        best.1 = best.1.min(took);
        if got != want {
            bail!("{label}: dss wrote {got:?} (files, bytes), hca {want:?}");
        }
        size = got.1;
    }
    Ok(Row {
        name: format!("`dss download` vs `hca dss download`, {label}"),
        result: format!(
            "{:.2} s ({:.0} MB/s), {:.1}× faster",
            best.0.as_secs_f64(),
            mbps(size, best.0),
            best.1.as_secs_f64() / best.0.as_secs_f64()
        ),
        goal: "faster than hca".into(),
        baseline: format!(
            "hca 7.0.1: {:.2} s ({:.0} MB/s)",
            best.1.as_secs_f64(),
            mbps(size, best.1)
        ),
    })
}

/// Registers `n` bundles that share one metadata file, through the API.
async fn seed_search(server: &Server, n: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let meta = uuid::Uuid::new_v4().to_string();
    let version = "2026-01-01T000000.000000Z";
    server
        .upload(
            &http,
            &meta,
            version,
            "application/json",
            br#"{"bench": {"kind": "clients"}}"#.to_vec(),
        )
        .await?;
    let body = json!({"creator_uid": 0, "files": [{"indexed": true, "name": "meta.json", "uuid": meta, "version": version}]});
    let results: Vec<Result<()>> =
        futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
            futures::stream::iter((0..n).map(|_| {
                let (http, body) = (&http, &body);
                async move {
                    let uuid = uuid::Uuid::new_v4();
                    let r = http
                        .put(format!(
                            "{}/v1/bundles/{uuid}?replica=aws&version={version}",
                            server.base
                        ))
                        .bearer_auth(&server.token)
                        .json(body)
                        .send()
                        .await?;
                    if !r.status().is_success() {
                        bail!("PUT bundle answered {}", r.status());
                    }
                    Ok(())
                }
            })),
            16,
        ))
        .await;
    results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(())
}

/// Waits until `query` finds `n` bundles.
async fn wait_indexed(server: &Server, query: &Value, n: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let mut seen = None;
    for _ in 0..1200 {
        let v: Value = http
            .post(format!("{}/v1/search?replica=aws&per_page=10", server.base))
            .json(&json!({"es_query": query}))
            .send()
            .await?
            .json()
            .await?;
        if v.get("total_hits").is_none() {
            bail!("search answered {v}");
        }
        seen = v["total_hits"].as_u64();
        if seen == Some(n as u64) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the index never held {n} bundles for {query} (last count: {seen:?})")
}

/// Runs the client rows on their own `dss up`.
pub async fn run(dss: &Path, work: &Path, quick: bool) -> Result<Vec<Row>> {
    let root = work.join("clients");
    // With an S3 server, the deployment reads the official CLI's staging bucket there.
    let aws_env: Vec<(&str, String)> = match std::env::var("DSS_BENCH_AWS_URL") {
        Ok(url) => vec![
            ("DSS_AWS__ENDPOINT", url),
            ("DSS_AWS__REGION", "us-east-1".into()),
            ("DSS_AWS__PATH_STYLE", "true".into()),
            ("DSS_AWS__ACCESS_KEY_ID", "testing".into()),
            ("DSS_AWS__SECRET_ACCESS_KEY", "testing".into()),
        ],
        Err(_) => Vec::new(),
    };
    let env: Vec<(&str, &str)> = aws_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = start_with(dss, &root.join("data"), 5931, &env)?;
    let hca = Hca::new(&server)?;
    let (small_n, small_size, large_n, large_size, hits) = if quick {
        (200, 64 * 1024, 2, 64 * 1024 * 1024, 1_000)
    } else {
        (1_000, 64 * 1024, 4, 128 * 1024 * 1024, 5_000)
    };
    eprintln!("writing the client benchmark's files");
    let small = tree(&root, "small", small_n, small_size)?;
    let large = tree(&root, "large", large_n, large_size)?;
    let mut rows = Vec::new();
    let (small_bundle, up_small) = upload(dss, &server, &small)?;
    let (large_bundle, up_large) = upload(dss, &server, &large)?;
    let large_label = format!("{large_n} × {} MiB", large_size >> 20);
    let small_label = format!("{small_n} × 64 KiB");
    let large_bytes = (large_n * large_size) as u64;
    match std::env::var("DSS_BENCH_AWS_URL") {
        Ok(moto) => {
            let staging = staging_bucket(&moto).await?;
            for (label, dir, ours, bytes) in [
                (
                    &small_label,
                    &small,
                    up_small,
                    (small_n * small_size) as u64,
                ),
                (&large_label, &large, up_large, large_bytes),
            ] {
                // Interleaved as ABBA, best of two each: moto's speed drifts (its first large
                // uploads are slow, and it slows as it fills), which would otherwise favour
                // one position.
                let stage = || staged_upload(dss, &server, &moto, &staging, dir);
                let hcas = || hca_upload(&hca, &moto, &staging, dir);
                let (a, b1, b2, a2) = (stage()?, hcas()?, hcas()?, stage()?);
                let (staged, theirs) = (a.min(a2), b1.min(b2));
                let faster = |d: Duration| theirs.as_secs_f64() / d.as_secs_f64();
                rows.push(Row {
                    name: format!(
                        "`dss upload` (direct; and through S3 staging on moto) vs `hca dss upload` (S3 staging on moto), {label}"
                    ),
                    result: format!(
                        "direct {:.2} s ({:.0} MB/s), {:.1}× faster; staged {:.2} s ({:.0} MB/s), {:.1}× faster",
                        ours.as_secs_f64(),
                        mbps(bytes, ours),
                        faster(ours),
                        staged.as_secs_f64(),
                        mbps(bytes, staged),
                        faster(staged)
                    ),
                    goal: "faster than hca".into(),
                    baseline: format!(
                        "hca 7.0.1: {:.2} s ({:.0} MB/s)",
                        theirs.as_secs_f64(),
                        mbps(bytes, theirs)
                    ),
                });
            }
        }
        Err(_) => rows.push(Row {
            name: format!("`dss upload` of {small_label} and of {large_label} (embedded)"),
            result: format!(
                "{:.2} s ({:.0} files/s); {:.2} s ({:.0} MB/s)",
                up_small.as_secs_f64(),
                small_n as f64 / up_small.as_secs_f64(),
                up_large.as_secs_f64(),
                mbps(large_bytes, up_large)
            ),
            goal: "faster than hca".into(),
            baseline: "hca uploads only through an S3 staging bucket: DSS_BENCH_AWS_URL unset"
                .into(),
        }),
    }
    // The CLI fetches and caches the API document on first use; users pay that once.
    hca.run(&[
        "dss",
        "get-bundle",
        "--uuid",
        &small_bundle,
        "--replica",
        "aws",
    ])?;
    rows.push(download_row(
        dss,
        &server,
        &hca,
        &root,
        &small_label,
        &small_bundle,
        2,
    )?);
    rows.push(download_row(
        dss,
        &server,
        &hca,
        &root,
        &large_label,
        &large_bundle,
        2,
    )?);

    eprintln!("seeding {hits} bundles for the search row");
    seed_search(&server, hits).await?;
    let query = json!({"query": {"term": {"files.meta_json.bench.kind": "clients"}}});
    wait_indexed(&server, &query, hits).await?;
    let q = query.to_string();
    let (ours, ours_took) = dss_client(dss, &server, &["search", "--es-query", &q])?;
    let ours_n = ours.lines().count();
    let (theirs, theirs_took) =
        hca.run(&["dss", "post-search", "--replica", "aws", "--es-query", &q])?;
    let theirs_n = theirs.matches("\"bundle_fqid\"").count();
    if ours_n != hits || theirs_n != hits {
        bail!("search: dss listed {ours_n}, hca {theirs_n}, of {hits}");
    }
    rows.push(Row {
        name: format!("`dss search` vs `hca dss post-search`, all {hits} hits (pages of 100)"),
        result: format!(
            "{:.2} s, {:.1}× faster",
            ours_took.as_secs_f64(),
            theirs_took.as_secs_f64() / ours_took.as_secs_f64()
        ),
        goal: "faster than hca".into(),
        baseline: format!("hca 7.0.1: {:.2} s", theirs_took.as_secs_f64()),
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    Ok(rows)
}
