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

use async_trait::async_trait;
use dss_core::names::SYNC_QUEUE;
use dss_core::ports::{Queue, QueueError};
use dss_runtime::daemon::{Daemon, DaemonError, Pass, PassResult, Periodic, Task};
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

/// The sync daemon: bucket events and copy requests → verified copies in every other replica,
/// and (with `sync.reconcile_every_secs`) the scheduled reconciler.
#[derive(Debug, Default)]
pub struct SyncDaemon {
    metrics: Arc<SyncMetrics>,
}

impl SyncDaemon {
    /// The daemon, counting into `metrics`.
    pub fn with_metrics(metrics: Arc<SyncMetrics>) -> Self {
        Self { metrics }
    }
}

#[async_trait]
impl Daemon for SyncDaemon {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn about(&self) -> &'static str {
        "replication between replicas, and its scheduled reconciler"
    }

    fn idle_reason(&self, deployment: &Deployment) -> Option<String> {
        (deployment.replicas.len() < 2)
            .then(|| "only one replica is configured: there is nothing to sync".to_string())
    }

    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError> {
        let queue = deployment.queue(SYNC_QUEUE).await?;
        let cfg = &deployment.config.sync;
        let handler = Arc::new(Syncer::new(deployment, self.metrics.clone()));
        let mut worker = WorkerConfig::named("sync");
        worker.concurrency = cfg.concurrency;
        worker.batch_size = cfg.concurrency.clamp(1, 100);
        worker.visibility = Duration::from_secs(cfg.visibility_secs);
        worker.backoff = Backoff {
            max: Duration::from_secs(cfg.retry_max_secs),
            ..Backoff::default()
        };
        let worker = deployment.worker(SYNC_QUEUE, handler, worker).await?;
        deployment
            .metrics
            .register(Box::new(metrics::Exported(self.metrics.clone())));
        let mut tasks = vec![Task::Worker(worker)];
        let every = Duration::from_secs(cfg.reconcile_every_secs);
        if !every.is_zero() {
            let reconciler =
                Reconciler::new(deployment, queue, self.metrics.clone(), cfg.reconcile_page);
            tasks.push(Task::Periodic(Periodic {
                name: "sync-reconcile",
                first: every,
                every,
                pass: Box::new(Scheduled(reconciler)),
            }));
        }
        tracing::info!(replicas = ?deployment.replicas.keys().collect::<Vec<_>>(), "sync daemon running");
        Ok(tasks)
    }
}

/// Runs the sync daemon until `shutdown`, counting into `metrics`.
pub async fn run_with(
    deployment: &Deployment,
    metrics: Arc<SyncMetrics>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    dss_runtime::daemon::run(&SyncDaemon::with_metrics(metrics), deployment, shutdown).await
}

/// A full reconciler pass over every replicated prefix.
struct Scheduled(Reconciler);

#[async_trait]
impl Pass for Scheduled {
    async fn run(&self) -> PassResult {
        let prefixes: Vec<String> = PREFIXES.iter().map(|p| p.to_string()).collect();
        let reports = self.0.run(&prefixes).await?;
        let enqueued: u64 = reports.iter().map(|r| r.enqueued).sum();
        Ok((enqueued > 0).then(|| format!("the reconciler queued {enqueued} copies")))
    }
}
