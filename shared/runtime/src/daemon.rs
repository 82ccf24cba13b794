//! One shape for every daemon: a name and the tasks it runs on a deployment — queue workers
//! (receive → durable effect → ack, see [`crate::worker`]) and periodic passes (the checkout
//! sweep, pruning the webhook log, the reconciler) — started together and stopped together.
//! `dss` keeps a registry of daemons; `dss up` runs them all and `dss <name>` one alone.

use std::error::Error;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::deployment::Deployment;
use crate::worker::Worker;

/// Why a daemon could not start, or why a pass failed.
pub type DaemonError = Box<dyn Error + Send + Sync>;

/// What one pass of a periodic task did, for the log (`None`: nothing to report).
pub type PassResult = Result<Option<String>, DaemonError>;

/// Work a daemon does periodically: each pass finds what is due by itself, so a pass that is
/// interrupted (a shutdown, a crash) or runs twice is harmless.
#[async_trait]
pub trait Pass: Send + Sync + 'static {
    /// Runs one pass.
    async fn run(&self) -> PassResult;
}

/// A periodic task: `pass` runs `first` after the start, then every `every`.
pub struct Periodic {
    /// Its name in logs and in `dss_periodic_passes_total`.
    pub name: &'static str,
    /// Wait before the first pass (zero: at once).
    pub first: Duration,
    /// Wait between the end of one pass and the start of the next.
    pub every: Duration,
    /// The work.
    pub pass: Box<dyn Pass>,
}

/// One task of a daemon.
pub enum Task {
    /// A queue worker.
    Worker(Worker),
    /// A periodic task.
    Periodic(Periodic),
}

/// A daemon: a name and its tasks.
#[async_trait]
pub trait Daemon: Send + Sync {
    /// Its name: `dss <name>` runs it alone.
    fn name(&self) -> &'static str;

    /// What it does, in one line (for `dss --help`).
    fn about(&self) -> &'static str;

    /// Why it has no work on `deployment` (sync with one replica, the event relay without a
    /// `gs://` replica): `dss up` leaves it out and `dss <name>` refuses to start.
    fn idle_reason(&self, deployment: &Deployment) -> Option<String> {
        let _ = deployment;
        None
    }

    /// Its tasks on `deployment`.
    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError>;
}

/// Runs `daemon` on `deployment` until `shutdown`: declares the queues (where the backend
/// declares them at start), builds its tasks and runs them all; returns when every task has
/// stopped (workers drain their in-flight messages).
pub async fn run(
    daemon: &dyn Daemon,
    deployment: &Deployment,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    deployment.declare_queues().await?;
    let tasks = daemon.tasks(deployment).await?;
    tracing::info!(
        daemon = daemon.name(),
        tasks = tasks.len(),
        "daemon running"
    );
    let passes = deployment.metrics.outcomes(
        "dss_periodic_passes",
        "Passes of the daemons' periodic tasks, by task and outcome (`{task}:ok`, `{task}:failed`).",
        &[],
    );
    let runs = tasks.into_iter().map(|task| {
        let shutdown = shutdown.clone();
        let passes = passes.clone();
        async move {
            match task {
                Task::Worker(w) => w.run(shutdown).await,
                Task::Periodic(p) => periodic(p, &passes, shutdown).await,
            }
        }
    });
    futures::future::join_all(runs).await;
    Ok(())
}

/// Runs `p` until `shutdown` (a pass in progress is dropped: passes are idempotent).
async fn periodic(p: Periodic, passes: &crate::metrics::Outcomes, shutdown: CancellationToken) {
    let mut wait = p.first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        let outcome = tokio::select! {
            r = p.pass.run() => r,
            _ = shutdown.cancelled() => return,
        };
        match outcome {
            Ok(report) => {
                passes.inc(&format!("{}:ok", p.name));
                if let Some(report) = report {
                    tracing::info!(task = p.name, "{report}");
                }
            }
            Err(e) => {
                passes.inc(&format!("{}:failed", p.name));
                tracing::warn!(task = p.name, error = %e, next_in = ?p.every, "periodic pass failed");
            }
        }
        wait = p.every;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    struct Counting(Arc<AtomicU32>, bool);

    #[async_trait]
    impl Pass for Counting {
        async fn run(&self) -> PassResult {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            match self.1 && n.is_multiple_of(2) {
                true => Err("every second pass fails".into()),
                false => Ok(Some(format!("pass {n}"))),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn passes_run_on_schedule_survive_failures_and_stop_with_the_shutdown() {
        let n = Arc::new(AtomicU32::new(0));
        let passes = crate::metrics::Outcomes::default();
        let stop = CancellationToken::new();
        let p = Periodic {
            name: "count",
            first: Duration::from_secs(10),
            every: Duration::from_secs(60),
            pass: Box::new(Counting(n.clone(), true)),
        };
        let task = {
            let (passes, stop) = (passes.clone(), stop.clone());
            tokio::spawn(async move { periodic(p, &passes, stop).await })
        };
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(n.load(Ordering::SeqCst), 0, "not before `first`");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(60 * 3)).await;
        assert_eq!(
            n.load(Ordering::SeqCst),
            4,
            "every minute after, failures included"
        );
        assert_eq!((passes.get("count:ok"), passes.get("count:failed")), (2, 2));
        stop.cancel();
        task.await.expect("the task stops");
    }
}
