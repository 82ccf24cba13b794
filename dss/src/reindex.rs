//! `dss ops reindex`: rebuild replicas' search documents and journals from their buckets,
//! online, resumable (from any host) from a checkpoint in the replica's checkout bucket.

use std::io::Write;

use anyhow::bail;
use dss_config::Config;
use dss_index::Indexer;
use dss_index::reindex::{Phase, Reindex, ReindexReport};

use crate::progress::Progress;

/// What to reindex and how.
pub struct Options {
    /// Replicas (all when empty).
    pub replicas: Vec<String>,
    /// Keys under this prefix.
    pub prefix: String,
    /// Remove documents whose bundle is not in the bucket.
    pub prune: bool,
    /// Ignore (and replace) a checkpoint of an interrupted run.
    pub restart: bool,
    /// Objects listed per request.
    pub page_size: usize,
    /// Print the reports as JSON lines.
    pub json: bool,
}

/// Runs one pass per replica; fails when any object could not be indexed.
pub async fn run(cfg: &Config, opts: Options) -> anyhow::Result<()> {
    crate::progress::init_logging(&cfg.log);
    let dep = crate::wiring::open(cfg).await?;
    let replicas = match opts.replicas.is_empty() {
        true => dep.replicas.keys().cloned().collect(),
        false => opts.replicas.clone(),
    };
    let mut failures = 0;
    for replica in &replicas {
        let checkpoint = crate::checkpoints::of(&dep, replica, &format!("reindex-{replica}.json"))?;
        if opts.restart {
            checkpoint.clear().await?;
        }
        let pass = Reindex::new(Indexer::new(&dep), replica, &opts.prefix)?
            .checkpoint(checkpoint)
            .page(opts.page_size);
        let pass = if opts.prune { pass.prune() } else { pass };
        let progress = Progress::new(&format!("reindex {replica}"));
        let report = pass
            .run(&|phase, r| match phase {
                Phase::Objects => progress.set(r.bundles + r.tombstones + r.failures, || {
                    format!("objects indexed ({} failed)", r.failures)
                }),
                Phase::Documents => progress.set(r.documents, || {
                    format!("documents checked ({} stale)", r.stale)
                }),
            })
            .await;
        progress.finish();
        let report = report?;
        failures += report.failures;
        print(&report, opts.json)?;
    }
    if failures > 0 {
        bail!("{failures} objects could not be indexed (see `failed` and the log)");
    }
    Ok(())
}

fn print(r: &ReindexReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    if let Some(after) = &r.resumed_after {
        writeln!(out, "{}: resumed after {after}", r.replica)?;
    }
    writeln!(
        out,
        "{}: {} bundles and {} tombstones under {} indexed, {} failed; {} documents checked, {} stale, {} removed",
        r.replica, r.bundles, r.tombstones, r.prefix, r.failures, r.documents, r.stale, r.removed
    )?;
    for f in &r.failed {
        writeln!(out, "  failed {}: {}", f.key, f.reason)?;
    }
    Ok(())
}
