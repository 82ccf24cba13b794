//! The sync daemon: every object written to one replica reaches every other configured replica
//! (any number, any backend), byte-identical under the same key and verified by all four
//! checksums before it becomes visible there.
//!
//! * **Reference order.** A file's metadata is copied only once its blob is in the
//!   destination, a bundle once all its files are, a collection once everything it contains
//!   is; until then the message is retried with growing delays (never dropped).
//! * **Tombstones** are objects like any other and replicate (the original failed to).
//! * **No loops, no double copies.** A copy records the replica it came from; its bucket event
//!   is not replicated again — the original replicates to everyone. A key already in place is
//!   not copied; one key being copied to one replica is not copied twice at once.
//! * **The reconciler** ([`reconcile`]) compares the replicas' listings on a schedule and on
//!   demand and queues what is missing or broken, repairing lost events within one pass.
//!
//! Messages of the `sync` queue are bucket events or [`SyncRequest`]s.

pub mod copy;
pub mod deps;
pub mod metrics;
pub mod reconcile;
pub mod request;
pub mod syncer;

use std::sync::Arc;
use std::time::Duration;

use dss_core::names::SYNC_QUEUE;
use dss_core::ports::{Queue, QueueError};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::{Backoff, WorkerConfig};
use tokio_util::sync::CancellationToken;

pub use metrics::SyncMetrics;
pub use reconcile::{PREFIXES, PrefixReport, ReconcileError, Reconciler};
pub use request::SyncRequest;
pub use syncer::Syncer;

/// Whether `prefix` lies within one of the replicated prefixes ([`PREFIXES`]).
pub fn valid_prefix(prefix: &str) -> bool {
    PREFIXES.iter().any(|p| prefix.starts_with(p))
}

/// The reconciler of the deployment's sync queue.
pub async fn reconciler(
    deployment: &Deployment,
    metrics: Arc<SyncMetrics>,
) -> Result<Reconciler, QueueError> {
    deployment.declare_queues().await?;
    let queue: Arc<dyn Queue> = deployment.queue(SYNC_QUEUE).await?;
    Ok(Reconciler::new(
        deployment,
        queue,
        metrics,
        deployment.config.sync.reconcile_page,
    ))
}

/// Runs the sync daemon on the deployment's `sync` queue until `shutdown` (with the scheduled
/// reconciler when `sync.reconcile_every_secs` is set).
pub async fn run(deployment: &Deployment, shutdown: CancellationToken) -> Result<(), QueueError> {
    run_with(deployment, Arc::default(), shutdown).await
}

/// [`run`], counting into `metrics`.
pub async fn run_with(
    deployment: &Deployment,
    metrics: Arc<SyncMetrics>,
    shutdown: CancellationToken,
) -> Result<(), QueueError> {
    deployment.declare_queues().await?;
    let queue = deployment.queue(SYNC_QUEUE).await?;
    let cfg = &deployment.config.sync;
    let every = Duration::from_secs(cfg.reconcile_every_secs);
    let schedule = (!every.is_zero()).then(|| {
        let reconciler = Reconciler::new(
            deployment,
            queue.clone(),
            metrics.clone(),
            cfg.reconcile_page,
        );
        tokio::spawn(scheduled(reconciler, every, shutdown.clone()))
    });
    let metrics_for_export = metrics.clone();
    let handler = Arc::new(Syncer::new(deployment, metrics));
    let mut worker = WorkerConfig::named("sync");
    worker.concurrency = cfg.concurrency;
    worker.batch_size = cfg.concurrency.clamp(1, 100);
    worker.visibility = Duration::from_secs(cfg.visibility_secs);
    worker.backoff = Backoff {
        max: Duration::from_secs(cfg.retry_max_secs),
        ..Backoff::default()
    };
    tracing::info!(replicas = ?deployment.replicas.keys().collect::<Vec<_>>(), "sync daemon running");
    let worker = deployment.worker(SYNC_QUEUE, handler, worker).await?;
    deployment
        .metrics
        .register(Box::new(metrics::Exported(metrics_for_export)));
    worker.run(shutdown).await;
    if let Some(task) = schedule
        && let Err(e) = task.await
    {
        tracing::warn!(error = %e, "the reconciler task failed");
    }
    Ok(())
}

/// Runs a full reconciler pass every `every` until `shutdown`.
async fn scheduled(reconciler: Reconciler, every: Duration, shutdown: CancellationToken) {
    let prefixes: Vec<String> = PREFIXES.iter().map(|p| p.to_string()).collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let pass = tokio::select! {
            r = reconciler.run(&prefixes) => r,
            _ = shutdown.cancelled() => return,
        };
        if let Err(e) = pass {
            tracing::warn!(error = %e, "reconciler pass failed; the next one is due in {every:?}");
        }
    }
}
