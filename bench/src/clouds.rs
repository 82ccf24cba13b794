//! A copy between clouds against `rclone copy` of the same objects, in the same run: S3 (moto)
//! to GCS (fake-gcs-server), every object verified by all four checksums at the destination
//! (rclone checks its MD5). Both servers are local emulators, so the row measures the copy path
//! (range reads ahead of the writer, resumable uploads) more than any cloud.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dss_aws::{AwsOptions, S3BlobStore};
use dss_core::checksum::checksums_of;
use dss_core::ports::{BlobStore, PutOptions};
use dss_core::transfer::transfer;
use dss_gcp::{GcpOptions, GcsBlobStore};
use futures::StreamExt;

use crate::Row;
use crate::stats::{ROUNDS, median, mmm, secs};

fn var(name: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (bench/run.sh starts the emulators)"))
}

/// The cross-cloud row.
pub async fn run(quick: bool) -> Result<Vec<Row>> {
    let (aws_url, gcs_url) = (var("DSS_BENCH_AWS_URL")?, var("DSS_BENCH_GCS_URL")?);
    let aws = AwsOptions {
        endpoint: Some(aws_url.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        credentials: Some(("testing".into(), "testing".into())),
    };
    let gcp = GcpOptions {
        endpoint: Some(gcs_url.clone()),
        pubsub_endpoint: None,
        project: Some("dss-bench".into()),
        anonymous: true,
        ..GcpOptions::default()
    };
    let (count, size) = if quick {
        (2usize, 64usize << 20)
    } else {
        (4, 128 << 20)
    };
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let src = Arc::new(S3BlobStore::connect(&format!("bench-{tag}"), &aws).await);
    src.ensure_bucket().await?;
    let mut sums = Vec::new();
    for i in 0..count {
        let body = dss_conformance::blob::random_bytes(size, i as u64 + 11);
        sums.push(checksums_of(&body));
        src.put_bytes(&format!("blobs/{i}"), body, PutOptions::default())
            .await?;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        eprintln!("clouds bench: round {}", round + 1);
        let dst = GcsBlobStore::connect(&format!("bench-{tag}-ours-{round}"), &gcp)?;
        dst.ensure_bucket().await?;
        let t = Instant::now();
        let copies = futures::stream::iter(sums.iter().enumerate())
            .map(|(i, s)| {
                let (src, dst) = (src.clone(), &dst);
                async move {
                    let opts = PutOptions {
                        size: Some(size as u64),
                        expected: Some(s.clone()),
                        ..Default::default()
                    };
                    let key = format!("blobs/{i}");
                    transfer(&*src, &key, size as u64, dst, &key, opts, Arc::default()).await
                }
            })
            .buffer_unordered(count)
            .collect::<Vec<_>>()
            .await;
        ours.push(t.elapsed());
        for c in copies {
            c?;
        }
        theirs.push(rclone(
            &aws_url,
            &gcs_url,
            &format!("bench-{tag}"),
            &format!("bench-{tag}-rclone-{round}"),
        )?);
    }
    let (ours, theirs) = (secs(&ours), secs(&theirs));
    let (o, r) = (median(&ours), median(&theirs));
    let total = (count * size) as f64;
    Ok(vec![Row {
        name: format!(
            "copy S3 → GCS (moto → fake-gcs-server), {count} × {} MiB, 4 checksums verified (min / median / max of {ROUNDS} rounds)",
            size >> 20
        ),
        result: format!(
            "{} (median {:.0} MB/s; {:.2}× rclone's throughput)",
            mmm(ours, 3, " s"),
            total / o / 1e6,
            r / o
        ),
        goal: "faster than rclone".into(),
        baseline: format!(
            "same rounds, interleaved: rclone copy --transfers {count} (MD5 only) {}",
            mmm(theirs, 3, " s")
        ),
    }])
}

/// `rclone copy` of bucket `from` of the S3 server into bucket `to` of the GCS server.
fn rclone(aws: &str, gcs: &str, from: &str, to: &str) -> Result<Duration> {
    let t = Instant::now();
    let ok = Command::new("rclone")
        .args(["--config", "/dev/null", "copy", "--transfers", "4"])
        // rclone's S3 client cannot load a custom CA bundle over its own transport.
        .env_remove("AWS_CA_BUNDLE")
        .arg(format!("moto:{from}"))
        .arg(format!("fgcs:{to}"))
        .envs([
            ("RCLONE_CONFIG_MOTO_TYPE", "s3"),
            ("RCLONE_CONFIG_MOTO_PROVIDER", "Other"),
            ("RCLONE_CONFIG_MOTO_ENDPOINT", aws),
            ("RCLONE_CONFIG_MOTO_REGION", "us-east-1"),
            ("RCLONE_CONFIG_MOTO_ACCESS_KEY_ID", "testing"),
            ("RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY", "testing"),
            ("RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE", "true"),
            ("RCLONE_CONFIG_FGCS_TYPE", "gcs"),
            ("RCLONE_CONFIG_FGCS_ANONYMOUS", "true"),
            ("RCLONE_CONFIG_FGCS_PROJECT_NUMBER", "dss-bench"),
        ])
        .env("RCLONE_CONFIG_FGCS_ENDPOINT", format!("{gcs}/storage/v1/"))
        .status()
        .context("running rclone (Debian package `rclone`)")?;
    let took = t.elapsed();
    if !ok.success() {
        bail!("rclone failed");
    }
    Ok(took)
}
