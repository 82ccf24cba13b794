//! `dss ops verify integrity`: within each replica, every bundle's files exist and match what the
//! manifest says of them, and every file's blob exists with the file's size and checksums. Reads
//! only; a report per replica with counts and the first findings.

use std::io::Write;

use anyhow::Result;
use dss_config::Config;
use dss_core::model::keys::Kind;
use dss_core::model::{BundleManifest, FileMetadata, ObjectKey};
use dss_core::ports::{BlobStore, listing};
use dss_core::transfer::holds;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::json;

use crate::progress::Progress;

/// Keys listed per page.
const PAGE: usize = 1000;
/// Documents read at once.
const READS: usize = 32;
/// Findings kept per replica (the count covers all).
const MAX_FINDINGS: usize = 100;

/// One inconsistency.
#[derive(Debug, Serialize)]
struct Finding {
    key: String,
    problem: &'static str,
    detail: String,
}

/// What one replica's check found.
#[derive(Debug, Default, Serialize)]
struct Report {
    replica: String,
    files: u64,
    bundles: u64,
    problems: u64,
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, key: &str, problem: &'static str, detail: String) {
        self.problems += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(Finding {
                key: key.to_string(),
                problem,
                detail,
            });
        }
    }
}

/// Every live versioned document of `kind` under `prefix` (tombstones are not checked).
async fn documents(store: &dyn BlobStore, prefix: &str, kind: Kind) -> Result<Vec<String>> {
    Ok(listing::objects(store, prefix, None, PAGE)
        .map_ok(|o| o.key)
        .try_filter(|k| {
            let wanted =
                matches!(ObjectKey::parse(k), Some(ObjectKey::Versioned(k2, _, _)) if k2 == kind);
            std::future::ready(wanted)
        })
        .try_collect()
        .await?)
}

/// A file's problem, if any: its metadata unreadable, or its blob missing or different.
async fn check_file(store: &dyn BlobStore, key: &str) -> Option<(&'static str, String)> {
    let meta: FileMetadata = match store.get_bytes(key).await {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(m) => m,
            Err(e) => return Some(("unreadable", e.to_string())),
        },
        Err(e) => return Some(("unreadable", e.to_string())),
    };
    let sums = meta.checksums();
    let blob = ObjectKey::blob(&sums);
    match store.head(&blob).await {
        Ok(Some(b)) if holds(&b, &sums, meta.size) => None,
        Ok(Some(b)) => Some((
            "blob_different",
            format!("{blob}: {} bytes, checksums {:?}", b.size, b.checksums),
        )),
        Ok(None) => Some(("blob_missing", blob)),
        Err(e) => Some(("unreadable", format!("{blob}: {e}"))),
    }
}

/// A bundle's problems: its manifest unreadable, or files missing or unlike the manifest.
async fn check_bundle(store: &dyn BlobStore, key: &str) -> Vec<(&'static str, String)> {
    let manifest: BundleManifest = match store.get_bytes(key).await {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(m) => m,
            Err(e) => return vec![("unreadable", e.to_string())],
        },
        Err(e) => return vec![("unreadable", e.to_string())],
    };
    let mut problems = Vec::new();
    for f in &manifest.files {
        let file_key = ObjectKey::file(&f.uuid, &f.version);
        match store.get_bytes(&file_key).await {
            Ok(b) => match serde_json::from_slice::<FileMetadata>(&b) {
                Ok(m) if m.checksums() == f.checksums() && m.size == f.size => {}
                Ok(_) => problems.push(("file_different", format!("{} ({file_key})", f.name))),
                Err(e) => problems.push(("file_unreadable", format!("{file_key}: {e}"))),
            },
            Err(dss_core::ports::BlobError::NotFound(_)) => {
                problems.push(("file_missing", format!("{} ({file_key})", f.name)))
            }
            Err(e) => problems.push(("file_unreadable", format!("{file_key}: {e}"))),
        }
    }
    problems
}

/// `dss ops verify integrity [--replica R]`.
pub async fn run(cfg: &Config, replica: Option<&str>, json: bool) -> Result<()> {
    crate::progress::init_logging(&cfg.log);
    let dep = crate::wiring::open(cfg).await?;
    if let Some(r) = replica
        && !dep.replicas.contains_key(r)
    {
        anyhow::bail!(
            "no replica named {r}: one of {}",
            dep.replicas.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut failed = false;
    for (name, r) in dep
        .replicas
        .iter()
        .filter(|(n, _)| replica.is_none_or(|x| x == n.as_str()))
    {
        let store = &*r.store;
        let mut report = Report {
            replica: name.clone(),
            ..Default::default()
        };
        let progress = Progress::new(&format!("verify integrity {name}"));
        let mut checked = 0u64;
        let files = documents(store, "files/", Kind::File).await?;
        report.files = files.len() as u64;
        let mut checks = futures::stream::iter(files.iter())
            .map(|k| async move { (k, check_file(store, k).await) })
            .buffered(READS);
        while let Some((k, problem)) = checks.next().await {
            if let Some((p, detail)) = problem {
                report.add(k, p, detail);
            }
            checked += 1;
            progress.set(checked, || {
                format!(
                    "files checked of {}, {} problems",
                    report.files, report.problems
                )
            });
        }
        let bundles = documents(store, "bundles/", Kind::Bundle).await?;
        report.bundles = bundles.len() as u64;
        let mut checks = futures::stream::iter(bundles.iter())
            .map(|k| async move { (k, check_bundle(store, k).await) })
            .buffered(READS);
        while let Some((k, problems)) = checks.next().await {
            for (p, detail) in problems {
                report.add(k, p, detail);
            }
            checked += 1;
            progress.set(checked, || {
                format!(
                    "files and bundles checked of {}, {} problems",
                    report.files + report.bundles,
                    report.problems
                )
            });
        }
        progress.finish();
        tracing::info!(replica = %name, files = report.files, bundles = report.bundles, problems = report.problems, "integrity checked");
        failed |= report.problems > 0;
        print(&report, json)?;
    }
    if failed {
        anyhow::bail!("inconsistencies found (see the findings above)");
    }
    Ok(())
}

/// One replica's report: a JSON line with `json`, otherwise a summary and a line per finding.
fn print(r: &Report, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", json!(r))?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} files and {} bundles checked, {} problems",
        r.replica, r.files, r.bundles, r.problems
    )?;
    for f in &r.findings {
        writeln!(out, "  {} {}: {}", f.problem, f.key, f.detail)?;
    }
    Ok(())
}
