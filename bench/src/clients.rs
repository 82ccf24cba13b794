//! The client commands against the official `hca` 7.0.1 CLI, on the same bundles of the same
//! `dss up`, in the same run: downloading many small files, downloading a few large files, and
//! paging through a search. Both are timed as a user runs them (a process each, from start to
//! exit, the CLI's API document already cached).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::stats::{ROUNDS, median, mmm};
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

/// Writes `count` files of `size` pseudo-random bytes (distinct per `seed`) under a new
/// directory in `work`.
fn tree(work: &Path, name: &str, count: usize, size: usize, seed: u64) -> Result<PathBuf> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    for i in 0..count {
        let data = dss_conformance::blob::random_bytes(size, seed << 32 | i as u64);
        std::fs::write(dir.join(format!("part-{i:05}.bin")), data)?;
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

/// A timed client command.
type Step<'a> = &'a dyn Fn() -> Result<Duration>;

/// Runs every step once per round, for [`ROUNDS`] rounds, starting each round one step later
/// (moto's speed drifts as it fills, which would otherwise favour one position); the seconds
/// of each step's runs.
fn rotated(steps: &[Step]) -> Result<Vec<Vec<f64>>> {
    let mut secs = vec![Vec::new(); steps.len()];
    for round in 0..ROUNDS {
        eprintln!("client bench: round {}/{ROUNDS}", round + 1);
        for k in 0..steps.len() {
            let i = (round + k) % steps.len();
            secs[i].push(steps[i]()?.as_secs_f64());
        }
    }
    Ok(secs)
}

/// `min / median / max s (median … MB/s[, …× faster])`.
fn summary(secs: &[f64], bytes: u64, theirs: Option<&[f64]>) -> String {
    let m = median(secs);
    let faster = theirs.map_or(String::new(), |t| format!(", {:.1}× faster", median(t) / m));
    format!(
        "{} (median {:.0} MB/s{faster})",
        mmm(secs.to_vec(), 2, " s"),
        bytes as f64 / m / 1e6
    )
}

/// Downloads `bundle` with both clients in interleaved rounds (fresh directories, the same
/// files and bytes written by both, checked every run); a row.
fn download_row(
    dss: &Path,
    server: &Server,
    hca: &Hca,
    work: &Path,
    label: &str,
    bundle: &str,
) -> Result<Row> {
    let written = std::cell::Cell::new(None);
    let check = |dir: &Path, who: &str| -> Result<()> {
        let got = bytes_under(dir)?;
        std::fs::remove_dir_all(dir)?;
        match written.get() {
            Some(want) if want != got => {
                bail!("{label}: {who} wrote {got:?} (files, bytes), before {want:?}")
            }
            _ => written.set(Some(got)),
        }
        Ok(())
    };
    let ours = || -> Result<Duration> {
        let dir = work.join(format!("dl-dss-{bundle}"));
        let args = ["download", "--bundle-uuid", bundle, "--download-dir"];
        let (_, took) = dss_client(
            dss,
            server,
            &[&args[..], &[&*dir.to_string_lossy()]].concat(),
        )?;
        check(&dir, "dss")?;
        Ok(took)
    };
    let theirs = || -> Result<Duration> {
        let dir = work.join(format!("dl-hca-{bundle}"));
        let args = [
            "dss",
            "download",
            "--bundle-uuid",
            bundle,
            "--replica",
            "aws",
        ];
        let (_, took) =
            hca.run(&[&args[..], &["--download-dir", &*dir.to_string_lossy()]].concat())?;
        check(&dir, "hca")?;
        Ok(took)
    };
    let secs = rotated(&[&ours, &theirs])?;
    let size = written.get().map_or(0, |(_, bytes)| bytes);
    Ok(Row {
        name: format!(
            "`dss download` vs `hca dss download`, {label} (min / median / max of {ROUNDS} rounds)"
        ),
        result: summary(&secs[0], size, Some(&secs[1])),
        goal: "faster than hca".into(),
        baseline: format!(
            "same rounds, interleaved: hca 7.0.1 {}",
            summary(&secs[1], size, None)
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
    let small = tree(&root, "small", small_n, small_size, 0)?;
    let large = tree(&root, "large", large_n, large_size, 1)?;
    let mut rows = Vec::new();
    // The bundles both clients download; these first uploads also warm the server up.
    let (small_bundle, _) = upload(dss, &server, &small)?;
    let (large_bundle, _) = upload(dss, &server, &large)?;
    let large_label = format!("{large_n} × {} MiB", large_size >> 20);
    let small_label = format!("{small_n} × 64 KiB");
    let moto = std::env::var("DSS_BENCH_AWS_URL").ok();
    let staging = match &moto {
        Some(url) => Some(staging_bucket(url).await?),
        None => None,
    };
    let uploads = std::cell::Cell::new(0u64);
    for (label, name, count, size) in [
        (&small_label, "small", small_n, small_size),
        (&large_label, "large", large_n, large_size),
    ] {
        let bytes = (count * size) as u64;
        // Every upload sends bytes the deployment has never seen (it answers at once for bytes
        // it holds), from a tree written just before, outside the time.
        let fresh = |send: &dyn Fn(&Path) -> Result<Duration>| -> Result<Duration> {
            uploads.set(uploads.get() + 1);
            let n = uploads.get();
            let dir = tree(&root, &format!("{name}-{n}"), count, size, n + 1)?;
            let took = send(&dir)?;
            std::fs::remove_dir_all(&dir)?;
            Ok(took)
        };
        let direct = || fresh(&|dir| Ok(upload(dss, &server, dir)?.1));
        let (Some(moto), Some(staging)) = (&moto, &staging) else {
            let secs = rotated(&[&direct])?;
            rows.push(Row {
                name: format!(
                    "`dss upload` of {label} (embedded; min / median / max of {ROUNDS} rounds)"
                ),
                result: summary(&secs[0], bytes, None),
                goal: "faster than hca".into(),
                baseline: "hca uploads only through an S3 staging bucket: DSS_BENCH_AWS_URL unset"
                    .into(),
            });
            continue;
        };
        let staged = || fresh(&|dir| staged_upload(dss, &server, moto, staging, dir));
        let theirs = || fresh(&|dir| hca_upload(&hca, moto, staging, dir));
        let secs = rotated(&[&direct, &staged, &theirs])?;
        rows.push(Row {
            name: format!(
                "`dss upload` (direct; and through S3 staging on moto) vs `hca dss upload` (S3 staging on moto), {label}, new bytes every upload (min / median / max of {ROUNDS} rounds)"
            ),
            result: format!(
                "direct {}; staged {}",
                summary(&secs[0], bytes, Some(&secs[2])),
                summary(&secs[1], bytes, Some(&secs[2]))
            ),
            goal: "faster than hca".into(),
            baseline: format!(
                "same rounds, interleaved: hca 7.0.1 {}",
                summary(&secs[2], bytes, None)
            ),
        });
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
    )?);
    rows.push(download_row(
        dss,
        &server,
        &hca,
        &root,
        &large_label,
        &large_bundle,
    )?);

    eprintln!("seeding {hits} bundles for the search row");
    seed_search(&server, hits).await?;
    let query = json!({"query": {"term": {"files.meta_json.bench.kind": "clients"}}});
    wait_indexed(&server, &query, hits).await?;
    let q = query.to_string();
    let ours = || -> Result<Duration> {
        let (out, took) = dss_client(dss, &server, &["search", "--es-query", &q])?;
        match out.lines().count() {
            n if n == hits => Ok(took),
            n => bail!("search: dss listed {n} of {hits}"),
        }
    };
    let theirs = || -> Result<Duration> {
        let (out, took) = hca.run(&["dss", "post-search", "--replica", "aws", "--es-query", &q])?;
        match out.matches("\"bundle_fqid\"").count() {
            n if n == hits => Ok(took),
            n => bail!("search: hca listed {n} of {hits}"),
        }
    };
    let secs = rotated(&[&ours, &theirs])?;
    rows.push(Row {
        name: format!(
            "`dss search` vs `hca dss post-search`, all {hits} hits (pages of 100; min / median / max of {ROUNDS} rounds)"
        ),
        result: format!(
            "{}, {:.1}× faster",
            mmm(secs[0].clone(), 2, " s"),
            median(&secs[1]) / median(&secs[0])
        ),
        goal: "faster than hca".into(),
        baseline: format!(
            "same rounds, interleaved: hca 7.0.1 {}",
            mmm(secs[1].clone(), 2, " s")
        ),
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    Ok(rows)
}
